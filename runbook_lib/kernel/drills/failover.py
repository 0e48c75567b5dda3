"""The regional-failover DR drill (SRE_PACKAGE.md Q2), step by step: check that the standby
streams from the primary, write a marker on the primary, stop the primary as a regional outage
would (``pg_ctl stop -m immediate``), promote the standby, write to it, measure RPO (markers
lost, seconds of writes lost) and RTO (failure to the first write on the new primary), and say
PASS or FAIL.

The drill touches only what its parameters name: the primary and the standby (their DSNs are
read from the environment variables the parameters name, so their passwords are redacted
from every record) and the primary's data directory, which must be proven the running primary's:
the server running from it (postmaster.pid), asked over the directory's own Unix socket, is not
in recovery, and both that connection and the primary DSN's are served by that postmaster (the
drill runs on the primary's host). Anything less refuses. It writes only rows of its own
table ``dr_drill_markers``. It leaves the clusters as they are afterwards: the old primary
stopped, the standby promoted.

The drill runs only with ``mode="resolve"``, ``dry_run=False``, an operator and
``dr_failover`` in ``approve``; otherwise only the readiness check runs. A standby that is not
replicating stops the drill before anything is touched: FAIL, with the reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from runbook_lib.core.credentials import SECRET_ENV_MAP, SECRET_ENV_NAME, password_of
from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import duration, iso
from runbook_lib.kernel.drills.base import Drill, Judgement, Ready, drill_step
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import ConnectFailed, Postgres, backup, replication

MARKER_WAIT_S = 10.0  # how long step 2 waits for the standby to replay the marker
PROMOTE_WAIT_S = 60


@dataclass
class Failover(Drill):
    primary_dsn_env: str = ""
    standby_dsn_env: str = ""
    data_dir: Path | None = None
    rpo_target_s: float = 900
    rto_target_s: float = 3600
    primary: Postgres | None = None
    standby: Postgres | None = None
    written: list[dict[str, Any]] = field(default_factory=list)  # markers written on the old primary
    failure_at: datetime | None = None  # the primary's clock just before it was stopped
    failed_mono: float | None = None

    NAME = "DR drill regional-failover"
    ACTION = "dr_failover"
    TITLE = "DR drill: fail over to the standby"
    VERDICT = "DR failover verdict"
    READINESS = "Readiness"

    # -- 2 ----------------------------------------------------------------------------------
    @drill_step("Marker")
    def write_marker(self) -> None:
        """A row in dr_drill_markers on the primary, just before the failure; then wait (a
        little) for the standby to replay it."""
        assert self.primary is not None and self.standby is not None
        replication.ensure_markers(self.primary)
        marker = replication.write_marker(self.primary, f"before failure ({self.rb.operator})")
        self.written.append(marker)
        took = replication.wait_replayed(self.standby, marker["lsn"], MARKER_WAIT_S)
        self.result["marker_replayed_s"] = None if took is None else round(took, 3)
        self.rb.finding(
            "Marker",
            "ok" if took is not None else "warning",
            f"Marker {marker['id']} written on {self.primary.where} at {iso(marker['at'])} (WAL {marker['lsn']}); "
            + (
                f"the standby replayed it in {duration(took)}."
                if took is not None
                else f"the standby had not replayed it after {duration(MARKER_WAIT_S)}: it may be lost."
            ),
            drill_step="marker",
            marker_id=marker["id"],
            at=marker["at"],
            lsn=marker["lsn"],
            replayed_s=self.result["marker_replayed_s"],
        )

    # -- 3 ----------------------------------------------------------------------------------
    @drill_step("Failure declared")
    def fail_primary(self) -> None:
        """Stop the primary as a regional outage would: pg_ctl stop -m immediate (no shutdown
        checkpoint, no last WAL sent). RTO counts from here."""
        assert self.primary is not None and self.data_dir is not None
        at = self.primary.row("SELECT clock_timestamp() AS at")["at"]
        self.failed_mono = time.monotonic()
        self.failure_at = at
        replication.stop_immediate(self.data_dir, self.plan["tools"]["pg_ctl"])
        took = time.monotonic() - self.failed_mono
        if not replication.is_down(self.primary):
            raise SourceError("PostgreSQL", f"{self.primary.where} still answers after pg_ctl stop -m immediate")
        self.result["failure_at"] = at
        self.rb.finding(
            "Failure declared",
            "ok",
            f"Failure declared at {iso(at)} (the primary's clock): {self.primary.where} stopped with "
            f"pg_ctl stop -m immediate in {duration(took)}; it no longer answers.",
            drill_step="declare",
            failure_at=at,
            data_dir=str(self.data_dir),
            stop_s=round(took, 3),
        )

    # -- 4 ----------------------------------------------------------------------------------
    @drill_step("Promotion")
    def promote(self) -> None:
        """pg_promote(wait => true) on the standby, then insert a marker until one succeeds:
        RTO is the failure to that first write."""
        assert self.standby is not None and self.failed_mono is not None
        started = time.monotonic()
        if not replication.promote(self.standby, PROMOTE_WAIT_S):
            raise SourceError("PostgreSQL", f"{self.standby.where} did not promote within {PROMOTE_WAIT_S} s")
        promoted = time.monotonic()
        budget = max(1.0, min(self.rto_target_s, 0.7 * self.rb.settings.kernels.cell_timeout_s))
        marker, attempts = replication.first_write(
            self.standby, f"first write after failover ({self.rb.operator})", budget
        )
        wrote = time.monotonic()
        state = replication.node(self.standby)
        if state["in_recovery"]:
            raise SourceError("PostgreSQL", f"{self.standby.where} is still in recovery after pg_promote")
        self.result.update(
            {
                "promote_s": round(promoted - started, 3),
                "rto_s": round(wrote - self.failed_mono, 3),
                "first_write_id": marker["id"],
                "first_write_at": marker["at"],
            }
        )
        self.rb.finding(
            "Promotion",
            "ok",
            f"{self.standby.where} promoted in {duration(promoted - started)}; first write (marker {marker['id']}) "
            f"accepted {duration(wrote - self.failed_mono)} after the failure"
            + (f", after {attempts} attempts." if attempts > 1 else "."),
            drill_step="promote",
            attempts=attempts,
            **self.result,
        )

    # -- 5 ----------------------------------------------------------------------------------
    @drill_step("RPO and RTO")
    def measure(self) -> None:
        """RPO: the old primary's markers missing on the new primary (rows), and the time from
        the last marker it holds to the failure (seconds). RTO: failure to first write."""
        assert self.standby is not None and self.failure_at is not None and "rto_s" in self.result
        ids = [int(m["id"]) for m in self.written]
        found = replication.markers(self.standby, ids)
        lost = sorted(set(ids) - {int(i) for i in found["id"]})
        last = pd.Timestamp(found["at"].max()).to_pydatetime() if not found.empty else None
        rpo = max(0.0, (self.failure_at - last).total_seconds()) if last is not None else None
        self.result.update(
            {
                "rows_written": len(ids),
                "rows_lost": len(lost),
                "lost_ids": lost,
                "rpo_s": None if rpo is None else round(rpo, 3),
                "rpo_target_s": self.rpo_target_s,
                "rto_target_s": self.rto_target_s,
            }
        )
        rto = self.result["rto_s"]
        within = (not lost or (rpo is not None and rpo <= self.rpo_target_s)) and rto <= self.rto_target_s
        self.rb.finding(
            "RPO and RTO",
            "ok" if within else "warning",
            f"RPO: {len(lost)} of {len(ids)} marker(s) written on the old primary missing on the new one; "
            f"{duration(rpo) if rpo is not None else 'no marker reached the standby'} from the last replicated "
            f"marker to the failure (target {duration(self.rpo_target_s)}). RTO {duration(rto)}: failure to the first "
            f"write on the new primary (target {duration(self.rto_target_s)}).",
            drill_step="measure",
            **self.result,
        )

    # -- 6 ----------------------------------------------------------------------------------
    def judge(self) -> Judgement:
        """PASS needs no marker lost (or the RPO seconds within target) and RTO within target."""
        rpo, lost, rto = self.result.get("rpo_s"), self.result.get("rows_lost"), self.result.get("rto_s")
        reasons = []
        if lost and (rpo is None or rpo > self.rpo_target_s):
            reasons.append(
                f"{lost} marker(s) lost and RPO {duration(rpo) if rpo is not None else 'unknown'} is over "
                f"{duration(self.rpo_target_s)}"
            )
        if rto is not None and rto > self.rto_target_s:
            reasons.append(f"RTO {duration(rto)} is over {duration(self.rto_target_s)}")
        numbers = (
            f"{lost} row(s) lost, RPO {duration(rpo)} (target {duration(self.rpo_target_s)}), RTO {duration(rto)} "
            f"(target {duration(self.rto_target_s)})"
            if lost is not None and rto is not None
            else "RPO and RTO not measured"
        )
        return Judgement(numbers, reasons, complete=lost is not None and rto is not None)

    # -- 7 ----------------------------------------------------------------------------------
    def undo(self) -> tuple[bool, str]:
        """Say in what state the drill leaves the clusters: it changes nothing back (the old
        primary stays stopped, the standby promoted)."""
        assert self.primary is not None and self.standby is not None
        old_down = replication.is_down(self.primary)
        try:
            new_primary = not replication.node(self.standby)["in_recovery"]
        except (SourceError, ConnectFailed):
            new_primary = None
        self.result.update({"old_primary_down": old_down, "new_primary_writable": new_primary})
        self.rb.finding(
            "Cleanup",
            "ok" if old_down and new_primary else "warning",  # the old primary answering: two primaries
            f"Clusters left as they are. Old primary {self.primary.where}: "
            + ("stopped" if old_down else "ANSWERING (it was never stopped, or was restarted)")
            + f"; its data directory {self.data_dir} is kept: rebuild it as a standby of the new primary "
            "(pg_rewind or pg_basebackup) before starting it, or it comes up as a second primary. "
            f"New primary {self.standby.where}: "
            + {True: "out of recovery", False: "still in recovery", None: "not answering"}[new_primary]
            + f". The {replication.MARKERS} rows stay on it as the drill's evidence.",
            drill_step="cleanup",
            old_primary_down=old_down,
            new_primary_writable=new_primary,
        )
        return True, ""

    # -- 1 ----------------------------------------------------------------------------------
    def readiness(self) -> Ready:
        """The primary answers and is a primary; the standby answers, is in recovery and streams
        from it (pg_stat_replication on the primary, pg_stat_wal_receiver on the standby, the same
        system identifier); the replication lag; primary_data_dir is the running primary's. Any
        problem is the drill's FAIL before anything is touched."""
        rb = self.rb
        problems: list[str] = []
        self.primary = _client(rb, self.primary_dsn_env, "primary", problems)
        self.standby = _client(rb, self.standby_dsn_env, "standby", problems)
        nodes: dict[str, dict[str, Any]] = {}
        details: dict[str, Any] = {}
        for role, pg in (("primary", self.primary), ("standby", self.standby)):
            if pg is None:
                continue
            try:
                nodes[role] = replication.node(pg)
            except (SourceError, ConnectFailed) as exc:
                problems.append(f"the {role} {pg.where} cannot be queried ({exc.reason})")
        primary, standby = nodes.get("primary"), nodes.get("standby")
        if primary and primary["in_recovery"]:
            problems.append(f"the primary {self.primary.where if self.primary else ''} is in recovery: not a primary")
        if standby and not standby["in_recovery"]:
            problems.append("the standby is not in recovery: it is a primary already, not a standby")
        if primary and not primary["in_recovery"] and self.primary is not None:
            details.update(_primary_side(self.primary, problems))
        if standby and standby["in_recovery"] and self.standby is not None:
            details.update(_standby_side(self.standby, problems))
        if primary and standby:
            if primary["system_identifier"] != standby["system_identifier"]:
                problems.append("the standby is not a copy of the primary (their system identifiers differ)")
            lag = _lag_bytes(primary.get("current_lsn"), standby.get("replay_lsn"))
            details.update({"replay_lag_bytes": lag, "primary_lsn": primary.get("current_lsn")})
            details["standby_replay_lsn"] = standby.get("replay_lsn")
        tools = _tools(rb, problems)
        if primary and self.primary is not None and self.data_dir is not None and "pg_controldata" in tools:
            _check_data_dir(self.data_dir, primary, self.primary, tools["pg_controldata"], problems)
        elif self.data_dir is None:
            problems.append(
                "primary_data_dir is not given: the drill stops only the data directory its parameters name"
            )
        if nodes:
            rb.table(_nodes_frame(self, nodes, details), title="The primary and the standby")
        where_p = self.primary.where if self.primary else f"${self.primary_dsn_env}"
        where_s = self.standby.where if self.standby else f"${self.standby_dsn_env}"
        lag_text = (
            f"replay lag {details.get('replay_lag_bytes')} bytes, {duration(details.get('replay_lag_s') or 0.0)}"
            if "replay_lag_bytes" in details
            else "replication lag unknown"
        )
        stop = (
            " ".join(replication.stop_command(self.data_dir, tools["pg_ctl"]))
            if self.data_dir is not None and "pg_ctl" in tools
            else "pg_ctl stop -m immediate -D <primary_data_dir>"
        )
        plan = {
            "primary": where_p,
            "standby": where_s,
            "primary_data_dir": str(self.data_dir) if self.data_dir else None,
            "target": f"fail over {where_p} to {where_s}",
            "tools": tools,
            "rpo_target_s": self.rpo_target_s,
            "rto_target_s": self.rto_target_s,
            "command": (
                f"INSERT INTO {replication.MARKERS} on {where_p} && {stop} && SELECT pg_promote(wait => true) on "
                f"{where_s} && INSERT INTO {replication.MARKERS} on {where_s} until it succeeds"
            ),
        }
        summary = (
            f"{where_s} streams from {where_p} ({lag_text}); primary data directory {self.data_dir} "
            "is the running primary's"
        )
        return Ready(summary, plan, unready=problems, details={"primary": where_p, "standby": where_s, **details})


