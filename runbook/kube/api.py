"""The cluster API adapter: the official sync client, every call timed out and its faults
sorted into runbook's error kinds. Objects go in and come out as plain dicts (camelCase),
the form the manifests are rendered in.

- 403: :class:`~runbook.errors.DeployError` naming the verb, resource and namespace the
  worker's service account lacks (fails fast: retrying cannot grant a permission).
- 409: :class:`Conflict`; callers re-read and retry (optimistic concurrency).
- 404: reads return None; :class:`NotFound` otherwise.
- 429, 5xx, connection errors and timeouts: :class:`~runbook.errors.TransientError`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import urllib3.exceptions
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from runbook.errors import ConfigurationError, DeployError, TransientError
from runbook.kube.settings import KubernetesSettings

T = TypeVar("T")
MERGE_PATCH = "application/merge-patch+json"


class Conflict(TransientError):
    """409: the object changed (or exists) since it was read; re-read and try again."""


class NotFound(DeployError):
    """404 on a write: the object is gone."""


def connect(settings: KubernetesSettings) -> client.ApiClient:
    """An API client from the kubeconfig (explicit, $KUBECONFIG or ~/.kube/config), else
    from the in-cluster service account."""
    kubeconfig = settings.kubeconfig or _default_kubeconfig()
    try:
        if kubeconfig is not None:
            return config.new_client_from_config(config_file=str(kubeconfig),
                                                 context=settings.context)
        config.load_incluster_config()
        return client.ApiClient()
    except (ConfigException, OSError) as exc:
        raise ConfigurationError(f"kubernetes: no usable cluster configuration: {exc}") from exc


def _default_kubeconfig() -> Path | None:
    for candidate in (os.environ.get("KUBECONFIG", ""), "~/.kube/config"):
        path = Path(candidate.split(os.pathsep)[0]).expanduser() if candidate else None
        if path is not None and path.is_file():
            return path
    return None


class KubeApi:
    """Only the calls the kubernetes target makes; each is one RBAC rule in
    ``deployments/kubernetes/rbac.yaml``."""

    def __init__(self, api_client: client.ApiClient, timeout_s: float) -> None:
        self._client = api_client
        self._apps = client.AppsV1Api(api_client)
        self._core = client.CoreV1Api(api_client)
        self._timeout = timeout_s

    # -- deployments (apps) -----------------------------------------------------------------

    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read("get", "deployments", namespace,
                          lambda: self._apps.read_namespaced_deployment(name, namespace,
                                                                        **self._opts()))

    def create_deployment(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._write("create", "deployments", namespace,
                           lambda: self._apps.create_namespaced_deployment(namespace, body,
                                                                           **self._opts()))

    def replace_deployment(self, namespace: str, name: str,
                           body: dict[str, Any]) -> dict[str, Any]:
        return self._write("update", "deployments", namespace,
                           lambda: self._apps.replace_namespaced_deployment(
                               name, namespace, body, **self._opts()))

    def patch_deployment(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._write("patch", "deployments", namespace,
                           lambda: self._apps.patch_namespaced_deployment(
                               name, namespace, patch, _content_type=MERGE_PATCH,
                               **self._opts()))

    def delete_deployment(self, namespace: str, name: str) -> None:
        self._delete("deployments", namespace,
                     lambda: self._apps.delete_namespaced_deployment(name, namespace,
                                                                     **self._opts()))

    # -- services ---------------------------------------------------------------------------

    def read_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read("get", "services", namespace,
                          lambda: self._core.read_namespaced_service(name, namespace,
                                                                     **self._opts()))

    def create_service(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._write("create", "services", namespace,
                           lambda: self._core.create_namespaced_service(namespace, body,
                                                                        **self._opts()))

    def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._write("patch", "services", namespace,
                           lambda: self._core.patch_namespaced_service(
                               name, namespace, patch, _content_type=MERGE_PATCH,
                               **self._opts()))

    def delete_service(self, namespace: str, name: str) -> None:
        self._delete("services", namespace,
                     lambda: self._core.delete_namespaced_service(name, namespace,
                                                                  **self._opts()))

    # -- secrets (the rotation's publisher; values never appear in an error) ----------------

    def read_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self._read("get", "secrets", namespace,
                          lambda: self._core.read_namespaced_secret(name, namespace,
                                                                    **self._opts()))

    def create_secret(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._write("create", "secrets", namespace,
                           lambda: self._core.create_namespaced_secret(namespace, body,
                                                                       **self._opts()))

    def replace_secret(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._write("update", "secrets", namespace,
                           lambda: self._core.replace_namespaced_secret(name, namespace, body,
                                                                        **self._opts()))

    # -- diagnostics ------------------------------------------------------------------------

    def list_pods(self, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        label_selector = ",".join(f"{k}={v}" for k, v in selector.items())
        result = self._call("list", "pods", namespace,
                            lambda: self._core.list_namespaced_pod(
                                namespace, label_selector=label_selector, **self._opts()))
        return list(result.get("items") or [])

    def pod_log_tail(self, namespace: str, name: str, lines: int) -> str:
        return str(self._call("get", "pods/log", namespace,
                              lambda: self._core.read_namespaced_pod_log(
                                  name, namespace, tail_lines=lines, **self._opts())) or "")

    def list_events(self, namespace: str) -> list[dict[str, Any]]:
        result = self._call("list", "events", namespace,
                            lambda: self._core.list_namespaced_event(namespace, **self._opts()))
        return list(result.get("items") or [])

    # -- error sorting ----------------------------------------------------------------------

    def _opts(self) -> dict[str, Any]:
        return {"_request_timeout": self._timeout}

    def _read(self, verb: str, resource: str, namespace: str,
              fn: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            return self._call(verb, resource, namespace, fn)
        except NotFound:
            return None

    def _write(self, verb: str, resource: str, namespace: str,
               fn: Callable[[], Any]) -> dict[str, Any]:
        return self._call(verb, resource, namespace, fn)

    def _delete(self, resource: str, namespace: str, fn: Callable[[], Any]) -> None:
        with contextlib.suppress(NotFound):  # already gone: deleting is idempotent
            self._call("delete", resource, namespace, fn)

    def _call(self, verb: str, resource: str, namespace: str, fn: Callable[[], Any]) -> Any:
        what = f"{verb} {resource} in namespace {namespace}"
        try:
            result = fn()
        except ApiException as exc:
            raise _sorted_error(exc, verb, resource, namespace) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise TransientError(f"kubernetes API unreachable ({what}): {exc}") from exc
        if isinstance(result, str | None):
            return result
        return self._client.sanitize_for_serialization(result)


def _sorted_error(exc: ApiException, verb: str, resource: str, namespace: str) -> Exception:
    what = f"{verb} {resource} in namespace {namespace}"
    status = exc.status or 0
    if status == 403:
        return DeployError(
            f"kubernetes: forbidden to {what}: the worker's service account lacks the "
            f"permission '{verb}' on '{resource}' in namespace '{namespace}' "
            "(see deployments/kubernetes/rbac.yaml)"
        )
    if status == 404:
        return NotFound(f"kubernetes: not found ({what})")
    if status == 409:
        return Conflict(f"kubernetes: conflict ({what}): {exc.reason}")
    if status == 429 or status >= 500:
        return TransientError(f"kubernetes API answered {status} ({what})")
    return DeployError(f"kubernetes API answered {status} ({what}): {exc.reason}")
