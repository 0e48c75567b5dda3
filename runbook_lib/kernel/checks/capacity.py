"""Capacity: the package's growth table with what is measured now, when each scaling trigger is
crossed at the current trend (CPU 70 %, memory 80 %, disk 80 %, connections 80 %), and the HPA's
headroom between its minimum and maximum replicas."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd

from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import duration, iso
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.plots import timeseries
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import usage
from runbook_lib.sre import slo
from runbook_lib.sre.promql import label_name, selector


@dataclass
class Growth(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


@dataclass
class Projections(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    crossings: dict[str, str] = field(default_factory=dict)  # resource -> ISO date, "already", "not rising"
    cpu_use: float | None = None


@dataclass
class Headroom(Result):
    replicas: int | None = None
    needed: int | None = None
    headroom: int | None = None


def _pods(rb: RunbookLike) -> dict[str, Any]:
    pod = label_name(rb.metrics.pod_label)
    return {pod: ("=~", f"{re.escape(rb.service.deployment)}-.*")}


def _utilisation(rb: RunbookLike) -> dict[str, tuple[str, float, str]]:
    """resource -> (PromQL of its use as a share of capacity, trigger, what it is)."""
    cap, m = rb.settings.capacity, rb.metrics
    pods = _pods(rb)
    limits = "kube_pod_container_resource_limits"
    out = {
        "cpu": (
            f"sum(rate({selector(m.pod_cpu, **pods)}[30m])) / sum({selector(limits, resource='cpu', **pods)})",
            cap.cpu_trigger,
            "CPU of the service's pods against their limits",
        ),
        "memory": (
            f"sum({selector('container_memory_working_set_bytes', **pods)})"
            f" / sum({selector(limits, resource='memory', **pods)})",
            cap.memory_trigger,
            "memory of the service's pods against their limits",
        ),
        "connections": (
            "sum(pg_stat_activity_count) / sum(pg_settings_max_connections)",
            cap.connections_trigger,
            "PostgreSQL connections against max_connections",
        ),
    }
    if cap.database_disk_bytes:
        out["disk"] = (
            f"sum(pg_database_size_bytes) / {cap.database_disk_bytes:.0f}",
            cap.disk_trigger,
            "the database's size against its volume",
        )
    return out


def crossing_s(series: pd.DataFrame, trigger: float) -> tuple[float | None, float | None, float | None]:
    """Fit a straight line to ``series`` (timestamp, value): (seconds from its last point until
    the line reaches ``trigger`` (0 when already there, None when not rising), slope per day,
    the fitted value now)."""
    if len(series) < 3:
        return None, None, None
    t = (series["timestamp"] - series["timestamp"].iloc[-1]).dt.total_seconds().to_numpy()
    slope, intercept = np.polyfit(t, series["value"].to_numpy(dtype=float), 1)
    now = float(intercept)
    if now >= trigger:
        return 0.0, float(slope) * 86400, now
    if slope <= 0:
        return None, float(slope) * 86400, now
    return (trigger - now) / float(slope), float(slope) * 86400, now


@check("Growth against the package's projections", Growth)
def growth(rb: RunbookLike) -> Growth:
    """The package's growth table, with the value measured now where a source exists: users and
    workflows/day (PostgreSQL), requests/s (Prometheus), database size (PostgreSQL)."""
    measured: dict[str, float | None] = {}
    notes = []
    try:
        now = usage.usage(rb.postgres)
        measured |= {
            "Users": float(now["users"]),
            "Workflows/day": float(now["workflows_24h"]),
            "Database size (GB)": round(float(now["database_bytes"]) / 1e9, 3),
        }
    except SourceError as exc:
        notes.append(f"PostgreSQL: {exc}")
    try:
        rps = rb.prometheus.scalar(f"sum(rate({selector(rb.metrics.http_requests)}[5m]))", rb.now)
        measured["Requests/sec"] = None if rps is None else round(rps, 1)
    except SourceError as exc:
        notes.append(f"Prometheus: {exc}")
    rows = []
    for row in rb.settings.capacity.growth:
        value = measured.get(row.metric)
        rows.append(
            {
                "metric": row.metric,
                "measured now": "n/a" if value is None else value,
                "package: current": row.current,
                "6 months": row.six_months,
                "12 months": row.twelve_months,
                "of 12-month plan": "n/a" if value is None else f"{value / row.twelve_months:.1%}",
                "trigger": row.trigger,
            }
        )
    table = pd.DataFrame(rows)
    rb.table(table, title="Growth: measured now against the package's projections")
    have = sum(v is not None for v in measured.values())
    rb.finding(
        "Growth against the package's projections",
        "info" if have else "unchecked",
        f"Measured {have} of {len(rows)} growth metrics now"
        + (": " + ", ".join(f"{k} {v}" for k, v in measured.items() if v is not None) if have else "")
        + (f" ({'; '.join(notes)})" if notes else "")
        + ".",
        measured=measured,
    )
    return Growth(table=table)


@check("Scaling triggers", Projections, essential=True)
def projections(rb: RunbookLike) -> Projections:
    """Each resource's use over the lookback, a straight line fitted to it, and the date it
    crosses its scaling trigger at that trend."""
    lookback = rb.settings.capacity.lookback
    span = slo.parse_duration(lookback)
    rows, crossings, frames = [], {}, []
    cpu_use = None
    for name, (expr, trigger, what) in _utilisation(rb).items():
        series = rb.prometheus.query_range(expr, rb.now - timedelta(seconds=span), rb.now, max(300.0, span / 200))
        rb.query_link(expr, f"{name}: {what}", span)
        if series.empty:
            rows.append({"resource": name, "what": what, "now": "no data", "trigger": f"{trigger:.0%}"})
            continue
        left, per_day, fitted = crossing_s(series, trigger)
        last = fitted if fitted is not None else float(series["value"].iloc[-1])  # the trend's value now
        if name == "cpu":
            cpu_use = last
        when = "already" if left == 0 else "not rising" if left is None else iso(rb.now + timedelta(seconds=left))
        crossings[name] = when
        frames.append(series.assign(series=name))
        rows.append(
            {
                "resource": name,
                "what": what,
                "now": f"{last:.1%}",
                "trend per day": "n/a" if per_day is None else f"{per_day:+.1%}",
                "trigger": f"{trigger:.0%}",
                "crosses": when,
                "in": "" if left in (None, 0) else duration(left),
            }
        )
    table = pd.DataFrame(rows)
    rb.table(table, title=f"Scaling triggers: use now, trend over {lookback}, when it crosses")
    if frames:
        timeseries(rb, pd.concat(frames), f"Use against capacity, last {lookback}", percent=True)
    title = "Scaling triggers"
    if not crossings:
        rb.finding(title, "unchecked", f"No utilisation data in the last {lookback}.", reason="no data")
        return Projections.unchecked("no data")
    soon = {k: v for k, v in crossings.items() if v not in ("not rising",)}
    first = min(soon, key=lambda k: "" if soon[k] == "already" else soon[k], default=None)
    verdict = "warning" if any(v == "already" for v in crossings.values()) else "info"
    rb.finding(
        title,
        verdict,
        (
            f"First trigger at the current trend: {first} on {soon[first]}; "
            if first
            else "No resource is trending towards its trigger; "
        )
        + ", ".join(f"{k}: {v}" for k, v in crossings.items())
        + ".",
        role="symptom",  # what the report is for: its headline
        crossings=crossings,
        first=first,
    )
    return Projections(table=table, crossings=crossings, cpu_use=cpu_use)


@check("HPA headroom", Headroom)
def hpa_headroom(rb: RunbookLike, projected: Projections) -> Headroom:
    """Replicas now (Kubernetes), replicas the HPA would want at the CPU target for today's load,
    and how far that is from the package's min 3 / max 20."""
    cap = rb.settings.capacity
    dep = rb.kubernetes.deployment(rb.service.deployment)
    replicas = int((dep.get("spec") or {}).get("replicas") or 0)
    title = "HPA headroom"
    if projected.cpu_use is None or replicas == 0:
        rb.finding(title, "unchecked", "No CPU use or no replicas to size from.", reason="no data", replicas=replicas)
        return Headroom.unchecked("no data")
    needed = max(cap.hpa_min_replicas, math.ceil(replicas * projected.cpu_use / cap.cpu_trigger))
    headroom = cap.hpa_max_replicas - needed
    growth_x = cap.hpa_max_replicas / needed if needed else math.inf
    rb.finding(
        title,
        "warning" if headroom <= 0 else "ok",
        f"{replicas} replicas at {projected.cpu_use:.0%} CPU; at the {cap.cpu_trigger:.0%} target the HPA wants {needed} "
        f"(min {cap.hpa_min_replicas}, max {cap.hpa_max_replicas}): {headroom} replicas of headroom, "
        f"so the service can take {growth_x:.1f}x today's load before the HPA is at its maximum.",
        replicas=replicas,
        needed=needed,
        headroom=headroom,
        load_growth_to_max=growth_x,
        cpu_use=projected.cpu_use,
    )
    return Headroom(replicas=replicas, needed=needed, headroom=headroom)
