"""Create and seed a sandbox OmniHub database on the local PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql

from runbook_lib.core.errors import SourceUnavailable

HERE = Path(__file__).parent
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def dsn_for(dbname: str, admin_dsn: str = ADMIN_DSN) -> str:
    return admin_dsn.rsplit("/", 1)[0] + f"/{dbname}"


def create_database(dbname: str, admin_dsn: str = ADMIN_DSN, seed: bool = True) -> str:
    """(Re)create ``dbname`` with the OmniHub schema (and seed data); returns its DSN."""
    if not _NAME.fullmatch(dbname):
        raise ValueError(f"not a plain database name: {dbname!r}")
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.OperationalError as exc:
        raise SourceUnavailable("PostgreSQL", f"cannot reach the local server to create {dbname}: {exc}") from None
    dsn = dsn_for(dbname, admin_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((HERE / "schema.sql").read_text())
        if seed:
            conn.execute((HERE / "seed.sql").read_text())
    return dsn


def drop_database(dbname: str, admin_dsn: str = ADMIN_DSN) -> None:
    if not _NAME.fullmatch(dbname):
        raise ValueError(f"not a plain database name: {dbname!r}")
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
