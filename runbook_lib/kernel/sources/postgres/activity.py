"""Sessions, connection use, locks and replication: pg_stat_activity, pg_locks,
pg_stat_replication, pg_stat_wal_receiver. Reads only, except the two statements that end
sessions, which the guarded actions run."""

from __future__ import annotations

from typing import Any

import pandas as pd
from psycopg import sql

from runbook_lib.kernel.sources.postgres.client import Postgres, frame

IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")

_SESSIONS = """
SELECT pid, usename AS "user", coalesce(nullif(application_name, ''), '(none)') AS application,
       coalesce(host(client_addr), 'local') AS client, state, wait_event_type, wait_event,
       extract(epoch FROM now() - state_change)::float AS in_state_s,
       extract(epoch FROM now() - xact_start)::float AS xact_age_s,
       left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
ORDER BY pid
"""

_CAPACITY = """
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS used,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS reserved
"""

_WAITING = """
SELECT a.pid, a.usename AS "user", coalesce(nullif(a.application_name, ''), '(none)') AS application,
       extract(epoch FROM now() - coalesce(a.query_start, a.state_change))::float AS waiting_s,
       left(a.query, 200) AS query, pg_blocking_pids(a.pid) AS blocked_by,
       l.mode AS wants, coalesce(l.relation::regclass::text, l.locktype) AS target
FROM pg_stat_activity a
LEFT JOIN LATERAL (
    SELECT mode, relation, locktype FROM pg_locks WHERE pid = a.pid AND NOT granted LIMIT 1
) l ON true
WHERE a.backend_type = 'client backend' AND cardinality(pg_blocking_pids(a.pid)) > 0
ORDER BY waiting_s DESC
"""

_BLOCKERS = """
SELECT a.pid, a.usename AS "user", coalesce(nullif(a.application_name, ''), '(none)') AS application,
       a.state, extract(epoch FROM now() - a.xact_start)::float AS xact_age_s,
       extract(epoch FROM now() - a.state_change)::float AS in_state_s, left(a.query, 200) AS query,
       cardinality(pg_blocking_pids(a.pid)) > 0 AS also_waiting,
       (SELECT string_agg(DISTINCT l.mode || ' on ' || l.relation::regclass::text, ', ')
          FROM pg_locks l
         WHERE l.pid = a.pid AND l.granted AND l.locktype = 'relation'
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.relation::regclass::text NOT LIKE 'pg\\_%%') AS holds
FROM pg_stat_activity a
WHERE a.pid = ANY(%s)
"""

_PRIMARY_REPLICAS = """
SELECT application_name AS standby, coalesce(host(client_addr), 'local') AS client, state, sync_state,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes,
       extract(epoch FROM replay_lag)::float AS replay_lag_s
FROM pg_stat_replication ORDER BY application_name
"""

_STANDBY = """
SELECT (SELECT status FROM pg_stat_wal_receiver) AS receiver_status,
       (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver) AS upstream,
       extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float AS replay_delay_s,
       pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint AS unreplayed_bytes,
       pg_is_wal_replay_paused() AS replay_paused
"""


_HAS_STATEMENTS = """
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
   AND current_setting('shared_preload_libraries') LIKE '%%pg_stat_statements%%' AS available
"""

_STATEMENTS = """
SELECT queryid, calls, round(mean_exec_time::numeric, 1)::float AS mean_ms,
       round(max_exec_time::numeric, 1)::float AS max_ms, round(total_exec_time::numeric, 0)::float AS total_ms,
       rows, left(query, 200) AS query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY mean_exec_time DESC LIMIT %s
"""

_LONG_RUNNING = """
SELECT pid, usename AS "user", coalesce(nullif(application_name, ''), '(none)') AS application,
       coalesce(host(client_addr), 'local') AS client, wait_event_type, wait_event,
       extract(epoch FROM now() - query_start)::float AS running_s, left(query, 200) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND state = 'active' AND pid <> pg_backend_pid()
  AND query_start < now() - make_interval(secs => %s)
ORDER BY running_s DESC LIMIT %s
"""


