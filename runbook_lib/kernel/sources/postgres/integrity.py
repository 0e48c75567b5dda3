"""Integrity: rows whose foreign key points nowhere, row counts against a recorded baseline,
data-checksum failures, and amcheck's B-tree verification. All reads; amcheck is created (when
missing) inside a transaction that is always rolled back, so nothing is left behind."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import psycopg
from psycopg import sql

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.sources.postgres.client import NAME, Postgres, first_line, frame

BASELINE_TABLE = "runbook_row_baseline"

_FOREIGN_KEYS = """
SELECT c.conname AS name, cn.nspname AS child_schema, ct.relname AS child, pn.nspname AS parent_schema,
       pt.relname AS parent, array_agg(ca.attname::text ORDER BY k.ord) AS child_columns,
       array_agg(pa.attname::text ORDER BY k.ord) AS parent_columns
FROM pg_constraint c
JOIN pg_class ct ON ct.oid = c.conrelid
JOIN pg_namespace cn ON cn.oid = ct.relnamespace
JOIN pg_class pt ON pt.oid = c.confrelid
JOIN pg_namespace pn ON pn.oid = pt.relnamespace
CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(attnum, fattnum, ord)
JOIN pg_attribute ca ON ca.attrelid = c.conrelid AND ca.attnum = k.attnum
JOIN pg_attribute pa ON pa.attrelid = c.confrelid AND pa.attnum = k.fattnum
WHERE c.contype = 'f' AND cn.nspname NOT IN ('pg_catalog', 'information_schema')
GROUP BY c.conname, cn.nspname, ct.relname, pn.nspname, pt.relname
ORDER BY ct.relname, c.conname
"""

_TABLE_COLUMNS = """
SELECT t.name, n.nspname AS schema, EXISTS (
         SELECT 1 FROM pg_attribute a
          WHERE a.attrelid = c.oid AND a.attname = 'created_at' AND NOT a.attisdropped) AS has_created_at
FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, ord)
LEFT JOIN pg_class c ON c.relname = t.name AND c.relkind IN ('r', 'p')
     AND c.relnamespace = ANY(SELECT oid FROM pg_namespace WHERE nspname = ANY(current_schemas(false)))
LEFT JOIN pg_namespace n ON n.oid = c.relnamespace
ORDER BY t.ord
"""

_CHECKSUMS = """
SELECT current_setting('data_checksums') = 'on' AS enabled, checksum_failures AS failures,
       checksum_last_failure AS last_failure
FROM pg_stat_database WHERE datname = current_database()
"""

_BTREE_INDEXES = """
SELECT ic.oid::int AS oid, ic.relname AS index, t.relname AS "table"
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_am am ON am.oid = ic.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND t.relname = ANY(%s)
  AND t.relnamespace = ANY(SELECT oid FROM pg_namespace WHERE nspname = ANY(current_schemas(false)))
