"""On-call overrides (``runbook oncall override``): one row per override in
``runbook_oncall_overrides`` in the OmniHub database; runbook_lib.sre.oncall applies them.

The table is created by the first :func:`add` (CREATE TABLE IF NOT EXISTS, under an advisory lock);
reads never create it: no table, no overrides. Every write runs under one transaction-scoped
advisory lock, so the check that nobody ends up primary and secondary at once
(:func:`~runbook_lib.sre.oncall.check_override`, :func:`~runbook_lib.sre.oncall.check_cancel`)
sees every override stored before it, and ``created_at`` (clock_timestamp() taken under the lock)
orders overrides as they were stored: the last one wins where several cover an instant.

A cancellation is kept (cancelled_at, cancelled_by), not deleted: an override cancelled before it
started never applies; one cancelled while in force applies until the cancellation (who was on call
before stays as it was). Messages name the database as scheme://host:port/db, never a password.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from runbook_lib.clients.pg import connected
from runbook_lib.core.credentials import safe_endpoint
from runbook_lib.core.errors import ConfigError
from runbook_lib.core.present import iso
from runbook_lib.core.settings import Settings
from runbook_lib.sre.oncall import (
    Override,
    Person,
    Roster,
    check_cancel,
    check_override,
    find_person,
    require_person,
    validate_override,
)

TABLE = "runbook_oncall_overrides"
DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id           bigserial PRIMARY KEY,
    person       text NOT NULL CHECK (person <> ''),
    role         text NOT NULL CHECK (role IN ('primary', 'secondary')),
    since        timestamptz NOT NULL,
    until        timestamptz NOT NULL,
    created_by   text NOT NULL CHECK (created_by <> ''),
    created_at   timestamptz NOT NULL DEFAULT now(),
    cancelled_at timestamptz NULL,
    cancelled_by text NULL,
    CHECK (until > since)
);
CREATE INDEX IF NOT EXISTS {TABLE}_window_idx ON {TABLE} (since, until);
"""
LOCK_KEY = 0x6F6E6361  # "onca": serialises writers (table creation, the overlap check and the insert)
COLUMNS = "id, person, role, since, until, created_by, created_at, cancelled_at, cancelled_by"
# In force: not cancelled before it started. Its end: until, or its cancellation when earlier.
IN_FORCE = "(cancelled_at IS NULL OR cancelled_at > since)"
ENDS = "least(until, coalesce(cancelled_at, until))"
NOT_IN_ROSTER = "(not in the roster)"
MAX_LISTED = 1000


def table_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    return bool(row and row[0])


def add(
    dsn: str,
    *,
    roster: Roster,
    person: str,
    role: str,
    since: datetime,
    until: datetime,
    by: str,
    connect_timeout_s: float = 5.0,
) -> int:
    """Store an override: ``person`` (a name or handle in ``roster``) takes ``role`` for
    [since, until), set by ``by``; returns its id. ConfigError, and nothing stored, when
    :func:`check_override` refuses it against the overrides stored so far."""
    who = require_person(roster, person)
    by = (by or "").strip()
    draft = Override(who, role, since, until, by, created_at=datetime.now(UTC))
    validate_override(roster, draft)  # what needs no database first: a bad input costs no connection
    with connected(dsn, connect_timeout_s, "the override was not stored") as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        if not table_exists(conn):
            conn.execute(DDL)
        check_override(roster, draft, _overlapping(conn, roster, draft.since, draft.until))
        row = conn.execute(
            f"INSERT INTO {TABLE} (person, role, since, until, created_by, created_at)"
            " VALUES (%s, %s, %s, %s, %s, clock_timestamp()) RETURNING id",
            (who.name, draft.role, draft.since, draft.until, by),
        ).fetchone()
    assert row is not None
    return int(row[0])


def list_overlapping(
    dsn: str, start: datetime, end: datetime, *, roster: Roster, connect_timeout_s: float = 5.0
) -> list[Override]:
    """The overrides in force at some instant of [start, end) (not cancelled before then), by
    start. Names no longer in ``roster`` keep their override, with the handle "(not in the roster)"."""
    with connected(dsn, connect_timeout_s, "overrides not read", read_only=True) as conn:
        return _overlapping(conn, roster, start, end) if table_exists(conn) else []


