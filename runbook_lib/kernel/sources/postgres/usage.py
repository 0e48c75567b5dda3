"""How much the platform does and holds, for the SLO and capacity reports: users, workflows
by outcome, approvals pending, the database's size."""

from __future__ import annotations

from typing import Any

from runbook_lib.kernel.sources.postgres.client import Postgres

_USAGE = """
SELECT (SELECT count(*) FROM profiles)::bigint AS users,
       (SELECT count(*) FROM workflows WHERE created_at > now() - interval '1 day')::bigint AS workflows_24h,
       (SELECT count(*) FROM approval_queue WHERE status = 'pending')::bigint AS approvals_pending,
       pg_database_size(current_database())::bigint AS database_bytes
"""

_OUTCOMES = """
SELECT count(*) FILTER (WHERE status = 'completed')::bigint AS completed,
       count(*) FILTER (WHERE status = 'failed')::bigint AS failed,
       count(*) FILTER (WHERE status IN ('queued', 'running'))::bigint AS in_flight
FROM workflows WHERE created_at > now() - make_interval(secs => %s)
"""


def usage(pg: Postgres) -> dict[str, Any]:
    """Users, workflows created in the last day, approvals pending, database size (bytes)."""
    return pg.row(_USAGE)


def workflow_outcomes(pg: Postgres, window_s: float) -> dict[str, Any]:
    """Workflows created in the window: completed, failed, still queued or running."""
    return pg.row(_OUTCOMES, (float(window_s),))
