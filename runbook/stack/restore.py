"""After a restart of the stack: the revisions the router routes to, started again if the
engine stopped them (the docker target's ``restore``), and the guards whose process died,
resumed. The stack is one of the two places allowed to name the concrete DockerTarget."""

from __future__ import annotations

from docker.errors import DockerException

from runbook import guard as guards
from runbook.errors import RunbookError
from runbook.router import HAProxyRouter
from runbook.settings import StackSettings
from runbook.stack.probes import docker_client
from runbook.stack.records import ComponentStatus, ProgressCallback
from runbook.targets.docker import DockerTarget


def restore_deployments(
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
