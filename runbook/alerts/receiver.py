"""Alertmanager webhook receiver: Prometheus rule alerts become runbook alerts and incidents.

``python -m runbook.alerts.receiver --port 9095`` serves ``POST /alertmanager`` and
``GET /health``; Alertmanager routes there (``deployments/alertmanager/alertmanager.yml``;
``runbook stack up`` runs it as the ``receiver`` component). Conversion is a pure function;
the server only parses, publishes and flushes.
"""

from __future__ import annotations

import argparse
import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from runbook.alerts.models import Alert, AlertAction, AlertKind, Severity, dedup_key
from runbook.alerts.notifier import Notifier, notifier_for
from runbook.settings_root import RunbookSettings

log = logging.getLogger(__name__)
PATH = "/alertmanager"
HEALTH_PATH = "/health"
MAX_BODY_BYTES = 1_000_000


class WebhookAlert(BaseModel):
    """One alert of Alertmanager's webhook payload (version 4)."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    generatorURL: str | None = None  # Alertmanager's field name
    fingerprint: str = ""


class WebhookPayload(BaseModel):
    version: str = "4"
    status: str
    alerts: list[WebhookAlert]


def alerts_from_webhook(payload: WebhookPayload) -> list[Alert]:
    """Firing alerts trigger, resolved ones resolve, under the same dedup key as the runbook's
    own alerts (service + environment + kind), so the pipeline and Prometheus never open two
    incidents for one problem.

    A rule names its ``kind`` (an :class:`AlertKind`) and ``severity`` in labels; the service
    and environment come from ``service``/``environment`` labels or HAProxy's
    ``proxy="<service>.<environment>"``.
    """
    return [_alert(item) for item in payload.alerts]


def _alert(item: WebhookAlert) -> Alert:
    labels = item.labels
    service, environment = _service_and_environment(labels)
    try:
        kind = AlertKind(labels.get("kind", ""))
    except ValueError:
        kind = AlertKind.PIPELINE_FAILURE if "pipeline" in labels.get("alertname", "").lower() \
            else AlertKind.HIGH_RESOURCE_USAGE
    severity = Severity.CRITICAL if labels.get("severity") == "critical" else Severity.WARNING
    name = labels.get("alertname", kind.value)
    summary = item.annotations.get("summary") or name
    return Alert(
        kind=kind, severity=severity, service=service, environment=environment,
        summary=summary, details=item.annotations.get("description", ""),
        link=item.generatorURL,
        # The rule is the cause: two rules firing for one service are two problems.
        dedup_key=dedup_key(service, environment, kind, labels.get("alertname", "")),
        action=AlertAction.RESOLVE if item.status == "resolved" else AlertAction.TRIGGER,
    )


def _service_and_environment(labels: dict[str, str]) -> tuple[str, str]:
    proxy = labels.get("proxy", "")
    from_proxy = proxy.removesuffix(".preview").rsplit(".", 1) if "." in proxy else ["", ""]
    service = labels.get("service") or from_proxy[0] or "runbook"
    environment = labels.get("environment") or from_proxy[1] or "unknown"
    return service, environment


def make_handler(notifier: Notifier) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's method name
            if self.path.rstrip("/") != HEALTH_PATH:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"GET {HEALTH_PATH}"})
                return
            self._reply(HTTPStatus.OK, {"status": "ok",
                                        "waiting": len(notifier.outbox.pending())})

        def do_POST(self) -> None:  # http.server's method name
            if self.path.rstrip("/") != PATH:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"POST {PATH}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "too large"})
                return
            try:
                payload = WebhookPayload.model_validate_json(self.rfile.read(length))
            except ValidationError as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc.errors()[:3])})
                return
            published = [notifier.publish(alert) for alert in alerts_from_webhook(payload)]
            flushed = notifier.flush()
            self._reply(HTTPStatus.OK, {
                "alerts": len(published),
                "incidents": [p.incident.id for p in published if p.incident],
                "waiting": flushed.waiting,
            })

        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.info("%s " + format, self.address_string(), *args)

    return Handler


def make_server(host: str, port: int, notifier: Notifier) -> ThreadingHTTPServer:
    """The receiver, bound (port 0 picks a free one); call ``serve_forever()`` to run it."""
    return ThreadingHTTPServer((host, port), make_handler(notifier))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    settings = RunbookSettings.load()
    parser.add_argument("--host", default=settings.stack.host)
    parser.add_argument("--port", type=int, default=settings.stack.receiver_port)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    notifier = notifier_for(settings.alerts, settings.stack)
    server = make_server(args.host, args.port, notifier)
    log.info("alertmanager receiver on http://%s:%d%s", args.host, args.port, PATH)
    server.serve_forever()


if __name__ == "__main__":
    main()
