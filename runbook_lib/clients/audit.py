"""The audit trail: one ``audit_logs`` row per change, written before the change (no row, no
change) and again with its outcome. Shared by the kernel's guarded options and host tools such
as ``runbook dlq replay``: the SQL is here once."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.types.json import Jsonb


def insert_audit(
    conn: psycopg.Connection[Any],
    *,
    actor: str,
    action: str,
    resource_type: str,
    resource_id: str,
    outcome: str,
    details: dict[str, Any],
) -> int:
    """Append one audit_logs row inside the caller's transaction; returns its id."""
    row = conn.execute(
        "INSERT INTO audit_logs (actor, action, resource_type, resource_id, outcome, source, details)"
        " VALUES (%s, %s, %s, %s, %s, 'runbook', %s) RETURNING id",
        (actor, action, resource_type, resource_id, outcome, Jsonb(details)),
    ).fetchone()
    assert row is not None
    return int(row[0] if isinstance(row, tuple) else row["id"])


def write_row(dsn: str, connect_timeout_s: float, *, done: str, **row: Any) -> int:
    """One audit_logs row in a transaction of its own (``row``: :func:`insert_audit`'s fields).
    A database that cannot take it is SourceUnavailable naming the endpoint and what that means
    (``done``: what happened, or did not, because of it); never the password."""
    from runbook_lib.core.credentials import password_of, safe_endpoint
    from runbook_lib.core.errors import SourceUnavailable

    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(connect_timeout_s))) as conn:
            return insert_audit(conn, **row)
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in password_of(dsn):
            first = first.replace(secret, "[REDACTED]")
        raise SourceUnavailable(
            "PostgreSQL",
            f"{safe_endpoint(dsn)}: the {row.get('outcome')} audit row could not be written ({first}); {done}",
        ) from None


def rows_between(
    dsn: str, start: Any, end: Any, limit: int = 500, connect_timeout_s: float = 5.0
) -> list[dict[str, Any]]:
    """audit_logs rows written in [start, end], oldest first (the incident report's timeline)."""
    from psycopg.rows import dict_row

    with psycopg.connect(dsn, connect_timeout=connect_timeout_s, row_factory=dict_row) as conn:
        conn.read_only = True
        return list(
            conn.execute(
                "SELECT created_at, actor, action, resource_type, resource_id, outcome FROM audit_logs"
                " WHERE created_at BETWEEN %s AND %s ORDER BY created_at, id LIMIT %s",
                (start, end, int(limit)),
            ).fetchall()
        )
