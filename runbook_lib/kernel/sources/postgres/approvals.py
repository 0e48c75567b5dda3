"""The approval queue's data (the Operator dashboard's "Approval Queue"): pending items by type,
the flow of decisions, items past expiry, and the statement that decides items (the guarded
actions run it)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from psycopg import sql

from runbook_lib.kernel.sources.postgres.client import Postgres

DECISIONS = {"approve": "approved", "reject": "rejected", "expire": "expired"}

_PENDING = """
SELECT request_type AS type, count(*)::int AS pending,
       extract(epoch FROM now() - min(requested_at))::float AS oldest_s,
       count(*) FILTER (WHERE expires_at < now())::int AS past_expiry
FROM approval_queue WHERE status = 'pending'
GROUP BY request_type ORDER BY pending DESC, type
"""

_FLOW = """
SELECT
  (SELECT count(*) FROM approval_queue WHERE requested_at >= now() - interval '1 hour')::int AS arrived_last_hour,
  (SELECT count(*) FROM approval_queue WHERE decided_at >= now() - interval '1 hour')::int AS decided_last_hour,
  (SELECT extract(epoch FROM now() - max(decided_at))::float FROM approval_queue) AS since_last_decision_s,
  (SELECT count(*) FROM approval_queue WHERE status = 'approved' AND decided_at >= date_trunc('day', now()))::int
      AS approved_today,
  (SELECT count(*) FROM approval_queue WHERE status = 'rejected' AND decided_at >= date_trunc('day', now()))::int
      AS rejected_today,
  (SELECT count(*) FROM approval_queue WHERE status = 'expired' AND decided_at >= date_trunc('day', now()))::int
      AS expired_today
"""

_PAST_EXPIRY = """
SELECT id FROM approval_queue WHERE status = 'pending' AND expires_at < now() ORDER BY expires_at LIMIT %s
"""

_ITEMS = """
SELECT q.id, q.request_type AS type, q.status, q.requested_at, q.expires_at, w.name AS workflow
FROM approval_queue q LEFT JOIN workflows w ON w.id = q.workflow_id
WHERE q.id = ANY(%s) ORDER BY q.id
"""


def pending(pg: Postgres) -> pd.DataFrame:
    """Pending approvals by type: how many, the oldest's age, and how many are past their expiry."""
    return pg.query(_PENDING)


def flow(pg: Postgres) -> dict[str, Any]:
    """Arrivals and decisions in the last hour, the last decision's age, and today's decisions
    (approved, rejected, expired) as the Operator dashboard shows them."""
    return pg.row(_FLOW)


def past_expiry(pg: Postgres, limit: int = 100) -> list[int]:
    """Pending items past their expiry (the expiry job should have expired them), oldest first."""
    return [int(i) for i in pg.query(_PAST_EXPIRY, (limit,))["id"]]


def items(pg: Postgres, ids: list[int]) -> pd.DataFrame:
    """The approval items ``ids`` as they are now."""
    return pg.query(_ITEMS, ([int(i) for i in ids],))


def decide(ids: list[int], decision: str, operator: str, reason: str) -> sql.Composed:
    """Decide the still-pending items among ``ids``; the operator's profile (by email) is the
    decider when there is one. Returns the ids it decided."""
    status = DECISIONS[decision]
    return sql.SQL(
        "UPDATE approval_queue SET status = {status}, decided_at = now(),"
        " decided_by = (SELECT id FROM profiles WHERE email = {operator}), reason = {reason}"
        " WHERE id = ANY({ids}) AND status = 'pending' RETURNING id"
    ).format(
        status=sql.Literal(status),
        operator=sql.Literal(operator),
        reason=sql.Literal(reason),
        ids=sql.Literal([int(i) for i in ids]),
    )
