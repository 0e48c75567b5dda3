"""The Operator dashboard: the approval queue (backlog, age, expiry, decisions) and the
emergency controls (which are on, who switched them, when and why, and the work held since)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from ...present import ago, duration, iso
from ..protocol import RunbookLike
from ..sources.postgres import operator
from .base import Result, check


@dataclass
class Backlog(Result):
    pending: int = 0
    oldest_s: float | None = None
    past_expiry: int = 0
    past_expiry_ids: list[int] = field(default_factory=list)  # the first 100, oldest expiry first
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass
class Controls(Result):
    on: list[str] = field(default_factory=list)  # OMNIHUB_KILL_SWITCH, ...
    since: datetime | None = None  # when the earliest control still on was switched on
    state: dict[str, Any] = field(default_factory=dict)


@check("Approval backlog", Backlog, essential=True)
def approval_backlog(rb: RunbookLike) -> Backlog:
    """Pending approvals by type: how many, the oldest's age, how many are past their expiry."""
    pending = operator.pending(rb.postgres)
    rb.table(pending, title="Pending approvals by type")
    title = "Approval backlog"
    if pending.empty:
        rb.finding(title, "ok", "No approval is pending.", role="symptom", pending=0)
        return Backlog()
    th = rb.thresholds
    total = int(pending["pending"].sum())
    oldest = float(pending["oldest_s"].max())
    past = int(pending["past_expiry"].sum())
    by_type = {str(r["type"]): int(r["pending"]) for _, r in pending.iterrows()}
    verdict = "warning" if total > th.approval_pending_warn or oldest > th.approval_age_warn_s else "ok"
    if total > 3 * th.approval_pending_warn:
        verdict = "critical"
    ids = operator.past_expiry(rb.postgres) if past else []
    kinds = ", ".join(f"{k} {v}" for k, v in by_type.items())
    rb.finding(
        title,
        verdict,
        f"{total} approval(s) pending ({kinds}); the oldest waiting {duration(oldest)}"
        + (f"; {past} past their expiry" if past else "")
        + ".",
        role="symptom",
        pending=total,
        oldest_s=oldest,
        past_expiry=past,
        past_expiry_ids=ids,
        by_type=by_type,
    )
    return Backlog(pending=total, oldest_s=oldest, past_expiry=past, past_expiry_ids=ids, by_type=by_type)


@check("Approval flow", Result)
def approval_flow(rb: RunbookLike, backlog: Backlog) -> Result:
    """Why it backs up: arrivals against decisions in the last hour, the last decision's age,
    expiry that is not happening; and today's decisions as the Operator dashboard shows them."""
    f = operator.flow(rb.postgres)
    rb.table(
        pd.DataFrame(
            [
                {"": "approved today", "count": f["approved_today"]},
                {"": "rejected today", "count": f["rejected_today"]},
                {"": "expired today", "count": f["expired_today"]},
                {"": "requested in the last hour", "count": f["arrived_last_hour"]},
                {"": "decided in the last hour", "count": f["decided_last_hour"]},
            ]
        ),
        title="Decisions (Operator dashboard, row 2)",
    )
    title = "Approval flow"
    since = f["since_last_decision_s"]
    cause, text = None, ""
    if backlog.past_expiry:
        cause = "expiry_stalled"
        text = (
            f"{backlog.past_expiry} pending approval(s) are past their expiry and still pending: the expiry job is "
            "not running (it would have marked them expired). "
        )
    if backlog.pending and (since is None or since > rb.thresholds.approval_age_warn_s):
        cause = cause or "no_reviewers"
        last = "never" if since is None else f"{duration(since)} ago"
        text += f"No approval has been decided since {last}: nobody is reviewing the queue."
    elif f["arrived_last_hour"] > max(2 * f["decided_last_hour"], 5):
        cause = cause or "arrivals_outpace_decisions"
        text += (
            f"{f['arrived_last_hour']} requested in the last hour against {f['decided_last_hour']} decided: "
            "reviewers are not keeping up (a burst of requests, or too few reviewers on shift)."
        )
    if cause:
        rb.finding(title, "warning", text.strip(), role="cause", cause=cause, **f)
    else:
        rb.finding(
            title,
            "info",
            f"{f['arrived_last_hour']} requested and {f['decided_last_hour']} decided in the last hour; today "
            f"{f['approved_today']} approved, {f['rejected_today']} rejected, {f['expired_today']} expired.",
            **f,
        )
    return Result()


@check("Emergency controls", Controls, essential=True)
def emergency_controls(rb: RunbookLike) -> Controls:
    """Each control's state, and its last change from audit_logs: who, when, why."""
    state = operator.controls(rb.postgres)
    history = operator.control_history(rb.postgres)
    last = {str(r["control"]): r for _, r in history.iterrows()}
    rows, on, since = [], [], None
    for key, label in operator.CONTROL_NAMES.items():
        change = last.get(label)
        enabled = bool(state[key])
        rows.append(
            {
                "control": label,
                "state": "ON" if enabled else "off",
                "changed_at": change["changed_at"] if change is not None else None,
                "by": change["actor"] if change is not None else None,
                "action": change["action"] if change is not None else None,
                "reason": change["reason"] if change is not None else None,
            }
        )
        if not enabled:
            continue
        on.append(label)
        at = change["changed_at"] if change is not None else state["updated_at"]
        since = min(since, at) if since is not None else at
        if change is None:
            rb.finding(
                f"{label}",
                "critical",
                f"{label} is ON with no audit_logs entry: switched outside the application (direct SQL?). The row "
                f"names {state['updated_by']!r} at {iso(state['updated_at'])}, reason {state['reason']!r}.",
                role="cause",
                control=label,
                enabled=True,
                audited=False,
                updated_by=state["updated_by"],
                reason=state["reason"],
            )
        else:
            rb.finding(
                f"{label}",
                "critical" if key == "omnihub_kill_switch" else "warning",
                f"{label} is ON since {iso(at)} ({ago(at, rb.now)}), switched by {change['actor']} "
                f"({change['action']}): {change['reason'] or 'no reason recorded'}.",
                role="cause",
                control=label,
                enabled=True,
                audited=True,
                actor=change["actor"],
                changed_at=at,
                reason=change["reason"],
            )
    rb.table(pd.DataFrame(rows), title="Emergency controls (Operator dashboard, row 1)")
    if not on:
        rb.finding("Emergency controls", "ok", "Every emergency control is off.", role="symptom")
    return Controls(on=on, since=since, state=state)


@check("Work held", Result)
def held_work(rb: RunbookLike, controls: Controls) -> Result:
    """Workflows queued, and approvals requested, since the earliest control still on was switched on."""
    if not controls.on or controls.since is None:
        return Result.unchecked("no control is on")
    held = operator.held_work(rb.postgres, controls.since)
    rb.table(pd.DataFrame([held]), title="Work held since the switch")
    rb.finding(
        "Work held",
        "warning" if held["queued_since"] else "info",
        f"Since {iso(controls.since)}: {held['queued_since']} workflow(s) queued and {held['approvals_since']} "
        f"approval(s) requested, waiting; {held['queued_total']} queued in all (the oldest for "
        f"{duration(held['oldest_queued_s'])}), {held['running']} still running. They start when the switch is off.",
        role="symptom",
        **held,
    )
    return Result()
