"""A release through ``runbook.yaml`` against remote-shaped parts the test starts itself on
127.0.0.2 (tests/remote_infra.py): a registry with TLS (a CA made here) and htpasswd
auth, a Prometheus behind TLS and basic auth that verification must read, state on a
private PostgreSQL. The router and Prefect stay the local stack's (one part at a time)."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import httpx
import pytest
import sqlalchemy
import yaml

from runbook.adapters.pushgateway import RUN_OUTCOME
from runbook.adapters.registry import Registry
from runbook.infra import HttpService
from runbook.models import Outcome, RunReport, StageStatus
from runbook.secretref import SecretRef
from runbook.settings import StackSettings
from tests.remote_infra import PROMETHEUS_USER, REGISTRY_USER, RemoteInfra, remote_infra

pytestmark = pytest.mark.stack
RUNBOOK = str(Path(sys.executable).parent / "runbook")


@pytest.fixture(scope="module")
def remote(stack_settings: StackSettings) -> Iterator[RemoteInfra]:
    with remote_infra(stack_settings) as infra:
        yield infra


@pytest.fixture
def runbook_yaml(remote: RemoteInfra, postgres_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "runbook.yaml"
    path.write_text(yaml.safe_dump({
        "state": {"url": postgres_url},
        "environments": {"staging": {
            "target": "docker",
            "registry": {"url": remote.registry_url, "username": REGISTRY_USER,
                         "password_env": "REGISTRY_PASSWORD", "ca_file": str(remote.ca_file)},
            "prometheus": {"url": remote.prometheus_url, "username": PROMETHEUS_USER,
                           "password_env": "PROM_PASSWORD", "ca_file": str(remote.ca_file)},
            "pushgateway": {"url": remote.pushgateway_url, "username": PROMETHEUS_USER,
                            "password_env": "PROM_PASSWORD", "ca_file": str(remote.ca_file)},
        }},
    }))
    return path


def pipeline(service_dir: Path, config: Path, report: Path, remote: RemoteInfra, *extra: str,
             registry_password: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "REGISTRY_PASSWORD": registry_password or
                   remote.registry_password, "PROM_PASSWORD": remote.prometheus_password}
    return subprocess.run(
        [RUNBOOK, "pipeline", str(service_dir), "--env", "staging", "--config", str(config),
         "--report", str(report), *extra],
        capture_output=True, text=True, timeout=600, check=False, env=environment,
    )


def registry_api(remote: RemoteInfra) -> Registry:
    os.environ["E2E_REGISTRY_PASSWORD"] = remote.registry_password
    return Registry.of(HttpService(
        part="registry", url=remote.registry_url, username=REGISTRY_USER,
        password=SecretRef(kind="env", name="E2E_REGISTRY_PASSWORD"), ca_file=remote.ca_file))


def service_name(service_dir: Path) -> str:
    return str(yaml.safe_load((service_dir / "service.yaml").read_text())["name"])


def test_a_release_through_runbook_yaml_lands_on_the_remote_parts(
    sample_service: Callable[..., Path], runbook_yaml: Path, remote: RemoteInfra,
    postgres_url: str, tmp_path: Path,
) -> None:
    service_dir = sample_service()
    name = service_name(service_dir)
    done = pipeline(service_dir, runbook_yaml, tmp_path / "report.json", remote)
    assert done.returncode == 0, done.stdout + done.stderr
    report = RunReport.model_validate_json((tmp_path / "report.json").read_text())
    assert report.outcome is Outcome.RELEASED
    assert report.image is not None and report.image.startswith(f"{remote.registry_host}/{name}@")
    # The image is in that registry, seen through its authenticated API.
    api = registry_api(remote)
    assert name in api.catalog()
    assert report.revision in api.tags(name)
    # Verification read that Prometheus: the revision's series were queried there.
    server_queries = [q for q in remote.queries() if f"-{report.revision}" in q]
    assert server_queries, remote.queries()[-10:]
    # The run's metrics went to that Pushgateway, through its login.
    pushed = httpx.get(f"{remote.pushgateway_url}/metrics", timeout=10,
                       auth=(PROMETHEUS_USER, remote.prometheus_password),
                       verify=ssl.create_default_context(cafile=str(remote.ca_file)))
    runs = [line for line in pushed.text.splitlines()
            if line.startswith(f"{RUN_OUTCOME}{{") and f'service="{name}"' in line]
    assert any('outcome="released"' in line and line.endswith(" 1") for line in runs), runs
    # Its state (release record, perf baseline, ...) is in that PostgreSQL.
    engine = sqlalchemy.create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            keys = connection.execute(sqlalchemy.text(
                "SELECT key FROM runbook_documents WHERE key LIKE :name"),
                {"name": f"%{name}%"}).scalars().all()
    finally:
        engine.dispose()
    assert keys, "no state of the run in PostgreSQL"
    # No secret in what the run printed (its logs) or reported.
    shown = done.stdout + done.stderr + (tmp_path / "report.json").read_text()
    assert remote.registry_password not in shown and remote.prometheus_password not in shown


def test_a_wrong_registry_password_is_one_line_and_exit_2_before_any_build(
    sample_service: Callable[..., Path], runbook_yaml: Path, remote: RemoteInfra,
    tmp_path: Path,
) -> None:
    service_dir = sample_service()
    started = time.monotonic()
    done = pipeline(service_dir, runbook_yaml, tmp_path / "report.json", remote,
                    registry_password="not-the-password")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [f"error: registry {remote.registry_url}: authentication failed (401) "
                     f"for user {REGISTRY_USER}"]
    assert "not-the-password" not in done.stdout + done.stderr
    assert not (tmp_path / "report.json").exists()  # no run started, nothing built
    assert service_name(service_dir) not in registry_api(remote).catalog()
    assert time.monotonic() - started < 60


def test_an_image_built_elsewhere_lands_without_a_build(
    sample_service: Callable[..., Path], runbook_yaml: Path, remote: RemoteInfra,
    stack_settings: StackSettings, tmp_path: Path,
) -> None:
    service_dir = sample_service()
    name = service_name(service_dir)
    digest_ref = build_and_push_elsewhere(service_dir, f"{remote.registry_host}/{name}", remote,
                                          stack_settings)
    done = pipeline(service_dir, runbook_yaml, tmp_path / "report.json", remote,
                    "--image", digest_ref)
    assert done.returncode == 0, done.stdout + done.stderr
    report = RunReport.model_validate_json((tmp_path / "report.json").read_text())
    assert report.outcome is Outcome.RELEASED
    assert report.image == digest_ref
    stages = {stage.name: stage for stage in report.stages}
    assert stages["build"].status is StageStatus.SKIPPED
    assert "built elsewhere" in stages["build"].detail
    for stage in ("scan", "preview", "perf", "promote", "verify"):
        assert stages[stage].status is StageStatus.PASSED, stages[stage]


def test_an_image_that_is_not_in_the_registry_is_bad_input(
    sample_service: Callable[..., Path], runbook_yaml: Path, remote: RemoteInfra,
    tmp_path: Path,
) -> None:
    missing = f"{remote.registry_host}/nothing-here@sha256:{'0' * 64}"
    done = pipeline(sample_service(), runbook_yaml, tmp_path / "report.json", remote,
                    "--image", missing)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: --image {missing}: no such manifest in registry "
                                   f"{remote.registry_url}")


def build_and_push_elsewhere(service_dir: Path, repository: str, remote: RemoteInfra,
                             settings: StackSettings) -> str:
    """What a CI job does: build, push with its login, and keep only the digest. The local
    copy is removed, so the pipeline must pull it from the authenticated registry."""
    client = docker.DockerClient(base_url=settings.docker_host, timeout=300)
    tag = f"{repository}:ci-build"
    client.images.build(path=str(service_dir), tag=tag, pull=False, rm=True)
    auth = {"username": REGISTRY_USER, "password": remote.registry_password}
    digest = None
    for chunk in client.api.push(repository, tag="ci-build", stream=True, decode=True,
                                 auth_config=auth):
        assert "error" not in chunk, chunk
        digest = chunk.get("aux", {}).get("Digest", digest)
    assert digest is not None
    client.images.remove(tag, force=True)
    return f"{repository}@{digest}"
