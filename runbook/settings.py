"""Settings of the local stack and of the CLI, read from the environment (``RUNBOOK_*``).

Every port and path of the local stack is here, so two stacks can run side by side (a test
stack on other ports) and nothing else in the code hard-codes one.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from runbook.config import RunbookConfig, load_config


def _default_state_dir() -> Path:
    return Path.home() / ".local" / "state" / "runbook"


class StackSettings(BaseSettings):
    """Where the local stack lives and which loopback ports it uses."""

    model_config = SettingsConfigDict(env_prefix="RUNBOOK_", extra="ignore")

    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="One directory for every component's data, logs, pid files and configs.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Loopback address every component listens on; never a public interface.",
    )
    docker_host: str = Field(
        default="unix:///var/run/docker.sock",
        description="Docker engine API. A running engine is reused; otherwise one is started.",
    )
    registry_port: int = Field(default=5000, description="Docker registry (HTTP API v2).")
    prometheus_port: int = Field(default=9090, description="Prometheus HTTP API.")
    alertmanager_port: int = Field(default=9093, description="Alertmanager HTTP API.")
    pushgateway_port: int = Field(default=9091, description="Prometheus Pushgateway.")
    prefect_port: int = Field(default=4200, description="Prefect server API and UI.")
    receiver_port: int = Field(
        default=9095, description="The runbook's Alertmanager webhook receiver "
        "(runbook.alerts.receiver): Prometheus alerts become runbook alerts and incidents."
    )
    router_metrics_port: int = Field(
        default=8405, description="HAProxy's Prometheus exporter and stats page."
    )
    route_port_min: int = Field(
        default=18000,
        description="First port handed to service endpoints; each service and environment "
        "gets a stable endpoint port and a preview port from this range.",
    )
    route_port_max: int = Field(default=18999, description="Last port of the endpoint range.")
    base_image: str = Field(
        default="python:3.11-slim",
        description="Python base image the sample service builds FROM. When it cannot be "
        "pulled (no Docker Hub), the stack builds an equivalent from Debian packages.",
    )
    configuration: RunbookConfig = Field(
        default_factory=load_config,
        description="The runbook.yaml in force (--config, $RUNBOOK_CONFIG, or the "
        "repository's): each environment's registry, Prometheus, cluster and endpoint. "
        "No file: every part is this stack's (runbook.infra resolves the two).",
    )
    scrape_interval_s: int = Field(
        default=2,
        description="Prometheus scrape interval. Short, because verification windows are "
        "tens of seconds and need several samples each.",
    )

    @property
    def registry(self) -> str:
        """Registry host:port as used in image references."""
        return f"{self.host}:{self.registry_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{self.host}:{self.alertmanager_port}"

    @property
    def receiver_url(self) -> str:
        return f"http://{self.host}:{self.receiver_port}"

    @property
    def pushgateway_url(self) -> str:
        return f"http://{self.host}:{self.pushgateway_port}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def prefect_ui_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}"

    @property
    def router_metrics_url(self) -> str:
        return f"http://{self.host}:{self.router_metrics_port}/metrics"

    def path(self, *parts: str) -> Path:
        """A path under the state directory, its parent created."""
        target = self.state_dir.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target
