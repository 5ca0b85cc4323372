"""The local stack: real services on loopback that the pipeline delivers to and measures with.

Components, in order: the Docker engine, a Docker registry, Prometheus, Alertmanager, the
Pushgateway, the HAProxy router, the Prefect server and the runbook's Alertmanager webhook
receiver; ``up`` also makes sure the Python base image exists locally (component
``base-image``) and brings back deployed revisions and guards (``deployments``).

Every process is a plain child process in its own session: its log is ``logs/NAME.log`` and its
pid ``run/NAME.pid`` under the state directory, next to its data and its rendered
configuration. A component that is healthy already is left alone, so ``up`` is idempotent and
``down`` stops only what the stack started (a reused Docker engine keeps running).

Missing programs are installed from Debian packages when that is possible (root on
Debian/Ubuntu); elsewhere the error names the packages to install.

This module holds the commands (``up``, ``down``, ``status``) and the public API; the work is
in one module per concern:

- ``records``: ``ComponentStatus``, ``Probe``, the progress callback;
- ``components``: the components in start order and how each one is run;
- ``supervisor``: starting, waiting for health, stopping and reloading one component;
- ``processes``: launching, pid files, liveness, signals, log tails, the stack lock;
- ``probes``: health probes and the Docker client;
- ``packages``: programs and the Debian packages that ship them (apt);
- ``configs``: the rendered Prometheus, Alertmanager and registry configurations;
- ``baseimage``, ``debootstrap``, ``images``: the Python base image;
- ``restore``: deployed revisions and guards after a restart.
"""

from __future__ import annotations

from collections.abc import Iterable

from runbook.settings import StackSettings
from runbook.stack import baseimage
from runbook.stack.components import stack_components
from runbook.stack.configs import (
    app_discovery_job,
    render_alertmanager_config,
    render_prometheus_config,
    render_registry_config,
)
from runbook.stack.packages import (
    ensure_programs,
    find_program,
    missing_programs,
    packages_for,
)
from runbook.stack.probes import docker_client
from runbook.stack.processes import stack_lock
from runbook.stack.records import ComponentStatus, ProgressCallback, ignore_progress
from runbook.stack.restore import restore_deployments
from runbook.stack.supervisor import ProcessComponent

__all__ = [
    "ComponentStatus",
    "ProcessComponent",
    "app_discovery_job",
    "docker_client",
    "down",
    "ensure_programs",
    "find_program",
    "missing_programs",
    "packages_for",
    "render_alertmanager_config",
    "render_prometheus_config",
    "render_registry_config",
    "running_pids",
    "status",
    "status_of",
    "up",
]


def up(
    settings: StackSettings, on_progress: ProgressCallback | None = None
) -> list[ComponentStatus]:
    """Start every component that is not healthy yet; report each one, base image last."""
    report = on_progress or ignore_progress
    with stack_lock(settings):
        components = stack_components(settings)
        unhealthy = [c for c in components if not c.probe().healthy]
        ensure_programs([p for c in unhealthy for p in c.programs], settings, report)
        startups = [component.begin(report) for component in components]
        statuses: dict[str, ComponentStatus] = {}
        # The base image needs the engine and the registry only: obtain it while the slower
        # components (Prefect: ~20 s) are still starting.
        for component, startup in zip(components, startups, strict=True):
            statuses[component.name] = component.finish(startup, report)
            if component.name == "registry":
                statuses["base-image"] = baseimage.provide_for_stack(settings, statuses, report)
        statuses["deployments"] = restore_deployments(settings, statuses, report)
        return [statuses[c.name] for c in components] + [
            statuses["base-image"], statuses["deployments"]
        ]


def down(
    settings: StackSettings, on_progress: ProgressCallback | None = None
) -> list[ComponentStatus]:
    """Stop what the stack started, in reverse order; data, logs and images stay in place."""
    report = on_progress or ignore_progress
    with stack_lock(settings):
        components = stack_components(settings)
        statuses = {c.name: c.stop(report) for c in reversed(components)}
        return [statuses[c.name] for c in components]


def status(settings: StackSettings) -> list[ComponentStatus]:
    """Health of every component, base image last; changes nothing."""
    statuses = [component.current() for component in stack_components(settings)]
    return [*statuses, baseimage.current_status(settings)]


def status_of(settings: StackSettings, names: Iterable[str]) -> list[ComponentStatus]:
    """Health of the named components only (what one run uses); changes nothing."""
    wanted = set(names)
    return [c.current() for c in stack_components(settings) if c.name in wanted]


def running_pids(settings: StackSettings) -> dict[str, int]:
    """Pids of the live processes this stack started, by component name."""
    pids = {
        component.name: pid
        for component in stack_components(settings)
        if (pid := component.own_pid()) is not None
    }
    return pids
