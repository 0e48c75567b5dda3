"""Backups for the DR drill: pg_dump from an exported snapshot (so the source's rows can be
counted in exactly the state the backup holds), what a backup file holds and when it was
made (pg_restore -l), and scratch databases to restore into. The source is only ever read:
its snapshot is held by a READ ONLY transaction."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from runbook_lib.core.errors import SourceError
from runbook_lib.core.settings import Settings
from runbook_lib.kernel.sources.postgres.client import NAME, Postgres

SCRATCH_PREFIX = "rb_drill_"
SCRATCH = re.compile(rf"^{SCRATCH_PREFIX}(\d{{8}}t\d{{6}})_[0-9a-f]{{6}}$")
_CREATED = re.compile(r"Archive created at (\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}) (\S+)")
_TABLE = re.compile(r"^\d+; \d+ \d+ (TABLE DATA|TABLE) (\S+) (\S+) ")


def tool(name: str, bin_dir: str | None) -> str:
    """pg_dump / pg_restore: from ``bin_dir``, else the newest /usr/lib/postgresql/*/bin, else PATH."""
    candidates = [Path(bin_dir) / name] if bin_dir else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _int(p.parent.name), reverse=True)
    candidates += [p / name for p in versions]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    where = f"{bin_dir} or " if bin_dir else ""
    raise SourceError(NAME, f"{name} not found in {where}/usr/lib/postgresql/*/bin or PATH (install postgresql-client)")


def tool_major(path: str) -> int:
    """The major version of a PostgreSQL client program ("pg_dump (PostgreSQL) 15.20" -> 15)."""
    out = _run([path, "--version"], {}, 30).stdout
    m = re.search(r"\(PostgreSQL\) (\d+)", out)
    if not m:
        raise SourceError(NAME, f"cannot tell the version of {path}: {out.strip()[:100]!r}")
    return int(m.group(1))


@contextmanager
def snapshot(pg: Postgres) -> Iterator[tuple[psycopg.Connection[Any], str, datetime]]:
    """A REPEATABLE READ, READ ONLY transaction on the source, its snapshot exported for pg_dump
    --snapshot; yields (connection, snapshot id, the snapshot's time). Counting rows on this
    connection counts exactly what the dump holds."""
    with pg.connect(read_only=True) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        row = conn.execute("SELECT pg_export_snapshot() AS id, now() AS at").fetchone()
        assert row is not None
        yield conn, row["id"], row["at"]


def dump(pg: Postgres, pg_dump: str, out: Path, snapshot_id: str | None, timeout_s: float) -> None:
    """pg_dump -Fc of the source (from ``snapshot_id`` when given) into ``out``."""
    conninfo, env = pg.libpq_environment()
    cmd = [pg_dump, "--format=custom", "--no-password", f"--file={out}", f"--dbname={conninfo}"]
    if snapshot_id:
        cmd.insert(3, f"--snapshot={snapshot_id}")
    _run(cmd, env, timeout_s, what="pg_dump")


def contents(pg_restore: str, backup: Path) -> dict[str, Any]:
    """When a custom-format backup was made (UTC) and which tables it holds with their data."""
    out = _run([pg_restore, "--list", str(backup)], {"TZ": "UTC", "PGTZ": "UTC"}, 120, what="pg_restore --list").stdout
    m = _CREATED.search(out)
    if not m:
        raise SourceError(NAME, f"{backup.name}: no 'Archive created at' line: not a pg_dump custom-format file?")
    created = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    tables, with_data = set(), set()
    for line in out.splitlines():
        t = _TABLE.match(line)
        if t:
            (with_data if t.group(1) == "TABLE DATA" else tables).add(t.group(3))
    return {"created_at": created, "zone": m.group(2), "tables": sorted(tables), "tables_with_data": sorted(with_data)}


def restore(target: Postgres, pg_restore: str, backup: Path, timeout_s: float) -> None:
    """pg_restore a custom-format backup into ``target`` (a scratch database): objects owned by
    the restoring role, no grants, stop at the first error."""
    conninfo, env = target.libpq_environment()
    cmd = [
        pg_restore,
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--no-password",
        f"--dbname={conninfo}",
        str(backup),
    ]
    _run(cmd, env, timeout_s, what="pg_restore")


def scratch_name(now: datetime) -> str:
    return f"{SCRATCH_PREFIX}{now:%Y%m%dT%H%M%S}_{secrets.token_hex(3)}".lower()


def create_database(server: Postgres, name: str) -> None:
    if not SCRATCH.match(name):
        raise SourceError(NAME, f"refusing to create {name!r}: not a drill scratch name")
    with server.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(server: Postgres, name: str) -> bool:
    """Drop a drill scratch database (only a name the drill makes); True when it existed."""
    if not SCRATCH.match(name):
        raise SourceError(NAME, f"refusing to drop {name!r}: not a drill scratch name")
    with server.connect(autocommit=True) as conn:
        existed = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    return existed


def scratch_databases(server: Postgres) -> list[str]:
    """Drill scratch databases on the server (an interrupted drill may have left one)."""
    with server.connect() as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY datname", (SCRATCH_PREFIX + "%",)
        ).fetchall()
    return [r["datname"] for r in rows if SCRATCH.match(r["datname"])]


def scratch_age_s(name: str, now: datetime | None = None) -> float | None:
    """How long ago a scratch database was created, from its name (None: not a scratch name)."""
    m = SCRATCH.match(name)
    if not m:
        return None
    made = datetime.strptime(m.group(1), "%Y%m%dt%H%M%S").replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - made).total_seconds()


def may_create_databases(pg: Postgres) -> bool:
    row = pg.row("SELECT rolcreatedb OR rolsuper AS ok FROM pg_roles WHERE rolname = current_user")
    return bool(row.get("ok"))


def _run(cmd: list[str], env: dict[str, str], timeout_s: float, what: str = "") -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **env},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SourceError(NAME, f"{what or cmd[0]} did not finish within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise SourceError(NAME, f"cannot run {cmd[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise SourceError(NAME, f"{what or cmd[0]} failed (exit {done.returncode}): {lines[-1] if lines else ''}")
    return done


def _int(text: str) -> int:
    return int(text) if text.isdigit() else -1


def scratch_server(settings: Settings, source: Postgres) -> Postgres:
    """Where a drill creates its scratch databases: RUNBOOK_POSTGRES_DRILL_DSN's server if set,
    else the source's."""
    cfg = settings.postgres
    if cfg.drill_dsn is None:
        return source
    return Postgres(
        cfg.drill_dsn.get_secret_value(), cfg.connect_timeout_s, cfg.statement_timeout_ms, cfg.lock_timeout_ms
    )
