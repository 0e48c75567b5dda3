"""The emergency controls' data (kill switch, safe mode, operator takeover): the switches, who
changed them (audit_logs), and the work held while one is on."""

from __future__ import annotations

from typing import Any

import pandas as pd

from runbook_lib.kernel.sources.postgres.client import Postgres

CONTROL_NAMES = {
    "omnihub_kill_switch": "OMNIHUB_KILL_SWITCH",
    "execution_safe_mode": "EXECUTION_SAFE_MODE",
    "operator_takeover": "OPERATOR_TAKEOVER",
}


_CONTROL_HISTORY = """
SELECT resource_id AS control, created_at AS changed_at, actor, action,
       coalesce(details->>'reason', details->'plan'->>'reason', '') AS reason
FROM audit_logs
WHERE resource_type = 'emergency_control' AND coalesce(outcome, 'succeeded') = 'succeeded'
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s
"""

_HELD = """
SELECT
  (SELECT count(*) FROM workflows WHERE status = 'queued' AND created_at >= %(since)s)::int AS queued_since,
  (SELECT count(*) FROM workflows WHERE status = 'queued')::int AS queued_total,
  (SELECT extract(epoch FROM now() - min(created_at))::float FROM workflows WHERE status = 'queued') AS oldest_queued_s,
  (SELECT count(*) FROM workflows WHERE status = 'running')::int AS running,
  (SELECT count(*) FROM approval_queue WHERE status = 'pending' AND requested_at >= %(since)s)::int AS approvals_since
"""


def controls(pg: Postgres) -> dict[str, Any]:
    """The emergency_controls row: each switch, and the last change's reason, author and time."""
    return pg.emergency_controls()


def control_history(pg: Postgres, limit: int = 200) -> pd.DataFrame:
    """The latest ``limit`` successful changes of any control in audit_logs, newest first: which
    control, when, who, what (the audit action), why."""
    return pg.query(_CONTROL_HISTORY, {"limit": limit})


def turns_on(action: str) -> bool | None:
    """What an audit action did to its control: True (switched it on), False (off), None (cannot
    tell). The application writes ``emergency_control.enable`` / ``.disable``; the runbooks'
    options ``runbook.safe_mode`` (on) and ``runbook.disable_kill_switch`` (off)."""
    name = action.lower()
    if "disable" in name or name.endswith((".off", "_off")):
        return False
    if "enable" in name or name.endswith((".on", "_on", ".safe_mode")):
        return True
    return None


def held_work(pg: Postgres, since: Any) -> dict[str, Any]:
    """Workflows queued (and approvals requested) since ``since``, and the queue as a whole."""
    return pg.row(_HELD, {"since": since})
