"""The check every target's diagnostics make when a revision fails to start: is its image
(by digest) in the registry at all? A missing image explains a failure no log will."""

from __future__ import annotations

import httpx
from pydantic import BaseModel

from runbook.adapters.registry import Registry
from runbook.errors import TransientError


class ImageCheck(BaseModel):
    """Whether the failing revision's image exists in its registry."""

    image: str = ""
    image_in_registry: bool | None = None
    """None: the registry could not be asked."""
    registry_detail: str = ""

    def check(self, registry: Registry | None) -> None:
        """Ask ``registry`` for the image's manifest; None: there is no registry to ask."""
        if registry is None:
            self.registry_detail = "no registry configured"
            return
        _, name, reference = split_image(self.image)
        try:
            self.image_in_registry = registry.manifest_digest(name, reference) is not None
        except (TransientError, httpx.HTTPError) as exc:
            self.registry_detail = str(exc)

    def image_summary(self) -> str:
        """One sentence for the diagnostics' paragraph."""
        if self.image_in_registry is False:
            return f"image {self.image} NOT found in the registry"
        if self.image_in_registry is None:
            return f"registry check of {self.image} failed: {self.registry_detail}"
        return f"image {self.image} exists in the registry"


def split_image(image: str) -> tuple[str, str, str]:
    """``host/name@sha256:...`` -> (host, name, reference)."""
    remainder, _, digest = image.partition("@")
    name_part, tag = remainder, ""
    if not digest and ":" in remainder.rsplit("/", 1)[-1]:
        name_part, _, tag = remainder.rpartition(":")
    host, _, name = name_part.partition("/")
    return host, name, digest or tag or "latest"


def log_summary(log_tail: str) -> str:
    """The last lines of a log, on one line, for the diagnostics' paragraph."""
    return " | ".join(log_tail.strip().splitlines()[-5:]) or "(empty)"
