"""Kubernetes checks: recent rollouts against the spike, error patterns in logs, pod pressure."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from runbook_lib.core.present import duration
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike


@dataclass
class Rollouts(Result):
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    current_revision: int | None = None
    suspect: dict[str, Any] | None = None
    lead_s: float | None = None  # how long before the spike the suspect rollout started


@dataclass
class LogErrors(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    totals: dict[str, int] = field(default_factory=dict)


@dataclass
class Pressure(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    saturated: list[str] = field(default_factory=list)
    pods: int = 0
    recommended_replicas: int | None = None


@check("Recent rollouts", Rollouts)
def recent_rollouts(rb: RunbookLike, deployment: str | None = None, spike_start: datetime | None = None) -> Rollouts:
    """``kubectl rollout history``, and whether the current revision started shortly before the spike."""
    name = deployment or rb.service.deployment
    history = rb.kubernetes.rollout_history(name)
    rb.table(history.drop(columns=["replicaset"]), title=f"Rollout history of deployment/{name}, newest first")
    result = Rollouts(history=history)
    title = "Recent rollouts"
    if history.empty:
        rb.finding(title, "info", f"deployment/{name} has no ReplicaSet revisions to compare.")
        return result
    current = history[history["current"]]
    row = (current if not current.empty else history).iloc[0]
    result.current_revision = int(row["revision"])
    reference = spike_start or (rb.alert.startsAt if rb.alert else None)
    ref_name = "the error spike" if spike_start else "the alert"
    created = row["created"].to_pydatetime()
    age = duration((rb.now - created).total_seconds())
    if reference is None:
        rb.finding(
            title,
            "info",
            f"Current revision {result.current_revision} ({row['images']}) rolled out {age} ago.",
        )
        return result
    lead = (reference - created).total_seconds()
    window = rb.thresholds.rollout_suspect_window_s
    details = {
        "revision": result.current_revision,
        "images": row["images"],
        "rolled_out_at": created,
        "reference": reference,
        "lead_s": lead,
    }
    if 0 <= lead <= window:
        result.suspect = {
            "revision": result.current_revision,
            "images": row["images"],
            "created": created,
            "change_cause": row["change_cause"],
        }
        result.lead_s = lead
        rb.finding(
            title,
            "critical",
            f"Revision {result.current_revision} ({row['images']}) rolled out {duration(lead)} before "
            f"{ref_name}: a likely cause. Consider Option 1 (rollback).",
            role="cause",
            cause="rollout",
            **details,
        )
    elif lead < 0 and -lead <= window:
        rb.finding(
            title,
            "info",
            f"Revision {result.current_revision} rolled out {duration(-lead)} after {ref_name} "
            f"began (a fix attempt?), so it did not start it.",
            **details,
        )
    else:
        rb.finding(
            title,
            "ok",
            f"No rollout in the {duration(window)} before {ref_name}; current revision "
            f"{result.current_revision} is {age} old.",
            **details,
        )
    return result


@check("Error patterns in logs", LogErrors)
def log_errors(rb: RunbookLike, deployment: str | None = None, tail_lines: int | None = None) -> LogErrors:
    """Tail each pod's log and count the configured error patterns."""
    name = deployment or rb.service.deployment
    tail = int(tail_lines or rb.service.log_tail_lines)
    patterns = rb.service.error_patterns or {"error": r"\bERROR\b"}
    table = rb.kubernetes.log_patterns(name, patterns, tail)
    title = "Error patterns in logs"
    result = LogErrors(table=table)
    if table.empty:
        rb.finding(title, "info", f"deployment/{name} has no pods to read logs from.")
        return result
    totals = table.groupby("pattern")["count"].sum()
    result.totals = {k: int(v) for k, v in totals.sort_values(ascending=False).items()}
    pivot = table.pivot_table(index="pod", columns="pattern", values="count", aggfunc="sum").reset_index()
    rb.table(pivot, title=f"Pattern counts in the last {tail} log lines per pod of deployment/{name}")
    hits = {k: v for k, v in result.totals.items() if v}
    if not hits:
        rb.finding(
            title,
            "ok",
            f"None of {len(patterns)} error patterns in the last {tail} lines of {table['pod'].nunique()} pods.",
        )
        return result
    worst = max(hits, key=hits.get)
    example = table[(table["pattern"] == worst) & (table["count"] > 0)]["example"].iloc[0]
    listed = ", ".join(f"{k} x{v}" for k, v in list(hits.items())[:5])
    rb.finding(
        title,
        "warning",
        f"In the last {tail} lines of {table['pod'].nunique()} pods: {listed}. Newest '{worst}' line: {example[:160]}",
        counts=hits,
        example=example,
    )
    return result


@check("Pod resource pressure", Pressure)
def resource_pressure(rb: RunbookLike, deployment: str | None = None) -> Pressure:
    """``kubectl top pods`` against limits; saturated pods suggest scaling out."""
    name = deployment or rb.service.deployment
    table = rb.kubernetes.top_pods(name)
    rb.table(table, title=f"Pod usage (metrics.k8s.io) for deployment/{name}")
    result = Pressure(table=table, pods=len(table))
    title = "Pod resource pressure"
    if table.empty:
        rb.finding(title, "info", f"metrics.k8s.io has no samples for deployment/{name}'s pods.")
        return result
    th = rb.thresholds
    sat = table[
        (table["cpu_ratio"].fillna(0) >= th.pod_cpu_saturation)
        | (table["memory_ratio"].fillna(0) >= th.pod_memory_saturation)
    ]
    result.saturated = sat["pod"].tolist()
    if result.saturated:
        peak = float(table["cpu_ratio"].fillna(0).max())
        result.recommended_replicas = max(result.pods + 1, math.ceil(result.pods * max(peak, 1.0) / 0.7))
        rb.finding(
            title,
            "warning",
            f"{len(result.saturated)}/{result.pods} pods at or above their CPU/memory saturation threshold "
            f"(peak CPU {peak:.0%} of limit): resource exhaustion is plausible; Option 2 (scale to "
            f"{result.recommended_replicas}) applies.",
            role="cause",
            cause="saturation",
            saturated=result.saturated,
            recommended_replicas=result.recommended_replicas,
        )
    else:
        rb.finding(
            title,
            "ok",
            f"All {result.pods} pods below CPU {th.pod_cpu_saturation:.0%} and memory {th.pod_memory_saturation:.0%} of their limits.",
        )
    return result
