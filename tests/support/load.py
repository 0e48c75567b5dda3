"""Concurrent webhook posting, as Alertmanager does it (retrying 5xx and connection errors)."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx


@dataclass
class PostResult:
    status: int  # final HTTP status, 0 when it never got an answer
    latency_s: float  # of the answered attempt
    attempts: int
    errors: list[str] = field(default_factory=list)


def burst_payloads(n: int, alertname: str = "BurstAlert", prefix: str | None = None) -> list[dict[str, Any]]:
    """``n`` notifications, one distinct alert each (distinct fingerprints)."""
    prefix = prefix or uuid.uuid4().hex[:6]
    starts = (datetime.now(UTC) - timedelta(minutes=5)).isoformat().replace("+00:00", "Z")
    out = []
    for i in range(n):
        labels = {"alertname": alertname, "severity": "warning", "instance": f"burst-{prefix}-{i}"}
        alert = {
            "status": "firing",
            "labels": labels,
            "annotations": {"summary": f"burst alert {i}"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"{prefix}{i:010x}",
        }
        out.append(
            {
                "version": "4",
                "groupKey": f"burst-{prefix}-{i}",
                "truncatedAlerts": 0,
                "status": "firing",
                "receiver": "runbooks",
                "groupLabels": labels,
                "commonLabels": labels,
                "commonAnnotations": {},
                "externalURL": "http://127.0.0.1:9093",
                "alerts": [alert],
            }
        )
    return out


async def _post_all(
    url: str,
    payloads: list[dict[str, Any]],
    headers: dict[str, str],
    concurrency: int,
    retry_for_s: float,
    pace_s: float,
) -> list[PostResult]:
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(30.0), limits=limits, headers=headers) as client:

        async def one(body: dict[str, Any]) -> PostResult:
            deadline = time.monotonic() + retry_for_s
            attempts, errors = 0, []
            while True:
                attempts += 1
                async with sem:
                    if pace_s:
                        await asyncio.sleep(pace_s)
                    t0 = time.perf_counter()
                    try:
                        resp = await client.post(url, json=body)
                        latency = time.perf_counter() - t0
                        if resp.status_code < 500:
                            return PostResult(resp.status_code, latency, attempts, errors)
                        errors.append(f"HTTP {resp.status_code}")
                    except httpx.HTTPError as exc:
                        errors.append(type(exc).__name__)
                if time.monotonic() > deadline:
                    return PostResult(0, 0.0, attempts, errors)
                await asyncio.sleep(0.2)

        return await asyncio.gather(*(one(p) for p in payloads))


def post_all(
    url: str,
    payloads: list[dict[str, Any]],
    token: str | None = None,
    concurrency: int = 50,
    retry_for_s: float = 0.0,
    pace_s: float = 0.0,
) -> list[PostResult]:
    """POST every payload (``concurrency`` at a time, each slot waiting ``pace_s`` first); retry
    5xx and connection errors for ``retry_for_s``, as Alertmanager does."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return asyncio.run(_post_all(url, payloads, headers, concurrency, retry_for_s, pace_s))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]
