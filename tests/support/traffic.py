"""Three days of API-gateway and platform metrics with several faults at once, as OpenMetrics
for ``promtool tsdb create-blocks-from openmetrics``: what the traffic and platform runbooks
(service-down, high-latency, low-error-budget, deployment-failure) read from Prometheus.

The story, relative to ``now``:

* 30 to 27 hours ago: every instance fails 0.8 % of requests (the budget-burning bad period);
  ``pg_up`` is 0 for ten minutes in it.
* from ``canary_at`` (20 minutes ago): the canary instance, version 1.43.0, fails 8 % of its
  requests and answers slower; the two stable instances (1.42.0) do not change.
* from ``slow_at`` (an hour ago): database query time ramps from 5 ms to 400 ms, and the
  latency of ``/api/v1/workflows/execute`` follows it; pod CPU stays flat.
* from ``down_at`` (8 minutes ago): one stable instance stops answering (``up`` is 0); an
  older instance, replaced an hour ago, is simply no longer scraped.
* the dead-letter queue fills over the last hour.

Older data is written every ten minutes, the last two hours every 15 seconds (so 5-minute rates
work there). :class:`Truth` gives what the data holds, computed while writing it, so tests
compare a runbook's numbers with the data rather than with constants copied from the code.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

ENDPOINTS = {
    "/api/v1/workflows": 30.0,
    "/api/v1/workflows/execute": 20.0,
    "/api/v1/approvals": 15.0,
    "/healthz": 10.0,
}
SLOW_ENDPOINT = "/api/v1/workflows/execute"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Instance:
    address: str
    version: str
    pod: str


@dataclass
class Truth:
    """Totals the data holds, by window end (``now``): requests and 5xx per window."""

    requests: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)

    def ratio(self, window: str) -> float:
        return self.errors[window] / self.requests[window]


@dataclass
class PlatformScenario:
    now: datetime
    ahead: timedelta = timedelta(minutes=90)
    history: timedelta = timedelta(days=3)
    fine_history: timedelta = timedelta(hours=2)
    coarse_step_s: int = 600
    fine_step_s: int = 15
    job: str = "api-gateway"
    namespace: str = "omnihub-test"
    instances: tuple[Instance, ...] = (
        Instance("10.0.0.11:8080", "1.42.0", "api-gateway-hash6-pod0"),
        Instance("10.0.0.12:8080", "1.42.0", "api-gateway-hash6-pod1"),
        Instance("10.0.0.13:8080", "1.43.0", "api-gateway-hash7-pod0"),
    )
    canary_version: str = "1.43.0"
    baseline_error_ratio: float = 0.0004
    bad_error_ratio: float = 0.008
    canary_error_ratio: float = 0.08
    down_instance: str = "10.0.0.12:8080"
    replaced_instance: str = "10.0.0.10:8080"
    seed: int = 11
    truth: Truth = field(default_factory=Truth)

    @classmethod
    def default(cls, now: datetime | None = None) -> PlatformScenario:
        return cls(now=(now or datetime.now(UTC)).replace(microsecond=0))

    @property
    def start(self) -> datetime:
        return self.now - self.history

    @property
    def end(self) -> datetime:
        return self.now + self.ahead

    @property
    def canary_at(self) -> datetime:
        return self.now - timedelta(minutes=20)

    @property
    def slow_at(self) -> datetime:
        return self.now - timedelta(hours=1)

    @property
    def down_at(self) -> datetime:
        return self.now - timedelta(minutes=8)

    @property
    def bad_period(self) -> tuple[datetime, datetime]:
        return self.now - timedelta(hours=30), self.now - timedelta(hours=27)

    def times(self) -> Iterator[datetime]:
        t, fine_from = self.start, self.now - self.fine_history
        while t <= self.end:
            yield t
            t += timedelta(seconds=self.fine_step_s if t >= fine_from else self.coarse_step_s)

    # -- the model ---------------------------------------------------------------------------
    def error_ratio(self, inst: Instance, t: datetime) -> float:
        bad_from, bad_to = self.bad_period
        if bad_from <= t < bad_to:
            return self.bad_error_ratio
        if inst.version == self.canary_version and t >= self.canary_at:
            return self.canary_error_ratio
        return self.baseline_error_ratio

    def db_median_s(self, t: datetime) -> float:
        """Database query time: 5 ms, ramping to 400 ms over the last hour."""
        if t < self.slow_at:
            return 0.005
        ramp = min(1.0, (t - self.slow_at).total_seconds() / 3600)
        return 0.005 + 0.395 * ramp

    def latency_median_s(self, inst: Instance, endpoint: str, t: datetime) -> float:
        base = 0.04 if endpoint != "/healthz" else 0.005
        if endpoint == SLOW_ENDPOINT:
            base += 4 * self.db_median_s(t)  # a handler that runs a few queries
        if inst.version == self.canary_version and t >= self.canary_at:
            base *= 1.3
        return base

    # -- growth (the capacity report): each rises linearly over the three days ---------------------
    def _grown(self, t: datetime, start: float, per_day: float) -> float:
        return start + per_day * (t - self.start).total_seconds() / 86400

    def cpu_cores(self, t: datetime) -> float:
        """Per pod: 0.17 cores three days ago, 0.05 more each day (limit 0.5: 70 % is 0.35)."""
        return self._grown(t, 0.17, 0.05)

    def memory_bytes(self, t: datetime) -> float:
        """Per pod: 300 MiB three days ago, 25 MiB more each day (limit 512 MiB: 80 % is 409.6)."""
        return self._grown(t, 300 * 2**20, 25 * 2**20)

    def database_bytes(self, t: datetime) -> float:
        """8 GB three days ago, 0.3 GB more each day."""
        return self._grown(t, 8e9, 0.3e9)

    def connections(self, t: datetime) -> float:
        """40 connections three days ago, 5 more each day (of 100)."""
        return self._grown(t, 40.0, 5.0)

    def answering(self, inst: Instance, t: datetime) -> bool:
        return not (inst.address == self.down_instance and t >= self.down_at)


def _lognormal_cdf(x: float, median: float, sigma: float = 0.45) -> float:
    return 0.5 * (1 + math.erf((math.log(x) - math.log(median)) / (sigma * math.sqrt(2))))


def write_openmetrics(s: PlatformScenario, out: TextIO) -> int:
    """Write the scenario; returns the number of samples. Fills ``s.truth``."""
    rng = random.Random(s.seed)
    times = list(s.times())
    samples = 0
    windows = {"1h": 3600, "6h": 6 * 3600, "3d": 3 * 86400}
    s.truth = Truth({w: 0.0 for w in windows}, {w: 0.0 for w in windows})

    def emit(line: str) -> None:
        nonlocal samples
        out.write(line)
        samples += 1

    per_inst = {ep: rps / len(s.instances) for ep, rps in ENDPOINTS.items()}
    out.write("# HELP http_requests Total HTTP requests handled by the API gateway.\n# TYPE http_requests counter\n")
    latency_counts: dict[tuple[str, str], list[tuple[datetime, list[float], float]]] = {}
    prev = times[0] - timedelta(seconds=s.coarse_step_s)
    for inst in s.instances:
        for ep, rps in per_inst.items():
            ok = err = 0.0
            hist = [0.0] * len(BUCKETS)
            count = 0.0
            ok_lines, err_lines, points = [], [], []
            last = prev
            for t in times:
                step = (t - last).total_seconds()
                last = t
                if not s.answering(inst, t):
                    continue
                n = rps * step * rng.uniform(0.95, 1.05)
                e = n * s.error_ratio(inst, t)
                ok, err = ok + n - e, err + e
                _truth(s, t, n, e, windows)
                median = s.latency_median_s(inst, ep, t)
                for i, le in enumerate(BUCKETS):
                    hist[i] += n * _lognormal_cdf(le, median)
                count += n
                ts = f"{t.timestamp():.3f}"
                ok_lines.append(f"{ok:.1f} {ts}")
                err_lines.append(f"{err:.1f} {ts}")
                points.append((t, list(hist), count))
            labels = f'endpoint="{ep}",instance="{inst.address}",job="{s.job}",version="{inst.version}"'
            for status, lines in (("200", ok_lines), ("500", err_lines)):
                for v in lines:
                    emit(f'http_requests_total{{{labels},status="{status}"}} {v}\n')
            latency_counts[(inst.address, ep)] = points
    out.write("# HELP http_request_duration_seconds Request latency.\n# TYPE http_request_duration_seconds histogram\n")
    for inst in s.instances:
        for ep in ENDPOINTS:
            labels = f'endpoint="{ep}",instance="{inst.address}",job="{s.job}",version="{inst.version}"'
            for t, hist, count in latency_counts[(inst.address, ep)]:
                ts = f"{t.timestamp():.3f}"
                for le, c in zip(BUCKETS, hist, strict=True):
                    emit(f'http_request_duration_seconds_bucket{{{labels},le="{le}"}} {c:.1f} {ts}\n')
                emit(f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {count:.1f} {ts}\n')
                emit(f"http_request_duration_seconds_count{{{labels}}} {count:.1f} {ts}\n")
    samples += _write_platform(s, out, times, rng)
    out.write("# EOF\n")
    return samples


def _truth(s: PlatformScenario, t: datetime, n: float, e: float, windows: dict[str, int]) -> None:
    for w, secs in windows.items():
        if s.now - timedelta(seconds=secs) < t <= s.now:
            s.truth.requests[w] += n
            s.truth.errors[w] += e


def _write_platform(s: PlatformScenario, out: TextIO, times: list[datetime], rng: random.Random) -> int:
    """up, database query time, pod CPU, pg_up, workflow and execution outcomes, queue depth."""
    lines = 0

    def family(name: str, kind: str, help_text: str) -> None:
        out.write(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")

    def series(name: str, labels: str, values: Iterator[tuple[datetime, float]]) -> None:
        nonlocal lines
        for t, v in values:
            out.write(f"{name}{{{labels}}} {v:.6g} {t.timestamp():.3f}\n")
            lines += 1

    family("up", "gauge", "Whether the target is up.")
    for inst in s.instances:
        series("up", f'instance="{inst.address}",job="{s.job}"', ((t, float(s.answering(inst, t))) for t in times))
    # a pod replaced an hour ago: its target stopped being scraped (not down)
    replaced = s.now - timedelta(hours=1)
    series("up", f'instance="{s.replaced_instance}",job="{s.job}"', ((t, 1.0) for t in times if t < replaced))
    family("omnihub_db_query_duration_seconds", "histogram", "Database query time seen by the application.")
    for inst in s.instances:
        hist, count = [0.0] * len(BUCKETS), 0.0
        labels = f'instance="{inst.address}",job="{s.job}"'
        last = times[0] - timedelta(seconds=s.coarse_step_s)
        for t in times:
            n = 40 * (t - last).total_seconds()
            last = t
            for i, le in enumerate(BUCKETS):
                hist[i] += n * _lognormal_cdf(le, s.db_median_s(t))
            count += n
            ts = f"{t.timestamp():.3f}"
            for le, c in zip(BUCKETS, hist, strict=True):
                out.write(f'omnihub_db_query_duration_seconds_bucket{{{labels},le="{le}"}} {c:.1f} {ts}\n')
            out.write(f'omnihub_db_query_duration_seconds_bucket{{{labels},le="+Inf"}} {count:.1f} {ts}\n')
            out.write(f"omnihub_db_query_duration_seconds_count{{{labels}}} {count:.1f} {ts}\n")
            lines += len(BUCKETS) + 2
    family("container_cpu_usage_seconds_total", "counter", "cAdvisor CPU seconds.")
    for inst in s.instances:
        labels = f'container="api",namespace="{s.namespace}",pod="{inst.pod}"'
        series("container_cpu_usage_seconds_total", labels, _cpu_seconds(s, times, rng))
    family("container_memory_working_set_bytes", "gauge", "cAdvisor working set.")
    for inst in s.instances:
        labels = f'container="api",namespace="{s.namespace}",pod="{inst.pod}"'
        series("container_memory_working_set_bytes", labels, ((t, s.memory_bytes(t)) for t in times))
    family("kube_pod_container_resource_limits", "gauge", "kube-state-metrics container limits.")
    for inst in s.instances:
        for resource, unit, value in (("cpu", "core", 0.5), ("memory", "byte", 512 * 2**20)):
            labels = f'container="api",namespace="{s.namespace}",pod="{inst.pod}",resource="{resource}",unit="{unit}"'
            series("kube_pod_container_resource_limits", labels, ((t, value) for t in times))
    family("pg_database_size_bytes", "gauge", "postgres_exporter database size.")
    series("pg_database_size_bytes", 'datname="omnihub",instance="db:9187"', ((t, s.database_bytes(t)) for t in times))
    family("pg_stat_activity_count", "gauge", "postgres_exporter connections.")
    series("pg_stat_activity_count", 'instance="db:9187",state="active"', ((t, s.connections(t)) for t in times))
    family("pg_settings_max_connections", "gauge", "postgres_exporter max_connections.")
    series("pg_settings_max_connections", 'instance="db:9187"', ((t, 100.0) for t in times))
    bad_from = s.bad_period[0]
    pg_down = (bad_from + timedelta(minutes=30), bad_from + timedelta(minutes=40))
    family("pg_up", "gauge", "Whether PostgreSQL answers the exporter.")
    series(
        "pg_up", 'instance="db:9187",job="postgres"', ((t, 0.0 if pg_down[0] <= t < pg_down[1] else 1.0) for t in times)
    )
    for name, rate, fail in (("omnihub_workflows", 2.0, 0.003), ("omnihub_executions", 5.0, 0.004)):
        family(name, "counter", f"Finished {name[8:]} by outcome.")
        for status, share in (("succeeded", 1 - fail), ("failed", fail)):
            acc2 = 0.0
            values = []
            last = times[0]
            for t in times:
                acc2 += rate * share * (t - last).total_seconds()
                last = t
                values.append((t, acc2))
            series(f"{name}_total", f'status="{status}"', iter(values))
    family("rabbitmq_queue_messages", "gauge", "Messages in a queue.")
    for queue, depth in (("dead_letter_queue", _dlq_depth), ("workflow_execution", lambda _s, _t: 12.0)):
        series("rabbitmq_queue_messages", f'queue="{queue}",vhost="/"', ((t, depth(s, t)) for t in times))
    return lines


def _cpu_seconds(s: PlatformScenario, times: list[datetime], rng: random.Random) -> Iterator[tuple[datetime, float]]:
    acc, last = 0.0, times[0]
    for t in times:
        acc += s.cpu_cores(t) * (t - last).total_seconds() * rng.uniform(0.99, 1.01)
        last = t
        yield t, acc


def _dlq_depth(s: PlatformScenario, t: datetime) -> float:
    started = s.now - timedelta(hours=1)
    return 0.0 if t < started else min(340.0, 340.0 * (t - started).total_seconds() / 3600)


def write_file(s: PlatformScenario, path: Path) -> int:
    with path.open("w") as fh:
        return write_openmetrics(s, fh)


def write_steady(path: Path, now: datetime, error_ratio: float, hours: int = 72, per_minute: float = 10_000.0) -> None:
    """A known answer: ``hours`` of API traffic, one sample a minute, failing exactly
    ``error_ratio`` of requests all along (and nothing else). Every window's error ratio is
    ``error_ratio``, so the budget left is 1 - error_ratio / (1 - objective)."""
    start = now.replace(second=0, microsecond=0) - timedelta(hours=hours)
    errors = per_minute * error_ratio
    with path.open("w") as out:
        out.write("# HELP http_requests Total HTTP requests.\n# TYPE http_requests counter\n")
        for status, step in (("500", errors), ("200", per_minute - errors)):
            for i in range(hours * 60 + 1):
                t = start + timedelta(minutes=i)
                out.write(
                    f'http_requests_total{{job="api-gateway",status="{status}"}} {step * i:.3f} {t.timestamp():.3f}\n'
                )
        out.write("# EOF\n")
