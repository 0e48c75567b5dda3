"""Guarded remediations. Runs inside the kernel.

Nothing here changes a system unless ALL of these hold:
  * mode == "resolve"        (automatic runs are always "diagnose")
  * dry_run is False
  * an operator identity is given
  * the action's name is in ``approve`` (so "Run All" in resolve mode cannot fire every option)
  * an ``audit_logs`` row was written first (no audit trail, no change)

Otherwise the action is shown as *proposed* / *dry_run* / *refused*, with the exact command and
change it would make. Every outcome is displayed with its own MIME type and lands in the record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..contract import APPROVALS, jsonable
from ..errors import SourceError
from .protocol import RunbookLike


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

    def __post_init__(self) -> None:
        if self.name not in APPROVALS:
            raise ValueError(f"option {self.name!r} is not one of the approval names {APPROVALS}")


class Actions:
    def __init__(self, rb: RunbookLike) -> None:
        self.rb = rb

    # -- the options --------------------------------------------------------------------------
    def rollback(
        self,
        deployment: str | None = None,
        to_revision: int | None = None,
        *,
        recommended: bool | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        """``kubectl rollout undo``: JSON-patch the deployment's template back to a previous ReplicaSet's."""
        name = deployment or self.rb.service.deployment
        ns = self.rb.settings.kubernetes.namespace
        command = f"kubectl rollout undo deployment/{name} -n {ns}" + (
            f" --to-revision={to_revision}" if to_revision else ""
        )

        def plan() -> dict[str, Any]:
            return self.rb.kubernetes.rollback_plan(name, to_revision)

        def perform(p: dict[str, Any]) -> dict[str, Any]:
            self.rb.kubernetes.patch_deployment(p["deployment"], p["namespace"], p["patch"])
            return {
                "rolled_back_to": p["to_revision"],
                "from_revision": p["from_revision"],
                "images": p["images"],
            }

        option = Option(
            "rollback", "Rollback", f"deployment/{name} in {ns}", command, ("deployment", f"{ns}/{name}"), plan, perform
        )
        return self._run(option, recommended, why)

    def scale(
        self,
        replicas: int | None,
        deployment: str | None = None,
        *,
        recommended: bool | None = None,
        why: str = "",
    ) -> dict[str, Any]:
        """``kubectl scale --replicas=N`` through the scale subresource."""
        name = deployment or self.rb.service.deployment
        ns = self.rb.settings.kubernetes.namespace
        command = f"kubectl scale deployment/{name} -n {ns} --replicas={replicas or '<current + 50%>'}"

        def plan() -> dict[str, Any]:
            dep = self.rb.kubernetes.deployment(name)
            current = int((dep.get("spec") or {}).get("replicas") or 0)
            target = int(replicas) if replicas is not None else max(current + 1, current * 3 // 2)
            if target < 1:
                raise SourceError("Kubernetes", f"refusing to scale deployment/{name} to {target} replicas")
            return {
                "deployment": name,
                "namespace": ns,
                "from_replicas": current,
                "to_replicas": target,
                "noop": current == target,
                "patch": {"spec": {"replicas": target}},
                "command": f"kubectl scale deployment/{name} -n {ns} --replicas={target}",
            }

        def perform(p: dict[str, Any]) -> dict[str, Any]:
            self.rb.kubernetes.scale(p["deployment"], p["namespace"], p["to_replicas"])
            return {"replicas": p["to_replicas"], "was": p["from_replicas"]}

        option = Option(
            "scale", "Scale up", f"deployment/{name} in {ns}", command, ("deployment", f"{ns}/{name}"), plan, perform
        )
        return self._run(option, recommended, why)

    def enable_safe_mode(
        self, reason: str | None = None, *, recommended: bool | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Set EXECUTION_SAFE_MODE in emergency_controls: disables all side effects."""
        reason = reason or f"{self.rb.alertname} incident"
        operator = self.rb.operator or "<operator>"
        sql = (
            "UPDATE emergency_controls SET execution_safe_mode = true, "
            f"reason = {_sql_literal(reason)}, updated_by = {_sql_literal(operator)}, updated_at = now();"
        )

        def plan() -> dict[str, Any]:
            current = self.rb.postgres.emergency_controls()
            return {
                "sql": sql,
                "currently_enabled": bool(current["execution_safe_mode"]),
                "noop": bool(current["execution_safe_mode"]),
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            from .sources.postgres import set_control

            with self.rb.postgres.connect(read_only=False) as conn:
                row = set_control(conn, "execution_safe_mode", True, reason, self.rb.operator)
            return {"execution_safe_mode": row["enabled"], "updated_by": row["updated_by"]}

        option = Option(
            "safe_mode",
            "Enable EXECUTION_SAFE_MODE",
            "emergency_controls",
            sql,
            ("emergency_control", "EXECUTION_SAFE_MODE"),
            plan,
            perform,
        )
        return self._run(option, recommended, why)

    # -- the guard ------------------------------------------------------------------------------
    def _run(self, option: Option, recommended: bool | None, why: str) -> dict[str, Any]:
        """Prepare the option's exact change, then do it only when every condition holds."""
        rb = self.rb
        action: dict[str, Any] = {
            "name": option.name,
            "step": rb.current_step,
            "step_title": rb.current_title,
            "title": option.title,
            "target": option.target,
            "command": option.command,
            "recommended": recommended,
            "why": why,
            "mode": rb.mode,
            "dry_run": rb.dry_run,
            "operator": rb.operator,
            "audit_ids": [],
            "plan": None,
            "result": None,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        try:
            plan = option.plan()
        except SourceError as exc:
            return self._emit(action, "unavailable", f"cannot prepare the change: {exc}")
        action["plan"] = plan
        action["command"] = plan.get("command", option.command)
        refusal = self._refusal(option.name, plan, recommended, why)
        if refusal is not None:
            return self._emit(action, *refusal)
        return self._perform(option, plan, action)

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
        if name not in rb.approve:
            return "refused", f"not approved: add {name!r} to approve to run it; nothing was changed"
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
            "plan": jsonable(plan),
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
        from .sources.postgres import insert_audit

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

    def _emit(self, action: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
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


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
