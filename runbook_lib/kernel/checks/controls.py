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

# An audit row and the state row it explains are written together (the application: one
# transaction; a runbook option: the change, then its "succeeded" row): seconds apart at most.
EXPLAINS_WITHIN_S = 120.0


@dataclass
class Controls(Result):
    on: list[str] = field(default_factory=list)  # OMNIHUB_KILL_SWITCH, ...
    since: datetime | None = None  # when the earliest control still on was switched on (best evidence)
    state: dict[str, Any] = field(default_factory=dict)
    switched: dict[str, dict[str, Any]] = field(default_factory=dict)  # control -> who/when/why, audited or not


def explaining_change(
    history: pd.DataFrame, label: str, enabled: bool, updated_at: datetime | None, now: datetime
) -> tuple[dict[str, Any] | None, str]:
    """The audit row of the change that produced ``label``'s current state, and why none does.

    ``history``: audit rows of every control, newest first. The row must switch the control to
    its current state (an enable for ON), no later audited change of that control may undo it,
    and it must not be older than the state row's ``updated_at`` (the row is shared by every
    control: a newer ``updated_at`` is explained only by an audited change of another control at
    that time). Otherwise None, and the reason."""
    rows = history[history["control"] == label] if not history.empty else history
    if rows.empty:
        return None, "no audit_logs row for this control at all"
    for _, r in rows.iterrows():  # newest first
        did = control_data.turns_on(str(r["action"]))
        if did is None:
            continue
        if did != enabled:
            return None, (
                f"its newest audited change, {ago(r['changed_at'], now)}, was a {'disable' if not did else 'enable'}: "
                "it was switched since without an audit row"
            )
        change = {k: r[k] for k in ("changed_at", "actor", "action", "reason")}
        at = pd.Timestamp(change["changed_at"])
        if updated_at is not None and at < pd.Timestamp(updated_at) - pd.Timedelta(seconds=EXPLAINS_WITHIN_S):
            later = history[
                (pd.to_datetime(history["changed_at"], utc=True) - pd.Timestamp(updated_at)).abs()
                <= pd.Timedelta(seconds=EXPLAINS_WITHIN_S)
            ]
            if later.empty:
                return None, (
                    f"its newest audited enable, {ago(at, now)}, is older than the state row's last change "
                    f"({iso(updated_at)}), and no audited change explains that one"
                )
        return change, ""
    return None, "no audit_logs row says who switched it"


@check("Emergency controls", Controls, essential=True)
def emergency_controls(rb: RunbookLike) -> Controls:
    """Each control's state, and who switched it to that state, when and why: the audit_logs row
    of the change that produced the current state (never merely the newest row); when none
    explains it, the state row's updated_by/updated_at are the only evidence, and it is said."""
    state = control_data.controls(rb.postgres)
    history = control_data.control_history(rb.postgres)
    rows, on, since, switched = [], [], None, {}
    for key, label in control_data.CONTROL_NAMES.items():
        enabled = bool(state[key])
        change, why_not = explaining_change(history, label, enabled, state.get("updated_at"), rb.now)
        rows.append(
            {
                "control": label,
                "state": "ON" if enabled else "off",
                "changed_at": change["changed_at"] if change else (state["updated_at"] if enabled else None),
                "by": change["actor"] if change else (state["updated_by"] if enabled else None),
                "action": change["action"] if change else ("no audit row" if enabled else None),
                "reason": change["reason"] if change else (state["reason"] if enabled else None),
            }
        )
        if not enabled:
            continue
        on.append(label)
        at = change["changed_at"] if change is not None else state["updated_at"]
        since = min(since, at) if since is not None else at
        if change is None:
            switched[label] = {
                "audited": False,
                "by": state["updated_by"],
                "at": state["updated_at"],
                "reason": state["reason"],
            }
            rb.finding(
                f"{label}",
                "critical",
                f"{label} is ON and no audit_logs row explains it ({why_not}): switched outside the application "
                f"(direct SQL?). The only evidence is the state row: updated by {state['updated_by']!r} at "
                f"{iso(state['updated_at'])} ({ago(state['updated_at'], rb.now)}), reason {state['reason']!r} "
                "(written by whoever ran the SQL: unverified).",
                role="cause",
                cause="switch_unaudited",
                control=label,
                enabled=True,
                audited=False,
                why_unaudited=why_not,
                actor=None,
                changed_at=None,
                updated_by=state["updated_by"],
                updated_at=state["updated_at"],
                reason=state["reason"],
            )
        else:
            switched[label] = {
                "audited": True,
                "by": change["actor"],
                "at": at,
                "reason": change["reason"],
            }
            rb.finding(
                f"{label}",
                "critical" if key == "omnihub_kill_switch" else "warning",
                f"{label} is ON since {iso(at)} ({ago(at, rb.now)}), switched by {change['actor']} "
                f"({change['action']}): {change['reason'] or 'no reason recorded'}.",
                role="cause",
                cause="switch_audited",
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
    return Controls(on=on, since=since, state=state, switched=switched)


def decision(rb: RunbookLike, controls: Controls) -> None:
    """What the record recommends: a switch is turned on on purpose, so never "turn it off"
    automatically: escalate to whoever switched it (audited), to the incident commander and
    security (no audit row), or nothing when every control is off."""
    if not controls.checked:
        return  # nothing measured: the diagnosis escalates by default
    if not controls.on:
        rb.no_action("every emergency control is off")
        return
    unaudited = [c for c in controls.on if not controls.switched.get(c, {}).get("audited")]
    if unaudited:
        rb.escalate(
            f"{', '.join(unaudited)} is ON with no audit row: find who ran the change before anything is switched off; "
            "treat it as a security incident",
            to="the incident commander and security",
        )
        return
    first = controls.switched[controls.on[0]]
    rb.escalate(
        f"{controls.on[0]} was switched on by {first['by']} ({first['reason'] or 'no reason recorded'}): "
        "only they or the incident commander decide when it goes off",
        to=str(first["by"]),
    )


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