def prepare(
    rb: RunbookLike,
    primary_dsn_env: str,
    standby_dsn_env: str,
    primary_data_dir: str,
    rpo_target_s: float = 900,
    rto_target_s: float = 3600,
) -> Failover:
    """Step 1: readiness, changing nothing (:meth:`Failover.readiness`); then the guard's decision."""
    return Failover(
        rb,
        primary_dsn_env=primary_dsn_env,
        standby_dsn_env=standby_dsn_env,
        data_dir=Path(primary_data_dir).expanduser() if primary_data_dir else None,
        rpo_target_s=float(rpo_target_s),
        rto_target_s=float(rto_target_s),
    ).ready()


# -- readiness helpers --------------------------------------------------------------------------------
def redacted_env_name(name: str) -> bool:
    """Whether the runner redacts this environment variable's value (and the password in it)
    from every record: the names in SECRET_ENV_MAP and those ending in PASSWORD, TOKEN, SECRET, ..."""
    return name in SECRET_ENV_MAP or bool(SECRET_ENV_NAME.search(name))


def _client(rb: RunbookLike, var: str, role: str, problems: list[str]) -> Postgres | None:
    dsn = os.environ.get(var, "") if var else ""
    if not dsn:
        problems.append(f"the {role}'s DSN is not set (environment variable {var or '(none named)'})")
        return None
    if password_of(dsn) and not redacted_env_name(var):
        problems.append(
            f"{var} holds a password but its name does not end in _SECRET, _PASSWORD or _TOKEN, so records "
            "would not redact it: rename the variable"
        )
        return None
    cfg = rb.settings.postgres
    return Postgres(dsn, cfg.connect_timeout_s, cfg.statement_timeout_ms, cfg.lock_timeout_ms)


