"""runbook drills: the quarterly DR drill calendar with each drill's last run and verdict."""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from typing import Any

from runbook_lib.cli.common import echo, print_table, settings_for
from runbook_lib.core.errors import ArchiveError, ConfigError
from runbook_lib.core.present import iso

DESCRIPTION = """\
The year's DR drill calendar from parameters/drills.yaml (which drill, which quarter, which
environment) with, from the archive, each drill's last run and its verdict (PASS/FAIL). A drill
is done when it passed in its quarter, due while its quarter runs, failed when it ran there
without passing, and OVERDUE when its quarter ended without a PASS. Only runs in resolve mode
inside the drill's quarter count (a diagnose run of a drill runbook is its pre-check; the run's
environment is shown, not checked): a last run that does not count is marked "(not counted)"
and a line under the table says why."""

log = logging.getLogger("runbook.drills")

EPILOG = """\
exit codes: 0 shown (overdue drills are flagged, not an error), 2 bad calendar or option

examples:
  runbook drills
  runbook drills --year 2027 --json"""


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "drills",
        parents=[common],
        formatter_class=fmt,
        help="the quarterly DR drill calendar: next due, last verdicts, overdue",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("--year", type=int, metavar="YEAR", help="the calendar year (default: this year)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_drills)


def runs_from_archive(archive: Any, runbooks: set[str]) -> list[Any]:
    """Every archived run of a drill runbook, with its mode and verdict."""
    from runbook_lib.sre.drill_calendar import Run, verdict_of

    out = []
    for entry in archive.entries():
        if entry.get("type") != "record" or entry.get("runbook") not in runbooks:
            continue
        try:
            rec = archive.load(entry["id"])
            at = datetime.fromisoformat(str(rec["started_at"]).replace("Z", "+00:00"))
        except (ArchiveError, KeyError, TypeError, ValueError) as exc:
            log.warning("drills: record %s skipped: %s", entry.get("id"), exc)  # `runbook verify` reports it
            continue
        env = str(rec.get("environment") or "")
        out.append(Run(entry["id"], str(rec.get("runbook")), at, str(rec.get("mode")), verdict_of(rec), env))
    return out


def cmd_drills(args: argparse.Namespace) -> int:
    from runbook_lib.record.archive import archive_for
    from runbook_lib.sre import drill_calendar as drills

    settings = settings_for(args)
    now = datetime.now(UTC)
    year = args.year or now.year
    if not 2000 <= year <= 2200:
        raise ConfigError(f"--year {year}: not a plausible year")
    calendar = drills.load(settings.home / drills.CALENDAR_FILE)
    archive = archive_for(settings)
    runs = runs_from_archive(archive, {d.runbook for d in calendar}) if archive.has_index() else []
    states = drills.calendar(calendar, runs, year, now)
    upcoming = drills.next_due(states, now)
    if args.json:
        echo(
            json.dumps(
                {
                    "year": year,
                    "at": iso(now),
                    "drills": [s.to_dict() for s in states],
                    "next": upcoming.drill.name if upcoming else None,
                },
                indent=2,
            )
        )
        return 0
    echo(f"DR drills {year} (calendar {settings.home / drills.CALENDAR_FILE}, archive {archive.location}):\n")
    rows = [
        {
            "quarter": f"Q{s.drill.quarter}",
            "drill": s.drill.name,
            "environment": s.drill.environment,
            "window": f"{s.starts:%Y-%m-%d} .. {s.ends:%Y-%m-%d}",
            "status": s.status.upper() if s.status in ("overdue", "failed") else s.status,
            "last run": iso(s.last.at) if s.last else "never",
            "verdict": s.verdict_text(),
        }
        for s in states
    ]
    print_table(rows, ["quarter", "drill", "environment", "window", "status", "last run", "verdict"])
    echo()
    for s in states:
        if note := s.last_run_note():
            echo(f"Q{s.drill.quarter} {note}")
    for s in states:
        if s.status == "overdue":
            echo(
                f"OVERDUE: {s.drill.name} ({s.drill.what}) was due by {s.ends:%Y-%m-%d}: runbook run {s.drill.runbook}"
            )
    if upcoming:
        echo(
            f"next: {upcoming.drill.name} (Q{upcoming.drill.quarter}, {upcoming.status}), runbook run {upcoming.drill.runbook}"
        )
    else:
        echo("every drill of the year is done")
    return 0
