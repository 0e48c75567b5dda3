"""The SLO dashboard as a report: availability against its target, the error budget's burn-down,
latency percentiles against their targets, workflow success, queue depths. Graphs first: people
would rather look than read."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd

from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import percent
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.plots import timeseries
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import usage
from runbook_lib.sre import sli, slo
from runbook_lib.sre.promql import label_name, selector

# The package's SLI targets (SRE_PACKAGE.md, "Service Level Indicators").
LATENCY_TARGETS_S = {"p50": 0.2, "p95": 0.5, "p99": 1.0}
WORKFLOW_SUCCESS_TARGET = 0.95
APPROVAL_DEPTH_TARGET = 50
DLQ_DEPTH_TARGET = 10


@dataclass
class Shown(Result):
    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    now: float | None = None


def _range(rb: RunbookLike, expr: str, lookback: str, points: int = 240) -> pd.DataFrame:
    span = slo.parse_duration(lookback)
    return rb.prometheus.query_range(expr, rb.now - timedelta(seconds=span), rb.now, max(60.0, span / points))


def _api_slo(rb: RunbookLike, kind: str) -> tuple[object, sli.SLI] | None:
    for spec in rb.catalog.slos:
        if spec.sli == kind and spec.service != "database":
            indicator = sli.for_slo(spec, rb.metrics)
            if indicator is not None:
                return spec, indicator
    return None


@check("Availability against target", Shown, essential=True)
def availability(rb: RunbookLike, lookback: str = "3d") -> Shown:
    """1 - the 5xx ratio (1-hour windows) over ``lookback``, with the SLO's target."""
    found = _api_slo(rb, "availability")
    title = "Availability against target"
    if found is None:
        rb.finding(title, "unchecked", "The catalog has no API availability SLO.", reason="no SLO")
        return Shown.unchecked("no SLO")
    spec, indicator = found
    series = _range(rb, f"1 - ({indicator.ratio('1h')})", lookback)
    if series.empty:
        rb.finding(title, "unchecked", f"No {rb.metrics.http_requests} data in the last {lookback}.", reason="no data")
        return Shown.unchecked("no data")
    timeseries(
        rb, series, f"Availability (1h windows), last {lookback}", percent=True, thresholds={"target": spec.objective}
    )
    rb.query_link(
        f"1 - ({indicator.ratio('1h')})",
        "availability (1h windows)",
        slo.parse_duration(lookback),
        panel=("slo.json", "Availability (last 28 days)"),
    )
    now = slo.finite(rb.prometheus.scalar(f"1 - ({indicator.ratio(lookback)})", rb.now))
    below = float((series["value"] < spec.objective).mean())
    ok = now is not None and now >= spec.objective
    rb.finding(
        title,
        "ok" if ok else "warning",
        f"Availability over {lookback}: {percent(now, 3)} against the {spec.objective:.2%} target; "
        f"{below:.0%} of the hours were below it.",
        availability=now,
        objective=spec.objective,
        hours_below_share=below,
    )
    return Shown(series=series, now=now)


@check("Error budget burn-down", Shown, essential=True)
def burn_down(rb: RunbookLike, lookback: str = "3d") -> Shown:
    """The API availability SLO's budget left over its window, as it stood at each hour of
    ``lookback``, against the policy bands (50 %, 25 %, 10 %)."""
    found = _api_slo(rb, "availability")
    title = "Error budget burn-down"
    if found is None:
        rb.finding(title, "unchecked", "The catalog has no API availability SLO.", reason="no SLO")
        return Shown.unchecked("no SLO")
    spec, indicator = found
    budget = slo.error_budget(spec.objective)
    expr = f"1 - ({indicator.ratio(spec.window)}) / {budget:g}"
    series = _range(rb, expr, lookback, points=120)
    if series.empty:
        rb.finding(title, "unchecked", f"No data for the {spec.name} budget.", reason="no data")
        return Shown.unchecked("no data")
    timeseries(
        rb,
        series,
        f"{spec.name}: {spec.window} error budget left, last {lookback}",
        percent=True,
        thresholds={"caution (50%)": 0.5, "freeze (25%)": 0.25, "incident (10%)": 0.10},
    )
    rb.query_link(
        expr,
        f"{spec.name} budget left",
        slo.parse_duration(lookback),
        panel=("slo.json", f"Error Budget Remaining ({spec.name})"),
    )
    first, last = float(series["value"].iloc[0]), float(series["value"].iloc[-1])
    band = slo.policy_band(last)
    rb.finding(
        title,
        "ok" if band is not None and band.name == "normal" else "warning",
        f"{spec.name}: {percent(first, 0)} of the budget left {lookback} ago, {percent(last, 0)} now "
        f"({band.name.upper() if band else 'no band'}: {band.policy if band else ''}).",
        slo=spec.name,
        budget_remaining=last,
        budget_remaining_at_start=first,
        band=band.name if band else None,
    )
    return Shown(series=series, now=last)