def slow_statements(pg: Postgres, limit: int = 10) -> pd.DataFrame | None:
    """The slowest statements by mean time from pg_stat_statements; None where the extension is
    not installed in this database or not preloaded."""
    if not pg.row(_HAS_STATEMENTS).get("available"):
        return None
    return pg.query(_STATEMENTS, (int(limit),))


def long_running(pg: Postgres, min_s: float, limit: int = 10) -> pd.DataFrame:
    """Statements running longer than ``min_s`` right now, longest first."""
    return pg.query(_LONG_RUNNING, (float(min_s), int(limit)))


def sessions(pg: Postgres) -> pd.DataFrame:
    """Every client session but our own: who, from where, in which state and for how long."""
    return pg.query(_SESSIONS)


def capacity(pg: Postgres) -> dict[str, Any]:
    """Client connections in use against max_connections (and the superuser reserve)."""
    return pg.row(_CAPACITY)


def waiting(pg: Postgres) -> pd.DataFrame:
    """Sessions waiting on a lock: what they want, on what, since when, and who blocks them."""
    return pg.query(_WAITING)


def blockers(pg: Postgres, pids: list[int]) -> pd.DataFrame:
    """The sessions ``pids``: their state, transaction age and the relation locks they hold."""
    if not pids:
        return pd.DataFrame(
            columns=[
                "pid",
                "user",
                "application",
                "state",
                "xact_age_s",
                "in_state_s",
                "query",
                "also_waiting",
                "holds",
            ]
        )
    return pg.query(_BLOCKERS, (pids,))


def replication(pg: Postgres, in_recovery: bool) -> dict[str, Any]:
    """On a primary: its standbys and their lag. On a standby: its WAL receiver and replay delay."""
    if in_recovery:
        return {"role": "standby", **pg.row(_STANDBY)}
    return {"role": "primary", "standbys": pg.query(_PRIMARY_REPLICAS)}


def idle_filter(older_than_s: float, application: str | None) -> sql.Composed:
    """WHERE for sessions idle in transaction longer than ``older_than_s`` (one application's only
    when given), never our own."""
    parts = [
        sql.SQL("state IN ({})").format(sql.SQL(", ").join(sql.Literal(s) for s in IDLE_IN_TRANSACTION)),
        sql.SQL("state_change < now() - make_interval(secs => {})").format(sql.Literal(float(older_than_s))),
        sql.SQL("pid <> pg_backend_pid()"),
    ]
    if application:
        parts.append(sql.SQL("application_name = {}").format(sql.Literal(application)))
    return sql.SQL(" AND ").join(parts)


def idle_preview(older_than_s: float, application: str | None) -> sql.Composed:
    """The sessions :func:`terminate_idle` would end now."""
    return sql.SQL(
        'SELECT pid, usename AS "user", application_name AS application,'
        " extract(epoch FROM now() - state_change)::float AS idle_s FROM pg_stat_activity WHERE {} ORDER BY pid"
    ).format(idle_filter(older_than_s, application))


def terminate_idle(older_than_s: float, application: str | None) -> sql.Composed:
    """End the sessions idle in transaction longer than ``older_than_s``: their transactions roll back."""
    return sql.SQL(
        "SELECT pid, application_name AS application, pg_terminate_backend(pid) AS terminated"
        " FROM pg_stat_activity WHERE {} ORDER BY pid"
    ).format(idle_filter(older_than_s, application))


def end_backend(pid: int, terminate: bool) -> sql.Composed:
    """pg_cancel_backend (stop its running statement) or pg_terminate_backend (end the session)."""
    fn = "pg_terminate_backend" if terminate else "pg_cancel_backend"
    return sql.SQL("SELECT {}({}) AS done").format(sql.Identifier(fn), sql.Literal(int(pid)))


def run_returning(pg: Postgres, statement: sql.Composable) -> pd.DataFrame:
    """Run one of the statements above that changes something; its rows say what it did."""
    with pg.connect(read_only=False) as conn:
        return frame(conn.execute(statement))
