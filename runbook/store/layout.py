"""What runbook persists: in the state store (one row per kind, ``KINDS``) and as files
under the state directory (``FILES``, paths built by :class:`StateLayout`); for each, who
writes it, its shape, and what may be deleted. docs/state.md is the reader's version.
Every kind is written only through its owner's :class:`~runbook.store.Collection`, every
file's path is built here; this is the place to look before adding either.

Keys are ``/``-joined paths, most general part first (``<service>/<environment>``), so a
prefix read (``items(kind, "agent-api/")``) selects one service. Each document is a JSON
body (the owner's pydantic model, ``model_dump(mode="json")``) with a ``version`` that
grows on every write and an ``updated_at`` stamp.

Each kind below: its key; the body (the owner's model) and who writes it; when a document
may be deleted.

``alert-outbox``, key ``<entry id>`` (time-sorted)
    ``OutboxEntry``: one alert, and per channel its delivery (when, attempts, last error)
    and the claim of the flusher sending it right now (``runbook.alerts.outbox``).
    Never deleted by hand while waiting: it is an alert nobody has received yet.
``alert-sent``, key ``<entry id>``
    ``OutboxEntry`` every channel took. Any time; flushes prune them after
    ``SENT_RETENTION`` (30 days).
``alert-open``, key ``<dedup key>``
    ``Alert`` triggered and not yet resolved: what makes a second trigger a duplicate and
    what a resolve closes. Deleting one lets the next trigger of that problem through.
``incident``, key ``<incident id>``
    ``Incident`` (``runbook.incidents``): priority, deadline, steps, timeline. Resolved
    ones after their review; never an open one.
``incident-open``, key ``<dedup key>``
    ``OpenIncident`` ``{"id": ...}``: the open incident of a dedup key (an index kept with
    the incident in one transaction). Only together with its incident's resolution.
``perf-report``, key ``<service>/<environment>/<stamp>_<revision>``
    ``StoredReport``: one load test's report (``runbook.perf.baseline``). Any time: trends
    get shorter; keep the baseline revision's own.
``perf-baseline``, key ``<service>/<environment>``
    ``ReleasedMarker``: the released revision whose latest report is the baseline. Deleted,
    the next release has no baseline to compare with (first-release rules).
``secret``, key ``<service>/<environment>``
    ``SecretRecord``: per declared secret its values (in clear: the store is the secret
    store of the docker target) and rotation state (``runbook.secrets.store``). Never:
    it holds the values the consumers run with.
``ops-review``, key ``runbook``
    ``ReviewRecord``: when the runbook was last reviewed
    (``runbook.adapters.review_record``). Any time: the next review lists everything.
``quarantine``, key ``<kind>/<key>``
    A body that no longer validated as its kind's model, with the error and when
    (``runbook.store.collection``). Any time, once someone looked at it.

Not in the store, by design (``FILES``): the router's routes file (local stack only), the
stack's own files (configs, pid files, logs), scan reports (SARIF, SBOM, findings JSON:
artifacts read by people and tools as files), Locust's working directories, the chart
PNGs and the Pushgateway prune marker. Every path of them is joined by :class:`StateLayout`,
nowhere else (the stack's own, ``runbook.stack``, excepted: its components own their
directories).

State files of earlier versions (``<state>/alerts``, ``<state>/incidents``,
``<state>/perf``, ``<state>/secrets``, ``<state>/ops/runbook-review.json``) are not
imported (pre-1.0): a store starts empty.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass(frozen=True)
class Kind:
    name: str
    """The ``kind`` column."""
    key: str
    """How keys are made."""
    owner: str
    """The module that reads and writes it."""
    deletable: str
    """When a document may be deleted without losing anything the runbook needs."""
    schema: str = ""
    """The owner's model of a body."""


KINDS: tuple[Kind, ...] = ()
"""Every declared kind (the table above, plus kinds other modules declare with
:func:`kind`)."""


def kind(name: str, key: str, owner: str, deletable: str, schema: str = "") -> str:
    """Declare a kind; returns its name for the owner's Collection. Names are unique."""
    global KINDS
    if any(existing.name == name for existing in KINDS):
        raise ValueError(f"state store kind {name!r} declared twice")
    KINDS = (*KINDS, Kind(name, key, owner, deletable, schema))
    return name


ALERT_OUTBOX = kind("alert-outbox", "<entry id>", "runbook.alerts.outbox",
                    "never while waiting", "OutboxEntry")
ALERT_SENT = kind("alert-sent", "<entry id>", "runbook.alerts.outbox",
                  "any time; pruned after 30 days", "OutboxEntry")
