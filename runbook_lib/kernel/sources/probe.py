"""Direct HTTP probes (a health URL, as a load balancer would ask it): status, latency and,
when there is no answer, why, as one of a few kinds on-call acts on differently."""

from __future__ import annotations

import time
from typing import Any

import httpx

from runbook_lib.core.credentials import safe_endpoint

# kind -> what it means for on-call
FAILURES = {
    "refused": "nothing listens there: the process is down or restarting",
    "dns": "the host name does not resolve",
    "timeout": "it accepted the connection (or the network dropped it) but did not answer in time",
    "tls": "the TLS handshake failed",
    "http_status": "it answered, with an error status",
    "transport": "the connection failed",
}


def classify(exc: BaseException) -> str:
    """The failure kind of an httpx exception."""
    text = str(exc).lower()
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if "name or service not known" in text or "nodename nor servname" in text or "name resolution" in text:
        return "dns"
    if "refused" in text:
        return "refused"
    if "ssl" in text or "certificate" in text:
        return "tls"
    return "transport"


def probe(url: str, timeout_s: float = 3.0, client: httpx.Client | None = None) -> dict[str, Any]:
    """GET ``url`` once, no redirects followed. Never raises: the row says what happened."""
    shown = safe_endpoint(url)
    own = client is None
    client = client or httpx.Client(timeout=timeout_s, follow_redirects=False)
    started = time.perf_counter()
    try:
        resp = client.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        kind = classify(exc)
        return {
            "url": shown,
            "ok": False,
            "status": None,
            "latency_ms": round((time.perf_counter() - started) * 1000, 1),
            "failure": kind,
            "meaning": FAILURES[kind],
        }
    finally:
        if own:
            client.close()
    ok = resp.status_code < 400
    return {
        "url": shown,
        "ok": ok,
        "status": resp.status_code,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "failure": None if ok else "http_status",
        "meaning": "" if ok else f"{FAILURES['http_status']} ({resp.status_code} {resp.reason_phrase})",
    }
