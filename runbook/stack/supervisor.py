"""Supervision of one component: ``begin`` (leave a healthy one alone, else launch it) and
``finish`` (wait for health within its deadline, stop a hung launch), ``stop``, ``current``,
reload on changed configuration. ``ProcessComponent`` is a process the stack launches itself;
``RouterComponent`` is HAProxy, which daemonizes itself through :class:`HAProxyRouter`."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from runbook.errors import RunbookError
from runbook.router import HAProxyRouter
from runbook.settings import StackSettings
from runbook.stack.probes import (
    loopback_http,
    probe_http,
    tcp_port_answers,
    unix_socket_answers,
)
from runbook.stack.processes import (
    POLL_INTERVAL_S,
    differs,
    exit_code,
    launch_process,
    log_tail,
    process_alive,
    read_pid,
    runs_program,
    terminate,
    write_if_changed,
)
from runbook.stack.records import Action, ComponentStatus, Probe, ProgressCallback

STOP_DEADLINE_S = 20.0
ROUTER_STOP_DEADLINE_S = 10.0


@dataclass
class Startup:
    """Outcome of the first half of starting a component: done, or a process to wait for."""

    done: ComponentStatus | None = None
    pid: int | None = None
    launched: bool = False
    started_at: float = 0.0


@dataclass
class ProcessComponent:
    """A component that is one long-running process started by the stack."""

    name: str
    url: str
    settings: StackSettings
    probe_health: Callable[[], Probe]
    command: Callable[[], list[str]]
    programs: tuple[str, ...] = ()
    port: int | None = None
    unix_socket: Path | None = None
    environment: dict[str, str] = field(default_factory=dict)
    files: dict[Path, Callable[[], str]] = field(default_factory=dict)
    directories: tuple[Path, ...] = ()
    reload_url: str | None = None
    # Inputs the component reads but the stack does not render (Prometheus rule files).
    loaded_before_inputs_changed: Callable[[], bool] | None = None
    start_deadline_s: float = 30.0
    stop_deadline_s: float = STOP_DEADLINE_S
    # dockerd is signalled alone so that it can stop containerd and the containers in order.
    signal_group: bool = True
    # What the process's command line names (program, script or ``-m`` module) when that is
    # not the first program: proof that a pid from the pid file is still ours.
    process_name: str | None = None

    @property
    def pid_path(self) -> Path:
        return self.settings.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_path(self) -> Path:
        return self.settings.state_dir / "logs" / f"{self.name}.log"

    def probe(self) -> Probe:
        return self.probe_health()

    def status(self, healthy: bool, action: Action, detail: str) -> ComponentStatus:
        return ComponentStatus(
            name=self.name, url=self.url, healthy=healthy, action=action, detail=detail
        )

    def own_pid(self) -> int | None:
        """Pid of the live process this stack started for the component, if any."""
        pid = read_pid(self.pid_path)
        if pid is None or not process_alive(pid):
            return None
        program = self.process_name or Path(
            self.programs[0] if self.programs else self.name).name
        if not runs_program(pid, program):
            return None  # the pid was reused by an unrelated process
        return pid

    def current(self) -> ComponentStatus:
        probe = self.probe()
        if probe.healthy:
            return self.status(True, "already running", self._ownership_detail(probe))
        return self.status(False, "not running", probe.detail)

    def begin(self, report: ProgressCallback) -> Startup:
        probe = self.probe()
        if probe.healthy:
            return Startup(done=self._already_running(probe))
        own = self.own_pid()
        if own is not None:  # started earlier and still coming up: wait for it
            return Startup(pid=own, started_at=time.monotonic())
        blocker = self.blocker()
        if blocker is not None:
            return Startup(done=self.status(False, "failed", blocker))
        report(f"starting {self.name}…")
        try:
            pid = self.launch()
        except (OSError, RunbookError) as exc:
            return Startup(done=self.status(False, "failed", f"could not start: {exc}"))
        return Startup(pid=pid, launched=True, started_at=time.monotonic())

    def finish(self, startup: Startup, report: ProgressCallback) -> ComponentStatus:
        if startup.done is not None:
            return startup.done
        assert startup.pid is not None
        pid = startup.pid
        deadline = startup.started_at + self.start_deadline_s
        report(f"waiting for {self.name} (up to {self.start_deadline_s:.0f} s)…")
        first_probe = True
        while True:
            probe = self.probe()
            if probe.healthy:
                action: Action = "started" if startup.launched else "already running"
                report(f"{self.name} is healthy")
                return self.status(True, action, self._started_detail(startup, first_probe))
            first_probe = False
            if not process_alive(pid):
                return self.status(False, "failed", self._exit_detail(pid))
            if time.monotonic() > deadline:
                if startup.launched:  # do not leave a hung process holding the port
                    terminate(pid, group=self.signal_group, deadline_s=self.stop_deadline_s)
                    self.pid_path.unlink(missing_ok=True)
                return self.status(
                    False,
                    "failed",
                    f"not healthy after {self.start_deadline_s:.0f} s ({probe.detail}); "
                    f"stopped it; log: {self.log_path}{self._log_tail_detail()}",
                )
            time.sleep(POLL_INTERVAL_S)

    @staticmethod
    def _started_detail(startup: Startup, healthy_at_first_look: bool) -> str:
        # Healthy at the first look means it was ready before we got to it (other components
        # were being waited for); the elapsed time would not be its start-up time.
        if healthy_at_first_look:
            return f"pid {startup.pid}"
        waited = time.monotonic() - startup.started_at
        return f"pid {startup.pid}, healthy after {waited:.1f} s"

    def blocker(self) -> str | None:
        """Why the component cannot start here: its address is held by something else."""
        if self.port is not None and tcp_port_answers(self.settings.host, self.port):
            return (
                f"port {self.settings.host}:{self.port} is in use by something that is not a "
                f"healthy {self.name} ({self.probe().detail}); stop it or choose another port"
            )
        if self.unix_socket is not None and unix_socket_answers(self.unix_socket):
            return (
                f"{self.unix_socket} answers but not as a Docker engine "
                f"({self.probe().detail})"
            )
        return None

    def launch(self) -> int:
        command = self.command()
        for directory in self.directories:
            directory.mkdir(parents=True, exist_ok=True)
        for path, render in self.files.items():
            write_if_changed(path, render())
        return launch_process(
            command, self.log_path, self.pid_path, self.settings.state_dir, self.environment
        )

    def stop(self, report: ProgressCallback) -> ComponentStatus:
        pid = self.own_pid()
        if pid is None:
            self.pid_path.unlink(missing_ok=True)
            probe = self.probe()
            if probe.healthy:
                return self.status(
                    True, "already running", "not started by this stack; left running"
                )
            return self.status(False, "not running", "")
        report(f"stopping {self.name}…")
        how = terminate(pid, group=self.signal_group, deadline_s=self.stop_deadline_s)
        self.pid_path.unlink(missing_ok=True)
        return self.status(False, "stopped", f"pid {pid} {how}")

    def _already_running(self, probe: Probe) -> ComponentStatus:
        detail = self._ownership_detail(probe)
        reloaded = self._reload_if_configuration_changed()
        if reloaded:
            detail += f"; {reloaded}"
        return self.status(True, "already running", detail)

    def _ownership_detail(self, probe: Probe) -> str:
        pid = self.own_pid()
        if pid is None:
            return f"not started by this stack ({probe.detail})"
        return f"pid {pid}"

    def _reload_if_configuration_changed(self) -> str | None:
        """Apply changed settings or rules to a running component of ours (reload endpoint)."""
        if self.reload_url is None or self.own_pid() is None:
            return None
        changed = [path for path, render in self.files.items() if differs(path, render())]
        inputs_changed = self.loaded_before_inputs_changed
        stale = inputs_changed is not None and inputs_changed()
        if not changed and not stale:
            return None
        for path in changed:
            write_if_changed(path, self.files[path]())
        what = "configuration changed" if changed else "rules changed"
        try:
            with loopback_http() as http:
                http.post(self.reload_url).raise_for_status()
        except httpx.HTTPError as exc:
            return f"{what} but reload failed: {exc}; log: {self.log_path}"
        return f"{what}: reloaded"

    def _exit_detail(self, pid: int) -> str:
        code = exit_code(pid)
        exited = f"exited with code {code}" if code is not None else "exited"
        return f"{exited}; log: {self.log_path}{self._log_tail_detail()}"

    def _log_tail_detail(self) -> str:
        tail = log_tail(self.log_path)
        return f"; last lines: {tail}" if tail else ""


@dataclass
class RouterComponent:
    """HAProxy, run by :class:`HAProxyRouter`: a main process (stats page and exporter at
    ``router_metrics_port``, whose pid this reports) and one process per route; each
    daemonizes itself and keeps its own pid file."""

    settings: StackSettings
    name: str = "router"
    programs: tuple[str, ...] = ("haproxy",)

    @property
    def router(self) -> HAProxyRouter:
        return HAProxyRouter(self.settings)

    @property
    def url(self) -> str:
        return self.settings.router_metrics_url

    def status(self, healthy: bool, action: Action, detail: str) -> ComponentStatus:
        return ComponentStatus(
            name=self.name, url=self.url, healthy=healthy, action=action, detail=detail
        )

    def probe(self) -> Probe:
        """Healthy: the main process answers and so does every persisted route's own
        process (one that died, or all after a reboot, makes ``stack up`` start them)."""
        router = self.router
        if not router.running():
            return Probe(False, f"no runtime API at {router.socket_path}")
        if stopped := router.not_running():
            shown = ", ".join(stopped[:5]) + (" …" if len(stopped) > 5 else "")
            return Probe(False, f"{len(stopped)} route process(es) not running: {shown}")
        return probe_http(self.url)

    def own_pid(self) -> int | None:
        pid = read_pid(self.router.pid_path)
        if pid is None or not process_alive(pid) or not runs_program(pid, "haproxy"):
            return None
        return pid

    def current(self) -> ComponentStatus:
        probe = self.probe()
        if probe.healthy:
            return self.status(True, "already running", f"pid {self.own_pid()}")
        return self.status(False, "not running", probe.detail)

    def begin(self, report: ProgressCallback) -> Startup:
        probe = self.probe()
        if probe.healthy:
            return Startup(done=self.status(True, "already running", f"pid {self.own_pid()}"))
        if not self.router.running() and tcp_port_answers(
            self.settings.host, self.settings.router_metrics_port
        ):
            return Startup(
                done=self.status(
                    False,
                    "failed",
                    f"port {self.settings.host}:{self.settings.router_metrics_port} is in use "
                    "by something that is not this stack's router; stop it or choose another "
                    "port (RUNBOOK_ROUTER_METRICS_PORT)",
                )
            )
        report(f"starting {self.name}…")
        started_at = time.monotonic()
        try:
            self.router.start()
        except (OSError, subprocess.SubprocessError, RunbookError) as exc:
            return Startup(done=self.status(False, "failed", f"could not start haproxy: {exc}"))
        probe = self.probe()
        if not probe.healthy:
            return Startup(done=self.status(False, "failed", probe.detail))
        waited = time.monotonic() - started_at
        detail = f"pid {self.own_pid()}, healthy after {waited:.1f} s"
        return Startup(done=self.status(True, "started", detail))

    def finish(self, startup: Startup, report: ProgressCallback) -> ComponentStatus:
        assert startup.done is not None
        return startup.done

    def stop(self, report: ProgressCallback) -> ComponentStatus:
        if not self.router.running():
            return self.status(False, "not running", "")
        report(f"stopping {self.name}…")
        pid = self.own_pid()
        self.router.stop()
        deadline = time.monotonic() + ROUTER_STOP_DEADLINE_S
        while self.router.running() or (pid is not None and process_alive(pid)):
            if time.monotonic() > deadline:
                if pid is not None:
                    terminate(pid, group=False, deadline_s=0)
                break
            time.sleep(POLL_INTERVAL_S)
        return self.status(False, "stopped", f"pid {pid}")
