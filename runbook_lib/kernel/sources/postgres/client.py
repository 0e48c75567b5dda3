"""The PostgreSQL client: connections (read-only unless asked), why a connection failed,
health, plain queries, and the writes every guarded action shares (the audit row, from
:mod:`runbook_lib.clients.audit`, and the emergency controls). Only this package imports psycopg."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from runbook_lib.core.credentials import safe_endpoint
from runbook_lib.core.errors import SourceError, SourceNotConfigured, SourceUnavailable
from runbook_lib.core.settings import Settings

NAME = "PostgreSQL"
CONTROLS = ("omnihub_kill_switch", "execution_safe_mode", "operator_takeover")


@dataclass(frozen=True)
class Failure:
    """Why a connection failed, as one of a few kinds on-call acts on differently."""

    kind: str
    meaning: str


# kind -> what it means for on-call (the finding's text and details name the kind).
FAILURES = {
    "refused": "nothing listens on that address and port: the server is down, restarting, or listens elsewhere",
    "dns": "the host name does not resolve: DNS, or a wrong host in the DSN",
    "unreachable": "no route to the host: network, firewall or security group",
    "timeout": "no answer in time: the host is overloaded, hung, or a firewall drops the packets",
    "auth": "the server rejected the credentials: a rotated or wrong password, or a pg_hba.conf rule",
    "too_many_connections": "max_connections is exhausted: new sessions are refused",
    "starting_up": "the server is starting up or replaying WAL after a crash: wait, then check its log",
    "shutting_down": "the server is shutting down",
    "no_database": "the database does not exist on this server",
    "other": "the connection failed for a reason not classified here: see the message",
}
# SQLSTATEs of the server's refusal (FATAL at connection time), checked before the text.
_SQLSTATE = {
    "28P01": "auth",
    "28000": "auth",
    "53300": "too_many_connections",
    "3D000": "no_database",
}
# libpq/psycopg texts when there is no server message, in the order they are tried.
_TEXT = (
    (re.compile(r"connection refused", re.I), "refused"),
    (
        re.compile(r"resolve host|could not translate host name|name or service not known|nodename nor servname", re.I),
        "dns",
    ),
    (re.compile(r"no route to host|network is unreachable|host is unreachable", re.I), "unreachable"),
    (re.compile(r"timeout expired|timed out", re.I), "timeout"),
    (re.compile(r"password authentication failed|no password supplied|authentication failed", re.I), "auth"),
    (re.compile(r"too many clients|remaining connection slots are reserved", re.I), "too_many_connections"),
    (re.compile(r"starting up|in recovery mode|not yet accepting connections", re.I), "starting_up"),
    (re.compile(r"shutting down", re.I), "shutting_down"),
    (re.compile(r"database \S+ does not exist", re.I), "no_database"),
)


def classify(exc: BaseException) -> Failure:
    """The kind of a failed connection attempt (refused, dns, auth, timeout, ...)."""
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        kind = "timeout"
    else:
        kind = _SQLSTATE.get(getattr(exc, "sqlstate", None) or "", "")
        text = str(exc)
        if not kind and isinstance(exc, psycopg.errors.CannotConnectNow):
            kind = "shutting_down" if "shutting down" in text else "starting_up"
        if not kind:
            kind = next((k for pattern, k in _TEXT if pattern.search(text)), "other")
    return Failure(kind, FAILURES[kind])


class ConnectFailed(SourceUnavailable):
    """The server could not be reached or refused the session; ``failure`` says which way."""

    def __init__(self, where: str, failure: Failure, first_line: str) -> None:
        super().__init__(NAME, f"cannot connect to {where}: {first_line}")
        self.failure = failure
        self.first_line = first_line


def first_line(exc: BaseException) -> str:
    """The first meaningful line of a libpq message (it repeats 'connection failed: ...')."""
    lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    # 'connection failed: connection to server at "h", port 5432 failed: FATAL:  ...': the
    # endpoint is named by the caller already; keep what the server or libpq said.
    text = re.sub(
        r'^connection failed: (connection to server at "[^"]*"(?: \([^)]*\))?, port \d+ failed: )?', "", lines[0]
    )
    return re.sub(r"^FATAL:\s+", "", text) or lines[0]


class Postgres:
    def __init__(
        self, dsn: str, connect_timeout_s: float = 5.0, statement_timeout_ms: int = 5000, lock_timeout_ms: int = 1000
    ) -> None:
        self._dsn = dsn
        self.where = safe_endpoint(dsn)
        self.connect_timeout_s = max(1, round(connect_timeout_s))
        self.statement_timeout_ms = statement_timeout_ms
        self.lock_timeout_ms = lock_timeout_ms

    @classmethod
    def from_settings(cls, settings: Settings) -> Postgres:
        cfg = settings.postgres
        if cfg.dsn is None:
            raise SourceNotConfigured(NAME, "set RUNBOOK_POSTGRES_DSN or RUNBOOK_POSTGRES_DSN_FILE")
        return cls(cfg.dsn.get_secret_value(), cfg.connect_timeout_s, cfg.statement_timeout_ms, cfg.lock_timeout_ms)

    def __repr__(self) -> str:
        return f"Postgres({self.where})"

    def on_database(self, dbname: str) -> Postgres:
        """A client for another database on the same server, with the same credentials."""
        try:
            dsn = make_conninfo(self._dsn, dbname=dbname)
        except psycopg.ProgrammingError as exc:
            raise SourceError(NAME, f"the configured DSN is not valid: {type(exc).__name__}") from None
        return Postgres(dsn, self.connect_timeout_s, self.statement_timeout_ms, self.lock_timeout_ms)

    def at(self, host: str, port: int) -> Postgres:
        """A client for the same database with the same credentials on another host and port
        (a Unix socket directory is a host too)."""
        try:
            dsn = make_conninfo(self._dsn, host=host, port=str(port), hostaddr="")
        except psycopg.ProgrammingError as exc:
            raise SourceError(NAME, f"the configured DSN is not valid: {type(exc).__name__}") from None
        return Postgres(dsn, self.connect_timeout_s, self.statement_timeout_ms, self.lock_timeout_ms)

    @property
    def database(self) -> str:
        try:
            return str(conninfo_to_dict(self._dsn).get("dbname") or "")
        except psycopg.ProgrammingError:
            return ""

    def libpq_environment(self) -> tuple[str, dict[str, str]]:
        """(conninfo without the password, {"PGPASSWORD": ...}) for pg_dump and pg_restore: the
        password never appears on a command line another user could read in ps."""
        try:
            parts = conninfo_to_dict(self._dsn)
        except psycopg.ProgrammingError as exc:
            raise SourceError(NAME, f"the configured DSN is not valid: {type(exc).__name__}") from None
        password = parts.pop("password", None)
        return make_conninfo("", **{k: str(v) for k, v in parts.items()}), (
            {"PGPASSWORD": str(password)} if password else {}
        )

    @contextmanager
    def connect(
        self, read_only: bool = True, autocommit: bool = False, keep: bool = True
    ) -> Iterator[psycopg.Connection[Any]]:
        """A connection inside one transaction, committed on success (``keep=False``: always
        rolled back), rolled back on error. ``autocommit`` for statements that cannot run in a
        transaction (CREATE/DROP DATABASE)."""
        try:
            conn = psycopg.connect(
                self._dsn,
                connect_timeout=self.connect_timeout_s,
                application_name="omnihub-runbook",
                options=f"-c statement_timeout={int(self.statement_timeout_ms)} -c lock_timeout={int(self.lock_timeout_ms)}",
                row_factory=dict_row,
                autocommit=autocommit,
            )
        except psycopg.OperationalError as exc:
            raise ConnectFailed(self.where, classify(exc), first_line(exc)) from None
        except psycopg.ProgrammingError as exc:
            raise SourceError(NAME, f"the configured DSN is not valid: {type(exc).__name__}") from None
        try:
            if not autocommit:
                conn.read_only = read_only
            if keep or autocommit:
                with conn:
                    yield conn
            else:
                try:
                    yield conn
                finally:
                    conn.rollback()
        except psycopg.errors.LockNotAvailable:
            raise SourceError(
                NAME,
                f"gave up after {self.lock_timeout_ms} ms waiting for a lock on {self.where}: another session "
                "holds one on a table this check reads (see the lock waits)",
            ) from None
        except psycopg.errors.QueryCanceled:
            raise SourceError(
                NAME, f"statement timed out after {self.statement_timeout_ms} ms on {self.where}"
            ) from None
        except psycopg.Error as exc:
            raise SourceError(NAME, f"{type(exc).__name__} on {self.where}: {first_line(exc)}") from None
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

    def server_state(self) -> dict[str, Any]:
        """Can it take writes, and since when is it up: recovery, read-only defaults, uptime."""
        started = time.perf_counter()
        with self.connect() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version') AS version,"
                " current_setting('server_version_num')::int AS version_num,"
                " current_database() AS database,"
                " pg_is_in_recovery() AS in_recovery,"
                " current_setting('default_transaction_read_only') = 'on' AS default_read_only,"
                " pg_postmaster_start_time() AS started_at,"
                " extract(epoch FROM now() - pg_postmaster_start_time())::float AS uptime_s,"
                " pg_conf_load_time() AS config_loaded_at"
            ).fetchone()
        assert row is not None
        return {"latency_ms": round((time.perf_counter() - started) * 1000, 1), **row}

    def query(
        self, statement: str | sql.Composable, params: dict[str, Any] | tuple[Any, ...] | None = None
    ) -> pd.DataFrame:
        """A read-only query (the transaction is READ ONLY) as a DataFrame."""
        with self.connect(read_only=True) as conn:
            return frame(conn.execute(statement, params))

    def row(
        self, statement: str | sql.Composable, params: dict[str, Any] | tuple[Any, ...] | None = None
    ) -> dict[str, Any]:
        """The one row a read-only query returns (an empty dict for none)."""
        with self.connect(read_only=True) as conn:
            found = conn.execute(statement, params).fetchone()
        return dict(found) if found else {}

    def emergency_controls(self) -> dict[str, Any]:
        with self.connect() as conn:
            row = conn.execute(
                "SELECT omnihub_kill_switch, execution_safe_mode, operator_takeover, reason, updated_by, updated_at"
                " FROM emergency_controls ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            raise SourceError(NAME, "emergency_controls has no row (schema not seeded?)")
        return dict(row)


def frame(cursor: psycopg.Cursor[Any]) -> pd.DataFrame:
    """A cursor's rows as a DataFrame, columns kept even when there are no rows."""
    rows = cursor.fetchall()
    return pd.DataFrame(rows, columns=[d.name for d in cursor.description or []])


def text_of(statement: sql.Composable) -> str:
    """The exact SQL a composed statement runs, literals included, as shown in dry-run."""
    return statement.as_string(None)


def set_control(
    conn: psycopg.Connection[Any], control: str, enabled: bool, reason: str, operator: str
) -> dict[str, Any]:
    """UPDATE emergency_controls SET <control> = ..., inside the caller's transaction."""
    if control not in CONTROLS:
        raise SourceError(NAME, f"unknown emergency control {control!r} (known: {', '.join(CONTROLS)})")
    row = conn.execute(
        sql.SQL(
            "UPDATE emergency_controls SET {c} = %s, reason = %s, updated_by = %s, updated_at = now()"
            " RETURNING {c} AS enabled, reason, updated_by, updated_at"
        ).format(c=sql.Identifier(control)),
        (enabled, reason, operator),
    ).fetchone()
    if row is None:
        raise SourceError(NAME, "emergency_controls has no row to update")
    return dict(row)
