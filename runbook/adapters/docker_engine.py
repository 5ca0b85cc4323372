"""The Docker engine: build, push and run images through the docker SDK.

Errors are sorted at this boundary: what may pass by itself (the engine or the registry
unreachable, 5xx, timeouts) becomes TransientError and is retried by the task; everything
else (a Dockerfile that does not build, a denied push) fails at once.
"""

from __future__ import annotations

import io
import re
import tarfile
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import docker
import docker.errors
import requests
from docker.models.containers import Container

from runbook.errors import DeployError, TransientError

API_TIMEOUT_S = 120
_TRANSIENT_PUSH = re.compile(
    r"connection refused|connection reset|timeout|timed out|i/o timeout|EOF|"
    r"no such host|503|502|500|504|service unavailable|too many requests|429",
    re.IGNORECASE,
)


def connect(base_url: str, timeout_s: int = API_TIMEOUT_S) -> docker.DockerClient:
    try:
        client = docker.DockerClient(base_url=base_url, timeout=timeout_s)
        client.ping()
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise TransientError(f"Docker engine at {base_url} unreachable: {exc}") from exc
    return client


class DeadlinePassed(DeployError):
    """Building or pushing ran past its deadline: a hang, not a transient fault (never
    retried; the retries already spent the time)."""


def check_deadline(deadline: float | None, what: str) -> None:
    """Raise :class:`DeadlinePassed` once ``deadline`` (Unix time) is past."""
    if deadline is not None and time.time() > deadline:
        raise DeadlinePassed(f"{what} ran past its deadline")


def build(
    client: docker.DockerClient,
    context: str,
    dockerfile: str,
    tag: str,
    build_args: dict[str, str],
    on_line: Callable[[str], None],
    deadline: float | None = None,
) -> str:
    """Build ``context`` into ``tag`` and return the image id; progress goes to on_line.
    ``deadline`` (Unix time) is checked at every line of progress; a silent engine is cut
    by the client's read timeout."""
    stream = call_engine(
        lambda: client.api.build(
            path=context,
            dockerfile=dockerfile,
            tag=tag,
            buildargs=build_args,
            pull=False,  # base images come from the local engine or registry, never implicitly
            rm=True,
            forcerm=True,
            decode=True,
        )
    )
    image_id = None
    for chunk in _stream(stream):
        check_deadline(deadline, f"docker build of {tag}")
        if "error" in chunk:
            raise DeployError(f"docker build failed: {chunk['error'].strip()}")
        if line := chunk.get("stream", "").strip():
            on_line(line)
        if aux := chunk.get("aux"):
            image_id = aux.get("ID", image_id)
    if image_id is None:
        image_id = client.images.get(tag).id
    return image_id


def push(client: docker.DockerClient, repository: str, tag: str,
         deadline: float | None = None, auth_config: dict[str, str] | None = None) -> str:
    """Push ``repository:tag`` and return the registry's manifest digest. ``auth_config``
    (:func:`runbook.infra.docker_auth_config`) is the registry login, sent to the engine
    with this call only; the engine must trust the registry's CA itself
    (``/etc/docker/certs.d/HOST:PORT/ca.crt``)."""
    stream = call_engine(
        lambda: client.api.push(repository, tag=tag, stream=True, decode=True,
                                auth_config=auth_config)
    )
    digest = None
    for chunk in _stream(stream):
        check_deadline(deadline, f"push of {repository}:{tag}")
        if "error" in chunk:
            message = chunk["error"].strip()
            if _TRANSIENT_PUSH.search(message):
                raise TransientError(f"push of {repository}:{tag} failed: {message}")
            raise DeployError(f"push of {repository}:{tag} refused: {message}")
        if aux := chunk.get("aux"):
            digest = aux.get("Digest", digest)
    if digest is None:
        raise TransientError(f"push of {repository}:{tag} reported no digest")
    return digest


def pull(client: docker.DockerClient, reference: str,
         auth_config: dict[str, str] | None = None) -> str:
    """Make ``REPO@sha256:...`` present on the engine (pulled with the registry login when
    it is not there yet); returns the local image id."""
    try:
        return str(client.images.get(reference).id)
    except docker.errors.ImageNotFound:
        pass
    repository, _, digest = reference.partition("@")
    stream = call_engine(lambda: client.api.pull(repository, tag=digest, stream=True,
                                                 decode=True, auth_config=auth_config))
    for chunk in _stream(stream):
        if "error" in chunk:
            message = chunk["error"].strip()
            if _TRANSIENT_PUSH.search(message):
                raise TransientError(f"pull of {reference} failed: {message}")
            raise DeployError(f"pull of {reference} refused: {message}")
    return str(call_engine(lambda: client.images.get(reference)).id)


def call_engine(call: Callable[[], Any]) -> Any:
    """Run one engine call, sorting its errors: 5xx and lost connections are transient."""
    try:
        return call()
    except docker.errors.APIError as exc:
        if exc.status_code is not None and exc.status_code >= 500:
            raise TransientError(f"Docker engine error: {exc.explanation}") from exc
        raise DeployError(f"Docker engine refused: {exc.explanation}") from exc
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"Docker engine unreachable: {exc}") from exc


def _stream(stream: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    try:
        yield from stream
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise TransientError(f"Docker engine stream broke: {exc}") from exc


class ContainerRun(NamedTuple):
    exit_code: int
    output: str
    collected: str | None
    """Text of the file asked for with ``collect``; None when the run did not write it."""
    also_collected: tuple[str | None, ...] = ()
    """Texts of the files asked for with ``collect_also``, in that order."""


def run_to_completion(
    client: docker.DockerClient, image: str, command: list[str], timeout_s: float,
    collect: str | None = None, collect_also: tuple[str, ...] = (),
) -> ContainerRun:
    """Run ``command`` in a fresh container of ``image`` without network.

    The container is removed afterwards whatever happens; past the deadline it is killed
    and the exit code is reported as 124 (as `timeout` does). ``collect`` names a file the
    command writes (e.g. a coverage report), copied out before the container goes; so are the
    files of ``collect_also`` (e.g. a JUnit report).
    """
    container = call_engine(
        lambda: client.containers.run(
            image, command, detach=True, network_disabled=True, stdout=True, stderr=True
        )
    )
    try:
        started = time.monotonic()
        try:
            exit_code = int(container.wait(timeout=timeout_s)["StatusCode"])
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            # The SDK reports its read deadline as either error; only our clock tells a
            # deadline from an engine that went away.
            if time.monotonic() - started < timeout_s:
                raise TransientError(f"Docker engine lost while waiting: {exc}") from exc
            container.kill()
            exit_code = 124
        output = container.logs(stdout=True, stderr=True).decode(errors="replace")
        collected = _read_file(container, collect) if collect else None
        also = tuple(_read_file(container, path) for path in collect_also)
    finally:
        container.remove(force=True)
    return ContainerRun(exit_code, output, collected, also)


def _read_file(container: Container, path: str) -> str | None:
    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
        member = next((m for m in archive.getmembers() if m.isfile()), None)
        extracted = archive.extractfile(member) if member is not None else None
        return extracted.read().decode(errors="replace") if extracted is not None else None