def overrides_at(settings: Settings, roster: Roster, at: datetime) -> list[Override]:
    """The overrides in force at ``at``: what records, escalation, approvals and the shift
    checklists apply to the rotation. None without a PostgreSQL DSN; RunbookError (naming the
    database safely) when they cannot be read: each caller says what it does then."""
    if settings.postgres.dsn is None:
        return []
    return list_overlapping(
        settings.postgres.dsn.get_secret_value(),
        at,
        at + timedelta(microseconds=1),
        roster=roster,
        connect_timeout_s=settings.postgres.connect_timeout_s,
    )


def list_overrides(
    dsn: str, *, roster: Roster, include_past: bool = False, connect_timeout_s: float = 5.0
) -> list[Override]:
    """The overrides in force now or later (``include_past``: every one stored, cancelled and over
    included; the newest 1000), by start."""
    where = "" if include_past else f"WHERE {IN_FORCE} AND {ENDS} > now()"
    with connected(dsn, connect_timeout_s, "overrides not read", read_only=True) as conn:
        if not table_exists(conn):
            return []
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM (SELECT {COLUMNS} FROM {TABLE} {where} ORDER BY since DESC, id DESC LIMIT %s) AS r"
            " ORDER BY since, id",
            (MAX_LISTED,),
        ).fetchall()
    return [_override(roster, r) for r in rows]


def cancel(dsn: str, override_id: int, by: str, *, roster: Roster, connect_timeout_s: float = 5.0) -> Override:
    """Cancel override ``override_id`` now (who: ``by``); returns it as cancelled. ConfigError,
    and nothing changed, when there is no such override, it is cancelled or over already, or the
    rotation coming back would make someone primary and secondary at once (:func:`check_cancel`)."""
    by = (by or "").strip()
    if not by:
        raise ConfigError("cancelling an override needs who cancels it (--operator NAME or $RUNBOOK_OPERATOR)")
    with connected(dsn, connect_timeout_s, "nothing was cancelled") as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        row = (
            conn.execute(f"SELECT {COLUMNS} FROM {TABLE} WHERE id = %s", (override_id,)).fetchone()
            if table_exists(conn)
            else None
        )
        if row is None:
            raise ConfigError(f"no override {override_id} in {safe_endpoint(dsn)} (`runbook oncall overrides --all`)")
        found = _override(roster, row)
        if found.cancelled_at is not None:
            raise ConfigError(
                f"override {override_id} was cancelled already, at {iso(found.cancelled_at)} by {found.cancelled_by}"
            )
        now = _now(conn)
        if found.until <= now:
            raise ConfigError(
                f"override {override_id} ended at {iso(found.until)}: it is over, and who was on call stays as it was"
            )
        others = _overlapping(conn, roster, max(now, found.since), found.until)
        check_cancel(roster, found, others, now)
        row = conn.execute(
            f"UPDATE {TABLE} SET cancelled_at = %s, cancelled_by = %s WHERE id = %s RETURNING {COLUMNS}",
            (now, by, override_id),
        ).fetchone()
    assert row is not None
    return _override(roster, row)


def _overlapping(conn: psycopg.Connection[Any], roster: Roster, start: datetime, end: datetime) -> list[Override]:
    rows = conn.execute(
        f"SELECT {COLUMNS} FROM {TABLE} WHERE {IN_FORCE} AND since < %s AND {ENDS} > %s ORDER BY since, id",
        (end, start),
    ).fetchall()
    return [_override(roster, r) for r in rows]


def _override(roster: Roster, row: Any) -> Override:
    id_, name, role, since, until, created_by, created_at, cancelled_at, cancelled_by = row
    person = find_person(roster, name) or Person(name, NOT_IN_ROSTER)
    return Override(
        person=person,
        role=role,
        since=since,
        until=until,
        by=created_by,
        created_at=created_at,
        id=int(id_),
        cancelled_at=cancelled_at,
        cancelled_by=cancelled_by,
    )


def _now(conn: psycopg.Connection[Any]) -> datetime:
    row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0].astimezone(UTC)
