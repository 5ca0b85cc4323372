"""Pure parts of the local stack: rendered configurations, package mapping, apt sources."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from runbook import stack
from runbook.errors import ConfigurationError
from runbook.settings import StackSettings
from runbook.stack import baseimage, components, debootstrap, packages, processes

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path) -> StackSettings:
    return StackSettings(
        state_dir=tmp_path / "state",
        prometheus_port=19090,
        alertmanager_port=19093,
        pushgateway_port=19091,
        router_metrics_port=18405,
        registry_port=15000,
        scrape_interval_s=5,
    )


def _jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _targets(job: dict) -> list[str]:
    return [target for group in job["static_configs"] for target in group["targets"]]


def test_prometheus_config_uses_the_scrape_interval_of_the_settings(settings: StackSettings):
    config = yaml.safe_load(stack.render_prometheus_config(settings))

    assert config["global"] == {"scrape_interval": "5s", "evaluation_interval": "5s"}


def test_prometheus_scrapes_itself_the_router_and_the_pushgateway(settings: StackSettings):
    jobs = _jobs(yaml.safe_load(stack.render_prometheus_config(settings)))

    assert set(jobs) == {"prometheus", "router", "pushgateway", "app"}
    assert _targets(jobs["prometheus"]) == ["127.0.0.1:19090"]
    # The router's exporters (main and one per route) come from the file it keeps.
    assert jobs["router"]["file_sd_configs"] == [{
        "files": [str(settings.state_dir / "router" / "targets.json")],
        "refresh_interval": "5s"}]
    assert jobs["router"]["metrics_path"] == "/metrics"
    assert _targets(jobs["pushgateway"]) == ["127.0.0.1:19091"]
    assert jobs["pushgateway"]["honor_labels"] is True


def test_prometheus_alerts_go_to_the_stack_alertmanager(settings: StackSettings):
    config = yaml.safe_load(stack.render_prometheus_config(settings))

    alertmanagers = config["alerting"]["alertmanagers"]
    assert [t for am in alertmanagers for t in _targets(am)] == ["127.0.0.1:19093"]


def test_prometheus_rule_files_are_the_repository_rules(settings: StackSettings):
    config = yaml.safe_load(stack.render_prometheus_config(settings))

    expected = REPOSITORY_ROOT / "deployments" / "prometheus" / "rules" / "*.yml"
    assert config["rule_files"] == [str(expected)]


def test_alertmanager_config_is_the_repository_config_pointed_at_the_stack_receiver(
    settings: StackSettings,
):
    settings = settings.model_copy(update={"receiver_port": 19095})
    config = yaml.safe_load(stack.render_alertmanager_config(settings))
    repository = yaml.safe_load(
        (REPOSITORY_ROOT / "deployments" / "alertmanager" / "alertmanager.yml").read_text())

    webhooks = [w for r in config["receivers"] for w in r["webhook_configs"]]
    assert [w["url"] for w in webhooks] == ["http://127.0.0.1:19095/alertmanager"]
    assert all(w["send_resolved"] for w in webhooks)
    assert config["route"] == repository["route"]
    assert config["inhibit_rules"] == repository["inhibit_rules"]


def test_the_receiver_is_a_stack_component_running_the_receiver_module(
    settings: StackSettings,
):
    (receiver,) = [c for c in components.stack_components(settings) if c.name == "receiver"]
    assert isinstance(receiver, stack.ProcessComponent)
    command = receiver.command()
    assert command[1:3] == ["-m", "runbook.alerts.receiver"]
    assert command[-2:] == ["--port", str(settings.receiver_port)]
    assert receiver.url == f"http://127.0.0.1:{settings.receiver_port}"
    assert receiver.port == settings.receiver_port


def test_a_module_process_is_recognised_as_ours_and_an_unrelated_one_is_not(tmp_path: Path):
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Seen flaky under load right after Popen: give the child a moment to show its argv.
        deadline = time.monotonic() + 5
        while not processes.runs_program(process.pid, "http.server"):
            assert time.monotonic() < deadline, Path(f"/proc/{process.pid}/cmdline").read_bytes()
            time.sleep(0.05)
        assert not processes.runs_program(process.pid, "runbook.alerts.receiver")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_registry_config_listens_on_loopback_stores_in_state_dir_and_allows_deletes(
    settings: StackSettings,
):
    config = yaml.safe_load(stack.render_registry_config(settings))

    assert config["http"]["addr"] == "127.0.0.1:15000"
    assert config["storage"]["delete"] == {"enabled": True}
    root = Path(config["storage"]["filesystem"]["rootdirectory"])
    assert settings.state_dir in root.parents


def test_rendering_is_stable_so_a_second_up_rewrites_nothing(settings: StackSettings):
    assert stack.render_prometheus_config(settings) == stack.render_prometheus_config(settings)
    assert stack.render_registry_config(settings) == stack.render_registry_config(settings)


def test_programs_map_to_their_debian_packages_once_each():
    packages = stack.packages_for(
        ["dockerd", "iptables", "prometheus-alertmanager", "docker-registry", "dockerd"]
    )

    assert packages == ["docker-registry", "docker.io", "iptables", "prometheus-alertmanager"]


@pytest.mark.parametrize(
    ("program", "package"),
    [
        ("dockerd", "docker.io"),
        ("docker-registry", "docker-registry"),
        ("prometheus", "prometheus"),
        ("prometheus-alertmanager", "prometheus-alertmanager"),
        ("prometheus-pushgateway", "prometheus-pushgateway"),
        ("haproxy", "haproxy"),
        ("debootstrap", "debootstrap"),
        ("iptables", "iptables"),
    ],
)
def test_each_program_of_the_stack_has_its_package(program: str, package: str):
    assert stack.packages_for([program]) == [package]


def test_missing_programs_lists_only_what_is_not_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    present = tmp_path / "prometheus"
    present.write_text("#!/bin/sh\n")
    present.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(packages, "_SBIN_DIRECTORIES", ())

    assert packages.missing_programs(["prometheus", "haproxy", "dockerd"]) == ["dockerd", "haproxy"]


def test_missing_programs_where_nothing_can_be_installed_names_programs_and_packages(
    settings: StackSettings, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(packages, "missing_programs", lambda programs: ["dockerd", "haproxy"])
    monkeypatch.setattr(packages, "can_install_packages", lambda: False)

    with pytest.raises(ConfigurationError) as raised:
        packages.ensure_programs(["dockerd", "haproxy", "prometheus"], settings)

    message = str(raised.value)
    assert "missing programs: dockerd, haproxy" in message
    assert "docker.io, haproxy" in (raised.value.hint or "")  # what to install: the hint


def test_nothing_missing_installs_nothing(settings: StackSettings, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(packages, "missing_programs", lambda programs: [])

    def fail(*args: object) -> None:
        raise AssertionError("apt-get must not run")

    monkeypatch.setattr(packages, "_apt_install", fail)

    packages.ensure_programs(["prometheus"], settings)


DEBIAN_SOURCES = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_deb822_sources_give_the_mirror_of_the_suite_not_the_security_archive():
    assert debootstrap.parse_deb822_sources(DEBIAN_SOURCES, "bookworm") == [
        "http://deb.debian.org/debian"
    ]


def test_deb822_sources_skip_disabled_stanzas_source_only_stanzas_and_other_suites():
    text = """\
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb-src
URIs: http://sources.example/debian
Suites: bookworm

