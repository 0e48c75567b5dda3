"""The guard every resolution option passes through (see the package docstring for its rules):
prepare the exact change, refuse unless every condition holds, audit, change, audit the outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from runbook_lib.core.contract import APPROVALS, approved, jsonable
from runbook_lib.core.errors import SourceError
from runbook_lib.core.shapes import Action, ActionStatus
from runbook_lib.kernel.protocol import RunbookLike


def public(plan: dict[str, Any]) -> dict[str, Any]:
    """What a plan shows in the record and the audit row: keys starting with "_" hold what the
    change needs but nobody may read (a pod template with the application's secret values)."""
    return {k: v for k, v in plan.items() if not k.startswith("_")}


@dataclass(frozen=True)
class Option:
    """One resolution option: its approval name, what it touches, and how."""

    name: str  # one of contract.APPROVALS
    title: str
    target: str
    command: str
    resource: tuple[str, str]  # audit_logs resource_type, resource_id
    plan: Callable[[], dict[str, Any]]
    perform: Callable[[dict[str, Any]], dict[str, Any]]
    missing: str = ""  # what the operator must still give (a reason, the items): refused until then

    def __post_init__(self) -> None:
        if self.name not in APPROVALS:
            raise ValueError(f"option {self.name!r} is not one of the approval names {APPROVALS}")


class Guard:
    def __init__(self, rb: RunbookLike) -> None:
        self.rb = rb

    # -- the guard ------------------------------------------------------------------------------
    def _run(self, option: Option, recommended: bool | None, why: str) -> dict[str, Any]:
        """Prepare the option's exact change, then do it only when every condition holds."""
        action = self._action(option.name, option.title, option.target, option.command, recommended, why)
        try:
            plan = option.plan()
        except SourceError as exc:
            return self._emit(action, "unavailable", f"cannot prepare the change: {exc}")
        if option.missing:
            plan = {**plan, "missing": option.missing}
        action["plan"] = public(plan)
        action["command"] = plan.get("command", option.command)
        refusal = self._refusal(option.name, plan, recommended, why)
        if refusal is not None:
            return self._emit(action, *refusal)
        return self._perform(option, plan, action)

    def _action(self, name: str, title: str, target: str, command: str, recommended: bool | None, why: str) -> Action:
        rb = self.rb
        if recommended:  # a record recommends one thing: the first option the runbook recommends
            other = rb.claim_recommendation(name)
            if other is not None:
                recommended, why = False, f"{why} (not recommended: {other} is)" if why else f"{other} is recommended"
        return {
            "name": name,
            "step": rb.current_step,
            "step_title": rb.current_title,
            "title": title,
            "target": target,
            "command": command,
            "recommended": recommended,
            "why": why,
            "mode": rb.mode,
            "dry_run": rb.dry_run,
            "operator": rb.operator,
            "audit_ids": [],
            "plan": None,
            "result": None,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }

    # -- procedures over several cells (the DR drill) --------------------------------------------
    def gate(self, name: str, title: str, target: str, plan: dict[str, Any], why: str = "") -> dict[str, Any] | None:
        """The same conditions for a procedure that runs over several cells and changes only
        what it creates itself (the DR drill's scratch database). None when it may run (the
        caller reports the outcome with :meth:`finish`); otherwise the action, recorded now as
        proposed, dry_run or refused."""
        refusal = self._refusal(name, plan, None, why)
        if refusal is None:
            return None
        action = self._action(name, title, target, plan.get("command", ""), None, why)
        action["plan"] = plan
        return self._emit(action, *refusal)

    def finish(
        self, name: str, title: str, target: str, plan: dict[str, Any], result: dict[str, Any], ok: bool, reason: str
    ) -> dict[str, Any]:
        """Record what a procedure :meth:`gate` let run did."""
        action = self._action(name, title, target, plan.get("command", ""), None, "")
        action["plan"] = plan
        action["result"] = result
        return self._emit(action, "done" if ok else "failed", reason)

    def _refusal(self, name: str, plan: dict[str, Any], recommended: bool | None, why: str) -> tuple[str, str] | None:
        """(status, reason) when the change must not happen; None when every condition holds."""
        rb = self.rb
        if rb.mode != "resolve":
            because = f"; recommended because {why}" if recommended and why else ""
            return "proposed", "diagnose mode: nothing is changed" + because
        if rb.dry_run:
            return "dry_run", "dry_run=True: this is exactly what would be done; nothing was changed"
        if not rb.operator:
            return "refused", "no operator identity given (operator=...); nothing was changed"
        if (why_not := approved(rb.approve, name, plan)) is not None:
            return "refused", f"{why_not}; nothing was changed"
        if plan.get("missing"):
            return "refused", f"{plan['missing']}; nothing was changed"
        if plan.get("noop"):
            return "skipped", "already in the desired state; nothing to change"
        return None

    def _perform(self, option: Option, plan: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
        """Audit ``started`` (or change nothing), change, audit the outcome."""
        rb = self.rb
        details = {
            "runbook_alert": rb.alertname,
            "fingerprint": rb.alert.fingerprint if rb.alert else None,
            "command": option.command,
            "plan": jsonable(public(plan)),
            "environment": rb.settings.env,
        }
        try:
            action["audit_ids"].append(self._audit(option, "started", details))
        except SourceError as exc:
            return self._emit(action, "refused", f"no audit trail available ({exc}); nothing was changed")
        try:
            action["result"] = option.perform(plan)
            status, reason = "done", "executed"
        except SourceError as exc:
            status, reason = "failed", f"the change failed: {exc}"
        except Exception as exc:  # outcome unknown: still audit it and show it
            status, reason = "failed", f"the change may or may not have happened: {type(exc).__name__}: {exc}"
        outcome = {**details, "result": jsonable(action["result"]), "error": None if status == "done" else reason}
        try:
            action["audit_ids"].append(self._audit(option, "succeeded" if status == "done" else "failed", outcome))
        except SourceError as exc:
            reason += f" (WARNING: the outcome audit row could not be written: {exc})"
        return self._emit(action, status, reason)

    def _audit(self, option: Option, outcome: str, details: dict[str, Any]) -> int:
        from runbook_lib.kernel.sources.postgres import insert_audit

        with self.rb.postgres.connect(read_only=False) as conn:
            return insert_audit(
                conn,
                actor=self.rb.operator,
                action=f"runbook.{option.name}",
                resource_type=option.resource[0],
                resource_id=option.resource[1],
                outcome=outcome,
                details=details,
            )

    def _emit(self, action: Action, status: ActionStatus, reason: str) -> Outcome:
        action["status"] = status
        action["reason"] = reason
        return Outcome(self.rb.record_action(action))


class Outcome(dict):  # type: ignore[type-arg]
    """What an option returns: the action as a dict, shown in a notebook as one line (its card
    above already says everything), not as a 30-line dict."""

    def __repr__(self) -> str:
        return f"<{self.get('title')}: {self.get('status')}>"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))


def sql_literal(value: str) -> str:
    """A string as an SQL literal, for commands shown to people."""
    return "'" + value.replace("'", "''") + "'"
