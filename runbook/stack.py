"""The local stack: real services on loopback that the pipeline delivers to and measures with.

Components, in order: the Docker engine, a Docker registry, Prometheus, Alertmanager, the
Pushgateway, the HAProxy router, the Prefect server and the runbook's Alertmanager webhook
receiver; ``up`` also makes sure the Python base image exists locally (component
``base-image``).

Every process is a plain child process in its own session: its log is ``logs/NAME.log`` and its
pid ``run/NAME.pid`` under the state directory, next to its data and its rendered
configuration. A component that is healthy already is left alone, so ``up`` is idempotent and
``down`` stops only what the stack started (a reused Docker engine keeps running).

Missing programs are installed from Debian packages when that is possible (root on
Debian/Ubuntu); elsewhere the error names the packages to install.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import docker
import httpx
import yaml
from docker.errors import DockerException
from pydantic import BaseModel

from runbook import baseimage
from runbook import guard as guards
from runbook.errors import ConfigurationError, RunbookError, TransientError
from runbook.router import HAProxyRouter
from runbook.settings import StackSettings
from runbook.targets.docker import DockerTarget

Action = Literal["started", "already running", "stopped", "not running", "failed"]
ProgressCallback = Callable[[str], None]

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_RULES_GLOB = REPOSITORY_ROOT / "deployments" / "prometheus" / "rules" / "*.yml"
ALERTMANAGER_CONFIG = REPOSITORY_ROOT / "deployments" / "alertmanager" / "alertmanager.yml"
RECEIVER_MODULE = "runbook.alerts.receiver"

HTTP_TIMEOUT_S = 2.0
DOCKER_PING_TIMEOUT_S = 5.0
DOCKER_CLIENT_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.25
STOP_DEADLINE_S = 20.0
DOCKER_STOP_DEADLINE_S = 60.0  # dockerd stops its containers first (10 s grace each)
KILL_DEADLINE_S = 5.0
ROUTER_STOP_DEADLINE_S = 10.0
APT_UPDATE_TIMEOUT_S = 600.0
APT_INSTALL_TIMEOUT_S = 1200.0
APT_LOCK_TIMEOUT_S = 300  # a fresh CI machine may still run unattended-upgrades
SERVICE_CONTROL_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 3

# Program -> Debian package that ships it.
PACKAGE_OF_PROGRAM: dict[str, str] = {
    "dockerd": "docker.io",
    "docker-registry": "docker-registry",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "haproxy": "haproxy",
    "debootstrap": "debootstrap",
    "iptables": "iptables",
}

# Packages whose install starts a system service on our ports (9090, 9093, 9091, 5000) where
# an init system runs. The Docker service is not listed: a running engine is reused as is.
PACKAGED_SERVICES: dict[str, str] = {
    "docker-registry": "docker-registry",
    "prometheus": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "haproxy": "haproxy",
}

# Programs often live in sbin directories that a non-root PATH lacks.
_SBIN_DIRECTORIES = ("/usr/local/sbin", "/usr/sbin", "/sbin")

# Popen objects of the processes this Python process launched, by pid: kept so that they are
# reaped (no zombies, no ResourceWarning) and so that their exit codes can be reported.
_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}
_apt_updated = False


class ComponentStatus(BaseModel):
    """What one component of the stack is doing and what the last command did to it."""

    name: str
    url: str
    healthy: bool
    action: Action
    detail: str = ""


@dataclass(frozen=True)
class Probe:
    healthy: bool
    detail: str


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def up(
    settings: StackSettings, on_progress: ProgressCallback | None = None
) -> list[ComponentStatus]:
    """Start every component that is not healthy yet; report each one, base image last."""
    report = on_progress or _ignore_progress
    with _stack_lock(settings):
        components = _components(settings)
        unhealthy = [c for c in components if not c.probe().healthy]
        ensure_programs([p for c in unhealthy for p in c.programs], settings, report)
        startups = [component.begin(report) for component in components]
        statuses: dict[str, ComponentStatus] = {}
        # The base image needs the engine and the registry only: obtain it while the slower
        # components (Prefect: ~20 s) are still starting.
        for component, startup in zip(components, startups, strict=True):
            statuses[component.name] = component.finish(startup, report)
            if component.name == "registry":
                statuses["base-image"] = _provide_base_image(settings, statuses, report)
        statuses["deployments"] = _restore_deployments(settings, statuses, report)
        return [statuses[c.name] for c in components] + [
            statuses["base-image"], statuses["deployments"]
        ]


def down(
    settings: StackSettings, on_progress: ProgressCallback | None = None
) -> list[ComponentStatus]:
    """Stop what the stack started, in reverse order; data, logs and images stay in place."""
    report = on_progress or _ignore_progress
    with _stack_lock(settings):
        components = _components(settings)
        statuses = {c.name: c.stop(report) for c in reversed(components)}
        return [statuses[c.name] for c in components]


def status(settings: StackSettings) -> list[ComponentStatus]:
    """Health of every component, base image last; changes nothing."""
    statuses = [component.current() for component in _components(settings)]
    return [*statuses, _base_image_current(settings)]


def running_pids(settings: StackSettings) -> dict[str, int]:
    """Pids of the live processes this stack started, by component name."""
    pids = {
        component.name: pid
        for component in _components(settings)
        if (pid := component.own_pid()) is not None
    }
    return pids


def docker_client(
    settings: StackSettings, timeout: float = DOCKER_CLIENT_TIMEOUT_S
) -> docker.DockerClient:
    """A client of the stack's Docker engine; TransientError when it does not answer."""
    try:
        return docker.DockerClient(base_url=settings.docker_host, timeout=timeout)
    except DockerException as exc:
        raise TransientError(f"Docker engine at {settings.docker_host}: {exc}") from exc