def _primary_side(pg: Postgres, problems: list[str]) -> dict[str, Any]:
    try:
        rows = replication.replicas(pg)
    except (SourceError, ConnectFailed) as exc:
        problems.append(f"the primary's pg_stat_replication cannot be read ({exc.reason})")
        return {}
    streaming = rows[rows["state"] == "streaming"] if not rows.empty else rows
    if streaming.empty:
        states = ", ".join(sorted(set(rows["state"].astype(str)))) if not rows.empty else "no rows"
        problems.append(f"no standby is replicating: the primary's pg_stat_replication lists none streaming ({states})")
        return {"standbys_streaming": 0}
    lag_s = streaming["replay_lag_s"].max()
    return {"standbys_streaming": len(streaming), "replay_lag_s": None if pd.isna(lag_s) else float(lag_s)}


def _standby_side(pg: Postgres, problems: list[str]) -> dict[str, Any]:
    try:
        wal = replication.receiver(pg)
    except (SourceError, ConnectFailed) as exc:
        problems.append(f"the standby's pg_stat_wal_receiver cannot be read ({exc.reason})")
        return {}
    status = wal.get("status")
    if status != "streaming":
        problems.append(
            f"the standby is not replicating: its WAL receiver is {status or 'not running'} "
            "(pg_stat_wal_receiver), not streaming"
        )
    upstream = f"{wal.get('sender_host')}:{wal.get('sender_port')}" if wal else None
    return {"receiver_status": status, "upstream": upstream}