ALERT_OPEN = kind("alert-open", "<dedup key>", "runbook.alerts.outbox",
                  "deleting re-opens the problem on its next trigger", "Alert")
INCIDENT = kind("incident", "<incident id>", "runbook.incident_store",
                "resolved ones after their review", "Incident")
INCIDENT_OPEN = kind("incident-open", "<dedup key>", "runbook.incident_store",
                     "only with its incident's resolution", "OpenIncident")
PERF_REPORT = kind("perf-report", "<service>/<environment>/<stamp>_<revision>",
                   "runbook.perf.baseline", "any time (shorter trends)", "StoredReport")
PERF_BASELINE = kind("perf-baseline", "<service>/<environment>", "runbook.perf.baseline",
                     "the next release then has no baseline", "ReleasedMarker")
SECRET = kind("secret", "<service>/<environment>", "runbook.secrets.store",
              "never: it holds the values consumers run with", "SecretRecord")
OPS_REVIEW = kind("ops-review", "runbook", "runbook.adapters.review_record",
                  "any time (the next review lists everything)", "ReviewRecord")
QUARANTINE = kind("quarantine", "<kind>/<key>", "runbook.store.collection",
                  "any time, once looked at", "{kind, key, body, error, quarantined_at}")


@dataclass(frozen=True)
class StateFile:
    """One file (or directory of files) runbook keeps under the state directory."""

    path: str
    """Relative to the state directory; ``<...>`` parts are filled in per use."""
    owner: str
    """The module that writes it."""
    format: str
    """What is in it."""
    deletable: str
    """When it may be deleted without losing anything the runbook needs."""


FILES: tuple[StateFile, ...] = (
    StateFile("state.db", "runbook.store.open",
              "SQLite database of the state store (every kind of ``KINDS``); absent when "
              "``state.url`` names PostgreSQL",
              "never while runs are active: it holds every kind above"),
    StateFile("router/routes.json", "runbook.router",
              "``RouteTable`` JSON: per service and environment its ports and live/preview "
              "servers; written atomically under ``router/routes.lock``",
              "never while the router serves: it is what HAProxy is rebuilt from"),
    StateFile("router/haproxy.cfg", "runbook.router",
              "configuration of the main HAProxy process (stats page and exporter at "
              "``router_metrics_port``, no route), rendered on every start",
              "any time: re-rendered on the next start"),
    StateFile("router/routes/<service>.<environment>.cfg", "runbook.router",
              "configuration of one route's HAProxy process, rendered from routes.json "
              "when that process starts", "any time: re-rendered when the process starts"),
    StateFile("router/routes/<service>.<environment>.pid",
              "HAProxy (``-p``, started by runbook.router)",
              "pid of one route's HAProxy process", "when that process is not running"),
    StateFile("router/routes/<service>.<environment>.sock",
              "HAProxy (runtime API, configured by runbook.router)",
              "unix socket of one route's process (``<tmp>/runbook-<uid>-sockets/<hash>.sock`` "
              "when the path would pass HAProxy's 97 characters)",
              "when that process is not running"),
    StateFile("router/targets.json", "runbook.router",
              "Prometheus file_sd targets (JSON list of ``{targets, labels}``): the main "
              "and every route's exporter; written atomically on start and on every route "
              "added or removed", "any time: rewritten on the next start (until then "
              "Prometheus keeps its last targets)"),
    StateFile("router/routes.lock", "runbook.router",
              "empty file: the flock serializing route changes across processes",
              "when no runbook process runs"),
    StateFile("router/haproxy.pid", "HAProxy (``-p``, started by runbook.router)",
              "pid of the main HAProxy process", "when it is not running"),
    StateFile("router/admin.sock", "HAProxy (runtime API, configured by runbook.router)",
              "unix socket of the main process (moved like a route's when too long)",
              "when it is not running"),
    StateFile("scans/<service>/<sha256-hex>/", "runbook.scan.store (Trivy writes the SBOM)",
              "findings.json (``ScanReport``), scan.sarif (SARIF 2.1.0), sbom.cdx.json "
              "(CycloneDX JSON), image.json (``StoredImage``: image and revision)",
              "images no longer deployed: the weekly review then misses them, and the next "
              "release of a deleted revision's successor has no package diff"),
    StateFile("guards/<service>.<environment>.log", "runbook.guard",
              "text: stdout and stderr of the guard process", "once its guard ended"),
    StateFile("perf/<service>/<environment>/runs/<stamp>_<revision>/", "tasks.perf",
              "Locust's working directory: generated locustfile, CSV stats, worker logs",
              "any time; the newest 20 per service and environment are kept automatically"),
    StateFile("perf/<service>/<environment>/charts/<revision>.png", "tasks.perf",
              "PNG latency chart the perf artifact links to",
              "any time (the artifact's link then points nowhere)"),
    StateFile("ops/<chart>-<YYYY-MM-DD>.png", "tasks.ops",
              "PNG trend charts of daily health (``health-trend``, ``dora-trend``)",
              "any time (the day's ops report links them)"),
    StateFile("pushgateway-pruned-at", "tasks.observe (runbook.adapters.pushgateway)",
              "empty file: its modification time is when runs last pruned the "
              "Pushgateway's old run groups (at most hourly)",
              "any time: the next run prunes again"),
    StateFile("test-sessions/<pid>.services", "tests/conftest.py",
              "text: the services one pytest session delivered, one name a line",
              "by the next session, once its pytest process is gone (after removing those "
              "services); never while it runs"),
    StateFile("logs/, run/, docker/, registry/, prometheus/, alertmanager/, pushgateway/, "
              "prefect/, base-image/", "runbook.stack",
              "the local stack's own: component logs, pid files and the stack lock, the "
              "Docker data root, registry storage, configs and databases of each component",
              "only with the stack down; registry/, docker/ and prefect/ hold images, "
              "containers and every run's history"),
)
"""Every file runbook keeps (the state store's database included); docs/state.md."""


