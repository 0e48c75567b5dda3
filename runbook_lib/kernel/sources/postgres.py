"""PostgreSQL over psycopg 3: health (pg_isready and more), read-only queries, emergency
controls and the audit log."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ...credentials import safe_endpoint
from ...errors import SourceError, SourceNotConfigured, SourceUnavailable
from ...settings import Settings

NAME = "PostgreSQL"
CONTROLS = ("omnihub_kill_switch", "execution_safe_mode", "operator_takeover")


class Postgres:
    def __init__(self, dsn: str, connect_timeout_s: float = 5.0, statement_timeout_ms: int = 5000) -> None:
        self._dsn = dsn
        self.where = safe_endpoint(dsn)
        self.connect_timeout_s = max(1, round(connect_timeout_s))
        self.statement_timeout_ms = statement_timeout_ms

    @classmethod
    def from_settings(cls, settings: Settings) -> Postgres:
        cfg = settings.postgres
        if cfg.dsn is None:
            raise SourceNotConfigured(NAME, "set RUNBOOK_POSTGRES_DSN or RUNBOOK_POSTGRES_DSN_FILE")
        return cls(cfg.dsn.get_secret_value(), cfg.connect_timeout_s, cfg.statement_timeout_ms)

    def __repr__(self) -> str:
        return f"Postgres({self.where})"

    @contextmanager
    def connect(self, read_only: bool = True) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction, committed on success, rolled back on error."""
        try:
            conn = psycopg.connect(
                self._dsn,
                connect_timeout=self.connect_timeout_s,
                application_name="omnihub-runbook",
                options=f"-c statement_timeout={int(self.statement_timeout_ms)}",
                row_factory=dict_row,
            )
        except psycopg.OperationalError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceUnavailable(NAME, f"cannot connect to {self.where}: {first}") from None
        except psycopg.ProgrammingError as exc:
            raise SourceError(NAME, f"the configured DSN is not valid: {type(exc).__name__}") from None
        try:
            conn.read_only = read_only
            with conn:
                yield conn
        except psycopg.errors.QueryCanceled:
            raise SourceError(
                NAME, f"statement timed out after {self.statement_timeout_ms} ms on {self.where}"
            ) from None
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise SourceError(NAME, f"{type(exc).__name__} on {self.where}: {first}") from None
        finally:
            conn.close()

    def health(self) -> dict[str, Any]:
        """What pg_isready answers, plus latency, recovery state and connection use."""
        started = time.perf_counter()
        with self.connect() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version') AS version, pg_is_in_recovery() AS in_recovery,"
                " current_database() AS database,"
                " (SELECT count(*) FROM pg_stat_activity) AS connections,"
                " current_setting('max_connections')::int AS max_connections"
            ).fetchone()
        latency_ms = (time.perf_counter() - started) * 1000
        assert row is not None
        return {"accepting": True, "latency_ms": round(latency_ms, 1), **row}

    def query(self, sql: str, params: dict[str, Any] | tuple[Any, ...] | None = None) -> pd.DataFrame:
        """A read-only query (the transaction is READ ONLY) as a DataFrame."""
        with self.connect(read_only=True) as conn:
            cur = conn.execute(sql, params)
            rows = cur.fetchall()
            columns = [d.name for d in cur.description or []]
        return pd.DataFrame(rows, columns=columns)

    def emergency_controls(self) -> dict[str, Any]:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT omnihub_kill_switch, execution_safe_mode, operator_takeover, reason, updated_by, updated_at"
                " FROM emergency_controls ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            raise SourceError(NAME, "emergency_controls has no row (schema not seeded?)")
        return dict(row)


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
    return int(row["id"])


def set_control(
    conn: psycopg.Connection[Any], control: str, enabled: bool, reason: str, operator: str
) -> dict[str, Any]:
    """UPDATE emergency_controls SET <control> = ..., inside the caller's transaction."""
    if control not in CONTROLS:
        raise SourceError(NAME, f"unknown emergency control {control!r} (known: {', '.join(CONTROLS)})")
    row = conn.execute(
        f"UPDATE emergency_controls SET {control} = %s, reason = %s, updated_by = %s, updated_at = now()"
        f" RETURNING {control} AS enabled, reason, updated_by, updated_at",
        (enabled, reason, operator),
    ).fetchone()
    if row is None:
        raise SourceError(NAME, "emergency_controls has no row to update")
    return dict(row)
