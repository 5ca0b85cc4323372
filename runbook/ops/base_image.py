"""Base-image update check (pure): is each deployed image built on the base image that
resolves now?

An image built ``FROM`` a base starts with exactly the base's layers, so "built from this
base" is "the base's layer ids are a prefix of the image's". No build record is needed and
it works for images built by anyone.
"""

from __future__ import annotations

from pydantic import BaseModel


class ResolvedImage(BaseModel):
    reference: str
    """``registry/name:tag`` or ``registry/name@digest`` as resolved."""
    digest: str
    """Manifest digest the reference resolves to now."""
    layers: list[str]
    """Uncompressed layer ids (``rootfs.diff_ids``), bottom-up."""


class BaseImageStatus(BaseModel):
    service: str
    environment: str
    image: str
    """The deployed image, by digest."""
    base: str
    base_digest: str
    up_to_date: bool
    """Built on the base image that resolves now."""


def built_from(base_layers: list[str], image_layers: list[str]) -> bool:
    """Whether an image with ``image_layers`` was built on a base with ``base_layers``."""
    return bool(base_layers) and image_layers[:len(base_layers)] == base_layers


def base_image_status(service: str, environment: str, image: ResolvedImage,
                      base: ResolvedImage) -> BaseImageStatus:
    return BaseImageStatus(
        service=service, environment=environment, image=image.reference,
        base=base.reference, base_digest=base.digest,
        up_to_date=built_from(base.layers, image.layers))


def stale(statuses: list[BaseImageStatus]) -> list[BaseImageStatus]:
    """The deployed images a newer base is available for."""
    return [s for s in statuses if not s.up_to_date]


class Rebuild(BaseModel):
    """One pipeline run the check triggers: a stale service into one environment."""

    service: str
    environment: str
    service_dir: str


class RebuildPlan(BaseModel):
    rebuilds: list[Rebuild]
    """Stale (service, environment) pairs whose source directory is known, in order."""
    unknown_source: list[str]
    """Stale services without a service directory: reported, cannot be rebuilt here."""


def plan_rebuilds(statuses: list[BaseImageStatus], service_dirs: dict[str, str | None]
                  ) -> RebuildPlan:
    """What the optional rebuild runs: the pipeline for each stale live image whose service
    directory is known; an up-to-date environment is never redeployed."""
    rebuilds: list[Rebuild] = []
    unknown: list[str] = []
    for status in stale(statuses):
        directory = service_dirs.get(status.service)
        if directory is None:
            if status.service not in unknown:
                unknown.append(status.service)
            continue
        rebuild = Rebuild(service=status.service, environment=status.environment,
                          service_dir=directory)
        if rebuild not in rebuilds:
            rebuilds.append(rebuild)
    return RebuildPlan(rebuilds=rebuilds, unknown_source=unknown)
