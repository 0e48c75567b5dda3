"""HTTP SLI checks on Prometheus: 5xx by endpoint, error ratio and burn rate, spike start."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import duration, iso, percent, times
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.plots import timeseries
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.sre import sli, slo
from runbook_lib.sre.promql import label_name, selector


@dataclass
class EndpointErrors(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_endpoint: str | None = None
    top_share: float | None = None
    top_ratio: float | None = None
    dominant: bool = False


@dataclass
class ErrorBudget(Result):
    objective: float = 0.999
    ratio_5m: float | None = None
    ratio_1h: float | None = None
    burn_rate_5m: float | None = None
    burn_rate_1h: float | None = None
    budget_remaining_28d: float | None = None
    spike_start: datetime | None = None
    series: pd.DataFrame = field(default_factory=pd.DataFrame)
    pages: bool = False  # the 1h burn is at or above the fastest page tier's rate


def _selectors(rb: RunbookLike) -> tuple[str, str]:
    """The API's requests only (metrics.api_job): another job's under the same name are not its."""
    m = rb.metrics
    job = sli.api_scope(m)
    errors = selector(m.http_requests, **job, **{label_name(m.status_label): ("=~", m.error_status_regex)})
    return errors, selector(m.http_requests, **job)


def tiers(rb: RunbookLike, window: str = "28d") -> tuple[slo.Tier, ...]:
    """The burn-rate tiers of the API's availability SLO from the catalog's table (one source
    for the alerts and the runbooks); the Workbook's for ``window`` if the catalog has no such SLO."""
    catalog = rb.catalog
    api = next((s for s in catalog.slos if s.sli == "availability" and s.service == rb.service.name), None)
    return catalog.tiers_of(api) if api else slo.tiers_for(window)


def _window(window: str) -> str:
    slo.parse_duration(window)  # refuse anything that is not a plain duration
    return window


def ratio_expr(rb: RunbookLike, window: str) -> str:
    errors, everything = _selectors(rb)
    w = _window(window)
    return f"sum(rate({errors}[{w}])) / sum(rate({everything}[{w}]))"


@check("5xx rate by endpoint", EndpointErrors, essential=True)
def errors_by_endpoint(rb: RunbookLike, window: str = "5m") -> EndpointErrors:
    """Rank endpoints by 5xx rate; say whether one endpoint dominates the errors."""
    w = _window(window)
    title = "5xx rate by endpoint"
    frame = _endpoint_frame(rb, w)
    if frame is None:
        rb.finding(
            title,
            "unchecked",
            f"Prometheus has no {rb.metrics.http_requests} series in the last {w} "
            f"(is metrics.http_requests right, and is the service scraped?)",
            reason="no data",
        )
        return EndpointErrors.unchecked("no data")
    rb.table(frame.round(6), title=f"5xx rate by endpoint over {w}, worst first")
    ep, (errors_sel, _all) = label_name(rb.metrics.endpoint_label), _selectors(rb)
    rb.query_link(
        f"sum by ({ep}) (rate({errors_sel}[{w}]))",
        "5xx rate by endpoint",
        panel=("slo.json", "5xx Error Rate by Endpoint"),
    )
    result = EndpointErrors(table=frame)
    total_errors = float(frame["errors_per_s"].sum())
    if total_errors <= 0:
        rb.finding(title, "ok", f"No 5xx responses in the last {w} across {len(frame)} endpoints.")
        return result
    top = frame.iloc[0]
    result.top_endpoint = str(top["endpoint"])
    result.top_share = float(top["share_of_5xx"])
    result.top_ratio = None if pd.isna(top["error_ratio"]) else float(top["error_ratio"])
    result.dominant = result.top_share >= rb.thresholds.endpoint_dominance
    overall = slo.error_ratio(total_errors, float(frame["requests_per_s"].sum()))
    within_budget = overall is not None and overall < slo.error_budget(rb.thresholds.availability_objective)
    if result.dominant:
        ratio_text = (
            f"{result.top_ratio:.2%} of its requests fail" if result.top_ratio is not None else "no traffic counted"
        )
        verdict = "info" if within_budget else "critical"
        summary = (
            f"{result.top_endpoint} returns {result.top_share:.0%} of all 5xx "
            f"({top['errors_per_s']:.3g}/s; {ratio_text}). Start there."
        )
    else:
        verdict = "info" if within_budget else "warning"
        spread = int((frame["errors_per_s"] > 0).sum())
        summary = (
            f"5xx are spread over {spread} endpoints (worst: {result.top_endpoint}, {result.top_share:.0%} of 5xx); "
            f"a shared dependency is more likely than one handler."
        )
    details = {"endpoint": result.top_endpoint, "share_of_5xx": result.top_share}
    details |= {"endpoint_error_ratio": result.top_ratio, "overall_error_ratio": overall, "window": w}
    code = "endpoint_bug" if result.dominant and verdict == "critical" else None
    rb.finding(title, verdict, summary, role="symptom", cause=code, **details)
    return result


