"""Real PostgreSQL faults for the data-layer runbooks, made the way production makes them:
sessions that hold connections or sit idle in a transaction, a lock that blocks a migration,
rows written around their foreign keys, a backed-up approval queue, a kill switch thrown by an
operator, and a port that accepts but never answers. Used by the tests and the demo."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg


@dataclass
class Held:
    """Sessions a fault holds open; ``pids`` of the idle-in-transaction ones separately."""

    connections: list[psycopg.Connection[Any]] = field(default_factory=list)
    idle_pids: list[int] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


@contextmanager
def hold_connections(dsn: str, count: int, application: str, idle_in_transaction: int = 0) -> Iterator[Held]:
    """``count`` sessions named ``application``; the first ``idle_in_transaction`` of them open a
    transaction, read a row and then sit idle in it, as a pool that never commits does."""
    held = Held()
    try:
        for i in range(count):
            conn = psycopg.connect(dsn, application_name=application)
            held.connections.append(conn)
            pid = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
            held.pids.append(pid)
            if i < idle_in_transaction:
                conn.execute("SELECT 1")  # psycopg opened a transaction; it is never committed
                held.idle_pids.append(pid)
            else:
                conn.commit()
        yield held
    finally:
        for conn in held.connections:
            try:
                conn.close()
            except psycopg.Error:
                pass


@dataclass
class Blocked:
    blocker_pid: int
    migration_pid: int
    reader_pid: int
    migration_error: list[str] = field(default_factory=list)


@contextmanager
def blocked_migration(dsn: str, table: str = "workflows") -> Iterator[Blocked]:
    """A session takes ACCESS EXCLUSIVE on ``table`` and sits idle in its transaction; a
    migration (application 'alembic') waits to ALTER the table, and a reader queues behind it."""
    blocker = psycopg.connect(dsn, application_name="psql")
    blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    blocker_pid = blocker.info.backend_pid
    migration = psycopg.connect(dsn, application_name="alembic", autocommit=True)
    reader = psycopg.connect(dsn, application_name="api-gateway", autocommit=True)
    errors: list[str] = []

    def run(conn: psycopg.Connection[Any], statement: str) -> None:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            errors.append(str(exc).strip())

    threads = [
        threading.Thread(target=run, args=(migration, f"ALTER TABLE {table} ADD COLUMN drill_note text"), daemon=True),
    ]
    threads[0].start()
    _wait_until_waiting(dsn, migration.info.backend_pid)
    threads.append(threading.Thread(target=run, args=(reader, f"SELECT count(*) FROM {table}"), daemon=True))
    threads[1].start()
    _wait_until_waiting(dsn, reader.info.backend_pid)
    try:
        yield Blocked(blocker_pid, migration.info.backend_pid, reader.info.backend_pid, errors)
    finally:
        try:
            blocker.close()
        except psycopg.Error:
            pass
        for t in threads:
            t.join(10)
        migration.close()
        reader.close()


def invalid_index(dsn: str) -> str:
    """A unique index built concurrently on a column with duplicates: the build fails and leaves
    an invalid index behind, as a failed migration does. Returns its name."""
    name = "workflows_status_uniq"
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON workflows (status)")
        except psycopg.errors.UniqueViolation:
            pass
    return name


def orphan_rows(dsn: str, workflows: int = 3, approvals: int = 2) -> None:
    """Rows that reference nothing, written with the foreign-key triggers off
    (session_replication_role = replica), as a bulk tool or a partial restore would."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SET session_replication_role = replica")
        for i in range(workflows):
            conn.execute(
                "INSERT INTO workflows (name, status, created_by) VALUES (%s, 'queued', %s)",
                (f"orphan-{i}", uuid.uuid4()),
            )
        for _ in range(approvals):
            conn.execute("INSERT INTO approval_queue (workflow_id) VALUES (%s)", (uuid.uuid4(),))


