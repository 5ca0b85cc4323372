"""The shipped kubernetes_sd relabelling gives pods' series the labels the `app` source's
standard queries select by (Debian's Prometheus cannot load kubernetes_sd_configs, so the
rules are checked here, and their semantics on a real Prometheus in
tests/integration/test_relabel_semantics.py)."""

from pathlib import Path

import yaml

from runbook.kube.manifests import APP, COLOR, MANAGED_BY, REVISION

SCRAPE = Path(__file__).resolve().parents[2] / "deployments/prometheus/scrape/kubernetes-app.yml"


def meta(label: str) -> str:
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def test_series_labels_come_from_the_pod_labels_runbook_sets() -> None:
    [job] = yaml.safe_load(SCRAPE.read_text())["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    rules = job["relabel_configs"]
    targets = {}
    for rule in rules:
        targets.setdefault(rule.get("target_label"), []).append(rule["source_labels"])
    assert targets["service"] == [[meta(APP)]]
    assert targets["color"] == [[meta(COLOR)]]
    assert targets["revision"] == [[meta(REVISION)]]
    assert targets["environment"] == [["__meta_kubernetes_namespace"], [meta("environment")]]
    [managed] = list(MANAGED_BY)
    keep = [r for r in rules if r.get("action") == "keep"]
    assert keep[0]["source_labels"] == [meta(managed)] and keep[0]["regex"] == "runbook"
