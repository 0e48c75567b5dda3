"""Options on the emergency controls: switch one off (the kill switch by default), with a reason."""

from __future__ import annotations

from typing import Any

from runbook_lib.kernel.actions.guard import Guard, Option, sql_literal
from runbook_lib.kernel.sources.postgres import controls, set_control


class ControlOptions(Guard):
    def disable_control(
        self, control: str = "omnihub_kill_switch", reason: str = "", *, recommended: bool | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Switch an emergency control off (OMNIHUB_KILL_SWITCH by default). Needs a reason."""
        key = control.lower()
        label = controls.CONTROL_NAMES.get(key, control)
        by = self.rb.operator or "<operator>"
        sql_text = (
            f"UPDATE emergency_controls SET {key} = false, reason = {sql_literal(reason or '<reason>')}, "
            f"updated_by = {sql_literal(by)}, updated_at = now();"
        )

        def plan() -> dict[str, Any]:
            current = controls.controls(self.rb.postgres)
            if key not in current:
                return {"sql": sql_text, "noop": True, "note": f"unknown control {control!r}"}
            return {
                "sql": sql_text,
                "currently_enabled": bool(current[key]),
                "noop": not current[key],
                "reason": reason,
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            with self.rb.postgres.connect(read_only=False) as conn:
                row = set_control(conn, key, False, reason, self.rb.operator)
            return {key: row["enabled"], "updated_by": row["updated_by"], "reason": row["reason"]}

        option = Option(
            "disable_kill_switch",
            f"Disable {label}",
            "emergency_controls",
            sql_text,
            ("emergency_control", label),
            plan,
            perform,
            missing="" if reason.strip() else "no reason given: disabling a control needs one (--param reason='...')",
        )
        return self._run(option, recommended, why)
