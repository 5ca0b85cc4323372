"""Kubernetes pieces of the kubernetes deploy target: settings, manifests (pure), rollout
status (pure), the API adapter and failure diagnostics."""
