"""Options on the approval queue: approve, reject or expire named items. Each decided item also
gets the application's own audit row."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from runbook_lib.kernel.actions.guard import Guard, Option
from runbook_lib.kernel.sources.postgres import approvals, insert_audit, text_of


class ApprovalOptions(Guard):
    def approve_items(
        self, ids: Iterable[int], reason: str = "", *, recommended: bool | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Approve the pending approval items ``ids``."""
        return self._decide("approve", ids, reason, recommended, why)

    def reject_items(
        self, ids: Iterable[int], reason: str = "", *, recommended: bool | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Reject the pending approval items ``ids``."""
        return self._decide("reject", ids, reason, recommended, why)

    def expire_items(
        self, ids: Iterable[int], reason: str = "", *, recommended: bool | None = None, why: str = ""
    ) -> dict[str, Any]:
        """Mark the pending approval items ``ids`` expired (what the expiry job should have done)."""
        return self._decide("expire", ids, reason, recommended, why)

    def _decide(
        self, decision: str, ids: Iterable[int], reason: str, recommended: bool | None, why: str
    ) -> dict[str, Any]:
        wanted = sorted({int(i) for i in ids or ()})
        by = self.rb.operator or "<operator>"
        statement = approvals.decide(wanted, decision, by, reason)
        status = approvals.DECISIONS[decision]

        def plan() -> dict[str, Any]:
            found = approvals.items(self.rb.postgres, wanted) if wanted else None
            rows = found.to_dict("records") if found is not None else []
            still = [int(r["id"]) for r in rows if r["status"] == "pending"]
            return {
                "sql": text_of(statement),
                "command": text_of(statement),
                "items": rows,
                "pending": still,
                "not_found": sorted(set(wanted) - {int(r["id"]) for r in rows}),
                "noop": bool(wanted) and not still,
            }

        def perform(_p: dict[str, Any]) -> dict[str, Any]:
            with self.rb.postgres.connect(read_only=False) as conn:
                decided = [int(r["id"]) for r in conn.execute(statement).fetchall()]
                for item in decided:  # the application's own trail, as if decided on the dashboard
                    insert_audit(
                        conn,
                        actor=self.rb.operator,
                        action=f"approval.{decision}",
                        resource_type="approval",
                        resource_id=str(item),
                        outcome="succeeded",
                        details={"reason": reason, "via": "runbook"},
                    )
            return {status: decided, "count": len(decided)}

        missing = ""
        if not wanted:
            missing = f"no items named: set the ids to {decision} (e.g. --param item_ids='[12, 13]')"
        elif not reason.strip():
            missing = "no reason given for the audit trail (e.g. --param reason='...')"
        option = Option(
            f"{decision}_items",
            f"{decision.capitalize()} approval items {', '.join(map(str, wanted[:10]))}"
            + (" ..." if len(wanted) > 10 else "")
            if wanted
            else f"{decision.capitalize()} named approval items",
            "approval_queue",
            text_of(statement),
            ("approval", ",".join(map(str, wanted))),
            plan,
            perform,
            missing=missing,
        )
        return self._run(option, recommended, why)
