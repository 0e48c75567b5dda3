"""The emergency controls (kill switch, safe mode, operator takeover): which are on, who switched
them, when and why, and the work held since."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from runbook_lib.core.present import ago, duration, iso
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import controls as control_data


@dataclass
class Controls(Result):
    on: list[str] = field(default_factory=list)  # OMNIHUB_KILL_SWITCH, ...
    since: datetime | None = None  # when the earliest control still on was switched on
    state: dict[str, Any] = field(default_factory=dict)


@check("Emergency controls", Controls, essential=True)
def emergency_controls(rb: RunbookLike) -> Controls:
    """Each control's state, and its last change from audit_logs: who, when, why."""
    state = control_data.controls(rb.postgres)
    history = control_data.control_history(rb.postgres)
    last = {str(r["control"]): r for _, r in history.iterrows()}
    rows, on, since = [], [], None
    for key, label in control_data.CONTROL_NAMES.items():
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
    held = control_data.held_work(rb.postgres, controls.since)
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