HAPROXY_SOCKET_PATH_MAX = 97
"""HAProxy 2.6 refuses a longer ``stats socket`` path ("socket path ... too long (max 97)")."""


@dataclass(frozen=True)
class StateLayout:
    """The paths of ``FILES`` under one state directory: the one place they are joined, so a
    file's location changes here or nowhere. Pure: nothing is created."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "state.db"

    @property
    def router(self) -> Path:
        """The router's directory: routes.json, the lock, targets.json, the main process's
        config, pid and socket, and ``routes/`` (each route's)."""
        return self.root / "router"

    @property
    def routes(self) -> Path:
        return self.router / "routes.json"

    @property
    def router_config(self) -> Path:
        return self.router / "haproxy.cfg"

    @property
    def routes_lock(self) -> Path:
        return self.router / "routes.lock"

    @property
    def router_pid(self) -> Path:
        return self.router / "haproxy.pid"

    @property
    def router_socket(self) -> Path:
        return self._socket(self.router / "admin.sock")

    @property
    def router_targets(self) -> Path:
        """Prometheus' file_sd list of the router's exporters."""
        return self.router / "targets.json"

    def route_config(self, service: str, environment: str) -> Path:
        return self.router / "routes" / f"{service}.{environment}.cfg"

    def route_pid(self, service: str, environment: str) -> Path:
        return self.router / "routes" / f"{service}.{environment}.pid"

    def route_socket(self, service: str, environment: str) -> Path:
        return self._socket(self.router / "routes" / f"{service}.{environment}.sock")

    def _socket(self, preferred: Path) -> Path:
        """A HAProxy admin socket: under the state dir when its path is short enough for
        HAProxy, else (a long state dir) a short name, unique per state dir and socket, in
        a private directory of the temp dir."""
        if len(str(preferred)) <= HAPROXY_SOCKET_PATH_MAX:
            return preferred
        digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"runbook-{os.getuid()}-sockets" / f"{digest}.sock"

    @property
    def scans(self) -> Path:
        return self.root / "scans"

    def scans_of(self, service: str) -> Path:
        return self.scans / service

    def scan_dir(self, service: str, digest: str) -> Path:
        """One image's scan files (``sha256:ab..`` is stored as ``sha256-ab..``)."""
        return self.scans_of(service) / digest.replace(":", "-")

    @property
    def guards(self) -> Path:
        return self.root / "guards"

    def guard_log(self, service: str, environment: str) -> Path:
        return self.guards / f"{service}.{environment}.log"

    def perf_runs(self, service: str, environment: str) -> Path:
        return self.root / "perf" / service / environment / "runs"

    def perf_chart(self, service: str, environment: str, revision: str) -> Path:
        return self.root / "perf" / service / environment / "charts" / f"{revision}.png"

    def ops_chart(self, chart: str, day: date) -> Path:
        return self.root / "ops" / f"{chart}-{day:%Y-%m-%d}.png"

    @property
    def pushgateway_prune_marker(self) -> Path:
        return self.root / "pushgateway-pruned-at"

    @property
    def test_sessions(self) -> Path:
        return self.root / "test-sessions"

    def test_session(self, pid: int) -> Path:
        return self.test_sessions / f"{pid}.services"
