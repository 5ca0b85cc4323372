"""Alerts: the model (``models``), pure routing (``routing``), channels (``slack``, ``email``,
``pagerduty``), the durable outbox (``outbox``), publishing (``notifier``), the pipeline's
alert decisions (``release``) and the Alertmanager webhook receiver (``receiver``)."""
