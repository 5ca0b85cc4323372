"""The router's persisted routes (``router/routes.json``): each service and environment's
ports and servers, as ``runbook.router`` writes them and renders each route's HAProxy from."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Server(BaseModel):
    """One revision's container as HAProxy sees it."""

    name: str
    address: str  # host:port on loopback
    enabled: bool = False


class Route(BaseModel):
    """Endpoint and preview of one service in one environment."""

    service: str
    environment: str
    port: int
    preview_port: int
    metrics_port: int | None = None
    """This route's HAProxy exporter. None in a routes.json written before routes had their
    own process: one is allocated when the route's process starts."""
    servers: list[Server] = Field(default_factory=list)
    preview: Server | None = None
    retired_previews: list[str] = Field(default_factory=list)
    """Promoted candidates still in the preview backend, disabled: HAProxy deletes a server
    only once its idle connections are gone, which a switch does not wait for. A process
    started anew (``start()``) is built without them, and the list is emptied."""
    isolated_from: list[str] = Field(default_factory=list)
    """The servers that were serving when the route was isolated (security incident);
    cleared by the next switch."""

    @property
    def key(self) -> str:
        return f"{self.service}.{self.environment}"

    @property
    def backend(self) -> str:
        return self.key

    @property
    def preview_backend(self) -> str:
        return f"{self.key}.preview"

    def live(self) -> Server | None:
        return next((s for s in self.servers if s.enabled), None)

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(p for p in (self.port, self.preview_port, self.metrics_port)
                     if p is not None)


class RouteTable(BaseModel):
    routes: dict[str, Route] = Field(default_factory=dict)
