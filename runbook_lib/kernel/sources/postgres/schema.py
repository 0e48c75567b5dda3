"""Schema state: which migration is applied (alembic_version or schema_migrations, whichever
exists), schema changes running now, and indexes left invalid by a failed build.

Only catalog reads that take no lock on the user's tables (no pg_get_indexdef, which opens the
table): this runbook runs while a migration holds or waits for ACCESS EXCLUSIVE on one."""

from __future__ import annotations

from typing import Any

import pandas as pd
from psycopg import sql

from runbook_lib.kernel.sources.postgres.client import Postgres

MIGRATION_TABLES = ("alembic_version", "schema_migrations")
# Statements that change the schema (and take strong locks while they do).
DDL = r"^\s*(alter|create|drop|reindex|cluster|vacuum\s+full|truncate|refresh\s+materialized|comment\s+on)\s"  # PostgreSQL and Python alike: no \b

_TABLES = """
SELECT t.name, c.column_name
FROM unnest(%s::text[]) AS t(name)
JOIN information_schema.columns c ON c.table_name = t.name AND c.table_schema = ANY(current_schemas(false))
ORDER BY t.name, c.ordinal_position
"""

_DDL_RUNNING = """
SELECT pid, usename AS "user", coalesce(nullif(application_name, ''), '(none)') AS application, state,
       wait_event_type, extract(epoch FROM now() - query_start)::float AS running_s,
       cardinality(pg_blocking_pids(pid)) > 0 AS waiting_on_lock, left(query, 300) AS query
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state <> 'idle' AND query ~* %s
ORDER BY running_s DESC
"""

_INVALID_INDEXES = """
SELECT n.nspname AS schema, ic.relname AS index, t.relname AS "table", i.indisunique AS "unique",
       array(SELECT a.attname::text FROM pg_attribute a
              WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) ORDER BY a.attnum) AS columns,
       i.indisready AS ready
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY n.nspname, ic.relname
"""


def migrations(pg: Postgres) -> dict[str, Any]:
    """The applied migration: {"tool", "table", "versions", "dirty"}; tool None when neither table exists."""
    with pg.connect() as conn:
        cols: dict[str, list[str]] = {}
        for row in conn.execute(_TABLES, (list(MIGRATION_TABLES),)).fetchall():
            cols.setdefault(row["name"], []).append(row["column_name"])
        if "alembic_version" in cols:
            rows = conn.execute("SELECT version_num FROM alembic_version ORDER BY version_num").fetchall()
            return {
                "tool": "alembic",
                "table": "alembic_version",
                "versions": [r["version_num"] for r in rows],
                "dirty": None,
            }
        if "schema_migrations" in cols:
            has_dirty = "dirty" in cols["schema_migrations"]
            rows = conn.execute(
                sql.SQL(
                    "SELECT version::text AS version{} FROM schema_migrations ORDER BY version DESC LIMIT 5"
                ).format(sql.SQL(", dirty") if has_dirty else sql.SQL(""))
            ).fetchall()
            return {
                "tool": "golang-migrate" if has_dirty else "schema_migrations",
                "table": "schema_migrations",
                "versions": [r["version"] for r in rows],
                "dirty": bool(rows and rows[0].get("dirty")) if has_dirty else None,
            }
    return {"tool": None, "table": None, "versions": [], "dirty": None}


def ddl_running(pg: Postgres) -> pd.DataFrame:
    """Schema changes running (or waiting) now, longest first."""
    return pg.query(_DDL_RUNNING, (DDL,))


def invalid_indexes(pg: Postgres) -> pd.DataFrame:
    """Indexes a failed CREATE INDEX CONCURRENTLY (or REINDEX) left invalid: unused, still written."""
    return pg.query(_INVALID_INDEXES)
