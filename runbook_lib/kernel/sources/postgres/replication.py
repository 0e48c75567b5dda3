"""Streaming replication for the regional-failover DR drill: whether a standby streams from
its primary and how far behind it is, the drill's marker table, pg_ctl stop -m immediate of
the primary's data directory and pg_promote on the standby.

Everything here acts only on the servers and the data directory it is given. Reads are READ
ONLY transactions; the writes are the drill's own marker rows (``dr_drill_markers``), the
promotion, and the stop.
"""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pandas as pd

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.sources.postgres.client import NAME, ConnectFailed, Postgres

MARKERS = "dr_drill_markers"

_NODE = """
SELECT pg_is_in_recovery() AS in_recovery, current_setting('server_version') AS version,
       current_setting('port')::int AS port, current_setting('cluster_name') AS cluster_name,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS current_lsn,
       pg_last_wal_receive_lsn()::text AS receive_lsn, pg_last_wal_replay_lsn()::text AS replay_lsn,
       clock_timestamp() AS at
"""

_REPLICAS = """
SELECT application_name AS standby, coalesce(host(client_addr), 'local') AS client, state, sync_state,
       replay_lsn::text AS replay_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint AS replay_lag_bytes,
       extract(epoch FROM replay_lag)::float AS replay_lag_s
FROM pg_stat_replication ORDER BY application_name
"""

_RECEIVER = """
SELECT status, sender_host, sender_port, received_tli,
       extract(epoch FROM now() - last_msg_receipt_time)::float AS last_message_s
FROM pg_stat_wal_receiver
"""


def lsn(text: str | None) -> int | None:
    """'0/3000148' -> its byte position."""
    if not text:
        return None
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def node(pg: Postgres) -> dict[str, Any]:
    """Recovery state, identity (system identifier, port) and WAL positions of one server."""
    return pg.row(_NODE)


def replicas(pg: Postgres) -> pd.DataFrame:
    """On a primary: pg_stat_replication, each standby's state and replay lag (bytes, seconds)."""
    return pg.query(_REPLICAS)


def receiver(pg: Postgres) -> dict[str, Any]:
    """On a standby: its WAL receiver (an empty dict when none runs: it is not streaming)."""
    return pg.row(_RECEIVER)


def ensure_markers(pg: Postgres) -> None:
    with pg.connect(read_only=False) as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {MARKERS} (id serial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), note text)"
        )


def write_marker(pg: Postgres, note: str) -> dict[str, Any]:
    """Insert one marker row; returns its id and time and the WAL position once committed."""
    with pg.connect(read_only=False) as conn:
        row = conn.execute(f"INSERT INTO {MARKERS} (note) VALUES (%s) RETURNING id, at", (note,)).fetchone()
    assert row is not None
    return {**row, "lsn": pg.row("SELECT pg_current_wal_lsn()::text AS lsn")["lsn"]}


def markers(pg: Postgres, ids: list[int]) -> pd.DataFrame:
    """The marker rows among ``ids`` that this server holds."""
    return pg.query(f"SELECT id, at, note FROM {MARKERS} WHERE id = ANY(%s) ORDER BY id", (ids,))


def wait_replayed(standby: Postgres, target_lsn: str, timeout_s: float) -> float | None:
    """Seconds until the standby replayed up to ``target_lsn``; None when it did not in time."""
    started = time.monotonic()
    while True:
        row = standby.row("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn AS done", (target_lsn,))
        if row.get("done"):
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            return None
        time.sleep(0.05)


def promote(standby: Postgres, wait_s: int) -> bool:
    """SELECT pg_promote(wait => true): True once the standby accepts writes."""
    with standby.connect(autocommit=True) as conn:
        conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(wait_s) + 10}s",))
        row = conn.execute("SELECT pg_promote(wait => true, wait_seconds => %s) AS promoted", (int(wait_s),)).fetchone()
    return bool(row and row["promoted"])


def first_write(pg: Postgres, note: str, timeout_s: float) -> tuple[dict[str, Any], int]:
    """Insert a marker, retrying until the server takes it; (the marker, attempts)."""
    deadline, attempts = time.monotonic() + timeout_s, 0
    while True:
        attempts += 1
        try:
            return write_marker(pg, note), attempts
        except (SourceError, ConnectFailed):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def is_down(pg: Postgres) -> bool:
    try:
        with pg.connect():
            return False
    except ConnectFailed:
        return True


# -- the data directory ---------------------------------------------------------------------------
def data_dir_identity(data_dir: Path, pg_controldata: str) -> dict[str, Any]:
    """What a data directory is: its running postmaster (pid, port and first Unix socket
    directory, from postmaster.pid) and its system identifier (pg_controldata)."""
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        raise SourceError(NAME, f"{data_dir} has no postmaster.pid: no server runs from it") from None
    except OSError as exc:
        raise SourceError(NAME, f"cannot read {pid_file}: {exc.strerror}") from None
    out = _run(_as_owner(data_dir, [pg_controldata, "-D", str(data_dir)]), 30, "pg_controldata").stdout
    m = re.search(r"^Database system identifier:\s+(\d+)", out, re.M)
    return {
        "pid": int(lines[0]) if lines and lines[0].strip().isdigit() else None,
        "port": int(lines[3]) if len(lines) > 3 and lines[3].strip().isdigit() else None,
        "socket_dir": lines[4].strip() if len(lines) > 4 else "",  # empty: no Unix socket
        "system_identifier": m.group(1) if m else None,
    }


def backend(pg: Postgres) -> dict[str, Any]:
    """The server process serving this connection, whether that server is in recovery, and the
    serving process's parent on this machine (``parent``: its postmaster; None when it is not
    here). The parent is read while the connection is open: a backend exits with its connection,
    and a /proc read after that finds nothing (which once failed the drill's proof at random)."""
    with pg.connect(read_only=True) as conn:
        row = conn.execute("SELECT pg_backend_pid() AS pid, pg_is_in_recovery() AS in_recovery").fetchone()
        found = dict(row) if row else {}
        found["parent"] = parent_pid(found["pid"]) if found.get("pid") else None
    return found


def parent_pid(pid: int) -> int | None:
    """The parent of a process on this machine (/proc); None when no such process is here."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def stop_command(data_dir: Path, pg_ctl: str) -> list[str]:
    return _as_owner(data_dir, [pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "-t", "60", "stop"])


def stop_immediate(data_dir: Path, pg_ctl: str) -> None:
    """pg_ctl stop -m immediate: the server dies as in a crash (as the directory's owner when root)."""
    _run(stop_command(data_dir, pg_ctl), 90, "pg_ctl stop")


def _as_owner(data_dir: Path, cmd: list[str]) -> list[str]:
    """pg_ctl refuses root: run as the data directory's owner, as initdb made it."""
    if os.geteuid() != 0:
        return cmd
    try:
        owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    except (OSError, KeyError) as exc:
        raise SourceError(NAME, f"cannot tell who owns {data_dir}: {exc}") from None
    return ["runuser", "-u", owner, "--", *cmd] if owner != "root" else cmd


def _run(cmd: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, "LC_ALL": "C"}, check=False
        )
    except subprocess.TimeoutExpired:
        raise SourceError(NAME, f"{what} did not finish within {timeout_s:.0f} s") from None
    except OSError as exc:
        raise SourceError(NAME, f"cannot run {cmd[0]}: {exc.strerror}") from None
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()]
        raise SourceError(NAME, f"{what} failed (exit {done.returncode}): {lines[-1] if lines else ''}")
    return done
