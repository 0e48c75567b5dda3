"""The database-restore DR drill, step by step: back up the source (or take a given backup),
declare the failure, restore into a scratch database, verify it against the source, measure
RPO and RTO, say PASS or FAIL, and drop the scratch database whatever happened.

The source is only read: pg_dump runs from a snapshot exported by a READ ONLY transaction, and
the source's rows are counted in that same snapshot, so the comparison is exact while the
source keeps taking writes. The drill writes only to the scratch database it creates (named
``rb_drill_<time>_<hex>``; nothing else is ever dropped) and to a backup file of its own in the
kernel's scratch directory.

The drill runs only with ``mode="resolve"``, ``dry_run=False``, an operator and ``dr_drill`` in
``approve``; otherwise every step says what it would do. It writes no audit_logs row: that
would be a write to the source, which it never makes. Its record in the hash-chained archive,
naming the operator, is its trail.
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

from ...errors import SourceError
from ...present import duration, iso
from ..protocol import RunbookLike
from ..sources.postgres import ConnectFailed, Postgres, backup, integrity
from .base import DrillSteps, drill_step, int_or_none

ACTION = "dr_drill"
DRILL_TABLES = ("profiles", "workflows", "audit_logs")  # what SRE_PACKAGE.md's drill verifies
STALE_SCRATCH_S = 6 * 3600  # a scratch database this old was left by a drill that died: dropped


@dataclass
class Drill(DrillSteps):
    rb: RunbookLike
    source: Postgres | None
    server: Postgres | None
    tables: list[str]
    given_backup: Path | None
    failure_param: str
    plan: dict[str, Any] = field(default_factory=dict)
    blocked: str = ""  # why steps do not run (diagnose mode, a failed step, ...)
    failed: str = ""
    workdir: Path | None = None
    backup_file: Path | None = None
    backup_at: datetime | None = None
    expected: pd.DataFrame | None = None
    exact: bool = True  # expected counts from the backup's own snapshot (False: estimated from created_at)
    failure_at: datetime | None = None
    declared_at: float | None = None  # monotonic
    scratch: str | None = None
    verified_at: float | None = None
    verified: bool | None = None
    result: dict[str, Any] = field(default_factory=dict)

    # -- 1 ----------------------------------------------------------------------------------
    @drill_step("Backup")
    def backup(self) -> None:
        """pg_dump -Fc from an exported snapshot, counting the source in that snapshot; or the
        given backup file, its time read from the file itself."""
        assert self.source is not None and self.server is not None
        for name in self.plan.get("stale_scratch", []):
            backup.drop_database(self.server, name)
            self.rb.note(f"Dropped {name}, left by an interrupted drill.")
        tools = self.plan["tools"]
        if self.given_backup is not None:
            info = backup.contents(tools["pg_restore"], self.given_backup)
            self.backup_file, self.backup_at = self.given_backup, info["created_at"]
            self.expected, self.exact = self._estimate_at(info["created_at"]), False
            self.rb.finding(
                "Backup",
                "info",
                f"Using the given backup {self.given_backup.name}, made {iso(info['created_at'])}; it holds "
                f"{len(info['tables_with_data'])} table(s) with data.",
                drill_step="backup",
                file=str(self.given_backup),
                backup_at=info["created_at"],
                tables=info["tables_with_data"],
            )
            return
        self.workdir = Path(tempfile.mkdtemp(prefix="rb-drill-"))
        out = self.workdir / f"{self.source.database or 'source'}.dump"
        started = time.monotonic()
        with backup.snapshot(self.source) as (conn, snapshot_id, at):
            backup.dump(self.source, tools["pg_dump"], out, snapshot_id, self.rb.settings.engine.cell_timeout_s)
            self.expected = integrity.count_rows(conn, integrity.tables(self.source, self.tables))
        self.backup_file, self.backup_at = out, at
        took = time.monotonic() - started
        self.rb.table(self.expected, title="The source in the backup's snapshot")
        self.rb.finding(
            "Backup",
            "ok",
            f"pg_dump -Fc of {self.source.where} from a snapshot taken {iso(at)}: {out.stat().st_size / 1e6:.1f} MB "
            f"in {duration(took)}.",
            drill_step="backup",
            backup_at=at,
            bytes=out.stat().st_size,
            seconds=round(took, 3),
        )

    # -- 2 ----------------------------------------------------------------------------------
    @drill_step("Failure declared")
    def declare_failure(self) -> None:
        """The failure's time: the drill's parameter, else now. RTO counts from here."""
        self.failure_at = _parse_time(self.failure_param) if self.failure_param else datetime.now(UTC)
        self.declared_at = time.monotonic()
        self.rb.finding(
            "Failure declared",
            "info",
            f"Failure declared at {iso(self.failure_at)}"
            + (" (given)" if self.failure_param else " (now)")
            + ": RPO is measured back to the backup, RTO from here to a verified restore.",
            drill_step="declare",
            failure_at=self.failure_at,
        )

    # -- 3 ----------------------------------------------------------------------------------
    @drill_step("Restore")
    def restore(self) -> None:
        assert self.server is not None and self.backup_file is not None
        name = backup.scratch_name(datetime.now(UTC))
        started = time.monotonic()
        backup.create_database(self.server, name)
        self.scratch = name
        backup.restore(
            self.server.on_database(name),
            self.plan["tools"]["pg_restore"],
            self.backup_file,
            self.rb.settings.engine.cell_timeout_s,
        )
        self.rb.finding(
            "Restore",
            "ok",
            f"Restored into scratch database {name} on {self.server.where} in {duration(time.monotonic() - started)}.",
            drill_step="restore",
            scratch=name,
            seconds=round(time.monotonic() - started, 3),
        )

    # -- 4 ----------------------------------------------------------------------------------
    @drill_step("Verification")
    def verify(self) -> None:
        """Row counts and MAX(created_at) of each table in the restore against the source."""
        assert self.server is not None and self.scratch is not None and self.expected is not None
        restored_db = self.server.on_database(self.scratch)
        restored = integrity.row_counts(restored_db, self.tables)
        cmp = self.expected.merge(restored, on="table", suffixes=("_source", "_restored"))
        cmp["match"] = [
            bool(r["exists_restored"])
            and _same(r["rows_source"], r["rows_restored"])
            and _same(r["max_created_at_source"], r["max_created_at_restored"])
            for _, r in cmp.iterrows()
        ]
        self.verified_at = time.monotonic()
        self.rb.table(
            cmp, title="Restore against the source" + ("" if self.exact else " (estimated at the backup time)")
        )
        missing = [r["table"] for _, r in cmp.iterrows() if r["exists_source"] and not r["exists_restored"]]
        differ = [r["table"] for _, r in cmp.iterrows() if r["exists_restored"] and not r["match"]]
        self.verified = not missing and not differ
        self.result["tables"] = {
            r["table"]: {"source": int_or_none(r["rows_source"]), "restored": int_or_none(r["rows_restored"])}
            for _, r in cmp.iterrows()
        }
        if self.verified:
            counts = ", ".join(f"{r['table']} {int_or_none(r['rows_restored'])}" for _, r in cmp.iterrows())
            self.rb.finding(
                "Verification",
                "ok",
                f"Every table matches the source{'' if self.exact else ' as of the backup'}: rows {counts}; "
                "the newest created_at matches too.",
                drill_step="verify",
                tables=self.result["tables"],
            )
            return
        problems = [f"{t} is missing from the backup" for t in missing] + [
            f"{t} differs ({self.result['tables'][t]['restored']} rows restored, "
            f"{self.result['tables'][t]['source']} in the source)"
            for t in differ
        ]
        self.rb.finding(
            "Verification",
            "critical",
            "The restore does not match the source: " + "; ".join(problems) + ".",
            role="cause",
            drill_step="verify",
            missing=missing,
            differ=differ,
            tables=self.result["tables"],
        )

    # -- 5, 6 ---------------------------------------------------------------------------------
    @drill_step("RPO and RTO")
    def measure(self) -> None:
        assert self.failure_at is not None and self.backup_at is not None
        assert self.declared_at is not None and self.verified_at is not None
        th = self.rb.thresholds
        rpo = max(0.0, (self.failure_at - self.backup_at).total_seconds())
        rto = self.verified_at - self.declared_at
        self.result.update(
            {"rpo_s": round(rpo, 3), "rto_s": round(rto, 3), "rpo_target_s": th.dr_rpo_s, "rto_target_s": th.dr_rto_s}
        )
        self.rb.finding(
            "RPO and RTO",
            "ok" if rpo <= th.dr_rpo_s and rto <= th.dr_rto_s else "warning",
            f"RPO {duration(rpo)} (target {duration(th.dr_rpo_s)}): the writes between the backup and the failure "
            f"are lost. RTO {duration(rto)} (target {duration(th.dr_rto_s)}): failure declared to restore verified.",
            drill_step="measure",
            **self.result,
        )

    def verdict(self) -> None:
        """PASS when the restore verified and RPO and RTO are within their targets; otherwise FAIL
        with the reasons. Said even when a step failed (that is a FAIL). Never raises."""
        try:
            self._verdict()
        except Exception as exc:
            self.failed = self.failed or f"verdict: {exc}"
            self.rb.finding(
                "DR drill verdict", "critical", f"FAIL: the verdict could not be made: {exc}", role="symptom"
            )

    def _verdict(self) -> None:
        if self.plan.get("status") in ("proposed", "dry_run", "refused"):
            self.rb.finding(
                "DR drill verdict", "info", f"Not run ({self.plan['status']}): no verdict.", drill_step="verdict"
            )
            return
        th = self.rb.thresholds
        reasons = []
        if self.failed:
            reasons.append(self.failed)
        if self.verified is False:
            reasons.append("the restore does not match the source")
        if "rpo_s" in self.result and self.result["rpo_s"] > th.dr_rpo_s:
            reasons.append(f"RPO {duration(self.result['rpo_s'])} is over {duration(th.dr_rpo_s)}")
        if "rto_s" in self.result and self.result["rto_s"] > th.dr_rto_s:
            reasons.append(f"RTO {duration(self.result['rto_s'])} is over {duration(th.dr_rto_s)}")
        passed = not reasons and self.verified is True and "rto_s" in self.result
        self.result["drill_verdict"] = "PASS" if passed else "FAIL"
        numbers = (
            f"RPO {duration(self.result['rpo_s'])} (target {duration(th.dr_rpo_s)}), RTO {duration(self.result['rto_s'])} "
            f"(target {duration(th.dr_rto_s)})"
            if "rto_s" in self.result
            else "RPO and RTO not measured"
        )
        self.rb.finding(
            "DR drill verdict",
            "ok" if passed else "critical",
            f"{self.result['drill_verdict']}: {numbers}" + ("." if passed else f"; {'; '.join(reasons)}."),
            role="symptom",
            drill_step="verdict",
            reasons=reasons,
            **self.result,
        )

    # -- 7 ----------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Drop the scratch database and the drill's own backup file, whatever happened before.
        Never raises."""
        try:
            self._cleanup()
        except Exception as exc:
            self.rb.finding(
                "Cleanup",
                "critical",
                f"Cleanup failed: {exc}; drop {self.scratch or 'the scratch database'} by hand.",
                drill_step="cleanup",
                scratch=self.scratch,
            )

    def _cleanup(self) -> None:
        if self.plan.get("status") in ("proposed", "dry_run", "refused"):
            self.rb.finding("Cleanup", "info", "Nothing to clean up: the drill did not run.", drill_step="cleanup")
            return
        notes, ok = [], True
        if self.scratch and self.server is not None:
            try:
                backup.drop_database(self.server, self.scratch)
                notes.append(f"scratch database {self.scratch} dropped")
            except SourceError as exc:
                ok = False
                notes.append(f"scratch database {self.scratch} NOT dropped ({exc}): drop it by hand")
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            notes.append("the drill's backup file removed")
        self.result["scratch_dropped"] = ok and bool(self.scratch)
        self.rb.finding(
            "Cleanup",
            "ok" if ok else "critical",
            ("; ".join(notes) or "nothing was created") + ".",
            drill_step="cleanup",
            scratch=self.scratch,
            dropped=ok,
        )
        verdict = self.result.get("drill_verdict", "FAIL")
        self.rb.actions.finish(
            ACTION,
            "DR drill: restore the database from backup",
            self.plan["target"],
            self.plan,
            self.result,
            ok=ok and not self.failed,
            reason=f"drill ran: {verdict}" + (f" ({self.failed})" if self.failed else ""),
        )

    # -- helpers --------------------------------------------------------------------------------
    def _estimate_at(self, at: datetime) -> pd.DataFrame:
        """The source's rows as of ``at`` for a given backup file: rows created by then (tables
        with created_at), else today's count. An estimate: rows deleted since count as missing."""
        assert self.source is not None
        return integrity.row_counts(self.source, self.tables, until=at)


