"""Synthetic API-gateway traffic with an incident, as OpenMetrics for
``promtool tsdb create-blocks-from openmetrics``.

Default scenario: steady traffic over six endpoints with a tiny baseline of 5xx; from
``incident_start`` one endpoint (``/api/v1/workflows/execute``) fails a large share of its
requests, which drives the overall 5xx ratio well past the 14.4x burn-rate threshold.
Data can extend a little into the future, so that "now" stays inside the incident for the
length of a demo or a test session (Prometheus evaluates at query time and ignores later
samples).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

DEFAULT_ENDPOINTS = {
    "/api/v1/workflows": 30.0,
    "/api/v1/workflows/execute": 20.0,
    "/api/v1/approvals": 15.0,
    "/api/v1/profiles": 15.0,
    "/api/v1/audit": 10.0,
    "/healthz": 10.0,
}


@dataclass
class Scenario:
    end: datetime
    history: timedelta = timedelta(hours=3)
    step_s: int = 15
    endpoints: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_ENDPOINTS))
    baseline_error_ratio: float = 0.0002
    incident_start: datetime | None = None
    incident_endpoint: str = "/api/v1/workflows/execute"
    incident_error_ratio: float = 0.25
    job: str = "api-gateway"
    instances: tuple[str, ...] = ("10.0.0.11:8080", "10.0.0.12:8080")
    seed: int = 7

    @classmethod
    def default(cls, now: datetime | None = None, ahead: timedelta = timedelta(minutes=45)) -> Scenario:
        """An incident that began 25 minutes before ``now``; data runs ``ahead`` past it."""
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        return cls(end=now + ahead, incident_start=now - timedelta(minutes=25))

    @property
    def start(self) -> datetime:
        return self.end - self.history

    def expected_error_ratio(self) -> float:
        """The overall 5xx ratio during the incident (what the runbook should measure)."""
        total = sum(self.endpoints.values())
        errors = sum(
            rps * (self.incident_error_ratio if ep == self.incident_endpoint else self.baseline_error_ratio)
            for ep, rps in self.endpoints.items()
        )
        return errors / total


def _times(s: Scenario) -> Iterator[datetime]:
    t = s.start
    while t <= s.end:
        yield t
        t += timedelta(seconds=s.step_s)


def write_openmetrics(s: Scenario, out: TextIO) -> int:
    """Write the scenario; returns the number of samples."""
    rng = random.Random(s.seed)
    per_instance = {ep: rps / len(s.instances) for ep, rps in s.endpoints.items()}
    out.write("# HELP http_requests Total HTTP requests handled by the API gateway.\n")
    out.write("# TYPE http_requests counter\n")
    samples = 0
    times = list(_times(s))
    for instance in s.instances:
        for ep, rps in per_instance.items():
            counts = {"200": 0.0, "500": 0.0, "503": 0.0}
            lines: dict[str, list[str]] = {k: [] for k in counts}
            for t in times:
                in_incident = s.incident_start is not None and t >= s.incident_start
                ratio = (
                    s.incident_error_ratio if (in_incident and ep == s.incident_endpoint) else s.baseline_error_ratio
                )
                n = rps * s.step_s * rng.uniform(0.9, 1.1)
                errors = n * ratio
                counts["200"] += n - errors
                counts["500"] += errors * 0.7
                counts["503"] += errors * 0.3
                ts = f"{t.timestamp():.3f}"
                for status, value in counts.items():
                    lines[status].append(f"{int(value)} {ts}")
            for status, values in lines.items():
                labels = f'endpoint="{ep}",instance="{instance}",job="{s.job}",method="POST",status="{status}"'
                for v in values:
                    out.write(f"http_requests_total{{{labels}}} {v}\n")
                    samples += 1
    out.write("# HELP up Whether the target is up.\n# TYPE up gauge\n")
    for instance in s.instances:
        for t in times:
            out.write(f'up{{instance="{instance}",job="{s.job}"}} 1 {t.timestamp():.3f}\n')
            samples += 1
    out.write("# EOF\n")
    return samples


def write_file(s: Scenario, path: Path) -> int:
    with path.open("w") as fh:
        return write_openmetrics(s, fh)
