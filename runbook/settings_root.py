"""The settings root: everything a run reads from its environment, read once.

As kopf builds one ``OperatorSettings`` at startup and passes it to every handler, runbook
builds one :class:`RunbookSettings` at an entry point (a flow's start, a CLI command, the
alert receiver's ``main``) and passes it, or the part a function needs, down. Library code
and tasks never construct ``StackSettings()``, ``AlertSettings()`` or
``KubernetesSettings()`` themselves, so what a run was configured with is decided in one
place and a test hands in exactly what it means.

The environment variables are those of the parts: ``RUNBOOK_*`` (the local stack),
``RUNBOOK_ALERT_*`` (alert channels), ``RUNBOOK_K8S_*`` (cluster access), and the
``runbook.yaml`` in force (``--config``, ``$RUNBOOK_CONFIG``, ``RUNBOOK__*``).

The root travels as a task argument. Every task taking it has ``cache_policy=NO_CACHE``
(nothing is hashed), Prefect 3 does not store task arguments on the server, and the
secrets in it are ``SecretStr``: a repr, a log line or a JSON dump shows ``**********``.
It is never a flow parameter: flows keep their parameters and build the root inside.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from runbook.alerts.settings import AlertSettings
from runbook.config import RunbookConfig
from runbook.infra import configured_settings, resolve
from runbook.kube.settings import KubernetesSettings
from runbook.models import TargetKind
from runbook.settings import StackSettings


class RunbookSettings(BaseModel):
    """One run's settings: the stack, the alert channels, cluster access and the
    ``runbook.yaml`` in force (``stack.configuration``)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    stack: StackSettings
    """The local stack's ports and state directory, with the ``runbook.yaml`` in force."""
    alerts: AlertSettings
    """Alert channels, with the contacts of that ``runbook.yaml``."""
    kubernetes: KubernetesSettings
    """Cluster access and pacing (``RUNBOOK_K8S_*``); per environment, see
    :meth:`kubernetes_for`."""

    @classmethod
    def load(cls, config: str | Path | None = None) -> RunbookSettings:
        """Read the environment once: ``config`` is the ``runbook.yaml`` to use (the CLI's
        ``--config``, a flow's ``config`` parameter); None: the one
        :func:`runbook.config.find_config` finds."""
        return cls.of(configured_settings(config))

    @classmethod
    def of(cls, stack: StackSettings) -> RunbookSettings:
        """The root around given stack settings (a test stack, a second stack); alerts and
        cluster access from the environment, contacts from ``stack.configuration``."""
        return cls(stack=stack, alerts=AlertSettings(contacts=stack.configuration.contacts),
                   kubernetes=KubernetesSettings())

    @property
    def configuration(self) -> RunbookConfig:
        """The ``runbook.yaml`` in force."""
        return self.stack.configuration

    def kubernetes_for(self, environment: str | None,
                       target: TargetKind | str | None = None) -> KubernetesSettings:
        """Cluster access for ``environment``: what ``runbook.yaml`` says of it over
        ``RUNBOOK_K8S_*``; None (commands spanning environments): ``RUNBOOK_K8S_*`` only."""
        if environment is None:
            return self.kubernetes
        return self.kubernetes.for_environment(resolve(self.stack, environment, target))