def prepare(
    rb: RunbookLike,
    source_database: str = "",
    backup_file: str = "",
    tables: list[str] | tuple[str, ...] = (),
    failure_at: str = "",
) -> Drill:
    """Step 0: what the drill needs, checked without changing anything (the source answers, the
    tools exist and are new enough, the role may create databases, no scratch database is left
    over), then the guard's decision. Returns the drill the next cells run."""
    names = list(dict.fromkeys([*DRILL_TABLES, *(str(t) for t in tables or ())]))
    given = Path(backup_file).expanduser() if backup_file else None
    drill = Drill(rb, None, None, names, given, str(failure_at or ""))
    title = "Pre-drill checks"
    try:
        base = rb.postgres
        drill.source = base.on_database(source_database) if source_database else base
        drill.server = backup.scratch_server(rb.settings, drill.source)
        state = drill.source.server_state()
        cfg = rb.settings.postgres
        tools = {name: backup.tool(name, cfg.bin_dir) for name in ("pg_dump", "pg_restore")}
        majors = {name: backup.tool_major(path) for name, path in tools.items()}
        server_major = int(state["version_num"]) // 10000
        leftovers = {name: backup.scratch_age_s(name) for name in backup.scratch_databases(drill.server)}
        may_create = backup.may_create_databases(drill.server)
    except (SourceError, ConnectFailed) as exc:
        rb.unchecked(title, exc)
        drill.blocked = "the pre-drill checks could not be made"
        drill.plan = {"status": "unavailable", "target": "?"}
        return drill
    problems = []
    if any(m < server_major for m in majors.values()):
        problems.append(
            f"pg_dump/pg_restore {majors} are older than the server ({server_major}): install newer clients"
        )
    if not may_create:
        problems.append("the drill's role may not create databases (CREATEDB)")
    if given is not None and not given.is_file():
        problems.append(f"backup file {given} does not exist")
    young = [n for n, age in leftovers.items() if age is None or age < STALE_SCRATCH_S]
    if young:
        problems.append(f"another drill may be running (scratch database(s) {', '.join(young)} are recent)")
    stale = [n for n in leftovers if n not in young]
    source_name = drill.source.database or drill.source.where
    drill.plan = {
        "source": drill.source.where,
        "target": f"a scratch database on {drill.server.where}",
        "tables": names,
        "backup_file": str(given) if given else None,
        "tools": tools,
        "command": (
            f"pg_dump -Fc {source_name} (from an exported snapshot) && CREATE DATABASE rb_drill_<time>_<hex> && "
            "pg_restore --no-owner --no-privileges --exit-on-error && verify && DROP DATABASE rb_drill_..."
            if given is None
            else f"CREATE DATABASE rb_drill_<time>_<hex> && pg_restore {given} && verify && DROP DATABASE rb_drill_..."
        ),
        "missing": "; ".join(problems),
        "stale_scratch": stale,
    }
    rb.finding(
        title,
        "warning" if problems else "ok",
        f"Source {drill.source.where} (PostgreSQL {state['version']}); pg_dump {majors['pg_dump']}, pg_restore "
        f"{majors['pg_restore']}; scratch databases go on {drill.server.where}; tables checked: {', '.join(names)}"
        + (f". Problems: {'; '.join(problems)}." if problems else ".")
        + (f" Left by an interrupted drill, dropped when this one runs: {', '.join(stale)}." if stale else ""),
        **{k: v for k, v in drill.plan.items() if k != "command"},
    )
    if given is not None and given.is_file():
        _rpo_now(rb, drill, given)
    gated = rb.actions.gate(ACTION, "DR drill: restore the database from backup", drill.plan["target"], drill.plan)
    if gated is not None:
        drill.plan["status"] = gated["status"]
        drill.blocked = f"{gated['status']}: {gated['reason']}"
    else:
        drill.plan["status"] = "running"
    return drill