def render_prometheus_config(
    settings: StackSettings, rules_glob: Path = PROMETHEUS_RULES_GLOB
) -> str:
    """Prometheus configuration: itself, the router, the Pushgateway; alerts to Alertmanager."""
    interval = f"{settings.scrape_interval_s}s"
    host = settings.host

    def job(name: str, port: int, **extra: object) -> dict[str, object]:
        return {"job_name": name, **extra, "static_configs": [{"targets": [f"{host}:{port}"]}]}

    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_glob)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"{host}:{settings.alertmanager_port}"]}]}
            ]
        },
        "scrape_configs": [
            job("prometheus", settings.prometheus_port),
            job("router", settings.router_metrics_port, metrics_path="/metrics"),
            # Pushed series keep the job and instance labels of whoever pushed them.
            job("pushgateway", settings.pushgateway_port, honor_labels=True),
            app_discovery_job(settings),
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


DOCKER_LABEL_META = "__meta_docker_container_label_io_runbook_"
"""How docker_sd_configs names a container label ``io.runbook.<name>`` (dots to ``_``)."""
APP_SERIES_LABELS = ("service", "environment", "color", "revision")


def app_discovery_job(settings: StackSettings) -> dict[str, object]:
    """The services' own metrics (the ``app`` source): Prometheus discovers the containers
    the docker target started with a ``metrics`` declaration and labels every series with
    the container's service, environment, color and revision. Discovery refreshes every
    scrape interval, so a new revision is scraped within seconds of starting."""
    meta = DOCKER_LABEL_META
    return {
        "job_name": "app",
        "docker_sd_configs": [{"host": settings.docker_host,
                               "refresh_interval": f"{settings.scrape_interval_s}s"}],
        "relabel_configs": [
            {"source_labels": [f"{meta}metrics_port"], "regex": ".+", "action": "keep"},
            # One target per container, whatever ports it exposes: its address on the
            # bridge network and the declared metrics port (duplicates collapse).
            {"source_labels": ["__meta_docker_network_ip", f"{meta}metrics_port"],
             "separator": ":", "target_label": "__address__"},
            {"source_labels": [f"{meta}metrics_path"], "target_label": "__metrics_path__"},
            *({"source_labels": [f"{meta}{name}"], "target_label": name}
              for name in APP_SERIES_LABELS),
            {"source_labels": ["__meta_docker_container_name"], "regex": "/?(.*)",
             "target_label": "container"},
        ],
    }


def render_alertmanager_config(
    settings: StackSettings, source: Path = ALERTMANAGER_CONFIG
) -> str:
    """The repository's Alertmanager configuration, its webhooks pointed at the stack's
    runbook receiver: the same routes, grouping and inhibitions as a real installation.

    Notification channels (Slack, email, PagerDuty) are the runbook's own adapters, behind
    the receiver, so Alertmanager itself holds no channel credentials.
    """
    config = yaml.safe_load(source.read_text())
    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            path = urlsplit(webhook["url"]).path
            webhook["url"] = f"{settings.receiver_url}{path}"
    return yaml.safe_dump(config, sort_keys=False)


def render_registry_config(settings: StackSettings) -> str:
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(settings.state_dir / "registry" / "data")},
            # Cleanup of old artifacts deletes manifests.
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"{settings.host}:{settings.registry_port}"},
    }
    return yaml.safe_dump(config, sort_keys=False)


