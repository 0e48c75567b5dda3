"""Error budgets of every SLO in the catalog: budget left over the SLO's window, burn rate over
1 h, 6 h and 3 d, the policy band and what it means for deploys, and when the budget runs out
at the current burn."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd

from runbook_lib.core.errors import SourceError, SourceNotConfigured
from runbook_lib.core.present import iso, percent, times
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.sre import sli, slo

BURN_WINDOWS = ("1h", "6h", "3d")
VERDICT = {"normal": "ok", "caution": "warning", "freeze": "warning", "incident": "critical"}


@dataclass
class Budgets(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    worst: dict[str, Any] | None = None


@check("Error budgets", Budgets, essential=True)
def budgets(rb: RunbookLike) -> Budgets:
    """One row per SLO: SLI, objective, budget left over its window, burn over 1h/6h/3d, band,
    projected exhaustion. Data that does not cover the window is marked provisional."""
    rows = [_evaluate(rb, spec) for spec in rb.catalog.slos]
    table = pd.DataFrame(rows)
    shown = table.assign(
        objective=table["objective"].map(lambda v: f"{v:.2%}"),
        remaining=table["remaining"].map(lambda v: percent(v, 1)),
        **{f"burn_{w}": table[f"burn_{w}"].map(times) for w in BURN_WINDOWS},
    )[["slo", "objective", "window", "remaining", *[f"burn_{w}" for w in BURN_WINDOWS], "band", "exhausted", "data"]]
    rb.table(shown, title="Error budget per SLO (catalog), least left first")
    measured = [r for r in rows if r["remaining"] is not None]
    title = "Error budgets"
    if not measured:
        rb.finding(title, "unchecked", "No SLO has data in Prometheus.", reason="no data", slos=len(rows))
        return Budgets.unchecked("no data")
    worst = min(measured, key=lambda r: r["remaining"])
    _overview(rb, measured, worst)
    for row in measured:
        _finding(rb, row)
    return Budgets(table=table, worst=worst)


def _overview(rb: RunbookLike, measured: list[dict[str, Any]], worst: dict[str, Any]) -> None:
    """What the record says first: which SLOs are below half their budget, and the policy the
    worst of them sets."""
    low = sorted((r for r in measured if r["band"] != "normal"), key=lambda r: r["remaining"])
    listed = ", ".join(f"{r['slo']} {_left(r['remaining'])} ({r['band'].upper()})" for r in low)
    summary = (
        f"{len(low)} of {len(measured)} SLOs below half their error budget: {listed}. "
        f"The policy follows the worst: {worst['policy']}."
        if low
        else f"All {len(measured)} SLOs have more than half their error budget left."
    )
    if worst["provisional"]:
        summary += (
            f" Provisional: Prometheus holds only {worst['data_hours']:.0f} h of {worst['slo']}'s {worst['window']} "
            "window, so this is no verdict on the budget yet."
        )
    rb.finding(
        "Error budgets",
        VERDICT[worst["band"]],
        summary,
        role="symptom",
        provisional=bool(worst["provisional"]),
        worst=worst["slo"],
        band=worst["band"],
        low={r["slo"]: r["band"] for r in low},
    )


def _left(remaining: float) -> str:
    return f"{remaining:.0%} left" if remaining >= 0 else f"overspent by {-remaining:.0%}"


def _evaluate(rb: RunbookLike, spec: Any) -> dict[str, Any]:
    """One SLO as a row (the measurement itself is :func:`runbook_lib.sre.sli.evaluate`)."""
    row: dict[str, Any] = {"slo": spec.name, "objective": spec.objective, "window": spec.window, "sli": spec.sli}
    row |= {f"burn_{w}": None for w in BURN_WINDOWS}
    row |= {"remaining": None, "band": "no data", "exhausted": "", "data": "", "provisional": True, "firing": []}
    try:
        st = sli.evaluate(rb.prometheus, spec, rb.metrics, rb.now, tiers=rb.catalog.tiers_of(spec))
    except SourceNotConfigured:
        raise  # the check records "not configured" once, not one row per SLO
    except SourceError as exc:
        return row | {"band": "unchecked", "data": str(exc)[:200]}
    row |= {f"burn_{w}": st.burns.get(w) for w in BURN_WINDOWS}
    if st.band is None or st.remaining is None:
        return row | {"band": "no SLI source" if st.description == "" else "no data", "data": st.problem}
    window_h = slo.parse_duration(spec.window) / 3600
    exhausted = (
        "already"
        if st.exhaustion_s == 0
        else "never at this burn"
        if st.exhaustion_s is None
        else iso(rb.now + timedelta(seconds=st.exhaustion_s))
    )
    return row | {
        "remaining": st.remaining,
        "band": st.band.name,
        "policy": st.band.policy,
        "deploys": st.band.deploys,
        "exhausted": exhausted,
        "exhausted_in_s": st.exhaustion_s,
        "data_hours": st.data_hours,
        "provisional": st.provisional,
        "data": f"{st.data_hours:.0f} h of {window_h:.0f} h" + (" (provisional)" if st.provisional else ""),
        "description": st.description,
        "firing": [t.name for t in st.firing],
        "expr": indicator.ratio(spec.window) if (indicator := sli.for_slo(spec, rb.metrics)) else "",
    }


def _finding(rb: RunbookLike, row: dict[str, Any]) -> None:
    remaining = row["remaining"]
    window_s = slo.parse_duration(row["window"])
    panel = ("slo.json", f"Error Budget Remaining ({row['slo']})")
    rb.query_link(row["expr"], f"{row['slo']}: error ratio over {row['window']}", window_s, panel=panel)
    left = f"{row['window']} error budget {_left(remaining)}"
    burns = ", ".join(f"{times(row[f'burn_{w}'])} over {w}" for w in BURN_WINDOWS)
    when = (
        "already exhausted"
        if row["exhausted"] == "already"
        else f"runs out {row['exhausted']} at the current burn"
        if row["exhausted_in_s"] is not None
        else "never runs out at this burn (below 1x, a rolling window recovers)"
    )
    provisional = (
        f" Provisional: Prometheus holds only {row['data_hours']:.0f} h of the window." if row["provisional"] else ""
    )
    rb.finding(
        f"Error budget: {row['slo']}",
        VERDICT[row["band"]],
        f"{row['slo']} (objective {row['objective']:.2%}): {left}; burn {burns}; {when}. "
        f"Policy band {row['band'].upper()}: {row['policy']} (deploys: {row['deploys']})."
        + (f" Burn-rate tiers firing: {', '.join(row['firing'])}." if row["firing"] else "")
        + provisional,
        role="cause" if row["band"] in ("freeze", "incident") else None,
        cause=(
            ("budget_provisional" if row["provisional"] else "budget_burn")
            if row["band"] in ("freeze", "incident")
            else None
        ),
        slo=row["slo"],
        objective=row["objective"],
        window=row["window"],
        budget_remaining=remaining,
        burn_rates={w: row[f"burn_{w}"] for w in BURN_WINDOWS},
        band=row["band"],
        deploys=row["deploys"],
        exhausted_at=row["exhausted"],
        firing_tiers=row["firing"],
        provisional=row["provisional"],
        data_hours=row["data_hours"],
    )


ESCALATE_TO = {"caution": "the team lead", "freeze": "the engineering manager", "incident": "the incident commander"}


def policy_decision(rb: RunbookLike, budgets: Budgets, rollout_suspect: dict[str, Any] | None = None) -> None:
    """What the record recommends: the budget policy is a human decision, so "escalate" to who
    makes it (team lead, engineering manager, incident commander by band), or no action while the
    budget is above half or still provisional (too little of the window has data to freeze on)."""
    worst = budgets.worst
    if worst is None:
        return  # nothing measured: the diagnosis escalates by default
    if worst["provisional"]:
        rb.no_action(
            f"the budget is provisional (only {worst['data_hours']:.0f} h of the {worst['window']} window has data): "
            "no deploy freeze on so little data; the burn-rate alerts watch the rate meanwhile"
        )
        return
    band = worst["band"]
    if band == "normal":
        rb.no_action("every SLO has more than half its budget left: deploy freely")
        return
    release = (
        f"; revision {rollout_suspect['revision']} rolled out just before the errors: run the deployment-failure "
        "runbook for it"
        if rollout_suspect
        else ""
    )
    rb.escalate(f"{worst['slo']} is in the {band.upper()} band: {worst['policy']}{release}", to=ESCALATE_TO[band])
