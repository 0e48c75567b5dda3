"""Redis: ping with latency, and the INFO fields on-call looks at."""

from __future__ import annotations

import time
from typing import Any

import redis as redis_py

from runbook_lib.core.credentials import safe_endpoint
from runbook_lib.core.errors import SourceError, SourceNotConfigured, SourceUnavailable
from runbook_lib.core.settings import Settings

NAME = "Redis"
INFO_FIELDS = (
    "redis_version",
    "role",
    "uptime_in_seconds",
    "connected_clients",
    "blocked_clients",
    "used_memory",
    "maxmemory",
    "mem_fragmentation_ratio",
    "evicted_keys",
    "rejected_connections",
    "keyspace_hits",
    "keyspace_misses",
    "instantaneous_ops_per_sec",
)


class Redis:
    def __init__(self, url: str, timeout_s: float = 3.0) -> None:
        self.where = safe_endpoint(url)
        try:
            self._client = redis_py.Redis.from_url(
                url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry_on_timeout=False
            )
        except ValueError as exc:
            raise SourceError(NAME, f"the configured URL is not valid: {str(exc).split(':')[0]}") from None

    @classmethod
    def from_settings(cls, settings: Settings) -> Redis:
        cfg = settings.redis
        if cfg.url is None:
            raise SourceNotConfigured(NAME, "set RUNBOOK_REDIS_URL or RUNBOOK_REDIS_URL_FILE")
        return cls(cfg.url.get_secret_value(), cfg.timeout_s)

    def _do(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except (redis_py.exceptions.ConnectionError, redis_py.exceptions.TimeoutError) as exc:
            raise SourceUnavailable(NAME, f"{self.where}: {what} failed ({type(exc).__name__}: {exc})") from None
        except redis_py.exceptions.RedisError as exc:
            raise SourceError(NAME, f"{self.where}: {what} failed ({type(exc).__name__}: {exc})") from None

    def ping(self) -> float:
        """Round-trip time of PING in milliseconds."""
        started = time.perf_counter()
        self._do("PING", self._client.ping)
        return round((time.perf_counter() - started) * 1000, 2)

    def info(self) -> dict[str, Any]:
        raw = self._do("INFO", self._client.info)
        out = {k: raw.get(k) for k in INFO_FIELDS}
        hits, misses = raw.get("keyspace_hits") or 0, raw.get("keyspace_misses") or 0
        out["hit_rate"] = round(hits / (hits + misses), 4) if hits + misses else None
        maxmem = raw.get("maxmemory") or 0
        out["memory_ratio"] = round((raw.get("used_memory") or 0) / maxmem, 4) if maxmem else None
        return out

    def close(self) -> None:
        self._client.close()