def _endpoint_frame(rb: RunbookLike, w: str) -> pd.DataFrame | None:
    """Requests/s, 5xx/s, error ratio and share of all 5xx per endpoint, worst first; None
    when Prometheus has no request series at all."""
    ep = label_name(rb.metrics.endpoint_label)
    errors_sel, all_sel = _selectors(rb)
    errors = rb.prometheus.query(f"sum by ({ep}) (rate({errors_sel}[{w}]))", rb.now)
    totals = rb.prometheus.query(f"sum by ({ep}) (rate({all_sel}[{w}]))", rb.now)
    if totals.empty:
        return None
    totals = totals.rename(columns={"value": "requests_per_s"})
    if ep not in totals:
        totals[ep] = "(no endpoint label)"
    frame = totals[[ep, "requests_per_s"]]
    if not errors.empty:
        if ep not in errors:
            errors[ep] = "(no endpoint label)"
        frame = frame.merge(errors[[ep, "value"]].rename(columns={"value": "errors_per_s"}), on=ep, how="left")
    else:
        frame = frame.assign(errors_per_s=0.0)
    frame["errors_per_s"] = frame["errors_per_s"].fillna(0.0)
    total_errors = float(frame["errors_per_s"].sum())
    frame["error_ratio"] = frame["errors_per_s"] / frame["requests_per_s"].where(frame["requests_per_s"] > 0)
    frame["share_of_5xx"] = frame["errors_per_s"] / total_errors if total_errors > 0 else 0.0
    frame = frame.sort_values(["errors_per_s", "requests_per_s"], ascending=False).reset_index(drop=True)
    return frame.rename(columns={ep: "endpoint"})


@check("Error ratio and burn rate", ErrorBudget, essential=True)
def error_budget(
    rb: RunbookLike, objective: float | None = None, window: str = "28d", budget_finding: bool = True
) -> ErrorBudget:
    """Current 5xx ratio, burn rate against the availability SLO (what it means is computed
    from the SLO's ``window``), the budget over that window (``budget_finding=False``: not
    again, when the runbook already judged every SLO's budget), spike start."""
    th = rb.thresholds
    objective = objective or th.availability_objective
    budget = slo.error_budget(objective)
    prom = rb.prometheus
    r5 = prom.scalar(ratio_expr(rb, "5m"), rb.now)
    r1h = prom.scalar(ratio_expr(rb, "1h"), rb.now)
    r28 = prom.scalar(ratio_expr(rb, window).replace("rate(", "increase("), rb.now)
    result = ErrorBudget(objective=objective, ratio_5m=slo.finite(r5), ratio_1h=slo.finite(r1h))
    result.burn_rate_5m = slo.burn_rate(result.ratio_5m, objective)
    result.burn_rate_1h = slo.burn_rate(result.ratio_1h, objective)
    result.budget_remaining_28d = slo.budget_remaining(slo.finite(r28), objective)

    lookback = timedelta(seconds=th.spike_lookback_s)
    series = prom.query_range(ratio_expr(rb, "5m"), rb.now - lookback, rb.now, step=60)
    result.series = series
    table = tiers(rb, window)
    daily = next((t for t in table if t.long_window == "1d"), table[-1])  # the tier that tickets within a day
    threshold = budget * daily.burn_rate
    result.spike_start = spike_start(series, threshold)

    window_s = slo.parse_duration(window)
    verdict = slo.burn_verdict(result.burn_rate_1h, table, window_s=window_s)
    result.pages = verdict.verdict == "critical"
    title = "Error ratio and burn rate"
    if result.ratio_1h is None and result.ratio_5m is None:
        rb.finding(title, "unchecked", "No traffic in the last hour: the error ratio is undefined.", reason="no data")
        return result
    summary = (
        f"5xx ratio {percent(result.ratio_5m)} (5m), {percent(result.ratio_1h)} (1h); "
        f"burn rate {times(result.burn_rate_1h)} over 1h ({times(result.burn_rate_5m)} over 5m) "
        f"against the {objective:.1%} SLO: {verdict.action}"
    )
    rb.finding(
        title,
        verdict.verdict,
        summary,
        role="symptom",
        error_ratio_5m=result.ratio_5m,
        error_ratio_1h=result.ratio_1h,
        burn_rate_5m=result.burn_rate_5m,
        burn_rate_1h=result.burn_rate_1h,
        objective=objective,
    )
    if result.spike_start is not None:
        lasted = duration((rb.now - result.spike_start).total_seconds())
        rb.finding(
            "Start of the error spike",
            "info",
            f"5xx ratio above {threshold:.2%} ({daily.name} burn) since {iso(result.spike_start)} ({lasted}).",
            spike_start=result.spike_start,
            threshold=threshold,
        )
    if result.budget_remaining_28d is not None and budget_finding:
        _budget_finding(rb, result.budget_remaining_28d, window)
    return result


