"""What the receiver cannot do right now. ``/healthz`` and ``/metrics`` read it.

Components: ``journal`` (the webhook could not commit a notification: it answers 503 and
Alertmanager retries) and ``worker <id>`` (a worker cannot archive or journal a run and is
retrying it with backoff). Each is cleared by the next success.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class Health:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._problems: dict[str, tuple[str, float]] = {}

    def degraded(self, component: str, reason: str) -> None:
        with self._lock:
            since = self._problems.get(component, (reason, time.time()))[1]
            self._problems[component] = (reason, since)

    def ok(self, component: str) -> None:
        with self._lock:
            self._problems.pop(component, None)

    def problems(self) -> list[dict[str, Any]]:
        now = time.time()
        with self._lock:
            items = sorted(self._problems.items())
        return [
            {"component": name, "reason": reason, "for_s": round(now - since, 1)} for name, (reason, since) in items
        ]

    def is_degraded(self, prefix: str = "") -> bool:
        with self._lock:
            return any(name.startswith(prefix) for name in self._problems)
