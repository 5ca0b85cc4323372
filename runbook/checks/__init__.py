"""Verification checks: declared like Argo Rollouts' ``Metric`` and judged by one engine.

- :mod:`.model`: the declared form (``MetricCheck``), validated when ``service.yaml`` loads;
- :mod:`.templates` and :mod:`.conditions`: pure rendering and safe condition evaluation;
- :mod:`.standard`: the runbook's own rules (health, error rate, average response time) as
  checks over the request series of a source (router, app, istio, linkerd);
- :mod:`.providers`: the I/O half, one provider per kind (prometheus, web, command, traffic).

The verdict over measurements is :mod:`runbook.analysis`, pure.
"""
