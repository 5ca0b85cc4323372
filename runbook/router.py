"""The router of the local target: one HAProxy process per route (service and environment).

Each route has three ports on loopback, all from the route port range:

- the **endpoint** (stable across releases) whose backend holds the live revision (enabled)
  and the previous one (disabled, kept for an instant switch back),
- the **preview** port whose backend holds only the candidate revision, for load tests and
  pre-promotion checks; production traffic never reaches it, and
- the **metrics** port: that process's Prometheus exporter (``/metrics``).

Servers are named ``{color}-{revision}`` and added at run time through HAProxy's runtime API,
so HAProxy's Prometheus exporter reports every revision under its own ``server`` label: the
verification queries measure exactly the new revision, never a mix with an older one that
used the same color. A traffic switch is one runtime-API call that enables one server and
disables the others: no reload, no dropped connection.

Why one process per route: HAProxy 2.6 adds servers at run time (``add server``) but not
frontends, binds or backends, so with one process for every route, adding or removing a route
meant a reload, and a reloaded process starts its counters from zero: every *other* route's
``haproxy_server_http_responses_total`` lost what it had served since Prometheus' last scrape,
and verification read short counts or "no data" while another release created a route
(``benchmarks/router_reload_counts.py``: 294 of 738 requests counted). A route's own process
is started when the route is created and stopped when it is removed; nothing else ever
restarts it, so its counters run as long as the route lives. Its backends are still named
``<service>.<environment>`` and ``<service>.<environment>.preview``: that name is the
``proxy`` label the alert rules, the verification queries and the alert receiver select on.
Prometheus finds the routes' exporters in ``router/targets.json`` (file service discovery),
rewritten atomically whenever a route comes or goes.

A small **main** process serves only the stats page and its own exporter at
``router_metrics_port``: it is what ``running()``, ``pid()`` and the stack's probe name ("the
router is up"), and it stays a Prometheus target (``up{job="router"}``) with no route at all.

The routes are persisted in ``router/routes.json``; a route's configuration file is rendered
from it whenever its process starts (``start()`` after a reboot), so it reproduces the live
state. Route processes run ``nbthread 1``: many processes on few cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runbook import haproxy
from runbook.errors import ConfigurationError, TransientError
from runbook.locks import file_lock
from runbook.route_table import Route, RouteTable, Server
from runbook.settings import StackSettings
from runbook.store.layout import StateLayout

LOCK_TIMEOUT_S = 60.0
LOCK_POLL_S = 0.01
LAUNCH_DEADLINE_S = 10.0
# A stopped route's listeners are gone at once (soft stop); its process leaves after its
# last connection, within haproxy.HARD_STOP_AFTER at the latest.
STOP_DEADLINE_S = 10.0
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")


class HAProxyRouter:
    """Routes, configurations and processes of the local HAProxy router."""

    def __init__(self, settings: StackSettings) -> None:
        self.settings = settings
        self.layout = layout = StateLayout(settings.state_dir)
        self.dir = layout.router
        self.config_path = layout.router_config
        self.routes_path = layout.routes
        self.socket_path = layout.router_socket
        self.pid_path = layout.router_pid
        self.lock_path = layout.routes_lock
        self.targets_path = layout.router_targets
        # routes.json as last read or written by this process: its bytes and their parse.
        self._cached: tuple[bytes, dict[str, Any]] | None = None
        # Each route's document as last written and its JSON text.
        self._serialised: dict[str, tuple[Any, str]] = {}

    # -- processes ------------------------------------------------------------------------

    def running(self) -> bool:
        """The main process (stats page and exporter at ``router_metrics_port``) answers."""
        return self._serves(self.socket_path, self.pid_path)

    def pid(self) -> int | None:
        """The main process (its pid file); route processes have their own."""
        return haproxy.read_pid(self.pid_path)

    def route_running(self, route: Route) -> bool:
        """The route's own process answers on its runtime API."""
        return self._serves(self.socket_of(route.service, route.environment),
                            self.layout.route_pid(route.service, route.environment))

    def route_pid(self, service: str, environment: str) -> int | None:
        return haproxy.read_pid(self.layout.route_pid(service, environment))

    def socket_of(self, service: str, environment: str) -> Path:
        """The runtime-API socket of the process that serves this route."""
        return self.layout.route_socket(service, environment)

    def not_running(self) -> list[str]:
        """The persisted routes whose process does not answer (after a crash or reboot).

        A route another release is removing right now is still in the table while its
        process stops: read without the lock, it looked dead, and the whole stack's router
        unhealthy to every other release's preflight (seen in the parallel suite). So the
        routes that look stopped are checked again under the router's lock, once any edit
        in progress has finished; the usual case, all running, takes no lock."""
        suspects = [route.key for route in self.routes() if not self.route_running(route)]
        if not suspects:
            return []
        with self._locked():
            table = self._load()
            return [key for key in suspects
                    if key in table.routes and not self.route_running(table.routes[key])]

    def start(self) -> None:
        """Start the main process and every persisted route's process not running; write
        Prometheus' targets. This is how the stack comes back after a reboot."""
        with self._locked():
            # A main process of an older configuration serves every route itself: each
            # route's process takes its listening sockets over (``-x``), then a new main
            # replaces it as a hitless reload does (``-sf``), once.
            stale = self.pid() if self.running() and self._main_is_stale() else None
            handover = [] if stale is None else ["-x", str(self.socket_path)]
            table = self._load()
            self._allocate_missing_metrics_ports(table)
            failed = []
            for route in table.routes.values():
                if self.route_running(route):
                    continue
                # Rebuilt from the table: retired previews exist only in a process that
                # served them, and this one never did.
                route.retired_previews = []
                try:
                    self._launch_route(route, handover)
                except (ConfigurationError, TransientError) as exc:
                    failed.append(f"{route.key}: {exc}")  # the other routes still start
            self._save(table)
            if stale is not None:
                self._launch(self.config_path, self.pid_path, self.socket_path,
                             self.render_main(), [*handover, "-sf", str(stale)])
            elif not self.running():
                self._launch(self.config_path, self.pid_path, self.socket_path,
                             self.render_main())
            self._write_targets(table)
        if failed:
            raise TransientError(f"route processes that did not start: {'; '.join(failed)}")

    def stop(self) -> None:
        """Stop every route's process and the main one (SIGTERM), waiting for them to go."""
        pids = [pid for route in self.routes()
                if (pid := self.route_pid(route.service, route.environment)) is not None]
        if (main := self.pid()) is not None:
            pids.append(main)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_DEADLINE_S
        while any(haproxy.alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        for route in self.routes():
            self.layout.route_pid(route.service, route.environment).unlink(missing_ok=True)
        self.pid_path.unlink(missing_ok=True)

    def _launch_route(self, route: Route, handover: list[str] | None = None) -> None:
        self._launch(self.layout.route_config(route.service, route.environment),
                     self.layout.route_pid(route.service, route.environment),
                     self.socket_of(route.service, route.environment),
                     self.render_route(route), handover)

    def _launch(self, config: Path, pid_path: Path, socket_path: Path, text: str,
                extra: list[str] | None = None) -> None:
        """Start one HAProxy daemon on ``text`` (``extra``: handover arguments) and wait for
        its runtime API.

        No separate ``haproxy -c``: a process that rejects its configuration exits at once,
        and its error is reported."""
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        config.parent.mkdir(parents=True, exist_ok=True)
        socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        config.write_text(text)
        pid_path.unlink(missing_ok=True)
        command = [binary, "-D", "-p", str(pid_path), "-f", str(config), *(extra or [])]
        launched = subprocess.run(command, capture_output=True, text=True, timeout=30,
                                  check=False)
        if launched.returncode != 0:
            raise ConfigurationError(f"haproxy rejected {config}: {launched.stderr.strip()}")
        deadline = time.monotonic() + LAUNCH_DEADLINE_S
        while not self._serves(socket_path, pid_path):
            if time.monotonic() > deadline:
                raise TransientError(
                    f"haproxy ({config}) did not open its runtime API within "
                    f"{LAUNCH_DEADLINE_S:.0f} s")
            time.sleep(0.02)

    def _stop_route(self, route: Route) -> None:
        """Soft stop (SIGUSR1): the listeners close at once, so the ports are free; requests
        in flight finish and the process leaves within ``hard-stop-after``."""
        pid_path = self.layout.route_pid(route.service, route.environment)
        pid = haproxy.read_pid(pid_path)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGUSR1)
            deadline = time.monotonic() + STOP_DEADLINE_S
            while not all(haproxy.port_is_free(self.settings.host, p) for p in route.ports):
                if time.monotonic() > deadline:
                    raise TransientError(
                        f"{route.key}'s haproxy (pid {pid}) still listens on "
                        f"{route.ports} {STOP_DEADLINE_S:.0f} s after its soft stop")
                time.sleep(0.02)
        for path in (pid_path, self.socket_of(route.service, route.environment),
                     self.layout.route_config(route.service, route.environment)):
            path.unlink(missing_ok=True)

    def _serves(self, socket_path: Path, pid_path: Path) -> bool:
        """The runtime API at ``socket_path`` answers, from the process ``pid_path`` names
        (not one that went away and left its socket file behind)."""
        pid = haproxy.read_pid(pid_path)
        if pid is None:
            return False
        try:
            info = haproxy.runtime_at(socket_path, "show info")
        except TransientError:
            return False
        return f"Pid: {pid}" in info.splitlines()

    def _main_is_stale(self) -> bool:
        """The running main process was started from another configuration: before routes
        had their own process, it served every route itself."""
        try:
            return self.config_path.read_text() != self.render_main()
        except FileNotFoundError:
            return True

    def _write_targets(self, table: RouteTable) -> None:
        """Prometheus' file service discovery: the main exporter and every route's (write
        and rename, so Prometheus never reads half a file)."""
        host = self.settings.host
        ports = [self.settings.router_metrics_port,
                 *(r.metrics_port for r in table.routes.values() if r.metrics_port)]
        groups = [{"targets": [f"{host}:{port}"], "labels": {}} for port in ports]
        self.targets_path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.targets_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(groups, indent=1) + "\n")
        temporary.replace(self.targets_path)

    def _allocate_missing_metrics_ports(self, table: RouteTable) -> bool:
        """Routes from a routes.json written before they had a metrics port get one."""
        missing = [route for route in table.routes.values() if route.metrics_port is None]
        for route in missing:
            (route.metrics_port,) = self._free_ports(table, 1)
        return bool(missing)

    # -- configuration --------------------------------------------------------------------

    def render_main(self) -> str:
        """The main process: stats page and exporter at ``router_metrics_port``, no route."""
        lines = [*haproxy.global_section(self.socket_path),
                 *haproxy.metrics_frontend(self.settings.host, self.settings.router_metrics_port)]
        return "\n".join(lines) + "\n"

    def render_route(self, route: Route) -> str:
        """One route's process: its exporter, endpoint and preview, as persisted."""
        if route.metrics_port is None:
            raise ConfigurationError(f"{route.key} has no metrics port yet")
        host = self.settings.host
        lines = [
            *haproxy.global_section(self.socket_of(route.service, route.environment)),
            *haproxy.metrics_frontend(host, route.metrics_port),
            *haproxy.route_sections(
                host, route.key, (route.port, route.preview_port),
                [haproxy.server_line(s.name, s.address, s.enabled) for s in route.servers],
                [haproxy.server_line(p.name, p.address, p.enabled)
                 for p in ([route.preview] if route.preview else [])]),
        ]
        return "\n".join(lines) + "\n"

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
            port, preview_port, metrics_port = self._free_ports(table, 3)
            route = Route(service=service, environment=environment, port=port,
                          preview_port=preview_port, metrics_port=metrics_port)
            try:
                self._launch_route(route)  # no other route's process is touched
            except TransientError:
                # Started but never answered: it must not keep the ports of a route that
                # does not exist.
                with contextlib.suppress(TransientError):
                    self._stop_route(route)
                raise
            table.routes[key] = route
            self._save(table)
            self._write_targets(table)
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
            self._apply(route, commands)

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
            self._apply(route, commands, batch=True)
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
            self._apply(route, commands)
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
            self._apply(route, commands)

    def remove_route(self, service: str, environment: str) -> None:
        """Forget a route, stop its process (soft stop) and free its three ports; no other
        route's process is touched."""
        with self._locked():
            table = self._load()
            route = table.routes.pop(f"{service}.{environment}", None)
            if route is None:
                return
            self._stop_route(route)
            self._save(table)
            self._write_targets(table)

    def clear_preview(self, service: str, environment: str) -> None:
        with self._edit(service, environment) as route:
            self._purge_retired(route)
            if route.preview is not None:
                self._apply(route, self._delete_commands(route.preview_backend, route.preview.name))
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
                self._apply(route, commands, batch=True)
            for server in route.servers:
                server.enabled = False
            route.isolated_from = serving or route.isolated_from
        return serving

    def _purge_retired(self, route: Route) -> None:
        """Delete the retired previews HAProxy lets go of now; keep the others for later."""
        for name in list(route.retired_previews):
            reply = self.runtime(f"del server {route.preview_backend}/{name}", route).lower()
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

    def _apply(self, route: Route, commands: list[str], batch: bool = False) -> None:
        if batch:
            self._check(self.runtime(";".join(commands), route), commands)
            return
        for command in commands:
            self._check(self._runtime_retrying(route, command), [command])

    def _runtime_retrying(self, route: Route, command: str) -> str:
        # "del server" is refused while HAProxy still holds idle connections to the server;
        # they are purged within a few hundred milliseconds of the server entering maintenance.
        deadline = time.monotonic() + 10
        while True:
            reply = self.runtime(command, route)
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

    def runtime(self, command: str, route: Route | None = None) -> str:
        """Send one command line to the runtime API of the process serving ``route`` (of
        the main process without one) and return its reply."""
        socket_path = self.socket_path if route is None else self.socket_of(
            route.service, route.environment)
        return haproxy.runtime_at(socket_path, command)

    # -- persistence ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The route table and HAProxy's runtime state, one writer at a time (across
        processes). Held for a read-modify-write of the table and its runtime-API commands,
        or a reload; never while waiting on anything else."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with file_lock(self.lock_path, LOCK_TIMEOUT_S,
                       f"router table {self.routes_path} still locked after "
                       f"{LOCK_TIMEOUT_S:.0f} s", poll_s=LOCK_POLL_S):
            yield

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

    def _free_ports(self, table: RouteTable, count: int) -> list[int]:
        taken = {p for r in table.routes.values() for p in r.ports}
        free: list[int] = []
        for port in range(self.settings.route_port_min, self.settings.route_port_max + 1):
            if port not in taken and haproxy.port_is_free(self.settings.host, port):
                free.append(port)
                if len(free) == count:
                    return free
        raise ConfigurationError(
            f"no free ports left in {self.settings.route_port_min}-"
            f"{self.settings.route_port_max} ({count} needed; a route takes three)",
            hint="widen the range with RUNBOOK_ROUTE_PORT_MIN / RUNBOOK_ROUTE_PORT_MAX")