@check("Latency percentiles against targets", Shown)
def latency(rb: RunbookLike, lookback: str = "1d") -> Shown:
    """p50, p95 and p99 (5-minute windows) over ``lookback`` against 200 ms, 500 ms and 1 s."""
    bucket = selector(f"{rb.metrics.latency_histogram}_bucket", **sli.api_scope(rb.metrics))
    frames = []
    now = {}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        expr = f"histogram_quantile({q}, sum by (le) (rate({bucket}[5m])))"
        part = _range(rb, expr, lookback)
        if not part.empty:
            frames.append(part.assign(series=name))
        now[name] = slo.finite(rb.prometheus.scalar(expr, rb.now))
    title = "Latency percentiles against targets"
    if not frames:
        rb.finding(title, "unchecked", f"No {bucket} data in the last {lookback}.", reason="no data")
        return Shown.unchecked("no data")
    series = pd.concat(frames)
    rb.query_link(
        f"histogram_quantile(0.95, sum by (le) (rate({bucket}[5m])))",
        "p95 latency",
        slo.parse_duration(lookback),
        panel=("slo.json", "P95 Latency"),
    )
    timeseries(rb, series, f"Latency p50 / p95 / p99, last {lookback} (s)", thresholds={"p95 target": 0.5})
    over = [k for k, target in LATENCY_TARGETS_S.items() if now.get(k) is not None and now[k] > target]
    parts = ", ".join(f"{k} {_ms(now.get(k))} (target {_ms(t)})" for k, t in LATENCY_TARGETS_S.items())
    rb.finding(
        title,
        "warning" if over else "ok",
        f"Now: {parts}." + (f" Over target: {', '.join(over)}." if over else ""),
        **{f"{k}_s": v for k, v in now.items()},
        over_target=over,
    )
    return Shown(series=series, now=now.get("p95"))


@check("Workflow success", Shown)
def workflow_success(rb: RunbookLike, window: str = "1d") -> Shown:
    """Workflows completed against failed in the last ``window``, from the workflows table
    (PostgreSQL), against the package's 95 % target."""
    got = usage.workflow_outcomes(rb.postgres, slo.parse_duration(window))
    done, failed = int(got["completed"] or 0), int(got["failed"] or 0)
    title = "Workflow success"
    if done + failed == 0:
        rb.finding(title, "info", f"No workflow finished in the last {window}.", completed=0, failed=0)
        return Shown()
    rate = done / (done + failed)
    rb.finding(
        title,
        "ok" if rate >= WORKFLOW_SUCCESS_TARGET else "warning",
        f"{percent(rate, 1)} of the workflows that finished in the last {window} completed ({done} completed, "
        f"{failed} failed, {int(got['in_flight'] or 0)} still queued or running); target {WORKFLOW_SUCCESS_TARGET:.0%}.",
        success_rate=rate,
        completed=done,
        failed=failed,
        in_flight=int(got["in_flight"] or 0),
    )
    return Shown(now=rate)


@check("Queue depths", Shown)
def queues(rb: RunbookLike, lookback: str = "3h") -> Shown:
    """Approvals pending (PostgreSQL) and the dead-letter queue (RabbitMQ; its trend from
    Prometheus) against the package's targets (< 50, < 10)."""
    depths: dict[str, float | None] = {"approvals pending": None, "dead letters": None}
    notes = []
    try:
        depths["approvals pending"] = float(usage.usage(rb.postgres)["approvals_pending"])
    except SourceError as exc:
        notes.append(f"approvals: {exc}")
    queue = rb.settings.rabbitmq.dlq_queue
    try:
        depths["dead letters"] = float(rb.rabbitmq.depth(queue))
    except SourceError as exc:
        notes.append(f"DLQ over AMQP: {exc}")
    trend = _range(rb, selector(rb.metrics.queue_messages, **{label_name("queue"): queue}), lookback)
    if not trend.empty:
        timeseries(rb, trend, f"{queue} depth, last {lookback}", thresholds={"target": DLQ_DEPTH_TARGET})
        if depths["dead letters"] is None:
            depths["dead letters"] = float(trend["value"].iloc[-1])
            notes.append("DLQ depth from Prometheus")
    title = "Queue depths"
    if all(v is None for v in depths.values()):
        rb.finding(title, "unchecked", "; ".join(notes) or "no source for either queue", reason="no data")
        return Shown.unchecked("no data")
    targets = {"approvals pending": APPROVAL_DEPTH_TARGET, "dead letters": DLQ_DEPTH_TARGET}
    over = [k for k, v in depths.items() if v is not None and v >= targets[k]]
    text = ", ".join(f"{k} {'n/a' if v is None else int(v)} (target < {targets[k]})" for k, v in depths.items())
    rb.finding(
        title,
        "warning" if over else "ok",
        f"{text}." + (f" ({'; '.join(notes)})" if notes else ""),
        approvals_pending=depths["approvals pending"],
        dlq_depth=depths["dead letters"],
        over_target=over,
    )
    return Shown(series=trend)


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
