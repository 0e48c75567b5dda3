"""The on-call shift: who is on call, the incidents still open (with their SEV and deadlines),
the reports still owed, whether every backend is reachable with the configured credentials, and
the toil of the shift that is ending. Used by the oncall-shift-start and oncall-shift-end checklists."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd

from runbook_lib.clients import toil
from runbook_lib.clients.oncall_overrides import overrides_at
from runbook_lib.clients.rabbitmq import QueueNotFound
from runbook_lib.core.errors import ConfigError, RunbookError, SourceError, SourceNotConfigured
from runbook_lib.core.present import iso
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.archive import ArchiveReader
from runbook_lib.sre import drill_calendar as drills
from runbook_lib.sre import incident, oncall

OWED = ("preliminary report", "full report")


@dataclass
class Incidents(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    open: int = 0
    overdue: int = 0


@dataclass
class Access(Result):
    reachable: dict[str, str] = field(default_factory=dict)  # backend -> "ok" / "not configured" / error


@check("On call now", Result)
def on_call(rb: RunbookLike, next_shift: bool = False) -> Result:
    """Primary, secondary and manager now, from parameters/oncall.yaml; with ``next_shift``, at
    the handover that ends the shift that is ending (who takes over; just after a handover, the
    one that just happened: :func:`runbook_lib.sre.oncall.ending_shift`)."""
    at = rb.now
    overrides: list[oncall.Override] = []
    unread = ""
    try:
        path = oncall.roster_path(rb.settings.home)
        if path.is_file():
            roster = oncall.Roster.load(path)
            if next_shift:
                at = oncall.ending_shift(roster, rb.now).until
            try:
                overrides = overrides_at(rb.settings, roster, at)
            except RunbookError as exc:  # the rotation alone, saying so
                unread = f" (schedule overrides not read, the plain rotation: {exc})"
        now = oncall.on_call_at(rb.settings.home, at, overrides)
    except ConfigError as exc:
        rb.finding("On call now", "warning", f"parameters/oncall.yaml cannot be used: {exc}")
        return Result.unchecked(str(exc))
    if now is None:
        rb.finding("On call now", "unchecked", "No roster (parameters/oncall.yaml) covers now.", reason="no roster")
        return Result.unchecked("no roster")
    when_text = f"From {iso(at)}: primary" if next_shift else "Primary"
    rb.finding(
        "On call now",
        "info",
        f"{when_text} {now['primary']}, secondary {now['secondary']}, escalation manager {now['manager']}{unread}.",
        at=iso(at),
        **now,
    )
    return Result()


def _incidents(rb: RunbookLike, days: float) -> list[dict[str, Any]]:
    reader = ArchiveReader.from_settings(rb.settings)
    since = rb.now - timedelta(days=days)
    rows = []
    for entry in reader.entries():
        record = reader.record(entry.record_id)
        inc, alert = record.get("incident"), record.get("alert") or {}
        fired = pd.Timestamp(alert.get("startsAt")) if alert.get("startsAt") else None
        if not inc or fired is None:
            continue
        if fired.to_pydatetime() < since and incident.resolved_at(entry.events, alert.get("fingerprint")):
            continue  # an old incident drops out once resolved; one still firing never does
        resolved = incident.resolved_at(entry.events, alert.get("fingerprint"))
        status = incident.record_status(inc, rb.now, entry.events, alert.get("fingerprint"))
        rows.append(
            {
                "record": entry.record_id,
                "alert": (alert.get("labels") or {}).get("alertname", ""),
                "sev": inc["sev"],
                "fired": iso(fired),
                "resolved": iso(resolved) if resolved else "",
                "deadlines": status,
                "reports": entry.reports,
                "headline": (record.get("diagnosis") or {}).get("headline", "")[:160],
            }
        )
    return rows


@check("Open incidents", Incidents, essential=True)
def open_incidents(rb: RunbookLike, days: float = 7) -> Incidents:
    """Records of the last ``days`` whose alert has not resolved: SEV, next deadline, headline."""
    rows = [r for r in _incidents(rb, days) if not r["resolved"]]
    title = "Open incidents"
    if not rows:
        rb.finding(title, "ok", f"No incident of the last {days:g} days is still firing.", open=0)
        return Incidents()
    table = pd.DataFrame(
        [
            {
                "record": r["record"],
                "alert": r["alert"],
                "sev": r["sev"],
                "fired": r["fired"],
                "next": incident.describe(incident.next_deadline(r["deadlines"])),
                "headline": r["headline"],
            }
            for r in sorted(rows, key=lambda r: (r["sev"], r["fired"]))
        ]
    )
    rb.table(table, title=f"Incidents still firing (last {days:g} days), worst SEV first")
    overdue = sum(any(d["passed"] for d in r["deadlines"]) for r in rows)
    paging = sum(r["sev"] in ("SEV-1", "SEV-2") for r in rows)
    rb.finding(
        title,
        "critical" if overdue and paging else "warning",
        f"{len(rows)} incident(s) still firing ({paging} SEV-1/SEV-2), {overdue} with a passed deadline: "
        + "; ".join(f"{r['sev']} {r['alert']} since {r['fired']}" for r in table.to_dict("records")[:5])
        + ".",
        role="symptom",
        open=len(rows),
        overdue=overdue,
        records=[r["record"] for r in rows],
    )
    return Incidents(table=table, open=len(rows), overdue=overdue)


@check("Reports owed", Incidents)
def reports_owed(rb: RunbookLike, days: float = 14) -> Incidents:
    """Resolved SEV-1/SEV-2 incidents without an attached report (`runbook report`), by deadline."""
    owed = []
    for r in _incidents(rb, days):
        if not r["resolved"] or r["reports"]:
            continue
        for d in r["deadlines"]:
            if d["name"] in OWED:
                owed.append(
                    {
                        "record": r["record"],
                        "alert": r["alert"],
                        "sev": r["sev"],
                        "report": d["name"],
                        "due": d["due"],
                        "passed": d["passed"],
                    }
                )
    title = "Reports owed"
    if not owed:
        rb.finding(title, "ok", f"No report owed for the incidents resolved in the last {days:g} days.", owed=0)
        return Incidents()
    table = pd.DataFrame(sorted(owed, key=lambda o: o["due"]))
    rb.table(table, title="Incident reports still owed, by deadline (write with `runbook report RECORD`)")
    late = int(table["passed"].sum())
    first = table.iloc[0]
    rb.finding(
        title,
        "warning" if late else "info",
        f"{table['record'].nunique()} resolved incident(s) without a report; {late} deadline(s) passed; "
        f"next: {first['report']} for {first['alert']} ({first['record']}) due {first['due']}.",
        owed=int(table["record"].nunique()),
        late=late,
    )
    return Incidents(table=table, open=int(table["record"].nunique()), overdue=late)


@check("Access with the configured credentials", Access, essential=True)
def access(rb: RunbookLike) -> Access:
    """Kubernetes, PostgreSQL, Prometheus and RabbitMQ, each asked one cheap question."""
    probes = {
        "Kubernetes": lambda: rb.kubernetes.deployment(rb.service.deployment),
        "PostgreSQL": lambda: rb.postgres.row("SELECT 1 AS ok"),
        "Prometheus": lambda: rb.prometheus.query("vector(1)"),
        "RabbitMQ": lambda: rb.rabbitmq.depth(rb.settings.rabbitmq.dlq_queue),
    }
    reachable = {}
    for name, ask in probes.items():
        try:
            ask()
            reachable[name] = "ok"
        except QueueNotFound:
            reachable[name] = "ok"  # the broker answered (and has no such queue yet)
        except SourceNotConfigured:
            reachable[name] = "not configured"
        except SourceError as exc:
            reachable[name] = str(exc)[:200]
    rb.table(pd.DataFrame([{"backend": k, "access": v} for k, v in reachable.items()]), title="Access")
    failing = [k for k, v in reachable.items() if v not in ("ok", "not configured")]
    missing = [k for k, v in reachable.items() if v == "not configured"]
    ok = [k for k, v in reachable.items() if v == "ok"]
    rb.finding(
        "Access with the configured credentials",
        "critical" if failing else "warning" if missing else "ok",
        (f"Cannot reach {', '.join(failing)} with the configured credentials. " if failing else "")
        + (f"Not configured: {', '.join(missing)}. " if missing else "")
        + (f"Reachable: {', '.join(ok)}." if ok else "Nothing reachable."),
        role="cause" if failing else None,
        reachable=reachable,
    )
    return Access(reachable=reachable)


@check("Toil this shift", Result)
def toil_this_shift(rb: RunbookLike) -> Result:
    """The toil (`runbook toil add`) of the primary shift that is ending against the package's
    30 % target: the shift in progress, or the one that ended at a handover less than 12 h ago
    (:func:`runbook_lib.sre.oncall.ending_shift`), not the calendar week."""
    title = "Toil this shift"
    dsn = rb.settings.postgres.dsn
    if dsn is None:
        raise SourceNotConfigured("PostgreSQL", "set RUNBOOK_POSTGRES_DSN (toil is stored there)")
    try:
        path = oncall.roster_path(rb.settings.home)
        cfg = toil.ToilConfig.load(path)
        shift = oncall.ending_shift(oncall.Roster.load(path), rb.now)
        spent = toil.period(
            dsn.get_secret_value(), shift.since, shift.until, hours_per_week=cfg.hours_per_week, target=cfg.target
        )
    except ConfigError as exc:
        rb.finding(title, "unchecked", str(exc), reason="config")
        return Result.unchecked(str(exc))
    cats = ", ".join(f"{k} {v} min" for k, v in list(spent.by_category.items())[:3]) or "none logged"
    state = "in progress" if shift.since <= rb.now < shift.until else "ended"
    rb.finding(
        title,
        "warning" if spent.over_target else "ok",
        f"{spent.minutes} min of toil in the primary shift {iso(shift.since)} .. {iso(shift.until)} "
        f"({state}; {spent.entries} entries): {spent.share:.0%} of {cfg.hours_per_week:g} on-call hours "
        f"against the {cfg.target:.0%} target; top: {cats}.",
        minutes=spent.minutes,
        share=spent.share,
        over_target=spent.over_target,
        by_category=spent.by_category,
        since=iso(shift.since),
        until=iso(shift.until),
    )
    return Result()


@check("DR drills", Result)
def drills_due(rb: RunbookLike) -> Result:
    """The quarterly DR drill calendar (parameters/drills.yaml) against the drill records in the
    archive: an overdue drill is flagged."""
    try:
        calendar = drills.load(rb.settings.home / drills.CALENDAR_FILE)
    except ConfigError as exc:
        rb.finding("DR drills", "unchecked", str(exc), reason="config")
        return Result.unchecked(str(exc))
    reader = ArchiveReader.from_settings(rb.settings)
    runbooks = {d.runbook for d in calendar}
    runs = []
    for entry in reader.entries():
        if entry.runbook not in runbooks:
            continue
        record = reader.record(entry.record_id)
        started = pd.Timestamp(record.get("started_at")).to_pydatetime()
        runs.append(
            drills.Run(entry.record_id, entry.runbook, started, str(record.get("mode")), drills.verdict_of(record))
        )
    states = drills.calendar(calendar, runs, rb.now.year, rb.now)
    rb.table(
        pd.DataFrame(
            [
                {
                    "quarter": f"Q{s.drill.quarter}",
                    "drill": s.drill.name,
                    "status": s.status,
                    "last run": iso(s.last.at) if s.last else "never",
                    "verdict": s.verdict_text() if s.last else "",
                }
                for s in states
            ]
        ),
        title=f"DR drills {rb.now.year}",
    )
    overdue = [s.drill.name for s in states if s.status == "overdue"]
    upcoming = drills.next_due(states, rb.now)
    rb.finding(
        "DR drills",
        "warning" if overdue else "ok",
        (f"Overdue: {', '.join(overdue)}. " if overdue else "No drill is overdue. ")
        + (
            f"Next: {upcoming.drill.name} (runbook run {upcoming.drill.runbook})."
            if upcoming
            else "All done this year."
        ),
        overdue=overdue,
        next=upcoming.drill.name if upcoming else None,
    )
    return Result()
