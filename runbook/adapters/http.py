"""Plain HTTP probes: health checks and single timed requests."""

from __future__ import annotations

import time

import httpx
from pydantic import BaseModel


class Probe(BaseModel):
    ok: bool
    status: int | None
    latency_s: float
    detail: str


def probe(client: httpx.Client, url: str, timeout_s: float) -> Probe:
    """GET ``url``; ok means a 2xx answer within the timeout."""
    started = time.perf_counter()
    try:
        response = client.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return Probe(
            ok=False,
            status=None,
            latency_s=time.perf_counter() - started,
            detail=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__,
        )
    latency = time.perf_counter() - started
    ok = response.is_success
    return Probe(ok=ok, status=response.status_code, latency_s=latency,
                 detail=f"HTTP {response.status_code}")
