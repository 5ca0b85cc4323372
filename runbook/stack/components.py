"""The components of the local stack, in start order, and how each one is run: the Docker
engine, the registry, Prometheus, Alertmanager, the Pushgateway, the HAProxy router, the
Prefect server and the runbook's Alertmanager webhook receiver (its command, files,
directories, health probe, deadlines)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx

from runbook.errors import ConfigurationError
from runbook.settings import StackSettings
from runbook.stack.configs import (
    PROMETHEUS_RULES_GLOB,
    render_alertmanager_config,
    render_prometheus_config,
    render_registry_config,
)
from runbook.stack.packages import program
from runbook.stack.probes import loopback_http, probe_docker, probe_http, unix_socket_path
from runbook.stack.supervisor import ProcessComponent, RouterComponent

RECEIVER_MODULE = "runbook.alerts.receiver"
DOCKER_STOP_DEADLINE_S = 60.0  # dockerd stops its containers first (10 s grace each)

Component = ProcessComponent | RouterComponent


def stack_components(settings: StackSettings) -> list[Component]:
    """Every component in start order (``down`` stops them in reverse)."""
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
    socket_path = unix_socket_path(settings.docker_host)

    def command() -> list[str]:
        if socket_path is None:
            raise ConfigurationError(
                f"the stack starts a Docker engine only on a unix socket; "
                f"start the engine at {settings.docker_host} yourself"
            )
        return [
            program("dockerd"),
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
        probe_health=lambda: probe_docker(settings.docker_host),
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
        probe_health=lambda: probe_http(f"{url}/v2/"),
        command=lambda: [program("docker-registry"), "serve", str(config)],
        programs=("docker-registry",),
        port=settings.registry_port,
        files={config: lambda: render_registry_config(settings)},
        directories=(settings.state_dir / "registry" / "data",),
    )


def _prometheus(settings: StackSettings) -> ProcessComponent:
    return _prometheus_project_server(
        settings,
        name="prometheus",
        executable="prometheus",
        url=settings.prometheus_url,
        port=settings.prometheus_port,
        render=render_prometheus_config,
        storage_flag="--storage.tsdb.path",
        flags=("--web.enable-lifecycle",),
        loaded_before_inputs_changed=lambda: _prometheus_rules_changed(settings),
    )


def _alertmanager(settings: StackSettings) -> ProcessComponent:
    return _prometheus_project_server(
        settings,
        name="alertmanager",
        executable="prometheus-alertmanager",
        url=settings.alertmanager_url,
        port=settings.alertmanager_port,
        render=render_alertmanager_config,
        storage_flag="--storage.path",
        flags=("--cluster.listen-address=",),  # one instance: no gossip port, no peers
    )


def _prometheus_project_server(
    settings: StackSettings,
    *,
    name: str,
    executable: str,
    url: str,
    port: int,
    render: Callable[[StackSettings], str],
    storage_flag: str,
    flags: tuple[str, ...],
    loaded_before_inputs_changed: Callable[[], bool] | None = None,
) -> ProcessComponent:
    """Prometheus or Alertmanager: ``NAME/NAME.yml`` rendered, data in ``NAME/data``, ready
    at ``/-/ready``, a changed configuration applied through ``/-/reload``."""
    directory = settings.state_dir / name
    config = directory / f"{name}.yml"
    return ProcessComponent(
        name=name,
        url=url,
        settings=settings,
        probe_health=lambda: probe_http(f"{url}/-/ready"),
        command=lambda: [
            program(executable),
            f"--config.file={config}",
            f"{storage_flag}={directory / 'data'}",
            f"--web.listen-address={settings.host}:{port}",
            *flags,
        ],
        programs=(executable,),
        port=port,
        files={config: lambda: render(settings)},
        directories=(directory / "data",),
        reload_url=f"{url}/-/reload",
        loaded_before_inputs_changed=loaded_before_inputs_changed,
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
        with loopback_http() as http:
            response = http.get(f"{settings.prometheus_url}/api/v1/status/runtimeinfo")
            response.raise_for_status()
            stamp = response.json()["data"]["lastConfigTime"]
        return datetime.fromisoformat(stamp).timestamp()
    except (httpx.HTTPError, KeyError, ValueError, TypeError):
        return None  # unknown: do not reload on a guess


def _pushgateway(settings: StackSettings) -> ProcessComponent:
    directory = settings.state_dir / "pushgateway"
    return ProcessComponent(
        name="pushgateway",
        url=settings.pushgateway_url,
        settings=settings,
        probe_health=lambda: probe_http(f"{settings.pushgateway_url}/-/ready"),
        command=lambda: [
            program("prometheus-pushgateway"),
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
        probe_health=lambda: probe_http(f"{settings.prefect_api_url}/health"),
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
        probe_health=lambda: probe_http(f"{settings.receiver_url}/health"),
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
            f"no prefect executable next to {sys.executable} or on PATH",
            hint="install the project first (make demo)")
    return found
