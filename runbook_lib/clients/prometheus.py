"""Prometheus HTTP API (v1) over httpx: instant and range queries as pandas DataFrames."""

from __future__ import annotations

import functools
import os
import ssl
from datetime import UTC, datetime
from typing import Any

import certifi
import httpx
import pandas as pd

from runbook_lib.core.credentials import safe_endpoint
from runbook_lib.core.errors import SourceError, SourceNotConfigured, SourceUnavailable
from runbook_lib.core.settings import Settings

NAME = "Prometheus"


@functools.cache
def tls_context(verify: bool = True) -> ssl.SSLContext:
    """One TLS context per process (httpx would load the CA bundle again for every client: 20 ms).
    A warm kernel inherits it from the template, which creates it at import."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    # as httpx does: SSL_CERT_FILE / SSL_CERT_DIR name an internal CA, else certifi's bundle
    cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
    if cafile and os.path.isfile(cafile):
        return ssl.create_default_context(cafile=cafile)
    if capath and os.path.isdir(capath):
        return ssl.create_default_context(capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


tls_context()


def _ts(value: datetime | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return f"{value.timestamp():.3f}"
    return f"{float(value):.3f}"


class Prometheus:
    def __init__(
        self, url: str, timeout_s: float = 10.0, bearer_token: str | None = None, verify_tls: bool = True
    ) -> None:
        self.url = url.rstrip("/")
        self.where = safe_endpoint(self.url)
        # Prometheus aborts the evaluation itself at this point: an expensive expression (say from
        # an alert's generatorURL) must not keep it busy after we gave up waiting
        self._server_timeout = f"{int(max(1.0, timeout_s - 0.5) * 1000)}ms"
        headers = {"Accept": "application/json", "User-Agent": "omnihub-runbook"}
        if bearer_token:
            headers["Authorization"] = f"Bearer {bearer_token}"
        self._client = httpx.Client(
            base_url=self.url, timeout=httpx.Timeout(timeout_s), headers=headers, verify=tls_context(verify_tls)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Prometheus:
        cfg = settings.prometheus
        if not cfg.url:
            raise SourceNotConfigured(NAME, "set RUNBOOK_PROMETHEUS_URL or prometheus.url")
        token = cfg.bearer_token.get_secret_value() if cfg.bearer_token else None
        return cls(cfg.url, cfg.timeout_s, token, cfg.verify_tls)

    def close(self) -> None:
        self._client.close()

    # -- raw API ---------------------------------------------------------------------------
    def _call(self, path: str, data: dict[str, Any] | None = None) -> Any:
        try:
            if data is None:
                resp = self._client.get(path)
            else:
                resp = self._client.post(path, data={k: v for k, v in data.items() if v is not None})
        except httpx.TimeoutException as exc:
            raise SourceUnavailable(NAME, f"{self.where} did not answer in time ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise SourceUnavailable(NAME, f"{self.where} unreachable ({type(exc).__name__}: {exc})") from None
        except httpx.HTTPError as exc:
            raise SourceError(NAME, f"request to {self.where} failed ({type(exc).__name__})") from None
        try:
            body = resp.json()
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            snippet = resp.text[:200].strip().replace("\n", " ")
            raise SourceError(
                NAME, f"{self.where}{path} answered HTTP {resp.status_code}, not JSON: {snippet!r}"
            ) from None
        if resp.status_code >= 400 or body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {resp.status_code}")
            raise SourceError(NAME, f"{self.where} rejected the request: {kind}: {body.get('error', '?')}")
        return body.get("data")

    def query(self, expr: str, at: datetime | float | None = None) -> pd.DataFrame:
        """Instant query. One row per series: its labels as columns, plus ``value``."""
        data = self._call("/api/v1/query", {"query": expr, "time": _ts(at), "timeout": self._server_timeout})
        if not isinstance(data, dict) or data.get("resultType") not in ("vector", "scalar", "string"):
            kind = data.get("resultType") if isinstance(data, dict) else type(data).__name__
            raise SourceError(NAME, f"the expression returns a {kind}, not an instant vector: {expr[:120]}")
        return _instant_frame(data)

    def query_range(self, expr: str, start: datetime | float, end: datetime | float, step: float) -> pd.DataFrame:
        """Range query, long form: labels..., ``timestamp`` (UTC), ``value``."""
        data = self._call(
            "/api/v1/query_range",
            {"query": expr, "start": _ts(start), "end": _ts(end), "step": f"{step:g}", "timeout": self._server_timeout},
        )
        rows = []
        for series in data.get("result", []):
            labels = series.get("metric", {})
            for ts, value in series.get("values", []):
                rows.append({**labels, "timestamp": datetime.fromtimestamp(float(ts), UTC), "value": float(value)})
        frame = pd.DataFrame(rows)
        if frame.empty:
            frame = pd.DataFrame(columns=["timestamp", "value"])
        return frame

    def scalar(self, expr: str, at: datetime | float | None = None) -> float | None:
        """The single value of an expression, or None when it returns no series."""
        frame = self.query(expr, at)
        if frame.empty:
            return None
        return float(frame["value"].iloc[0])

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts Prometheus currently has pending or firing (/api/v1/alerts)."""
        return list(self._call("/api/v1/alerts").get("alerts", []))


def _instant_frame(data: dict[str, Any]) -> pd.DataFrame:
    kind = data.get("resultType")
    result = data.get("result", [])
    if kind in ("scalar", "string"):
        ts, value = result
        return pd.DataFrame([{"timestamp": datetime.fromtimestamp(float(ts), UTC), "value": _num(value)}])
    rows = []
    for series in result:
        ts, value = series["value"]
        rows.append(
            {
                **series.get("metric", {}),
                "timestamp": datetime.fromtimestamp(float(ts), UTC),
                "value": _num(value),
            }
        )
    if not rows:
        return pd.DataFrame(columns=["timestamp", "value"])
    return pd.DataFrame(rows)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
