"""What runbook persists in the state store: one row per kind, who writes it, its shape,
and what may be deleted. Every kind is written only through its owner's
:class:`~runbook.store.Collection`; this table is the place to look before adding one.

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

Not in the store, by design: the router's routes file (local stack only), the stack's own
files (configs, pid files, logs), scan reports (SARIF, SBOM, findings JSON: artifacts read
by people and tools as files), Locust's working directory, the perf chart PNGs and the
``pushgateway-pruned-at`` marker (``tasks/observe.py``).

State files of earlier versions (``<state>/alerts``, ``<state>/incidents``,
``<state>/perf``, ``<state>/secrets``, ``<state>/ops/runbook-review.json``) are not
imported (pre-1.0): a store starts empty.
"""

from __future__ import annotations

from dataclasses import dataclass


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