def _check_data_dir(
    data_dir: Path, primary: dict[str, Any], pg: Postgres, pg_controldata: str, problems: list[str]
) -> None:
    """Prove that stopping ``data_dir`` stops the primary the DSN reaches, and nothing else:
    the server running from it (postmaster.pid), asked over its own Unix socket, is not in
    recovery and serves that connection from that very postmaster, and the primary DSN's
    connection is served by the same postmaster. Port and system identifier alone prove nothing:
    a standby shares both with its primary when it listens on another address."""
    not_it = f"primary_data_dir {data_dir} is not the primary's"
    try:
        found = replication.data_dir_identity(data_dir, pg_controldata)
    except SourceError as exc:
        problems.append(f"primary_data_dir: {exc.reason}")
        return
    if found["system_identifier"] != primary["system_identifier"]:
        problems.append(
            f"{not_it}: it holds system {found['system_identifier']}, the primary is {primary['system_identifier']}; "
            "the drill stops nothing"
        )
        return
    if not found["pid"] or not found["port"] or not found["socket_dir"]:
        problems.append(
            f"{not_it} as far as can be proven: its postmaster.pid names no Unix socket (unix_socket_directories "
            "is empty), so the server running from it cannot be asked; the drill stops nothing"
        )
        return
    try:
        own = replication.backend(pg.at(found["socket_dir"], found["port"]))
    except (SourceError, ConnectFailed) as exc:
        problems.append(
            f"the server running from primary_data_dir {data_dir} cannot be asked over its own socket "
            f"({found['socket_dir']}, port {found['port']}: {exc.reason}); allow the drill's database user local "
            "connections there. Without that proof the drill stops nothing"
        )
        return
    if own["in_recovery"]:
        problems.append(
            f"{not_it}: the server running from it (postmaster {found['pid']}) is in recovery, a standby; "
            "the drill stops nothing"
        )
    if own["parent"] != found["pid"]:
        problems.append(
            f"{not_it} as far as can be proven: its socket is served by a process whose parent is not postmaster "
            f"{found['pid']} (run the drill on the primary's host); the drill stops nothing"
        )
        return
    try:
        via_dsn = replication.backend(pg)
    except (SourceError, ConnectFailed) as exc:
        problems.append(f"the primary {pg.where} cannot be asked which server it is ({exc.reason})")
        return
    parent = via_dsn["parent"]
    if parent != found["pid"]:
        where = f"postmaster {parent}" if parent else "a server that does not run on this machine"
        problems.append(
            f"{not_it}: the primary DSN ({pg.where}) reaches {where}, the data directory runs postmaster "
            f"{found['pid']}; the drill stops nothing"
        )


def _tools(rb: RunbookLike, problems: list[str]) -> dict[str, str]:
    out = {}
    for name in ("pg_ctl", "pg_controldata"):
        try:
            out[name] = backup.tool(name, rb.settings.postgres.bin_dir)
        except SourceError as exc:
            problems.append(exc.reason)
    return out


def _lag_bytes(primary_lsn: str | None, replay_lsn: str | None) -> int | None:
    p, r = replication.lsn(primary_lsn), replication.lsn(replay_lsn)
    return None if p is None or r is None else max(0, p - r)


def _nodes_frame(drill: Failover, nodes: dict[str, dict[str, Any]], details: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for role, state in nodes.items():
        pg = drill.primary if role == "primary" else drill.standby
        rows.append(
            {
                "role": role,
                "server": pg.where if pg else "?",
                "in_recovery": state["in_recovery"],
                "version": state["version"],
                "wal_lsn": state["current_lsn"] or state["replay_lsn"],
                "replication": (
                    f"{details.get('standbys_streaming', 0)} standby(s) streaming"
                    if role == "primary"
                    else f"receiver {details.get('receiver_status') or 'not running'} from {details.get('upstream')}"
                ),
            }
        )
    return pd.DataFrame(rows)