def _rpo_now(rb: RunbookLike, drill: Drill, given: Path) -> None:
    """For a given backup, before anything runs: the RPO a failure now would have."""
    try:
        info = backup.contents(drill.plan["tools"]["pg_restore"], given)
    except SourceError as exc:
        rb.finding("Backup file", "critical", f"{given.name}: {exc.reason}", role="cause", file=str(given))
        return
    age = (datetime.now(UTC) - info["created_at"]).total_seconds()
    rb.finding(
        "Backup file",
        "warning" if age > rb.thresholds.dr_rpo_s else "info",
        f"{given.name} was made {iso(info['created_at'])}: a failure now would lose {duration(age)} of writes "
        f"(RPO target {duration(rb.thresholds.dr_rpo_s)}).",
        file=str(given),
        backup_at=info["created_at"],
        age_s=age,
    )


def _parse_time(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SourceError("DR drill", f"failure_at {text!r} is not an ISO time (e.g. 2026-11-27T10:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _same(a: Any, b: Any) -> bool:
    if (a is None or pd.isna(a)) and (b is None or pd.isna(b)):
        return True
    if a is None or b is None or pd.isna(a) or pd.isna(b):
        return False
    return bool(pd.Timestamp(a) == pd.Timestamp(b)) if isinstance(a, datetime | pd.Timestamp) else int(a) == int(b)
