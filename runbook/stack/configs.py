"""The configuration files the stack renders for its components: Prometheus (itself, the
router, the Pushgateway and the services' own metrics found by Docker service discovery;
alerts to Alertmanager), Alertmanager (the repository's routes, webhooks pointed at the
stack's receiver) and the registry. Pure: settings in, YAML text out."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from runbook.settings import StackSettings
from runbook.store.layout import StateLayout

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_RULES_GLOB = REPOSITORY_ROOT / "deployments" / "prometheus" / "rules" / "*.yml"
ALERTMANAGER_CONFIG = REPOSITORY_ROOT / "deployments" / "alertmanager" / "alertmanager.yml"


def render_prometheus_config(
    settings: StackSettings, rules_glob: Path = PROMETHEUS_RULES_GLOB
) -> str:
    """Prometheus configuration: itself, the router (file service discovery), the
    Pushgateway; alerts to Alertmanager."""
    interval = f"{settings.scrape_interval_s}s"
    host = settings.host

    def job(name: str, port: int, **extra: object) -> dict[str, object]:
        return {"job_name": name, **extra, "static_configs": [{"targets": [f"{host}:{port}"]}]}

    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_glob)],
        "alerting": {
            "alertmanagers": [
                {"static_configs": [{"targets": [f"{host}:{settings.alertmanager_port}"]}]}
            ]
        },
        "scrape_configs": [
            job("prometheus", settings.prometheus_port),
            router_job(settings),
            # Pushed series keep the job and instance labels of whoever pushed them.
            job("pushgateway", settings.pushgateway_port, honor_labels=True),
            app_discovery_job(settings),
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


ROUTER_TARGETS_REFRESH = "5s"
"""Prometheus re-reads the router's targets file on inotify; this is the fallback."""


def router_job(settings: StackSettings) -> dict[str, object]:
    """The router's exporters: its main process and one per route (``runbook.router``
    keeps the list in the targets file as routes come and go)."""
    return {"job_name": "router", "metrics_path": "/metrics",
            "file_sd_configs": [{"files": [str(StateLayout(settings.state_dir).router_targets)],
                                 "refresh_interval": ROUTER_TARGETS_REFRESH}]}


DOCKER_LABEL_META = "__meta_docker_container_label_io_runbook_"
"""How docker_sd_configs names a container label ``io.runbook.<name>`` (dots to ``_``)."""
APP_SERIES_LABELS = ("service", "environment", "color", "revision")


def app_discovery_job(settings: StackSettings) -> dict[str, object]:
    """The services' own metrics (the ``app`` source): Prometheus discovers the containers
    the docker target started with a ``metrics`` declaration and labels every series with
    the container's service, environment, color and revision. Discovery refreshes every
    scrape interval, so a new revision is scraped within seconds of starting."""
    meta = DOCKER_LABEL_META
    return {
        "job_name": "app",
        "docker_sd_configs": [{"host": settings.docker_host,
                               "refresh_interval": f"{settings.scrape_interval_s}s"}],
        "relabel_configs": [
            {"source_labels": [f"{meta}metrics_port"], "regex": ".+", "action": "keep"},
            # One target per container, whatever ports it exposes: its address on the
            # bridge network and the declared metrics port (duplicates collapse).
            {"source_labels": ["__meta_docker_network_ip", f"{meta}metrics_port"],
             "separator": ":", "target_label": "__address__"},
            {"source_labels": [f"{meta}metrics_path"], "target_label": "__metrics_path__"},
            *({"source_labels": [f"{meta}{name}"], "target_label": name}
              for name in APP_SERIES_LABELS),
            {"source_labels": ["__meta_docker_container_name"], "regex": "/?(.*)",
             "target_label": "container"},
        ],
    }


def render_alertmanager_config(
    settings: StackSettings, source: Path = ALERTMANAGER_CONFIG
) -> str:
    """The repository's Alertmanager configuration, its webhooks pointed at the stack's
    runbook receiver: the same routes, grouping and inhibitions as a real installation.

    Notification channels (Slack, email, PagerDuty) are the runbook's own adapters, behind
    the receiver, so Alertmanager itself holds no channel credentials.
    """
    config = yaml.safe_load(source.read_text())
    for receiver in config.get("receivers", []):
        for webhook in receiver.get("webhook_configs", []):
            path = urlsplit(webhook["url"]).path
            webhook["url"] = f"{settings.receiver_url}{path}"
    return yaml.safe_dump(config, sort_keys=False)


def render_registry_config(settings: StackSettings) -> str:
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(settings.state_dir / "registry" / "data")},
            # Cleanup of old artifacts deletes manifests.
            "delete": {"enabled": True},
            "cache": {"blobdescriptor": "inmemory"},
        },
        "http": {"addr": f"{settings.host}:{settings.registry_port}"},
    }
    return yaml.safe_dump(config, sort_keys=False)
