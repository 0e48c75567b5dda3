"""Create and seed a sandbox OmniHub database on the local PostgreSQL."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

import psycopg
from psycopg import sql

from runbook_lib.core.errors import SandboxError, SourceUnavailable

HERE = Path(__file__).parent
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def dsn_for(dbname: str, admin_dsn: str = ADMIN_DSN) -> str:
    return admin_dsn.rsplit("/", 1)[0] + f"/{dbname}"


def run_name(prefix: str = "runbook_demo") -> str:
    """A database name no other run uses: ``<prefix>_<pid>_<hex>`` (the pid tells whether its
    run is still alive: :func:`drop_leftovers`)."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"


def create_database(dbname: str, admin_dsn: str = ADMIN_DSN, seed: bool = True) -> str:
    """Create ``dbname`` with the OmniHub schema (and seed data); returns its DSN. A database of
    that name that exists already is an error: it is somebody else's, never dropped here."""
    if not _NAME.fullmatch(dbname):
        raise ValueError(f"not a plain database name: {dbname!r}")
    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    except psycopg.errors.DuplicateDatabase:
        raise SandboxError(f"database {dbname} exists already: another run's; choose another name") from None
    except psycopg.OperationalError as exc:
        raise SourceUnavailable("PostgreSQL", f"cannot reach the local server to create {dbname}: {exc}") from None
    dsn = dsn_for(dbname, admin_dsn)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute((HERE / "schema.sql").read_text())
        if seed:
            conn.execute((HERE / "seed.sql").read_text())
    return dsn


def drop_leftovers(prefix: str = "runbook_demo", admin_dsn: str = ADMIN_DSN) -> list[str]:
    """Drop the ``<prefix>_<pid>_<hex>`` databases whose run is gone (killed before it cleaned
    up); a live run's database is left alone. Returns the names dropped."""
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+)_[0-9a-f]+")
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate")]
    gone = [n for n in names if (m := pattern.fullmatch(n)) and not _running(int(m.group(1)))]
    for name in gone:
        drop_database(name, admin_dsn)
    return gone


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_database(dbname: str, admin_dsn: str = ADMIN_DSN) -> None:
    if not _NAME.fullmatch(dbname):
        raise ValueError(f"not a plain database name: {dbname!r}")
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
