"""The SLIs of the catalog's SLOs as PromQL: for each SLO, the error ratio (bad events over all
events, or the share of time down) over any window, and the expression that counts how much
data there is (names from the ``metrics`` settings); and :func:`evaluate`, one SLO's budget,
burn rates, band and tiers now, from any Prometheus client. Shared by the low-error-budget
runbook, the SLO report and ``runbook slo``."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from runbook_lib.core.settings import MetricNames
from runbook_lib.sre import slo
from runbook_lib.sre.catalog import SLOSpec
from runbook_lib.sre.promql import label_name, selector


@dataclass(frozen=True)
class SLI:
    slo: str
    description: str
    ratio: Callable[[str], str]  # window -> PromQL error ratio over it
    coverage: str  # a selector whose samples show how far back data goes (see data_hours_expr)


def _window(window: str) -> str:
    slo.parse_duration(window)  # refuse anything that is not a plain duration
    return window


def _ratio(bad: str, every: str) -> Callable[[str], str]:
    """bad events / all events over a window; no bad series yet counts as zero bad events."""
    return lambda w: f"(sum(increase({bad}[{_window(w)}])) or vector(0)) / sum(increase({every}[{_window(w)}]))"


def le_matcher(threshold: float) -> tuple[str, str]:
    """An ``le`` matcher for a bucket boundary however the client formats it ("1" or "1.0")."""
    text = f"{threshold:g}"
    return ("=~", re.escape(text) + ("0*" if "." in text else r"(\.0*)?"))


def api_scope(m: MetricNames) -> dict[str, str]:
    """The matcher every query about the API carries: its job (metrics.api_job). Another job's
    requests under the same metric name are not the API's."""
    return {label_name(m.job_label): m.api_job}


def for_slo(spec: SLOSpec, m: MetricNames) -> SLI | None:
    """The SLI of one catalog SLO; None for an SLI kind we cannot measure from Prometheus."""
    if spec.sli == "availability" and spec.service == "database":
        up = selector(m.database_up)
        ratio = lambda w: f"1 - avg(avg_over_time({up}[{_window(w)}]))"  # noqa: E731
        return SLI(spec.name, f"share of time {m.database_up} is 0", ratio, up)
    # the API's SLIs count the API's requests only (metrics.api_job): another job's requests
    # under the same metric name are not the API's availability or latency
    job = api_scope(m)
    if spec.sli == "availability":
        status = label_name(m.status_label)
        bad = selector(m.http_requests, **job, **{status: ("=~", m.error_status_regex)})
        every = selector(m.http_requests, **job)
        return SLI(spec.name, f"{m.error_status_regex} responses / all requests", _ratio(bad, every), every)
    if spec.sli == "latency":
        threshold = float(spec.extra.get("threshold_seconds", 0.5))
        fast = selector(f"{m.latency_histogram}_bucket", **job, le=le_matcher(threshold))
        count = selector(f"{m.latency_histogram}_count", **job)
        ratio = lambda w: f"1 - sum(increase({fast}[{_window(w)}])) / sum(increase({count}[{_window(w)}]))"  # noqa: E731
        return SLI(spec.name, f"requests slower than {threshold:g}s / all requests", ratio, count)
    outcomes = {"workflow_success": m.workflows_total, "execution_success": m.executions_total}
    if spec.sli in outcomes:
        metric = outcomes[spec.sli]
        failed = selector(metric, **{label_name(m.outcome_label): m.failed_outcome})
        every = selector(metric)
        return SLI(spec.name, f"{m.failed_outcome} / all finished ({metric})", _ratio(failed, every), every)
    return None


def data_hours_expr(series: str, window: str) -> str:
    """How many of the window's hours hold any sample of ``series``: robust to scrape (or
    backfill) intervals up to an hour, unlike sampling the series itself once an hour."""
    return f"count_over_time((sum(count_over_time({series}[1h])))[{_window(window)}:1h])"


REPORT_WINDOWS = ("1h", "6h", "3d")  # the burn rates a person reads; the tiers read more


@dataclass
class Status:
    """One SLO now: its budget over the window, burn rates, band, tiers firing, exhaustion."""

    slo: str
    sli: str
    objective: float
    window: str
    description: str = ""
    ratio: float | None = None
    remaining: float | None = None
    burns: dict[str, float | None] = field(default_factory=dict)
    band: slo.Band | None = None
    firing: list[slo.Tier] = field(default_factory=list)
    exhaustion_s: float | None = None
    data_hours: float = 0.0
    provisional: bool = True
    problem: str = ""  # why there is no number (no SLI source, no data, Prometheus failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "slo": self.slo,
            "sli": self.sli,
            "description": self.description,
            "objective": self.objective,
            "window": self.window,
            "error_ratio": self.ratio,
            "budget_remaining": self.remaining,
            "burn_rates": self.burns,
            "band": self.band.name if self.band else None,
            "action": self.band.policy if self.band else None,
            "deploys": self.band.deploys if self.band else None,
            "firing": [t.name for t in self.firing],
            "exhaustion_s": self.exhaustion_s,
            "data_hours": self.data_hours,
            "provisional": self.provisional,
            "problem": self.problem,
        }


class Queryable(Protocol):
    def scalar(self, expr: str, at: datetime | float | None = None) -> float | None: ...


def evaluate(
    prom: Queryable,
    spec: SLOSpec,
    m: MetricNames,
    now: datetime,
    window: str | None = None,
    tiers: tuple[slo.Tier, ...] | None = None,
) -> Status:
    """Measure one SLO at ``now`` over ``window`` (default: its own); ``tiers``: its burn-rate
    tiers (the catalog's, ``Catalog.tiers_of``; default the Workbook's for its period). Raises
    the Prometheus client's errors; an SLI we cannot measure, or no data, is said in ``problem``."""
    tiers = tiers or slo.tiers_for(spec.window)
    window = window or spec.window
    window_s = slo.parse_duration(window)
    status = Status(spec.name, spec.sli, spec.objective, window)
    indicator = for_slo(spec, m)
    if indicator is None:
        status.problem = f"no Prometheus SLI for {spec.sli!r}"
        return status
    status.description = indicator.description
    status.ratio = slo.finite(prom.scalar(indicator.ratio(window), now))
    tier_windows = {w for t in tiers for w in (t.long_window, t.short_window)}
    for w in sorted({*REPORT_WINDOWS, *tier_windows}, key=slo.parse_duration):
        status.burns[w] = slo.burn_rate(slo.finite(prom.scalar(indicator.ratio(w), now)), spec.objective)
    status.data_hours = prom.scalar(data_hours_expr(indicator.coverage, window), now) or 0.0
    status.provisional = status.data_hours < window_s / 3600 * 0.9
    status.remaining = slo.budget_remaining(status.ratio, spec.objective)
    if status.remaining is None:
        status.problem = "no events in the window"
        return status
    status.band = slo.policy_band(status.remaining)
    status.firing = slo.firing_tiers(status.burns, tiers)
    current = next((status.burns[w] for w in REPORT_WINDOWS if status.burns.get(w) is not None), None)
    status.exhaustion_s = slo.exhaustion_at_s(status.remaining, current, window_s)
    return status
