"""Fault cases of the traffic runbooks: high-error-rate and low-error-budget, on API traffic
written into Prometheus (OpenMetrics, backfilled), the fake Kubernetes API server's rollout
history and pods, and loopback health endpoints."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from tests.faults.matrix import NAMESPACE, Bench, Case, Setup
from tests.helpers import unreachable_kubeconfig

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def traffic(
    out: TextIO,
    job: str,
    ratio: Callable[[datetime, str], float],
    hours: float = 72,
    per_s: float = 50.0,
    endpoints: dict[str, float] | None = None,
) -> None:
    """API traffic of ``job`` for ``hours`` up to NOW (+ 30 min); ``ratio(t, endpoint)`` the
    share failing. A sample a minute over the last six hours, every ten minutes before (a month
    stays small). Counters, so rates and increases work over any window."""
    endpoints = endpoints or {"/api/v1/workflows": 0.5, "/api/v1/approvals": 0.3, "/healthz": 0.2}
    start, fine = NOW - timedelta(hours=hours), NOW - timedelta(hours=6)
    times, t = [], start
    while t <= NOW + timedelta(minutes=30):
        times.append(t)
        t += timedelta(minutes=1 if t >= fine else 10)
    out.write("# HELP http_requests Total HTTP requests.\n# TYPE http_requests counter\n")
    for ep, share in endpoints.items():
        ok = err = 0.0
        ok_lines, err_lines = [], []
        for prev, t in zip([None, *times[:-1]], times, strict=True):
            n = per_s * share * ((t - prev).total_seconds() if prev else 60)
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


def kube_env(bench: Bench, kube: Any) -> dict[str, str]:
    return {"KUBECONFIG": bench.kubeconfig(kube), "RUNBOOK_KUBE_NAMESPACE": NAMESPACE}


@contextlib.contextmanager
def rollout_and_saturation(bench: Bench, work: Path) -> Iterator[Setup]:
    """Revision 7 rolled out 25 minutes ago, /api/v1/workflows fails 20 % since 5 minutes after,
    and the new pods run at their CPU limit: two causes, the rollout first (it explains the
    saturation too), and one option recommended."""
    spike = NOW - timedelta(minutes=20)

    def data(out: TextIO) -> None:
        traffic(out, "saturated-job", lambda t, ep: 0.2 if t >= spike and ep == "/api/v1/workflows" else 0.0005)

    url = bench.prometheus("saturated", data)
    kube = bench.kube()
    kube.add_api_gateway(NAMESPACE, spike - timedelta(minutes=5), cpu_usage="490m", error_lines=0)
    yield Setup(
        env={"RUNBOOK_PROMETHEUS_URL": url, **kube_env(bench, kube)},
        parameters=settings_for_job("saturated-job"),
        starts_at=spike + timedelta(minutes=3),
    )


@contextlib.contextmanager
def database_down(bench: Bench, work: Path) -> Iterator[Setup]:
    """5xx on every endpoint for 30 minutes, no rollout for three days, and PostgreSQL refuses
    connections: the dependency is the incident. Safe mode (its switch lives in PostgreSQL)
    cannot help."""
    spike = NOW - timedelta(minutes=30)

    def data(out: TextIO) -> None:
        traffic(out, "db-down-job", lambda t, ep: 0.08 if t >= spike else 0.0005, endpoints=SPREAD)

    url = bench.prometheus("db-down", data)
    kube = bench.kube()
    kube.add_api_gateway(NAMESPACE, NOW - timedelta(days=3), cpu_usage="100m", error_lines=0)
    yield Setup(
        env={
            "RUNBOOK_PROMETHEUS_URL": url,
            "RUNBOOK_POSTGRES_DSN": f"postgresql://omnihub@{bench.refused()}/omnihub",
            **kube_env(bench, kube),
        },
        parameters=settings_for_job("db-down-job"),
        starts_at=spike + timedelta(minutes=3),
    )


@contextlib.contextmanager
def budget_on_two_hours(bench: Bench, work: Path) -> Iterator[Setup]:
    """Prometheus holds two hours of a 28-day window, at 0.95 % errors: "overspent 850 %" is
    arithmetic on too little data. Never louder than a warning; nothing to decide yet."""

    def data(out: TextIO) -> None:
        traffic(out, "young-job", lambda t, ep: 0.0095, hours=2, endpoints=SPREAD)

    url = bench.prometheus("young", data)
    yield Setup(env={"RUNBOOK_PROMETHEUS_URL": url}, parameters=settings_for_job("young-job"))


@contextlib.contextmanager
def budget_burn_kube_down(bench: Bench, work: Path) -> Iterator[Setup]:
    """27 days of data: 0.03 % errors, then 0.5 % for the last three days: about 18 % of the
    budget left (FREEZE). The Kubernetes API is down, which is no cause here: the budget leads,
    rollouts are listed as not checked."""
    burn_from = NOW - timedelta(days=3)

    def data(out: TextIO) -> None:
        traffic(out, "burn-job", lambda t, ep: 0.005 if t >= burn_from else 0.0003, hours=27 * 24, endpoints=SPREAD)

    url = bench.prometheus("burn", data)
    yield Setup(
        env={
            "RUNBOOK_PROMETHEUS_URL": url,
            "KUBECONFIG": str(unreachable_kubeconfig(work / "kubeconfig", bench.refused(), NAMESPACE)),
        },
        parameters=settings_for_job("burn-job"),
    )


# -- what each case's defect looked like ----------------------------------------------------------
def one_recommendation(record: dict[str, Any]) -> list[str]:
    shown = [a["name"] for a in record["actions"] if a.get("recommended")]
    return [] if len(shown) == 1 else [f"{len(shown)} actions recommended: {shown}"]


def causes_ranked(*codes: str) -> Callable[[dict[str, Any]], list[str]]:
    def check(record: dict[str, Any]) -> list[str]:
        found = record["diagnosis"]["causes"][: len(codes)]
        return one_recommendation(record) + ([] if found == list(codes) else [f"causes {found}, want {list(codes)}"])

    return check


def no_safe_mode(record: dict[str, Any]) -> list[str]:
    bad = [a["name"] for a in record["actions"] if a.get("recommended") and a["name"] == "safe_mode"]
    return [f"recommended {bad} with its switch's database down"] if bad else []


def provisional_stays_quiet(record: dict[str, Any]) -> list[str]:
    problems = []
    loud = [f["check"] for f in record["findings"] if f.get("provisional") and f["verdict"] == "critical"]
    if loud:
        problems.append(f"provisional findings shout CRITICAL: {loud}")
    if "provisional" not in record["diagnosis"]["headline"].lower():
        problems.append("the headline does not say provisional")
    twice = [f["check"] for f in record["findings"] if f["check"].startswith("Error budget (")]
    if twice:
        problems.append(f"the budget is told twice (step 2 repeats step 1): {twice}")
    return problems


def budget_leads_with_partial(record: dict[str, Any]) -> list[str]:
    d = record["diagnosis"]
    problems = [] if d["partial"] else ["no partial line for the unreachable Kubernetes API"]
    if d["provisional"]:
        problems.append("27 of 28 days of data called provisional")
    return problems


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
    Case(
        name="rollout-and-saturation",
        alertname="HighErrorBudgetBurnRate",
        runbook="high-error-rate",
        cause="rollout",
        action="rollback",
        verdicts=("critical",),
        inject=rollout_and_saturation,
        what="errors after revision 7, its pods at their CPU limit",
        severity="critical",
        expect=causes_ranked("rollout", "endpoint_bug", "saturation"),
    ),
    Case(
        name="database-down-behind-errors",
        alertname="HighErrorBudgetBurnRate",
        runbook="high-error-rate",
        cause="dependency_down",
        action="escalate",
        verdicts=("critical",),
        inject=database_down,
        what="5xx everywhere, PostgreSQL refusing, no rollout",
        severity="critical",
        expect=no_safe_mode,
    ),
    Case(
        name="budget-on-two-hours",
        alertname="LowErrorBudget",
        runbook="low-error-budget",
        cause="budget_provisional",
        action="none",
        verdicts=("warning",),
        inject=budget_on_two_hours,
        what="'overspent 850 %' from 2 h of a 28-day window",
        expect=provisional_stays_quiet,
    ),
    Case(
        name="budget-burn-kube-down",
        alertname="LowErrorBudget",
        runbook="low-error-budget",
        cause="budget_burn",
        action="escalate",
        verdicts=("warning",),
        inject=budget_burn_kube_down,
        what="18 % of the budget left, Kubernetes API down (no cause)",
        expect=budget_leads_with_partial,
    ),
]