def packages_for(programs: Iterable[str]) -> list[str]:
    """Debian packages that provide the given programs, sorted, without duplicates."""
    return sorted({PACKAGE_OF_PROGRAM.get(program, program) for program in programs})


def missing_programs(programs: Iterable[str]) -> list[str]:
    return sorted({program for program in programs if find_program(program) is None})


def find_program(name: str) -> str | None:
    """Full path of a program on PATH or in the sbin directories."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN_DIRECTORIES])
    return shutil.which(name, path=search)


def can_install_packages() -> bool:
    """True when missing programs can be installed here: root on Debian or Ubuntu."""
    return (
        Path("/etc/debian_version").exists()
        and os.geteuid() == 0
        and shutil.which("apt-get") is not None
    )


def ensure_programs(
    programs: Sequence[str], settings: StackSettings, on_progress: ProgressCallback | None = None
) -> None:
    """Install the Debian packages of missing programs, or say exactly what to install."""
    report = on_progress or _ignore_progress
    missing = missing_programs(programs)
    if not missing:
        return
    packages = packages_for(missing)
    if not can_install_packages():
        raise ConfigurationError(
            f"missing programs: {', '.join(missing)}; install the packages "
            f"{', '.join(packages)} (Debian/Ubuntu names), or run as root on Debian/Ubuntu "
            "to have them installed"
        )
    report(f"installing {', '.join(packages)}…")
    _apt_install(packages, settings.path("logs", "apt.log"))
    still_missing = missing_programs(missing)
    if still_missing:
        raise ConfigurationError(
            f"installed {', '.join(packages)} but still missing: {', '.join(still_missing)}"
        )
    _stop_packaged_services(packages, report)


# --------------------------------------------------------------------------------------------
# Components
# --------------------------------------------------------------------------------------------


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
        pid = _read_pid(self.pid_path)
        if pid is None or not _process_alive(pid):
            return None
        program = self.process_name or Path(
            self.programs[0] if self.programs else self.name).name
        if not _runs_program(pid, program):
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
            if not _process_alive(pid):
                return self.status(False, "failed", self._exit_detail(pid))
            if time.monotonic() > deadline:
                if startup.launched:  # do not leave a hung process holding the port
                    _terminate(pid, group=self.signal_group, deadline_s=self.stop_deadline_s)
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
        if self.port is not None and _tcp_port_answers(self.settings.host, self.port):
            return (
                f"port {self.settings.host}:{self.port} is in use by something that is not a "
                f"healthy {self.name} ({self.probe().detail}); stop it or choose another port"
            )
        if self.unix_socket is not None and _unix_socket_answers(self.unix_socket):
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
            _write_if_changed(path, render())
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.settings.state_dir,
                env={**os.environ, **self.environment},
            )
        _LAUNCHED[process.pid] = process
        self.pid_path.write_text(f"{process.pid}\n")
        return process.pid

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
        how = _terminate(pid, group=self.signal_group, deadline_s=self.stop_deadline_s)
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
        changed = [path for path, render in self.files.items() if _differs(path, render())]
        inputs_changed = self.loaded_before_inputs_changed
        stale = inputs_changed is not None and inputs_changed()
        if not changed and not stale:
            return None
        for path in changed:
            _write_if_changed(path, self.files[path]())
        what = "configuration changed" if changed else "rules changed"
        try:
            with _loopback_http() as http:
                http.post(self.reload_url).raise_for_status()
        except httpx.HTTPError as exc:
            return f"{what} but reload failed: {exc}; log: {self.log_path}"
        return f"{what}: reloaded"

    def _exit_detail(self, pid: int) -> str:
        launched = _LAUNCHED.get(pid)
        code = launched.returncode if launched is not None else None
        exited = f"exited with code {code}" if code is not None else "exited"
        return f"{exited}; log: {self.log_path}{self._log_tail_detail()}"

    def _log_tail_detail(self) -> str:
        tail = _log_tail(self.log_path)
        return f"; last lines: {tail}" if tail else ""


@dataclass
class RouterComponent:
    """HAProxy, run by :class:`HAProxyRouter` (it daemonizes itself and keeps its own pid)."""

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
        if not self.router.running():
            return Probe(False, f"no runtime API at {self.router.socket_path}")
        return _probe_http(self.url)

    def own_pid(self) -> int | None:
        pid = _read_pid(self.router.pid_path)
        if pid is None or not _process_alive(pid) or not _runs_program(pid, "haproxy"):
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
        if not self.router.running() and _tcp_port_answers(
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
        while self.router.running() or (pid is not None and _process_alive(pid)):
            if time.monotonic() > deadline:
                if pid is not None:
                    _terminate(pid, group=False, deadline_s=0)
                break
            time.sleep(POLL_INTERVAL_S)
        return self.status(False, "stopped", f"pid {pid}")


def status_of(settings: StackSettings, names: Iterable[str]) -> list[ComponentStatus]:
    """Health of the named components only (what one run uses); changes nothing."""
    wanted = set(names)
    return [c.current() for c in _components(settings) if c.name in wanted]


Component = ProcessComponent | RouterComponent


def _components(settings: StackSettings) -> list[Component]:
    return [
        _docker_engine(settings),
        _registry(settings),
        _prometheus(settings),
        _alertmanager(settings),
        _pushgateway(settings),
        RouterComponent(settings),
        _prefect(settings),
        _receiver(settings),
    ]


def _docker_engine(settings: StackSettings) -> ProcessComponent:
    socket_path = _unix_socket_path(settings.docker_host)

    def command() -> list[str]:
        if socket_path is None:
            raise ConfigurationError(
                f"the stack starts a Docker engine only on a unix socket; "
                f"start the engine at {settings.docker_host} yourself"
            )
        return [
            _program("dockerd"),
            "--storage-driver=overlay2",
            "--data-root",
            str(settings.state_dir / "docker"),
            "--host",
            f"unix://{socket_path}",
        ]

    return ProcessComponent(
        name="docker",
        url=settings.docker_host,
        settings=settings,
        probe_health=lambda: _probe_docker(settings.docker_host),
        command=command,
        programs=("dockerd", "iptables"),
        unix_socket=socket_path,
        start_deadline_s=60.0,
        stop_deadline_s=DOCKER_STOP_DEADLINE_S,
        signal_group=False,
    )


def _registry(settings: StackSettings) -> ProcessComponent:
    config = settings.state_dir / "registry" / "config.yml"
    url = f"http://{settings.registry}"
    return ProcessComponent(
        name="registry",
        url=url,
        settings=settings,
        probe_health=lambda: _probe_http(f"{url}/v2/"),
        command=lambda: [_program("docker-registry"), "serve", str(config)],
        programs=("docker-registry",),
        port=settings.registry_port,
        files={config: lambda: render_registry_config(settings)},
        directories=(settings.state_dir / "registry" / "data",),
    )


def _prometheus(settings: StackSettings) -> ProcessComponent:
    directory = settings.state_dir / "prometheus"
    config = directory / "prometheus.yml"
    return ProcessComponent(
        name="prometheus",
        url=settings.prometheus_url,
        settings=settings,
        probe_health=lambda: _probe_http(f"{settings.prometheus_url}/-/ready"),
        command=lambda: [
            _program("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address={settings.host}:{settings.prometheus_port}",
            "--web.enable-lifecycle",
        ],
        programs=("prometheus",),
        port=settings.prometheus_port,
        files={config: lambda: render_prometheus_config(settings)},
        directories=(directory / "data",),
        reload_url=f"{settings.prometheus_url}/-/reload",
        loaded_before_inputs_changed=lambda: _prometheus_rules_changed(settings),
    )


def _prometheus_rules_changed(settings: StackSettings) -> bool:
    """Whether a rule file was added, edited or removed after Prometheus last loaded them."""
    directory = PROMETHEUS_RULES_GLOB.parent
    if not directory.is_dir():
        return False
    # The directory's mtime moves when a file is added, removed or renamed.
    paths = [directory, *directory.glob(PROMETHEUS_RULES_GLOB.name)]
    newest = max(path.stat().st_mtime for path in paths)
    loaded = _prometheus_last_config_time(settings)
    return loaded is not None and newest > loaded


def _prometheus_last_config_time(settings: StackSettings) -> float | None:
    try:
        with _loopback_http() as http:
            response = http.get(f"{settings.prometheus_url}/api/v1/status/runtimeinfo")
            response.raise_for_status()
            stamp = response.json()["data"]["lastConfigTime"]
        return datetime.fromisoformat(stamp).timestamp()
    except (httpx.HTTPError, KeyError, ValueError, TypeError):
        return None  # unknown: do not reload on a guess


def _alertmanager(settings: StackSettings) -> ProcessComponent:
    directory = settings.state_dir / "alertmanager"
    config = directory / "alertmanager.yml"
    return ProcessComponent(
        name="alertmanager",
        url=settings.alertmanager_url,
        settings=settings,
        probe_health=lambda: _probe_http(f"{settings.alertmanager_url}/-/ready"),
        command=lambda: [
            _program("prometheus-alertmanager"),
            f"--config.file={config}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address={settings.host}:{settings.alertmanager_port}",
            # One instance: no gossip port, no peers.
            "--cluster.listen-address=",
        ],
        programs=("prometheus-alertmanager",),
        port=settings.alertmanager_port,
        files={config: lambda: render_alertmanager_config(settings)},
        directories=(directory / "data",),
        reload_url=f"{settings.alertmanager_url}/-/reload",
    )


def _pushgateway(settings: StackSettings) -> ProcessComponent:
    directory = settings.state_dir / "pushgateway"
    return ProcessComponent(
        name="pushgateway",
        url=settings.pushgateway_url,
        settings=settings,
        probe_health=lambda: _probe_http(f"{settings.pushgateway_url}/-/ready"),
        command=lambda: [
            _program("prometheus-pushgateway"),
            f"--web.listen-address={settings.host}:{settings.pushgateway_port}",
            # Pushed metrics survive a restart of the stack.
            f"--persistence.file={directory / 'metrics.store'}",
        ],
        programs=("prometheus-pushgateway",),
        port=settings.pushgateway_port,
        directories=(directory,),
    )


def _prefect(settings: StackSettings) -> ProcessComponent:
    return ProcessComponent(
        name="prefect",
        url=settings.prefect_api_url,
        settings=settings,
        probe_health=lambda: _probe_http(f"{settings.prefect_api_url}/health"),
        command=lambda: [
            _prefect_executable(),
            "server",
            "start",
            "--host",
            settings.host,
            "--port",
            str(settings.prefect_port),
        ],
        port=settings.prefect_port,
        environment={
            "PREFECT_HOME": str(settings.state_dir / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": settings.prefect_api_url,
        },
        directories=(settings.state_dir / "prefect",),
        start_deadline_s=120.0,
    )


def _receiver(settings: StackSettings) -> ProcessComponent:
    """The runbook's Alertmanager webhook receiver. It sends through the channels configured
    in the environment of `runbook stack up` (``RUNBOOK_ALERT_*``); without any, alerts wait
    in the outbox under the state directory."""
    return ProcessComponent(
        name="receiver",
        url=settings.receiver_url,
        settings=settings,
        probe_health=lambda: _probe_http(f"{settings.receiver_url}/health"),
        command=lambda: [
            sys.executable, "-m", RECEIVER_MODULE,
            "--host", settings.host, "--port", str(settings.receiver_port),
        ],
        port=settings.receiver_port,
        process_name=RECEIVER_MODULE,
        environment={"RUNBOOK_STATE_DIR": str(settings.state_dir)},
    )


def _prefect_executable() -> str:
    """The ``prefect`` of the running interpreter's environment (the project's venv)."""
    beside_python = Path(sys.executable).parent / "prefect"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("prefect")
    if found is None:
        raise ConfigurationError(
            f"no prefect executable next to {sys.executable} or on PATH; "
            "install the project (make demo) first"
        )
    return found


def _program(name: str) -> str:
    path = find_program(name)
    if path is None:
        package = PACKAGE_OF_PROGRAM.get(name, name)
        raise ConfigurationError(f"missing program {name} (Debian/Ubuntu package {package})")
    return path


# --------------------------------------------------------------------------------------------
# Base image
# --------------------------------------------------------------------------------------------


def _provide_base_image(
    settings: StackSettings, statuses: dict[str, ComponentStatus], report: ProgressCallback
) -> ComponentStatus:
    def failed(detail: str) -> ComponentStatus:
        return ComponentStatus(
            name="base-image", url=settings.base_image, healthy=False, action="failed",
            detail=detail,
        )

    for needed in ("docker", "registry"):
        if not statuses[needed].healthy:
            return failed(f"skipped: {needed} is not healthy")
    try:
        client = docker_client(settings)
        try:
            provided = baseimage.provide_base_image(settings, client, on_progress=report)
        finally:
            client.close()
    except (RunbookError, DockerException, OSError, subprocess.SubprocessError) as exc:
        return failed(str(exc))
    action: Action = "started" if provided.obtained else "already running"
    return ComponentStatus(
        name="base-image", url=settings.base_image, healthy=True, action=action,
        detail=f"{provided.source} ({provided.image_id[:19]})",
    )


def _restore_deployments(
    settings: StackSettings, statuses: dict[str, ComponentStatus], report: ProgressCallback
) -> ComponentStatus:
    """Bring back the revisions the router routes to, if the engine stopped them."""
    url = f"{settings.host}:{settings.route_port_min}-{settings.route_port_max}"
    if not (statuses["docker"].healthy and statuses["router"].healthy):
        return ComponentStatus(name="deployments", url=url, healthy=False, action="failed",
                               detail="skipped: docker or router is not healthy")
    client = docker_client(settings)
    try:
        restarted = DockerTarget(settings, client, HAProxyRouter(settings)).restore()
    except (RunbookError, DockerException) as exc:
        return ComponentStatus(name="deployments", url=url, healthy=False, action="failed",
                               detail=str(exc))
    finally:
        client.close()
    restarted += guards.resume_all(settings.state_dir, settings.prefect_api_url)
    if restarted:
        report(f"restarted {', '.join(restarted)}")
    return ComponentStatus(
        name="deployments", url=url, healthy=True,
        action="started" if restarted else "already running",
        detail=f"restarted {len(restarted)} revision(s) or guard(s)" if restarted
        else "all running",
    )


def _base_image_current(settings: StackSettings) -> ComponentStatus:
    def result(healthy: bool, detail: str) -> ComponentStatus:
        action: Action = "already running" if healthy else "not running"
        return ComponentStatus(
            name="base-image", url=settings.base_image, healthy=healthy, action=action,
            detail=detail,
        )

    try:
        client = docker_client(settings, timeout=DOCKER_PING_TIMEOUT_S)
    except TransientError:
        return result(False, "unknown: the Docker engine is not running")
    try:
        found = baseimage.describe_local_image(client, settings.base_image)
    except (DockerException, OSError) as exc:
        return result(False, f"Docker engine: {exc}")
    finally:
        client.close()
    if found is None:
        return result(False, "not present locally; `runbook stack up` provides it")
    return result(True, found)


# --------------------------------------------------------------------------------------------
# Health probes
# --------------------------------------------------------------------------------------------


def _loopback_http() -> httpx.Client:
    # Every component is on loopback: a proxy from the environment must not see these calls.
    return httpx.Client(timeout=HTTP_TIMEOUT_S, trust_env=False)


def _probe_http(url: str) -> Probe:
    try:
        with _loopback_http() as http:
            response = http.get(url)
    except httpx.HTTPError as exc:
        return Probe(False, f"GET {url}: {type(exc).__name__} {exc}".strip())
    if response.status_code == 200:
        return Probe(True, f"GET {url} -> 200")
    return Probe(False, f"GET {url} -> {response.status_code}")


def _probe_docker(docker_host: str) -> Probe:
    try:
        client = docker.DockerClient(base_url=docker_host, timeout=DOCKER_PING_TIMEOUT_S)
        try:
            client.ping()
            version = client.version().get("Version", "?")
        finally:
            client.close()
    except (DockerException, OSError) as exc:
        reason = _docker_failure(docker_host, exc)
        return Probe(False, f"no Docker engine at {docker_host}: {reason}")
    return Probe(True, f"Docker engine {version}")


def _docker_failure(docker_host: str, exc: Exception) -> str:
    socket_path = _unix_socket_path(docker_host)
    if socket_path is not None and not socket_path.exists():
        return "no socket"
    return str(exc)[:200]


def _tcp_port_answers(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


def _unix_socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(str(path)) == 0


def _unix_socket_path(docker_host: str) -> Path | None:
    parts = urlsplit(docker_host)
    if parts.scheme == "unix":
        return Path(parts.path)
    if not parts.scheme and docker_host.startswith("/"):
        return Path(docker_host)
    return None


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _process_alive(pid: int) -> bool:
    launched = _LAUNCHED.get(pid)
    if launched is not None:
        return launched.poll() is None
    stat = Path(f"/proc/{pid}/stat")
    if Path("/proc/self/stat").exists():
        try:
            state = stat.read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in ("Z", "X")  # a zombie has exited already
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runs_program(pid: int, program: str) -> bool:
    """Whether the process runs ``program`` (directly, as a script's interpreter argument, or
    as a module: ``python -m program``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc/self").exists()  # no /proc: trust the pid file
    if argv[1:3] == [b"-m", program.encode()]:
        return True
    return any(Path(arg.decode(errors="replace")).name == program for arg in argv[:2])


def _terminate(pid: int, *, group: bool, deadline_s: float) -> str:
    """SIGTERM, then SIGKILL after the deadline; returns how the process ended."""
    _signal(pid, signal.SIGTERM, group=group)
    if _wait_for_exit(pid, deadline_s):
        return "stopped (SIGTERM)"
    _signal(pid, signal.SIGKILL, group=True)
    _wait_for_exit(pid, KILL_DEADLINE_S)
    return f"killed (SIGKILL after {deadline_s:.0f} s)"


def _signal(pid: int, signum: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Our processes lead their own session; never signal a group that is not theirs.
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _wait_for_exit(pid: int, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while _process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    launched = _LAUNCHED.pop(pid, None)
    if launched is not None:
        launched.wait(timeout=KILL_DEADLINE_S)
    return True


def _log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(line[:300] for line in tail)


# --------------------------------------------------------------------------------------------
# Files and locking
# --------------------------------------------------------------------------------------------


def _differs(path: Path, text: str) -> bool:
    try:
        return path.read_text() != text
    except FileNotFoundError:
        return True


def _write_if_changed(path: Path, text: str) -> None:
    """Write only on change, so that a repeated ``up`` leaves every file as it was."""
    if not _differs(path, text):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


@contextlib.contextmanager
def _stack_lock(settings: StackSettings) -> Iterator[None]:
    """One ``up`` or ``down`` at a time per state directory (parallel test workers, CLI)."""
    path = settings.path("run", "stack.lock")
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # no truncation: no change
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _ignore_progress(message: str) -> None:
    return None


# --------------------------------------------------------------------------------------------
# Debian packages
# --------------------------------------------------------------------------------------------


def _apt_install(packages: Sequence[str], log_path: Path) -> None:
    global _apt_updated
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    lock = f"DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}"
    if not _apt_updated:
        _run_logged(["apt-get", "-o", lock, "update"], log_path, environment, APT_UPDATE_TIMEOUT_S)
        _apt_updated = True
    _run_logged(
        ["apt-get", "-o", lock, "install", "-y", "--no-install-recommends", *packages],
        log_path,
        environment,
        APT_INSTALL_TIMEOUT_S,
    )


def _run_logged(
    command: list[str], log_path: Path, environment: dict[str, str], timeout_s: float
) -> None:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        try:
            result = subprocess.run(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=environment, timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise TransientError(f"{command[0]} did not finish within {timeout_s:.0f} s") from exc
    if result.returncode != 0:
        raise TransientError(
            f"{' '.join(command[:4])}… failed with code {result.returncode}; "
            f"log: {log_path}; last lines: {_log_tail(log_path)}"
        )


def _stop_packaged_services(packages: Sequence[str], report: ProgressCallback) -> None:
    """Stop the system services that package installation may have started on our ports."""
    services = [PACKAGED_SERVICES[p] for p in packages if p in PACKAGED_SERVICES]
    systemd = Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None
    for service in services:
        if systemd:
            command = ["systemctl", "disable", "--now", f"{service}.service"]
        elif Path("/etc/init.d", service).exists() and shutil.which("invoke-rc.d"):
            command = ["invoke-rc.d", service, "stop"]
        else:
            continue
        report(f"stopping the packaged {service} service (the stack runs its own)…")
        # A service that never started (policy-rc.d refused it) fails to stop: that is fine.
        with contextlib.suppress(subprocess.TimeoutExpired):
            subprocess.run(
                command, stdin=subprocess.DEVNULL, capture_output=True,
                timeout=SERVICE_CONTROL_TIMEOUT_S, check=False,
            )
