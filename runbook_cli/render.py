"""``runbook render``: the manifests of a release as YAML (review, GitOps)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runbook.errors import ConfigurationError, TransientError
from runbook.models import Environment, TargetKind
from runbook.service import Service, load_service
from runbook.settings import StackSettings
from runbook.settings_root import RunbookSettings
from runbook_cli.common import ConfigOption, settings_for

if TYPE_CHECKING:
    from runbook.infra import EnvironmentInfra


def render(
    service_dir: Annotated[Path, typer.Argument(help="Directory with Dockerfile and service.yaml")],
    env: Annotated[Environment, typer.Option("--env", help="Target environment")],
    target: Annotated[TargetKind, typer.Option(help="Deploy target")] = TargetKind.KUBERNETES,
    image: Annotated[str | None, typer.Option(
        help="Image by digest (REPO@sha256:...); default: the registry's digest of the "
             "service's current content revision")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the manifests of a release as YAML (review, GitOps)."""
    import yaml

    from runbook.build import content_revision
    from runbook.infra import resolve
    from runbook.kube.manifests import render_all

    service = load_service(service_dir)
    if target is not TargetKind.KUBERNETES:
        raise ConfigurationError(f"--target {target.value}: only kubernetes has manifests")
    settings = settings_for(config)
    infra = resolve(settings, env.value, target)
    revision = content_revision(service, service.spec.build.args,
                                _base_ids(service, settings))
    image = image or _image_by_digest(infra, service.spec.name, revision)
    if "@sha256:" not in image:
        raise ConfigurationError(f"--image {image!r}: expected REPOSITORY@sha256:DIGEST")
    policy = service.spec.policy_for(env.value)
    namespace = RunbookSettings.of(settings).kubernetes_for(env.value, target).namespace(
        env.value)
    manifests = render_all(service.spec, env.value, namespace,
                           revision, image, policy.deploy.health_timeout_s)
    print(yaml.safe_dump_all(manifests, sort_keys=False), end="")


def _base_ids(service: Service, settings: StackSettings) -> dict[str, str]:
    """The resolved bases, as the pipeline's build put them in the revision; none when the
    engine cannot be asked (rendering needs no engine when ``--image`` is given)."""
    from runbook.adapters.base_images import resolve_bases
    from runbook.build import dockerfile_bases

    names = dockerfile_bases(service.dockerfile.read_text(), service.spec.build.args)
    try:
        return resolve_bases(settings.docker_host, names).resolved
    except TransientError:
        return {}


def _image_by_digest(infra: EnvironmentInfra, name: str, revision: str) -> str:
    from runbook.adapters.registry import Registry
    from runbook.build import repository

    digest = Registry.of(infra.registry).manifest_digest(name, revision)
    if digest is None:
        raise ConfigurationError(
            f"{name}:{revision} is not in the {infra.registry.label}",
            hint="build it first (runbook pipeline) or pass --image REPOSITORY@sha256:DIGEST")
    return f"{repository(infra.registry.host, name)}@{digest}"
