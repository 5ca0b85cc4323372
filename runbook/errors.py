"""Error kinds. Only :class:`TransientError` is retried; everything else fails fast."""


class RunbookError(Exception):
    """Base of runbook's own errors."""


class TransientError(RunbookError):
    """A fault that may pass by itself: connection refused, timeout, 5xx. Retried."""


class ConfigurationError(RunbookError):
    """Bad input or configuration. Never retried; the message names what to fix."""


class GateFailed(RunbookError):
    """A release gate said no. Never retried: the same input gives the same answer."""


class DeployError(RunbookError):
    """A deployment step failed for a reason retrying will not fix."""
