"""Latency: p50/p95/p99 by endpoint from the request histogram, ranked against the latency SLO;
what latency follows (the error rate, database query time, pod CPU); and the slow queries
behind it (pg_stat_statements, or what runs long in pg_stat_activity)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta

import pandas as pd

from runbook_lib.core.present import duration
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.plots import timeseries
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import activity
from runbook_lib.sre import sli, slo
from runbook_lib.sre.promql import label_name, selector

QUANTILES = (0.5, 0.95, 0.99)


@dataclass
class Percentiles(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    target_s: float = 0.5
    over_target: list[str] = field(default_factory=list)
    p95_s: float | None = None


@dataclass
class Follows(Result):
    correlations: dict[str, float] = field(default_factory=dict)
    follows: str | None = None


@dataclass
class SlowQueries(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    source: str = ""
    found: bool = False  # a statement over the limit runs (or averages) now


def target_s(rb: RunbookLike) -> float:
    """The latency SLO's threshold (the catalog's latency SLO), 0.5 s without one."""
    spec = next((s for s in rb.catalog.slos if s.sli == "latency"), None)
    return float(spec.extra.get("threshold_seconds", 0.5)) if spec else 0.5


def _quantile(rb: RunbookLike, q: float, window: str, by: str = "") -> str:
    bucket = selector(f"{rb.metrics.latency_histogram}_bucket", **sli.api_scope(rb.metrics))
    group = f"le, {label_name(by)}" if by else "le"
    return f"histogram_quantile({q:g}, sum by ({group}) (rate({bucket}[{window}])))"


@check("Latency by endpoint", Percentiles, essential=True)
def percentiles(rb: RunbookLike, window: str = "5m") -> Percentiles:
    """p50, p95 and p99 per endpoint over ``window``, slowest p95 first, against the SLO target."""
    slo.parse_duration(window)
    ep = label_name(rb.metrics.endpoint_label)
    columns = {}
    for q in QUANTILES:
        frame = rb.prometheus.query(_quantile(rb, q, window, ep), rb.now)
        if not frame.empty and ep in frame:
            columns[f"p{round(q * 100)}_s"] = frame.set_index(ep)["value"]
    title = "Latency by endpoint"
    target = target_s(rb)
    if not columns:
        rb.finding(
            title,
            "unchecked",
            f"Prometheus has no {rb.metrics.latency_histogram}_bucket series in the last {window}.",
            reason="no data",
        )
        return Percentiles.unchecked("no data")
    table = pd.DataFrame(columns).rename_axis("endpoint").reset_index().sort_values("p95_s", ascending=False)
    table = table.assign(over_target=table["p95_s"] > target).reset_index(drop=True)
    rb.table(table.round(3), title=f"Latency per endpoint over {window}, slowest p95 first (target {target:g}s)")
    rb.query_link(_quantile(rb, 0.95, window, ep), "p95 latency by endpoint", panel=("slo.json", "P95 Latency"))
    overall = slo.finite(rb.prometheus.scalar(_quantile(rb, 0.95, window), rb.now))
    over = table[table["over_target"]]
    result = Percentiles(table=table, target_s=target, over_target=over["endpoint"].tolist(), p95_s=overall)
    if over.empty:
        rb.finding(
            title,
            "ok",
            f"Every endpoint's p95 is under {target:g}s (overall p95 {_s(overall)}).",
            p95_s=overall,
            target_s=target,
        )
        return result
    top = over.iloc[0]
    rb.finding(
        title,
        "warning",
        f"{len(over)} of {len(table)} endpoints over the {target:g}s p95 target; slowest {top['endpoint']}: "
        f"p50 {_s(top.get('p50_s'))}, p95 {_s(top['p95_s'])}, p99 {_s(top.get('p99_s'))} (overall p95 {_s(overall)}).",
        role="symptom",
        endpoint=str(top["endpoint"]),
        p95_s=float(top["p95_s"]),
        overall_p95_s=overall,
        target_s=target,
        over_target=result.over_target,
    )
    return result


def _signals(rb: RunbookLike) -> dict[str, tuple[str, str]]:
    """name -> (PromQL, what it is) for what latency may follow."""
    m = rb.metrics
    status = label_name(m.status_label)
    errors = selector(m.http_requests, **sli.api_scope(m), **{status: ("=~", m.error_status_regex)})
    every = selector(m.http_requests, **sli.api_scope(m))
    db = selector(f"{m.db_query_duration}_bucket")
    pod = label_name(m.pod_label)
    cpu = selector(m.pod_cpu, **{pod: ("=~", f"{re.escape(rb.service.deployment)}-.*")})
    return {
        "error rate": (f"sum(rate({errors}[5m])) / sum(rate({every}[5m]))", "the 5xx ratio"),
        "database query time": (f"histogram_quantile(0.95, sum by (le) (rate({db}[5m])))", "p95 database query time"),
        "pod CPU": (f"sum(rate({cpu}[5m]))", "CPU of the service's pods"),
    }


@check("What latency follows", Follows)
def follows(rb: RunbookLike, lookback_s: float = 2 * 3600) -> Follows:
    """Correlate the overall p95 over ``lookback_s`` with the error rate, database query time
    and pod CPU: the signal it moves with is where to look."""
    start, step = rb.now - timedelta(seconds=lookback_s), max(30.0, lookback_s / 240)
    p95 = rb.prometheus.query_range(_quantile(rb, 0.95, "5m"), start, rb.now, step)
    title = "What latency follows"
    if p95.empty:
        rb.finding(title, "unchecked", "No latency history to compare.", reason="no data")
        return Follows.unchecked("no data")
    timeseries(rb, p95, f"p95 latency, last {duration(lookback_s)}", thresholds={"target": target_s(rb)})
    rb.query_link(_quantile(rb, 0.95, "5m"), "p95 latency", lookback_s, panel=("slo.json", "P95 Latency"))
    base = p95.set_index("timestamp")["value"]
    correlations, missing = {}, []
    for name, (expr, _what) in _signals(rb).items():
        other = rb.prometheus.query_range(expr, start, rb.now, step)
        if other.empty:
            missing.append(name)
            continue
        joined = pd.concat([base, other.set_index("timestamp")["value"]], axis=1, join="inner").dropna()
        r = joined.iloc[:, 0].corr(joined.iloc[:, 1]) if len(joined) >= 10 else float("nan")
        if r == r:  # a flat signal has no correlation (NaN)
            correlations[name] = round(float(r), 3)
    rb.table(
        pd.DataFrame([{"signal": k, "correlation with p95": v} for k, v in correlations.items()]),
        title=f"Correlation with p95 latency over {duration(lookback_s)}",
    )
    best = max(correlations, key=correlations.get, default=None)
    strong = best is not None and correlations[best] >= rb.thresholds.latency_correlation
    gone = f" No data for: {', '.join(missing)}." if missing else ""
    if not strong:
        rb.finding(
            title,
            "info",
            "Latency does not clearly follow the error rate, database query time or pod CPU "
            f"({_list(correlations)}).{gone}",
            correlations=correlations,
        )
        return Follows(correlations=correlations)
    rb.finding(
        title,
        "warning",
        f"Latency follows {best} (correlation {correlations[best]:.2f}; {_list(correlations)}): {_ADVICE[best]}{gone}",
        role="cause",
        cause=_CAUSE[best],
        follows=best,
        correlations=correlations,
    )
    return Follows(correlations=correlations, follows=best)


_CAUSE = {  # what latency following each signal means, as a cause code
    "error rate": "dependency_slow",  # requests wait on what fails: timeouts and retries
    "database query time": "dependency_slow",
    "pod CPU": "saturation",
}
_ADVICE = {
    "error rate": "requests slow down where they fail: look at the failing dependency (timeouts, retries).",
    "database query time": "slow database queries drive it: see the slow queries below.",
    "pod CPU": "the pods are busy: scale out, or find the hot code path.",
}


@check("Slow queries", SlowQueries)
def slow_queries(rb: RunbookLike, min_s: float | None = None) -> SlowQueries:
    """What runs longer than ``min_s`` right now (pg_stat_activity: pg_stat_statements only
    knows finished statements), then, where pg_stat_statements is installed and preloaded, the
    statements slowest on average."""
    limit = float(min_s if min_s is not None else rb.thresholds.postgres_slow_query_s)
    title = "Slow queries"
    running = activity.long_running(rb.postgres, limit)
    if not running.empty:
        rb.table(running, title=f"Statements running longer than {duration(limit)} now")
    stats = activity.slow_statements(rb.postgres)
    if stats is None:
        rb.note("pg_stat_statements is not installed here: only what runs long right now is shown.")
        averaged = stats
    else:
        rb.table(stats, title="Slowest statements by mean time (pg_stat_statements)")
        averaged = stats[stats["mean_ms"] >= limit * 1000]
    if not running.empty:
        top, source = running.iloc[0], "pg_stat_activity"
        seconds, verb, count = float(top["running_s"]), "has run", len(running)
        who = f" from {top['application']} (pid {int(top['pid'])})"
    elif averaged is not None and not averaged.empty:
        top, source = averaged.iloc[0], "pg_stat_statements"
        seconds, verb, count, who = float(top["mean_ms"]) / 1000, "averages", len(averaged), ""
    else:
        where = "pg_stat_activity" + (", pg_stat_statements" if stats is not None else "")
        rb.finding(title, "ok", f"No statement over {duration(limit)} ({where}).", source=where)
        return SlowQueries(table=running, source=where)
    rb.finding(
        title,
        "warning",
        f"{count} statement(s) over {duration(limit)} ({source}); the slowest{who} {verb} {duration(seconds)}: "
        f"{top['query'][:160]}",
        role="cause",
        cause="slow_queries",
        source=source,
        count=count,
        seconds=seconds,
        query=str(top["query"]),
        application=str(top.get("application", "")),
    )
    return SlowQueries(table=running if source == "pg_stat_activity" else averaged, source=source, found=True)


def _s(value: float | None) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f}s"


def _list(correlations: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:+.2f}" for k, v in correlations.items()) or "nothing to compare"


def decision(rb: RunbookLike, follows: Follows, slow: SlowQueries) -> None:
    """When scaling is not the lever, who is: the DBA for a slow statement, the dependency's
    owners when latency follows database query time or the error rate. Nothing otherwise (the
    record escalates by default when something is wrong)."""
    if slow.found:
        rb.escalate(
            "a slow statement holds the database: cancel it through database-migration-failure's guarded "
            "cancel, or fix its plan (EXPLAIN ANALYZE, a missing index)",
            to="the DBA",
        )
    elif follows.follows in ("database query time", "error rate"):
        rb.escalate(
            f"latency follows {follows.follows}: a slow dependency, not these pods", to="the dependency's owners"
        )
