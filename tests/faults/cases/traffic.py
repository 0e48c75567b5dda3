"""Fault cases of the traffic runbooks: high-error-rate and low-error-budget, on API traffic
written into Prometheus (OpenMetrics, backfilled), the fake Kubernetes API server's rollout
history and pods, and loopback health endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from tests.faults.matrix import NAMESPACE, Bench, Case, Setup

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def traffic(
    out: TextIO,
    job: str,
    ratio: callable,  # type: ignore[valid-type]
    hours: float = 72,
    per_s: float = 50.0,
    endpoints: dict[str, float] | None = None,
) -> None:
    """API traffic of ``job`` for ``hours`` up to NOW (+ 30 min), every minute; ``ratio(t,
    endpoint)`` the share failing. Counters, so rates and increases work over any window."""
    endpoints = endpoints or {"/api/v1/workflows": 0.5, "/api/v1/approvals": 0.3, "/healthz": 0.2}
    start = NOW - timedelta(hours=hours)
    steps = int((hours + 0.5) * 60)
    out.write("# HELP http_requests Total HTTP requests.\n# TYPE http_requests counter\n")
    for ep, share in endpoints.items():
        ok = err = 0.0
        ok_lines, err_lines = [], []
        for i in range(steps + 1):
            t = start + timedelta(minutes=i)
            n = per_s * share * 60
            e = n * ratio(t, ep)
            ok, err = ok + n - e, err + e
            ok_lines.append(f"{ok:.1f} {t.timestamp():.0f}")
            err_lines.append(f"{err:.1f} {t.timestamp():.0f}")
        for status, lines in (("200", ok_lines), ("500", err_lines)):
            for v in lines:
                out.write(f'http_requests_total{{endpoint="{ep}",job="{job}",status="{status}"}} {v}\n')


SPREAD = {"/api/v1/workflows": 0.35, "/api/v1/approvals": 0.35, "/healthz": 0.3}  # no endpoint dominates


def settings_for_job(job: str) -> str:
    return f"metrics:\n  api_job: {job}\nservice:\n  deployment: api-gateway\n"


@contextlib.contextmanager
def rollout_then_errors(bench: Bench, work: Path) -> Iterator[Setup]:
    """Revision 7 rolled out 25 minutes ago; 5 minutes later /api/v1/workflows starts failing 20 %."""
    spike = NOW - timedelta(minutes=20)

    def data(out: TextIO) -> None:
        traffic(out, "rollout-job", lambda t, ep: 0.2 if t >= spike and ep == "/api/v1/workflows" else 0.0005)

    url = bench.prometheus("rollout", data)
    kube = bench.kube()
    kube.add_api_gateway(NAMESPACE, spike - timedelta(minutes=5), cpu_usage="100m", error_lines=0)
    yield Setup(
        env={"RUNBOOK_PROMETHEUS_URL": url, "KUBECONFIG": bench.kubeconfig(kube), "RUNBOOK_KUBE_NAMESPACE": NAMESPACE},
        parameters=settings_for_job("rollout-job"),
        starts_at=spike + timedelta(minutes=3),
    )


@contextlib.contextmanager
def errors_then_rollout(bench: Bench, work: Path) -> Iterator[Setup]:
    """Errors began 40 minutes ago; revision 7 rolled out 10 minutes ago (a fix attempt): the
    rollout is no cause. Nothing else explains the errors: escalate."""
    spike = NOW - timedelta(minutes=40)

    def data(out: TextIO) -> None:
        traffic(out, "late-rollout-job", lambda t, ep: 0.05 if t >= spike else 0.0005, endpoints=SPREAD)

    url = bench.prometheus("late-rollout", data)
    kube = bench.kube()
    kube.add_api_gateway(NAMESPACE, NOW - timedelta(minutes=10), cpu_usage="100m", error_lines=0)
    yield Setup(
        env={"RUNBOOK_PROMETHEUS_URL": url, "KUBECONFIG": bench.kubeconfig(kube), "RUNBOOK_KUBE_NAMESPACE": NAMESPACE},
        parameters=settings_for_job("late-rollout-job"),
        starts_at=spike + timedelta(minutes=3),
    )


CASES = [
    Case(
        name="errors-after-rollout",
        alertname="HighErrorBudgetBurnRate",
        runbook="high-error-rate",
        cause="rollout",
        action="rollback",
        verdicts=("critical",),
        inject=rollout_then_errors,
        what="5xx on one endpoint 5 min after revision 7",
        severity="critical",
    ),
    Case(
        name="rollout-after-errors",
        alertname="HighErrorBudgetBurnRate",
        runbook="high-error-rate",
        cause=None,
        action="safe_mode",
        verdicts=("critical",),
        inject=errors_then_rollout,
        what="5xx everywhere, revision 7 rolled out 30 min after they began",
        severity="critical",
    ),
]