def error_ratio_graph(rb: RunbookLike, budget: ErrorBudget) -> bool:
    """The 5xx ratio over the lookback, with the page and ticket burn-rate thresholds, the spike
    start and, where Kubernetes is configured, the rollouts of the service's deployment marked."""
    if budget.series.empty:
        return False
    th = rb.thresholds
    allowed = slo.error_budget(budget.objective)
    markers: dict[str, Any] = {"spike": budget.spike_start}
    try:
        history = rb.kubernetes.rollout_history(rb.service.deployment)
        for _, row in history.iterrows():
            markers[f"rev {row['revision']}"] = row["created"].to_pydatetime()
    except SourceError:
        pass  # no Kubernetes here: the graph shows what Prometheus knows
    shown = timeseries(
        rb,
        budget.series,
        f"5xx ratio (5m), last {duration(th.spike_lookback_s)}",
        percent=True,
        thresholds={
            f"{t.name} burn ({t.severity} if it holds {t.long_window})": allowed * t.burn_rate
            for t in tiers(rb)
            if t.severity == "page"
        },
        markers=markers,
    )
    rb.query_link(
        ratio_expr(rb, "5m"), "5xx ratio (5m)", th.spike_lookback_s, panel=("slo.json", "5xx Error Rate (last 7 days)")
    )
    return shown


def _budget_finding(rb: RunbookLike, remaining: float, window: str) -> None:
    """The budget over the SLO's window and its policy; provisional (never louder than info)
    while Prometheus holds less than 90 % of the window."""
    _, everything = _selectors(rb)
    window_h = slo.parse_duration(window) / 3600
    hours = rb.prometheus.scalar(sli.data_hours_expr(everything, window), rb.now) or 0.0
    left = (
        f"{remaining:.0%} of the {window} error budget remains"
        if remaining >= 0
        else (f"the {window} error budget is overspent ({-remaining:.0%} over)")
    )
    if hours < window_h * 0.9:
        verdict = "info"
        text = (
            f"Provisional, from only {hours:.0f} h of the {window_h:.0f} h window: {left}; "
            f"policy would be: {slo.budget_policy(remaining)}."
        )
    else:
        verdict = "ok" if remaining > 0.5 else "warning" if remaining > 0.1 else "critical"
        text = f"{left}: {slo.budget_policy(remaining)}."
    rb.finding(f"Error budget ({window})", verdict, text, budget_remaining=remaining, data_hours=hours)


def spike_start(series: pd.DataFrame, threshold: float) -> datetime | None:
    """Start of the latest contiguous run of points above ``threshold`` that reaches the end."""
    if series.empty or "value" not in series:
        return None
    s = series.sort_values("timestamp")
    above = (s["value"] > threshold).tolist()
    if not above or not above[-1]:
        return None
    i = len(above) - 1
    while i > 0 and above[i - 1]:
        i -= 1
    return s["timestamp"].iloc[i].to_pydatetime()
