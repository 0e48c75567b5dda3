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
