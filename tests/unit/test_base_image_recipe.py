"""An image runbook built to an older recipe is rebuilt; one from elsewhere never is."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from docker.errors import ImageNotFound

from runbook.stack import baseimage, debootstrap


class _Images:
    def __init__(self, labels: dict[str, str] | None) -> None:
        self.labels = labels

    def get(self, name: str) -> Any:
        if self.labels is None:
            raise ImageNotFound(name)
        return SimpleNamespace(labels=self.labels, id="sha256:0")


def client(labels: dict[str, str] | None) -> Any:
    return SimpleNamespace(images=_Images(labels))


def test_recipe_names_the_coverage_tool() -> None:
    assert "python3-coverage" in debootstrap.DEBOOTSTRAP_PACKAGES
    assert "python3-coverage" in debootstrap.RECIPE


def test_only_our_images_of_another_recipe_are_outdated() -> None:
    ours = {debootstrap.SOURCE_LABEL: "built with debootstrap"}
    assert baseimage.outdated(client(ours), "python:3.11-slim")  # before recipes existed
    assert baseimage.outdated(client({**ours, debootstrap.RECIPE_LABEL: "bookworm python3"}),
                              "python:3.11-slim")
    assert not baseimage.outdated(
        client({**ours, debootstrap.RECIPE_LABEL: debootstrap.RECIPE}), "python:3.11-slim")
    assert not baseimage.outdated(client({}), "python:3.11-slim")  # Docker Hub's image
    assert not baseimage.outdated(client(None), "python:3.11-slim")  # not there at all