def approval_backlog(dsn: str, pending: int = 60, past_expiry: int = 10, hours_old: float = 3) -> None:
    """``pending`` approvals requested ``hours_old`` hours ago and spread since; ``past_expiry`` of
    them already past their expiry; and no decision made in the last ``hours_old`` hours."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE approval_queue SET decided_at = decided_at - make_interval(hours => %s) WHERE decided_at IS NOT NULL",
            (hours_old,),
        )
        workflow = conn.execute("SELECT id FROM workflows ORDER BY created_at LIMIT 1").fetchone()[0]  # type: ignore[index]
        for i in range(pending):
            age = f"{hours_old * 3600 * (i + 1) / pending} seconds"
            expires = "now() - interval '1 minute'" if i < past_expiry else "now() + interval '1 day'"
            conn.execute(
                "INSERT INTO approval_queue (workflow_id, request_type, requested_at, expires_at)"
                f" VALUES (%s, %s, now() - %s::interval, {expires})",
                (workflow, ("trade_execution", "config_change")[i % 2], age),
            )


def enable_kill_switch(dsn: str, operator: str, reason: str, queued_after: int = 0) -> None:
    """Switch OMNIHUB_KILL_SWITCH on as the application's operator dashboard does (the row and
    an audit_logs entry), then let ``queued_after`` workflows queue up behind it."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE emergency_controls SET omnihub_kill_switch = true, reason = %s, updated_by = %s, updated_at = now()",
            (reason, operator),
        )
        conn.execute(
            "INSERT INTO audit_logs (actor, action, resource_type, resource_id, outcome, source, details)"
            " VALUES (%s, 'emergency_control.enable', 'emergency_control', 'OMNIHUB_KILL_SWITCH', 'succeeded', 'app',"
            " jsonb_build_object('reason', %s::text))",
            (operator, reason),
        )
        for i in range(queued_after):
            conn.execute(
                "INSERT INTO workflows (name, status, created_by) VALUES (%s, 'queued',"
                " '00000000-0000-4000-8000-000000000002')",
                (f"held-{i}",),
            )


@contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never says a word: a hung server, or a
    firewall that lets the handshake through. Connections time out."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(server.getsockname()[1])
    finally:
        stop.set()
        thread.join(2)
        for s in accepted:
            s.close()
        server.close()


def _wait_until_waiting(dsn: str, pid: int, timeout_s: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", (pid,)).fetchone()
            if row and row[0]:
                return
            time.sleep(0.05)
    raise TimeoutError(f"session {pid} never started waiting on a lock")


def kill_switch_by_sql(
    dsn: str,
    updated_by: str = "postgres",
    reason: str = "manual",
    minutes_ago: float = 25,
    queued_after: int = 0,
    enabled_before: tuple[str, str, float] | None = ("alice@omnihub.test", "quarterly drill", 3 * 24 * 60),
) -> None:
    """OMNIHUB_KILL_SWITCH switched on ``minutes_ago`` minutes ago by an UPDATE run straight on
    the database (no audit_logs row), behind an audit history that tells another story: the
    seed's disable by alice two days ago ("drill over") and, with ``enabled_before`` (actor,
    reason, minutes ago), an older audited enable. Then ``queued_after`` workflows queue, and
    as many queued before the switch."""
    with psycopg.connect(dsn) as conn:
        if enabled_before:
            actor, why, before = enabled_before
            conn.execute(
                "INSERT INTO audit_logs (created_at, actor, action, resource_type, resource_id, outcome, source, details)"
                " VALUES (now() - %s * interval '1 minute', %s, 'emergency_control.enable', 'emergency_control',"
                " 'OMNIHUB_KILL_SWITCH', 'succeeded', 'app', jsonb_build_object('reason', %s::text))",
                (before, actor, why),
            )
        conn.execute(
            "UPDATE emergency_controls SET omnihub_kill_switch = true, reason = %s, updated_by = %s,"
            " updated_at = now() - %s * interval '1 minute'",
            (reason, updated_by, minutes_ago),
        )
        for i in range(queued_after):
            for age, tag in ((minutes_ago / 2, "held"), (minutes_ago * 2, "before")):
                conn.execute(
                    "INSERT INTO workflows (name, status, created_by, created_at) VALUES (%s, 'queued',"
                    " '00000000-0000-4000-8000-000000000002', now() - %s * interval '1 minute')",
                    (f"{tag}-{i}", age),
                )
