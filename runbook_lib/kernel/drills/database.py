"""The database part two drills share (the database restore, Q1, and the environment restore, Q3):
the pre-drill checks of a source and a scratch server, a backup that never writes to the source,
a restore into a scratch database of the drill's own, and dropping it again.

The source is only read: pg_dump runs from a snapshot exported by a READ ONLY transaction, and
the source's rows are counted in that same snapshot, so the comparison is exact while the source
keeps taking writes. The drill writes only to the scratch database it creates (named
``rb_drill_<time>_<hex>``; nothing else is ever dropped) and to a backup file of its own.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import ConnectFailed, Postgres, backup, integrity

STALE_SCRATCH_S = 6 * 3600  # a scratch database this old was left by a drill that died: dropped


@dataclass
class Servers:
    """The source, the server scratch databases go on, and what the pre-drill checks found."""

    source: Postgres
    server: Postgres
    version: str
    tools: dict[str, str]  # pg_dump, pg_restore: their paths
    majors: dict[str, int]
    problems: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # scratch databases of dead drills: dropped when it runs

    def describe(self) -> str:
        return (
            f"Source {self.source.where} (PostgreSQL {self.version}); pg_dump {self.majors['pg_dump']}, pg_restore "
            f"{self.majors['pg_restore']}; scratch databases go on {self.server.where}"
        )


def check_servers(rb: RunbookLike, source_database: str, given_backup: Path | None) -> Servers:
    """The source answers, pg_dump/pg_restore are at least the server's version, the drill's role
    may create databases, the given backup exists, no other drill is running (a young scratch
    database). Changes nothing. Raises SourceError or ConnectFailed when the source cannot be asked."""
    base = rb.postgres
    source = base.on_database(source_database) if source_database else base
    server = backup.scratch_server(rb.settings, source)
    state = source.server_state()
    tools = {name: backup.tool(name, rb.settings.postgres.bin_dir) for name in ("pg_dump", "pg_restore")}
    majors = {name: backup.tool_major(path) for name, path in tools.items()}
    leftovers = {name: backup.scratch_age_s(name) for name in backup.scratch_databases(server)}
    may_create = backup.may_create_databases(server)
    found = Servers(source, server, str(state["version"]), tools, majors)
    server_major = int(state["version_num"]) // 10000
    if any(m < server_major for m in majors.values()):
        found.problems.append(
            f"pg_dump/pg_restore {majors} are older than the server ({server_major}): install newer clients"
        )
    if not may_create:
        found.problems.append("the drill's role may not create databases (CREATEDB)")
    if given_backup is not None and not given_backup.is_file():
        found.problems.append(f"backup file {given_backup} does not exist")
    young = [n for n, age in leftovers.items() if age is None or age < STALE_SCRATCH_S]
    if young:
        found.problems.append(f"another drill may be running (scratch database(s) {', '.join(young)} are recent)")
    found.stale = [n for n in leftovers if n not in young]
    return found


@dataclass
class Backup:
    """A backup the drill restores, and the source's rows it must hold."""

    file: Path
    at: datetime  # the snapshot's time, or the given file's creation time
    expected: pd.DataFrame  # table, exists, rows, max_created_at
    exact: bool  # counted in the backup's own snapshot (False: estimated from created_at)
    seconds: float
    workdir: Path | None = None  # the drill's own folder for a fresh dump: removed by :func:`drop`
    tables_with_data: list[str] = field(default_factory=list)  # of a given file, as pg_restore lists it


def take_backup(
    rb: RunbookLike, servers: Servers, tables: list[str], given: Path | None, prefix: str = "rb-drill-"
) -> Backup:
    """A fresh pg_dump -Fc from an exported snapshot, the source counted in that snapshot; or the
    given backup file, its time read from the file itself and the source's rows estimated then."""
    started = time.monotonic()
    if given is not None:
        info = backup.contents(servers.tools["pg_restore"], given)
        expected = integrity.row_counts(servers.source, tables, until=info["created_at"])
        took = time.monotonic() - started
        return Backup(given, info["created_at"], expected, False, took, tables_with_data=info["tables_with_data"])
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    out = workdir / f"{servers.source.database or 'source'}.dump"
    with backup.snapshot(servers.source) as (conn, snapshot_id, at):
        backup.dump(servers.source, servers.tools["pg_dump"], out, snapshot_id, rb.settings.kernels.cell_timeout_s)
        expected = integrity.count_rows(conn, integrity.tables(servers.source, tables))
    return Backup(out, at, expected, True, time.monotonic() - started, workdir)


def restore_scratch(rb: RunbookLike, servers: Servers, dump: Path) -> str:
    """A new scratch database on the scratch server with ``dump`` restored into it; its name."""
    name = backup.scratch_name(datetime.now(UTC))
    backup.create_database(servers.server, name)
    try:
        backup.restore(
            servers.server.on_database(name), servers.tools["pg_restore"], dump, rb.settings.kernels.cell_timeout_s
        )
    except BaseException:
        backup.drop_database(servers.server, name)
        raise
    return name


def drop_stale(rb: RunbookLike, servers: Servers) -> None:
    """Drop the scratch databases interrupted drills left (older than STALE_SCRATCH_S)."""
    for name in servers.stale:
        backup.drop_database(servers.server, name)
        rb.note(f"Dropped {name}, left by an interrupted drill.")


def drop(servers: Servers | None, scratch: str | None, taken: Backup | None) -> tuple[bool, list[str]]:
    """Drop the scratch database and remove the drill's own backup file; (all gone, what was done)."""
    notes, ok = [], True
    if scratch and servers is not None:
        try:
            backup.drop_database(servers.server, scratch)
            notes.append(f"scratch database {scratch} dropped")
        except (SourceError, ConnectFailed) as exc:
            ok = False
            notes.append(f"scratch database {scratch} NOT dropped ({exc}): drop it by hand")
    if taken is not None and taken.workdir is not None:
        shutil.rmtree(taken.workdir, ignore_errors=True)
        notes.append("the drill's backup file removed")
    return ok, notes


def count(value: Any) -> int | None:
    """A count from a query or a DataFrame cell: None for NULL/NaN."""
    return None if value is None or pd.isna(value) else int(value)
