"""The database-restore DR drill (SRE_PACKAGE.md Q1), step by step: back up the source (or take
a given backup), declare the failure, restore into a scratch database, verify it against the
source, measure RPO and RTO, say PASS or FAIL, and drop the scratch database whatever happened.

The database part is :mod:`.database`'s (the source is only read). The drill runs only with
``mode="resolve"``, ``dry_run=False``, an operator and ``dr_drill`` in ``approve``; otherwise
every step says what it would do. It writes no audit_logs row: that would be a write to the
source, which it never makes. Its record in the hash-chained archive, naming the operator, is
its trail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import duration, iso
from runbook_lib.kernel.drills import database
from runbook_lib.kernel.drills.base import Drill, Judgement, Ready, drill_step
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import backup, integrity

ACTION = "dr_drill"
DRILL_TABLES = ("profiles", "workflows", "audit_logs")  # what SRE_PACKAGE.md's drill verifies


@dataclass
class Restore(Drill):
    tables: list[str] | None = None
    given_backup: Path | None = None
    failure_param: str = ""
    source_database: str = ""
    servers: database.Servers | None = None
    taken: database.Backup | None = None
    failure_at: datetime | None = None
    declared_at: float | None = None  # monotonic
    scratch: str | None = None
    verified_at: float | None = None
    verified: bool | None = None

    NAME = "DR drill database-restore"
    ACTION = ACTION
    TITLE = "DR drill: restore the database from backup"
    VERDICT = "DR drill verdict"

    # -- 0 ----------------------------------------------------------------------------------
    def readiness(self) -> Ready:
        servers = self.servers = database.check_servers(self.rb, self.source_database, self.given_backup)
        names = self.tables or list(DRILL_TABLES)
        given = self.given_backup
        source_name = servers.source.database or servers.source.where
        plan = {
            "source": servers.source.where,
            "target": f"a scratch database on {servers.server.where}",
            "tables": names,
            "backup_file": str(given) if given else None,
            "tools": servers.tools,
            "command": (
                f"pg_dump -Fc {source_name} (from an exported snapshot) && CREATE DATABASE rb_drill_<time>_<hex> && "
                "pg_restore --no-owner --no-privileges --exit-on-error && verify && DROP DATABASE rb_drill_..."
                if given is None
                else f"CREATE DATABASE rb_drill_<time>_<hex> && pg_restore {given} && verify && DROP DATABASE rb_drill_..."
            ),
            "stale_scratch": servers.stale,
        }
        stale = servers.stale
        summary = f"{servers.describe()}; tables checked: {', '.join(names)}" + (
            f". Left by an interrupted drill, dropped when this one runs: {', '.join(stale)}" if stale else ""
        )
        details = {k: v for k, v in plan.items() if k != "command"}
        ready = Ready(summary, plan, problems=list(servers.problems), details=details)
        if given is not None and given.is_file():
            self._rpo_now(given)
        return ready

    def _rpo_now(self, given: Path) -> None:
        """For a given backup, before anything runs: the RPO a failure now would have."""
        assert self.servers is not None
        rb = self.rb
        try:
            info = backup.contents(self.servers.tools["pg_restore"], given)
        except SourceError as exc:
            rb.finding("Backup file", "critical", f"{given.name}: {exc.reason}", role="cause", file=str(given))
            return
        age = (datetime.now(UTC) - info["created_at"]).total_seconds()
        rb.finding(
            "Backup file",
            "warning" if age > rb.thresholds.dr_rpo_s else "ok",
            f"{given.name} was made {iso(info['created_at'])}: a failure now would lose {duration(age)} of writes "
            f"(RPO target {duration(rb.thresholds.dr_rpo_s)}).",
            file=str(given),
            backup_at=info["created_at"],
            age_s=age,
        )

    # -- 1 ----------------------------------------------------------------------------------
    @drill_step("Backup")
    def backup(self) -> None:
        """pg_dump -Fc from an exported snapshot, counting the source in that snapshot; or the
        given backup file, its time read from the file itself."""
        assert self.servers is not None and self.tables is not None
        database.drop_stale(self.rb, self.servers)
        taken = self.taken = database.take_backup(self.rb, self.servers, self.tables, self.given_backup)
        if self.given_backup is not None:
            self.rb.finding(
                "Backup",
                "ok",
                f"Using the given backup {taken.file.name}, made {iso(taken.at)}; it holds "
                f"{len(taken.tables_with_data)} table(s) with data.",
                drill_step="backup",
                file=str(taken.file),
                backup_at=taken.at,
                tables=taken.tables_with_data,
            )
            return
        self.rb.table(taken.expected, title="The source in the backup's snapshot")
        size = taken.file.stat().st_size
        self.rb.finding(
            "Backup",
            "ok",
            f"pg_dump -Fc of {self.servers.source.where} from a snapshot taken {iso(taken.at)}: {size / 1e6:.1f} MB "
            f"in {duration(taken.seconds)}.",
            drill_step="backup",
            backup_at=taken.at,
            bytes=size,
            seconds=round(taken.seconds, 3),
        )

    # -- 2 ----------------------------------------------------------------------------------
    @drill_step("Failure declared")
    def declare_failure(self) -> None:
        """The failure's time: the drill's parameter, else now. RTO counts from here."""
        self.failure_at = _parse_time(self.failure_param) if self.failure_param else datetime.now(UTC)
        self.declared_at = time.monotonic()
        self.rb.finding(
            "Failure declared",
            "ok",
            f"Failure declared at {iso(self.failure_at)}"
            + (" (given)" if self.failure_param else " (now)")
            + ": RPO is measured back to the backup, RTO from here to a verified restore.",
            drill_step="declare",
            failure_at=self.failure_at,
        )

    # -- 3 ----------------------------------------------------------------------------------
    @drill_step("Restore")
    def restore(self) -> None:
        assert self.servers is not None and self.taken is not None
        started = time.monotonic()
        self.scratch = database.restore_scratch(self.rb, self.servers, self.taken.file)
        self.rb.finding(
            "Restore",
            "ok",
            f"Restored into scratch database {self.scratch} on {self.servers.server.where} in "
            f"{duration(time.monotonic() - started)}.",
            drill_step="restore",
            scratch=self.scratch,
            seconds=round(time.monotonic() - started, 3),
        )

    # -- 4 ----------------------------------------------------------------------------------
    @drill_step("Verification")
    def verify(self) -> None:
        """Row counts and MAX(created_at) of each table in the restore against the source."""
        assert self.servers is not None and self.scratch is not None and self.taken is not None
        assert self.tables is not None
        exact = self.taken.exact
        restored = integrity.row_counts(self.servers.server.on_database(self.scratch), self.tables)
        cmp = self.taken.expected.merge(restored, on="table", suffixes=("_source", "_restored"))
        cmp["match"] = [
            bool(r["exists_restored"])
            and _same(r["rows_source"], r["rows_restored"])
            and _same(r["max_created_at_source"], r["max_created_at_restored"])
            for _, r in cmp.iterrows()
        ]
        self.verified_at = time.monotonic()
        self.rb.table(cmp, title="Restore against the source" + ("" if exact else " (estimated at the backup time)"))
        missing = [r["table"] for _, r in cmp.iterrows() if r["exists_source"] and not r["exists_restored"]]
        differ = [r["table"] for _, r in cmp.iterrows() if r["exists_restored"] and not r["match"]]
        self.verified = not missing and not differ
        tables = self.result["tables"] = {
            r["table"]: {"source": database.count(r["rows_source"]), "restored": database.count(r["rows_restored"])}
            for _, r in cmp.iterrows()
        }
        if self.verified:
            counts = ", ".join(f"{r['table']} {database.count(r['rows_restored'])}" for _, r in cmp.iterrows())
            self.rb.finding(
                "Verification",
                "ok",
                f"Every table matches the source{'' if exact else ' as of the backup'}: rows {counts}; "
                "the newest created_at matches too.",
                drill_step="verify",
                tables=tables,
            )
            return
        problems = [f"{t} is missing from the backup" for t in missing] + [
            f"{t} differs ({tables[t]['restored']} rows restored, {tables[t]['source']} in the source)" for t in differ
        ]
        self.rb.finding(
            "Verification",
            "critical",
            "The restore does not match the source: " + "; ".join(problems) + ".",
            role="cause",
            drill_step="verify",
            missing=missing,
            differ=differ,
            tables=tables,
        )

    # -- 5 ----------------------------------------------------------------------------------
    @drill_step("RPO and RTO")
    def measure(self) -> None:
        assert self.failure_at is not None and self.taken is not None
        assert self.declared_at is not None and self.verified_at is not None
        th = self.rb.thresholds
        rpo = max(0.0, (self.failure_at - self.taken.at).total_seconds())
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

    # -- 6 ----------------------------------------------------------------------------------
    def judge(self) -> Judgement:
        th = self.rb.thresholds
        reasons = []
        if self.verified is False:
            reasons.append("the restore does not match the source")
        if "rpo_s" in self.result and self.result["rpo_s"] > th.dr_rpo_s:
            reasons.append(f"RPO {duration(self.result['rpo_s'])} is over {duration(th.dr_rpo_s)}")
        if "rto_s" in self.result and self.result["rto_s"] > th.dr_rto_s:
            reasons.append(f"RTO {duration(self.result['rto_s'])} is over {duration(th.dr_rto_s)}")
        numbers = (
            f"RPO {duration(self.result['rpo_s'])} (target {duration(th.dr_rpo_s)}), RTO {duration(self.result['rto_s'])} "
            f"(target {duration(th.dr_rto_s)})"
            if "rto_s" in self.result
            else "RPO and RTO not measured"
        )
        return Judgement(numbers, reasons, complete=self.verified is True and "rto_s" in self.result)

    # -- 7 ----------------------------------------------------------------------------------
    def undo(self) -> tuple[bool, str]:
        """Drop the scratch database and the drill's own backup file."""
        ok, notes = database.drop(self.servers, self.scratch, self.taken)
        self.result["scratch_dropped"] = ok and bool(self.scratch)
        self.rb.finding(
            "Cleanup",
            "ok" if ok else "critical",
            ("; ".join(notes) or "nothing was created") + ".",
            drill_step="cleanup",
            scratch=self.scratch,
            dropped=ok,
        )
        return ok, ""


def prepare(
    rb: RunbookLike,
    source_database: str = "",
    backup_file: str = "",
    tables: list[str] | tuple[str, ...] = (),
    failure_at: str = "",
) -> Restore:
    """Step 0: what the drill needs, checked without changing anything (the source answers, the
    tools exist and are new enough, the role may create databases, no scratch database is left
    over), then the guard's decision. Returns the drill the next cells run."""
    names = list(dict.fromkeys([*DRILL_TABLES, *(str(t) for t in tables or ())]))
    given = Path(backup_file).expanduser() if backup_file else None
    return Restore(
        rb, tables=names, given_backup=given, failure_param=str(failure_at or ""), source_database=source_database
    ).ready()


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