ORDER BY t.relname, ic.relname
"""


@dataclass(frozen=True)
class ForeignKey:
    name: str
    child_schema: str
    child: str
    parent_schema: str
    parent: str
    child_columns: tuple[str, ...]
    parent_columns: tuple[str, ...]

    @property
    def label(self) -> str:
        """workflows.created_by -> profiles.id"""
        return f"{self.child}.{','.join(self.child_columns)} -> {self.parent}.{','.join(self.parent_columns)}"

    def orphans(self) -> sql.Composed:
        """Rows of the child whose key is set but matches no parent row: count and one example."""
        ch, p = sql.Identifier("ch"), sql.Identifier("p")
        cols = [sql.Identifier("ch", c) for c in self.child_columns]
        return sql.SQL(
            "SELECT count(*)::bigint AS orphans, min(concat_ws(', ', {keys})) AS example FROM {child} AS {ch}"
            " WHERE {set} AND NOT EXISTS (SELECT 1 FROM {parent} AS {p} WHERE {match})"
        ).format(
            keys=sql.SQL(", ").join(sql.SQL("{}::text").format(c) for c in cols),
            child=sql.Identifier(self.child_schema, self.child),
            ch=ch,
            set=sql.SQL(" AND ").join(sql.SQL("{} IS NOT NULL").format(c) for c in cols),
            parent=sql.Identifier(self.parent_schema, self.parent),
            p=p,
            match=sql.SQL(" AND ").join(
                sql.SQL("{} = {}").format(sql.Identifier("p", pc), sql.Identifier("ch", cc))
                for cc, pc in zip(self.child_columns, self.parent_columns, strict=True)
            ),
        )


def foreign_keys(pg: Postgres) -> list[ForeignKey]:
    rows = pg.query(_FOREIGN_KEYS)
    return [
        ForeignKey(
            r["name"],
            r["child_schema"],
            r["child"],
            r["parent_schema"],
            r["parent"],
            tuple(r["child_columns"]),
            tuple(r["parent_columns"]),
        )
        for _, r in rows.iterrows()
    ]


def orphans(pg: Postgres, keys: list[ForeignKey]) -> pd.DataFrame:
    """For each foreign key: how many child rows point at no parent (possible only when its
    trigger was bypassed: session_replication_role = replica, a restore, a bug in a tool)."""
    out = []
    with pg.connect() as conn:
        for fk in keys:
            row = conn.execute(fk.orphans()).fetchone() or {}
            out.append({"foreign_key": fk.label, "child": fk.child, "constraint": fk.name, **row})
    return pd.DataFrame(out, columns=["foreign_key", "child", "constraint", "orphans", "example"])


def tables(pg: Postgres, names: list[str]) -> pd.DataFrame:
    """Which of ``names`` exist (in the search path) and have a created_at column."""
    return pg.query(_TABLE_COLUMNS, (list(names),))


def count_rows(conn: psycopg.Connection[Any], present: pd.DataFrame, until: Any = None) -> pd.DataFrame:
    """count(*) and max(created_at) of each existing table, on the caller's connection (so the
    DR drill can count inside the snapshot its backup was taken from). With ``until``, only the
    rows created by then, in tables that have created_at (the others are counted whole)."""
    out = []
    for _, t in present.iterrows():
        if t["schema"] is None or pd.isna(t["schema"]):
            out.append({"table": t["name"], "exists": False, "rows": None, "max_created_at": None})
            continue
        newest = sql.SQL("max(created_at)") if t["has_created_at"] else sql.SQL("NULL::timestamptz")
        where = (
            sql.SQL(" WHERE created_at <= {}").format(sql.Literal(until))
            if until is not None and t["has_created_at"]
            else sql.SQL("")
        )
        row = conn.execute(
            sql.SQL("SELECT count(*)::bigint AS rows, {} AS max_created_at FROM {}{}").format(
                newest, sql.Identifier(t["schema"], t["name"]), where
            )
        ).fetchone()
        out.append({"table": t["name"], "exists": True, **(row or {})})
    return pd.DataFrame(out, columns=["table", "exists", "rows", "max_created_at"])


def row_counts(pg: Postgres, names: list[str], until: Any = None) -> pd.DataFrame:
    present = tables(pg, names)
    with pg.connect() as conn:
        return count_rows(conn, present, until)


def baseline(pg: Postgres) -> pd.DataFrame | None:
    """The recorded baseline (table, rows, max_created_at, recorded_at, recorded_by), or None
    when no baseline was ever recorded."""
    with pg.connect() as conn:
        found = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present", (BASELINE_TABLE,)).fetchone()
        if not found or not found["present"]:
            return None
        return frame(
            conn.execute(
                sql.SQL(
                    'SELECT table_name AS "table", row_count AS rows, max_created_at, recorded_at, recorded_by'
                    " FROM {} ORDER BY table_name"
                ).format(sql.Identifier(BASELINE_TABLE))
            )
        )


def record_baseline_statements(counts: pd.DataFrame, operator: str) -> list[sql.Composed]:
    """CREATE the baseline table if needed and upsert one row per counted table."""
    out = [
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, row_count bigint NOT NULL,"
            " max_created_at timestamptz, recorded_at timestamptz NOT NULL DEFAULT now(), recorded_by text NOT NULL)"
        ).format(sql.Identifier(BASELINE_TABLE))
    ]
    for _, r in counts[counts["exists"]].iterrows():
        newest = r["max_created_at"]
        out.append(
            sql.SQL(
                "INSERT INTO {} (table_name, row_count, max_created_at, recorded_by) VALUES ({}, {}, {}, {})"
                " ON CONFLICT (table_name) DO UPDATE SET row_count = EXCLUDED.row_count,"
                " max_created_at = EXCLUDED.max_created_at, recorded_at = now(), recorded_by = EXCLUDED.recorded_by"
            ).format(
                sql.Identifier(BASELINE_TABLE),
                sql.Literal(r["table"]),
                sql.Literal(int(r["rows"])),
                sql.Literal(None if newest is None or pd.isna(newest) else pd.Timestamp(newest).isoformat()),
                sql.Literal(operator),
            )
        )
    return out


def checksums(pg: Postgres) -> dict[str, Any]:
    """Whether data checksums are on, and the failures PostgreSQL counted reading this database."""
    return pg.row(_CHECKSUMS)


def index_check(pg: Postgres, names: list[str]) -> dict[str, Any]:
    """amcheck's bt_index_check (heapallindexed) on every valid B-tree index of ``names``.
    Returns {"available": bool, "why": str, "checked": [...], "corrupt": [...]}. The extension
    is created only inside this transaction, which is rolled back at the end."""
    result: dict[str, Any] = {"available": False, "why": "", "checked": [], "corrupt": []}
    with pg.connect(read_only=False, keep=False) as conn:
        present = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'amcheck'").fetchone()
        if not present:
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION amcheck")
            except psycopg.errors.InsufficientPrivilege:
                result["why"] = "amcheck is not installed and this role may not create it (superuser needed)"
                return result
            except (psycopg.errors.UndefinedFile, psycopg.errors.FeatureNotSupported) as exc:
                result["why"] = f"the amcheck extension is not available on this server ({first_line(exc)})"
                return result
        result["available"] = True
        result["created_for_check"] = not present
        for idx in conn.execute(_BTREE_INDEXES, (list(names),)).fetchall():
            try:
                with conn.transaction():
                    conn.execute("SELECT bt_index_check(%s::oid::regclass, true)", (idx["oid"],))
                result["checked"].append(f"{idx['table']}.{idx['index']}")
            except (psycopg.errors.IndexCorrupted, psycopg.errors.DataCorrupted) as exc:
                result["corrupt"].append({"table": idx["table"], "index": idx["index"], "error": first_line(exc)})
            except psycopg.errors.QueryCanceled:
                raise SourceError(NAME, f"amcheck on {idx['index']} exceeded the statement timeout") from None
    return result