Types: deb
URIs: http://archive.ubuntu.com/ubuntu
Suites: jammy jammy-updates

Types: deb deb-src
URIs: https://mirror.example/debian/
 http://second.example/debian
Suites: bookworm
"""
    assert debootstrap.parse_deb822_sources(text, "bookworm") == [
        "https://mirror.example/debian",
        "http://second.example/debian",
    ]


def test_one_line_sources_skip_comments_deb_src_options_and_other_suites():
    text = """\
# deb http://commented.example/debian bookworm main
deb-src http://sources.example/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/etc/k.gpg] http://mirror.example/debian/ bookworm main
deb cdrom:[Debian GNU/Linux]/ bookworm main
deb http://second.example/debian bookworm main contrib
"""
    assert debootstrap.parse_one_line_sources(text, "bookworm") == [
        "http://mirror.example/debian",
        "http://second.example/debian",
    ]


def test_mirror_comes_from_sources_list_before_sources_list_d(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list").write_text("deb http://first.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)

    assert debootstrap.debian_mirror(tmp_path) == "http://first.example/debian"


def test_mirror_comes_from_a_deb822_file_when_sources_list_is_absent(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEBIAN_SOURCES)
    (tmp_path / "sources.list.d" / "other.sources.disabled").write_text(
        "Types: deb\nURIs: http://ignored.example/debian\nSuites: bookworm\n"
    )

    assert debootstrap.debian_mirror(tmp_path) == "http://deb.debian.org/debian"


def test_mirror_falls_back_to_the_public_debian_mirror(tmp_path: Path):
    (tmp_path / "sources.list").write_text("deb http://archive.ubuntu.com/ubuntu jammy main\n")

    assert debootstrap.debian_mirror(tmp_path) == "http://deb.debian.org/debian"


def test_the_local_registry_keeps_the_base_image_under_its_own_name(settings: StackSettings):
    assert baseimage.mirror_reference(settings) == "127.0.0.1:15000/python:3.11-slim"


def test_prometheus_discovers_the_services_own_metrics_from_container_labels(
        settings: StackSettings):
    app = _jobs(yaml.safe_load(stack.render_prometheus_config(settings)))["app"]

    assert app["docker_sd_configs"] == [{"host": settings.docker_host, "refresh_interval": "5s"}]
    targets = {rule.get("target_label"): rule["source_labels"] for rule in app["relabel_configs"]}
    meta = "__meta_docker_container_label_io_runbook_"
    for name in ("service", "environment", "color", "revision"):
        assert targets[name] == [meta + name]
    assert targets["__address__"] == ["__meta_docker_network_ip", meta + "metrics_port"]
    assert targets["__metrics_path__"] == [meta + "metrics_path"]
