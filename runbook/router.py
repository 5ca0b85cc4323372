"""The router of the local target: one HAProxy process, one route per service and environment.

Each route has two ports on loopback:

- the **endpoint** (stable across releases) whose backend holds the live revision (enabled)
  and the previous one (disabled, kept for an instant switch back), and
- the **preview** port whose backend holds only the candidate revision, for load tests and
  pre-promotion checks; production traffic never reaches it.

Servers are named ``{color}-{revision}`` and added at run time through HAProxy's runtime API,
so HAProxy's Prometheus exporter reports every revision under its own ``server`` label: the
verification queries measure exactly the new revision, never a mix with an older one that
used the same color. A traffic switch is one runtime-API call that enables one server and
disables the others: no reload, no dropped connection.

The routes are persisted in ``router/routes.json``; the configuration file is rendered from it,
so a reload (needed only when a route is added or removed) reproduces the live state.

Why a route still needs a reload: HAProxy 2.6 adds servers at run time (``add server``) but
not frontends, binds or backends. One frontend over the whole port range routing by a map,
with a pool of pre-created backends, would avoid it, but the backends would then be named by
slot, not ``<service>.<environment>``, and that name is the ``proxy`` label the alert rules,
the verification queries and the alert receiver select on. So the reload is made hitless
instead: the new process takes the listening sockets over from the old one (``-x``, the
sockets are exposed on the admin socket), nothing is ever unbound; the old process answers
each kept-alive connection's next request with ``Connection: close`` instead of closing idle
connections under a client (``option idle-close-on-response``), and leaves within
``hard-stop-after``. Server changes and switches never reload.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from runbook.errors import ConfigurationError, TransientError
from runbook.settings import StackSettings
from runbook.store.layout import StateLayout

RUNTIME_API_TIMEOUT_S = 5.0
LOCK_TIMEOUT_S = 60.0
LOCK_POLL_S = 0.01
# An old process still serving long requests after a reload leaves after this at the latest.
HARD_STOP_AFTER = "30s"
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


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
    servers: list[Server] = Field(default_factory=list)
    preview: Server | None = None
    retired_previews: list[str] = Field(default_factory=list)
    """Promoted candidates still in the preview backend, disabled: HAProxy deletes a server
    only once its idle connections are gone, which a switch does not wait for."""
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


class RouteTable(BaseModel):
    routes: dict[str, Route] = Field(default_factory=dict)


class HAProxyRouter:
    """Routes, configuration and process of the local HAProxy."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        layout = StateLayout(settings.state_dir)
        self.dir = layout.router
        self.config_path = layout.router_config
        self.routes_path = layout.routes
        self.socket_path = layout.router_socket
        self.pid_path = layout.router_pid
        self.lock_path = layout.routes_lock
        # routes.json as last read or written by this process: its bytes and their parse.
        self._cached: tuple[bytes, dict[str, Any]] | None = None
        # Each route's document as last written and its JSON text.
        self._serialised: dict[str, tuple[Any, str]] = {}

    # -- process ------------------------------------------------------------------------

    def running(self) -> bool:
        try:
            self.runtime("show info")
        except TransientError:
            return False
        return True

    def start(self) -> None:
        """Start HAProxy with the configuration of the persisted routes (no-op if running)."""
        if self.running():
            return
        with self._locked():
            self._render_and_launch(replace_pid=None)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        self.pid_path.unlink(missing_ok=True)

    def pid(self) -> int | None:
        """The serving HAProxy process (its pid file); a reload changes it."""
        try:
            return int(self.pid_path.read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None

    def _render_and_launch(self, replace_pid: int | None) -> None:
        """Start HAProxy on the rendered routes; with ``replace_pid``, a hitless reload.

        No separate ``haproxy -c``: a new process that rejects its configuration exits
        before it signals the old one, which keeps serving, and its error is reported."""
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.dir.mkdir(parents=True, exist_ok=True)
        table = self._load()
        # The new process is built from the configuration, which has no retired previews:
        # once it serves, they exist nowhere, and a later command naming one would fail
        # ("No such server"). The table forgets them when the new process is up.
        retired = any(route.retired_previews for route in table.routes.values())
        self.config_path.write_text(self.render(table))
        command = [binary, "-D", "-p", str(self.pid_path), "-f", str(self.config_path)]
        if replace_pid is not None:
            command += ["-x", str(self.socket_path), "-sf", str(replace_pid)]
        launched = subprocess.run(command, capture_output=True, text=True, timeout=30,
                                  check=False)
        if launched.returncode != 0:
            raise ConfigurationError(
                f"haproxy rejected {self.config_path}: {launched.stderr.strip()}")
        # Until the new process has put its own socket in place, the old one answers on
        # the same path and knows nothing of a route just added ("No such backend").
        deadline = time.monotonic() + 10
        while not self._served_by_current():
            if time.monotonic() > deadline:
                raise TransientError("haproxy did not open its runtime API within 10 s")
            time.sleep(0.05)
        if retired:
            for route in table.routes.values():
                route.retired_previews = []
            self._save(table)

    def _served_by_current(self) -> bool:
        """The runtime API answers, from the process the pid file names."""
        try:
            info = self.runtime("show info")
        except TransientError:
            return False
        return f"Pid: {self.pid()}" in info.splitlines()

    # -- configuration --------------------------------------------------------------------

    def render(self, table: RouteTable) -> str:
        """HAProxy configuration for the given routes."""
        host = self.settings.host
        lines = [
            "global",
            f"    stats socket {self.socket_path} mode 600 level admin expose-fd listeners",
            "    maxconn 4096",
            f"    hard-stop-after {HARD_STOP_AFTER}",
            "",
            "defaults",
            "    mode http",
            "    option idle-close-on-response",
            "    option redispatch",
            "    retries 3",
            "    timeout connect 2s",
            "    timeout client 60s",
            "    timeout server 60s",
            "    timeout http-keep-alive 10s",
            "",
            "frontend metrics",
            f"    bind {host}:{self.settings.router_metrics_port}",
            "    http-request use-service prometheus-exporter if { path /metrics }",
            "    stats enable",
            "    stats uri /stats",
            "",
        ]
        for route in table.routes.values():
            lines += [
                f"frontend {route.key}",
                f"    bind {host}:{route.port}",
                f"    default_backend {route.backend}",
                "",
                f"frontend {route.preview_backend}",
                f"    bind {host}:{route.preview_port}",
                f"    default_backend {route.preview_backend}",
                "",
                f"backend {route.backend}",
                "    balance roundrobin",
                *(self._server_line(s) for s in route.servers),
                "",
                f"backend {route.preview_backend}",
                "    balance roundrobin",
                *([self._server_line(route.preview)] if route.preview else []),
                "",
            ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _server_line(server: Server) -> str:
        state = "" if server.enabled else " disabled"
        return f"    server {server.name} {server.address}{state}"

    # -- routes ---------------------------------------------------------------------------

    def route(self, service: str, environment: str) -> Route | None:
        document = self._documents().get(f"{service}.{environment}")
        return None if document is None else Route.model_validate(document)

    def ensure_route(self, service: str, environment: str) -> Route:
        """The route of a service and environment, created (with stable ports) if new."""
        for part in (service, environment):
            if not _SAFE_NAME.match(part):
                raise ConfigurationError(f"not a safe route name: {part!r}")
        key = f"{service}.{environment}"
        with self._locked():
            if (existing := self._documents().get(key)) is not None:
                return Route.model_validate(existing)
            table = self._load()
            port, preview_port = self._free_ports(table)
            route = Route(
                service=service, environment=environment, port=port, preview_port=preview_port
            )
            table.routes[key] = route
            self._save(table)
            self._render_and_launch(replace_pid=self.pid() if self.running() else None)
            return route

    def set_preview(self, service: str, environment: str, server: Server) -> None:
        """Put a candidate revision behind the preview port, and (disabled) in the backend."""
        with self._edit(service, environment) as route:
            self._purge_retired(route)
            commands: list[str] = []
            if route.preview is not None:
                commands += self._delete_commands(route.preview_backend, route.preview.name)
            if server.name in route.retired_previews:  # the same revision previewed again
                commands += self._delete_commands(route.preview_backend, server.name)
                route.retired_previews.remove(server.name)
            commands += self._add_commands(route.preview_backend, server.name, server.address)
            commands.append(f"enable server {route.preview_backend}/{server.name}")
            if all(s.name != server.name for s in route.servers):
                commands += self._add_commands(route.backend, server.name, server.address)
                route.servers.append(server.model_copy(update={"enabled": False}))
            route.preview = server.model_copy(update={"enabled": True})
            self._apply(commands)

    def switch(self, service: str, environment: str, to: str) -> None:
        """Send all endpoint traffic to server ``to``: one atomic runtime-API call."""
        with self._edit(service, environment) as route:
            if all(s.name != to for s in route.servers):
                raise ConfigurationError(f"{route.key} has no server {to!r}")
            commands = [f"enable server {route.backend}/{to}"] + [
                f"disable server {route.backend}/{s.name}" for s in route.servers if s.name != to
            ]
            promoted = route.preview is not None and route.preview.name == to
            if promoted:
                # No longer a candidate: the preview port serves the next one only. Deleted
                # later (see retired_previews), so the switch never waits on HAProxy's purge
                # of the load test's idle connections.
                commands += [f"disable server {route.preview_backend}/{to}",
                             f"shutdown sessions server {route.preview_backend}/{to}"]
            self._apply(commands, batch=True)
            for s in route.servers:
                s.enabled = s.name == to
            route.isolated_from = []
            if promoted:
                route.preview = None
                route.retired_previews.append(to)

    def remove_server(self, service: str, environment: str, name: str) -> None:
        """Take a revision out of the route (endpoint and preview); it must not be live."""
        with self._edit(service, environment) as route:
            live = route.live()
            if live is not None and live.name == name:
                raise ConfigurationError(f"{name} is live on {route.key}; switch away first")
            commands: list[str] = []
            if any(s.name == name for s in route.servers):
                commands += self._delete_commands(route.backend, name)
                route.servers = [s for s in route.servers if s.name != name]
            if route.preview is not None and route.preview.name == name:
                commands += self._delete_commands(route.preview_backend, name)
                route.preview = None
            if name in route.retired_previews:
                commands += self._delete_commands(route.preview_backend, name)
                route.retired_previews.remove(name)
            self._apply(commands)
            self._purge_retired(route)

    def routes(self) -> list[Route]:
        return list(self._load().routes.values())

    def set_address(self, service: str, environment: str, name: str, address: str) -> None:
        """Point a server at a new host:port (its container restarted on another port)."""
        host, _, port = address.rpartition(":")
        with self._edit(service, environment) as route:
            commands = []
            for server in route.servers:
                if server.name == name:
                    server.address = address
                    commands.append(f"set server {route.backend}/{name} addr {host} port {port}")
            if route.preview is not None and route.preview.name == name:
                route.preview.address = address
                commands.append(
                    f"set server {route.preview_backend}/{name} addr {host} port {port}"
                )
            self._apply(commands)

    def remove_route(self, service: str, environment: str) -> None:
        """Forget a route and free its ports (HAProxy reloads without it)."""
        with self._locked():
            table = self._load()
            if table.routes.pop(f"{service}.{environment}", None) is None:
                return
            self._save(table)
            if self.running():
                self._render_and_launch(replace_pid=self.pid())

    def clear_preview(self, service: str, environment: str) -> None:
        with self._edit(service, environment) as route:
            self._purge_retired(route)
            if route.preview is not None:
                self._apply(self._delete_commands(route.preview_backend, route.preview.name))
                route.preview = None

    def isolate(self, service: str, environment: str) -> list[str]:
        """Zero traffic: disable every server of the endpoint and take the candidate off the
        preview, in one runtime-API batch; both ports answer 503. The servers stay in the
        backend (disabled), so their containers stay for forensics and an explicit switch
        can bring one back. Returns the servers that were serving."""
        if self.route(service, environment) is None:
            raise ConfigurationError(f"no route for {service}/{environment}")
        with self._edit(service, environment) as route:
            serving = [s.name for s in route.servers if s.enabled]
            commands = [f"disable server {route.backend}/{s.name}" for s in route.servers]
            if route.preview is not None:
                commands.append(f"disable server {route.preview_backend}/{route.preview.name}")
                route.preview.enabled = False
            if commands:
                self._apply(commands, batch=True)
            for server in route.servers:
                server.enabled = False
            route.isolated_from = serving or route.isolated_from
        return serving

    def _purge_retired(self, route: Route) -> None:
        """Delete the retired previews HAProxy lets go of now; keep the others for later."""
        for name in list(route.retired_previews):
            reply = self.runtime(f"del server {route.preview_backend}/{name}").lower()
            if "still has" in reply:
                continue
            if reply.strip() and "deleted" not in reply and "no such" not in reply \
                    and "not found" not in reply:
                self._check(reply, [f"del server {route.preview_backend}/{name}"])
            route.retired_previews.remove(name)

    @staticmethod
    def _add_commands(backend: str, name: str, address: str) -> list[str]:
        return [f"add server {backend}/{name} {address}"]

    @staticmethod
    def _delete_commands(backend: str, name: str) -> list[str]:
        return [
            f"disable server {backend}/{name}",
            f"shutdown sessions server {backend}/{name}",
            f"del server {backend}/{name}",
        ]

    def _apply(self, commands: list[str], batch: bool = False) -> None:
        if batch:
            self._check(self.runtime(";".join(commands)), commands)
            return
        for command in commands:
            self._check(self._runtime_retrying(command), [command])

    def _runtime_retrying(self, command: str) -> str:
        # "del server" is refused while HAProxy still holds idle connections to the server;
        # they are purged within a few hundred milliseconds of the server entering maintenance.
        deadline = time.monotonic() + 10
        while True:
            reply = self.runtime(command)
            if not command.startswith("del server") or "still has" not in reply.lower():
                return reply
            if time.monotonic() > deadline:
                return reply
            time.sleep(0.2)

    @staticmethod
    def _check(reply: str, commands: list[str]) -> None:
        lowered = reply.lower()
        for marker in ("unknown", "not found", "no such", "error", "refused", "cannot", "require"):
            if marker in lowered:
                sent = "; ".join(commands)
                raise ConfigurationError(f"haproxy refused {sent!r}: {reply.strip()}")

    def runtime(self, command: str) -> str:
        """Send one command line to HAProxy's runtime API and return its reply."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(RUNTIME_API_TIMEOUT_S)
                sock.connect(str(self.socket_path))
                sock.sendall(command.encode() + b"\n")
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            raise TransientError(f"haproxy runtime API at {self.socket_path}: {exc}") from exc
        return b"".join(chunks).decode(errors="replace")

    # -- persistence ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The route table and HAProxy's runtime state, one writer at a time (across
        processes). Held for a read-modify-write of the table and its runtime-API commands,
        or a reload; never while waiting on anything else."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "w") as lock:
            deadline = time.monotonic() + LOCK_TIMEOUT_S
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TransientError(
                            f"router table {self.routes_path} still locked after "
                            f"{LOCK_TIMEOUT_S:.0f} s") from None
                    time.sleep(LOCK_POLL_S)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _edit(self, service: str, environment: str) -> Iterator[Route]:
        """One route, read-modify-written under the lock: only it is parsed and serialised,
        the others are carried over as they were read (a switch at 200 routes would
        otherwise spend most of its time validating and dumping the whole table).
        KeyError when the route does not exist. Nothing is written if the block raises."""
        key = f"{service}.{environment}"
        with self._locked():
            documents = self._documents()
            route = Route.model_validate(documents[key])
            yield route
            documents[key] = route.model_dump(mode="json")
            self._write(documents)

    def _documents(self) -> dict[str, Any]:
        """The persisted routes as JSON documents by key (a copy to change freely). The
        file is read every time; it is parsed only when its bytes differ from what this
        process last read or wrote (another process changed it)."""
        try:
            content = self.routes_path.read_bytes()
        except FileNotFoundError:
            return {}
        if self._cached is None or self._cached[0] != content:
            self._cached = (content, json.loads(content).get("routes", {}))
        return dict(self._cached[1])

    def _write(self, documents: dict[str, Any]) -> None:
        """Persist the routes (write and rename: never half a file). Each route's JSON is
        kept from the last write and serialised again only when its document changed."""
        known = self._serialised
        texts = {key: known[key][1] if key in known and known[key][0] is document
                 else json.dumps(document) for key, document in documents.items()}
        content = ('{"routes": {' + ", ".join(f"{json.dumps(key)}: {text}"
                                              for key, text in texts.items()) + "}}").encode()
        temporary = self.routes_path.with_suffix(".tmp")
        temporary.write_bytes(content)
        temporary.replace(self.routes_path)
        self._cached = (content, documents)
        self._serialised = {key: (documents[key], text) for key, text in texts.items()}

    def _load(self) -> RouteTable:
        return RouteTable.model_validate({"routes": self._documents()})

    def _save(self, table: RouteTable) -> None:
        self._write({key: route.model_dump(mode="json") for key, route in table.routes.items()})

    def _free_ports(self, table: RouteTable) -> tuple[int, int]:
        taken = {p for r in table.routes.values() for p in (r.port, r.preview_port)}
        free = [
            port
            for port in range(self.settings.route_port_min, self.settings.route_port_max + 1)
            if port not in taken and _port_is_free(self.settings.host, port)
        ]
        if len(free) < 2:
            raise ConfigurationError(
                f"no free ports left in {self.settings.route_port_min}-"
                f"{self.settings.route_port_max}",
                hint="widen the range with RUNBOOK_ROUTE_PORT_MIN / RUNBOOK_ROUTE_PORT_MAX")
        return free[0], free[1]


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((host, port)) != 0

