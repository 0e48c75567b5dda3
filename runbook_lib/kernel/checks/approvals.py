"""The approval queue on the Operator dashboard (SRE_PACKAGE.md: "Approval Queue"): the backlog,
the age of its oldest item, items past their expiry, and the decisions flowing."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from runbook_lib.core.present import duration
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import approvals


@dataclass
class Backlog(Result):
    pending: int = 0
    oldest_s: float | None = None
    past_expiry: int = 0
    past_expiry_ids: list[int] = field(default_factory=list)  # the first 100, oldest expiry first
    by_type: dict[str, int] = field(default_factory=dict)


@check("Approval backlog", Backlog, essential=True)
def approval_backlog(rb: RunbookLike) -> Backlog:
    """Pending approvals by type: how many, the oldest's age, how many are past their expiry."""
    pending = approvals.pending(rb.postgres)
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
    ids = approvals.past_expiry(rb.postgres) if past else []
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
    f = approvals.flow(rb.postgres)
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
        cause = cause or "approvers_absent"
        last = "never" if since is None else f"{duration(since)} ago"
        text += f"No approval has been decided since {last}: nobody is reviewing the queue."
    elif f["arrived_last_hour"] > max(2 * f["decided_last_hour"], 5):
        cause = cause or "approvals_outpaced"
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
