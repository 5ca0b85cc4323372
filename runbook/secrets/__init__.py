"""Secrets declared per service (``service.yaml`` ``secrets:``), their store and rotation.

Values live in a 0600 file under the state directory; production should keep them in a
real secret store (Vault, a cloud secret manager, Kubernetes Secrets with encryption at
rest). Values are ``SecretStr`` everywhere, so a log line or a repr never shows one.
"""
