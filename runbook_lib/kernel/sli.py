"""The SLIs of the catalog's SLOs as PromQL: for each SLO, the error ratio (bad events over all
events, or the share of time down) over any window, and the expression that counts how much
data there is. Names come from the ``metrics`` settings. Pure: builds strings, runs nothing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..catalog import SLOSpec
from ..settings import MetricNames
from . import slo
from .promql import label_name, selector


@dataclass(frozen=True)
class SLI:
    slo: str
    description: str
    ratio: Callable[[str], str]  # window -> PromQL error ratio over it
    coverage: str  # PromQL series whose samples show how far back data goes


def _window(window: str) -> str:
    slo.parse_duration(window)  # refuse anything that is not a plain duration
    return window


def for_slo(spec: SLOSpec, m: MetricNames) -> SLI | None:
    """The SLI of one catalog SLO; None for an SLI kind we cannot measure from Prometheus."""
    if spec.sli == "availability" and spec.service == "database":
        up = selector("pg_up")
        return SLI(spec.name, "share of time pg_up is 0", lambda w: f"1 - avg(avg_over_time({up}[{_window(w)}]))", up)
    if spec.sli == "availability":
        status = label_name(m.status_label)
        bad = selector(m.http_requests, **{status: ("=~", m.error_status_regex)})
        every = selector(m.http_requests)
        return SLI(
            spec.name,
            f"{m.error_status_regex} responses / all requests",
            lambda w: f"sum(increase({bad}[{_window(w)}])) / sum(increase({every}[{_window(w)}]))",
            f"sum({every})",
        )
    if spec.sli == "latency":
        threshold = float(spec.extra.get("threshold_seconds", 0.5))
        fast = selector(f"{m.latency_histogram}_bucket", le=f"{threshold:g}")
        count = selector(f"{m.latency_histogram}_count")
        return SLI(
            spec.name,
            f"requests slower than {threshold:g}s / all requests",
            lambda w: f"1 - sum(increase({fast}[{_window(w)}])) / sum(increase({count}[{_window(w)}]))",
            f"sum({count})",
        )
    outcomes = {"workflow_success": "omnihub_workflows_total", "execution_success": "omnihub_executions_total"}
    if spec.sli in outcomes:
        metric = outcomes[spec.sli]
        failed = selector(metric, status="failed")
        every = selector(metric)
        return SLI(
            spec.name,
            f"failed / all finished ({metric})",
            lambda w: f"sum(increase({failed}[{_window(w)}])) / sum(increase({every}[{_window(w)}]))",
            f"sum({every})",
        )
    return None
