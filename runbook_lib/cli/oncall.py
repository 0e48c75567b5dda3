"""runbook oncall: who is primary, secondary and manager now (or at --at), and the schedule."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.cli.common import echo, print_table, settings_for
from runbook_lib.core.errors import ConfigError
from runbook_lib.sre.oncall import WEEK, Person, Roster, roster_path, schedule, who

DESCRIPTION = """\
Who is on call, from the roster in parameters/oncall.yaml (under RUNBOOK_HOME; or --roster FILE):
the primary rotates every 7 days from rotation_start through the people in order; the secondary
rotates every 7 days offset by 3.5 days and is the previous week's primary, so nobody is ever
primary and secondary at once (a roster needs at least 3 people); the manager is the escalation
for critical incidents. Page within 5 minutes, acknowledge within 10, status update within 30,
resolve or escalate within 1 hour (SRE package, "ON-CALL ROTATION").

--weeks N adds the schedule from --at for N weeks, one row per half week: each row is one
stretch with the same primary and secondary; CHANGE says which role changed at its start. Times
are UTC; a shift ending at 09:00 is over at 09:00. Instants before rotation_start are refused."""

EPILOG = """\
exit codes: 0 shown, 2 bad input or a missing or broken roster (the message names the key)

examples:
  runbook oncall
  runbook oncall --weeks 4
  runbook oncall --at 2026-03-02T08:59:00Z --json"""

MAX_WEEKS = 520


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "oncall",
        parents=[common],
        formatter_class=fmt,
        help="who is primary, secondary and manager on call; the rotation's schedule",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "--at",
        metavar="TIMESTAMP",
        help="ISO 8601 instant to answer for, e.g. 2026-03-02T08:59:00Z (no zone: UTC; default: now)",
    )
    p.add_argument("--weeks", metavar="N", type=_weeks, help="also show the schedule for N weeks from --at")
    p.add_argument("--roster", metavar="FILE", help="another roster file (default: <home>/parameters/oncall.yaml)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_oncall)


def _weeks(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of weeks, got {text!r}") from None
    if not 1 <= value <= MAX_WEEKS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_WEEKS}, got {value}")
    return value


def parse_at(text: str | None) -> datetime:
    """--at as an aware UTC instant (no zone given: UTC); now without it."""
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--at: {text!r} is not an ISO 8601 timestamp (e.g. 2026-03-02T08:59:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def cmd_oncall(args: argparse.Namespace) -> int:
    at = parse_at(args.at)
    path = Path(args.roster) if args.roster else roster_path(settings_for(args).home)
    roster = Roster.load(path)
    now = who(roster, at)
    shifts = schedule(roster, at, args.weeks) if args.weeks else []
    if args.json:
        out: dict[str, Any] = {"at": _iso(at), "roster": str(path), **now.to_dict()}
        if args.weeks:
            out["weeks"] = args.weeks
            out["shifts"] = [s.to_dict() for s in shifts]
            out["half_weeks"] = [_segment_dict(s) for s in _segments(roster, at, args.weeks)]
        echo(json.dumps(out, indent=2))
        return 0
    echo(f"On call at {_iso(at)} (roster {path}):")
    print_table(
        [
            _role_row("primary", now.primary, now.primary_since, now.primary_until),
            _role_row("secondary", now.secondary, now.secondary_since, now.secondary_until),
            {"role": "manager", "name": now.manager.name, "handle": now.manager.handle, "since": "escalation"},
        ],
        ["role", "name", "handle", "since", "until"],
    )
    if args.weeks:
        echo()
        echo(
            f"Schedule for {args.weeks} week{'s' if args.weeks != 1 else ''} from {_iso(at)} (UTC, one row per half week):"
        )
        print_table(
            [
                {
                    "from": _iso(s["since"]),
                    "until": _iso(s["until"]),
                    "primary": s["primary"].name,
                    "secondary": s["secondary"].name,
                    "change": s["change"],
                }
                for s in _segments(roster, at, args.weeks)
            ],
            ["from", "until", "primary", "secondary", "change"],
        )
    return 0


def _segments(roster: Roster, at: datetime, weeks: int) -> list[dict[str, Any]]:
    """Stretches with the same primary and secondary covering [at, at + weeks), from the one holding at."""
    end = at + weeks * WEEK
    out: list[dict[str, Any]] = []
    t = at
    while t < end:
        now = who(roster, t)
        since = max(now.primary_since, now.secondary_since)
        until = min(now.primary_until, now.secondary_until)
        if not out:
            change = "now"
        else:
            change = " + ".join(
                role
                for role, before, after in (
                    ("primary", out[-1]["primary"], now.primary),
                    ("secondary", out[-1]["secondary"], now.secondary),
                )
                if before != after
            )
        out.append(
            {"since": since, "until": until, "primary": now.primary, "secondary": now.secondary, "change": change}
        )
        t = until
    return out


def _segment_dict(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "since": _iso(s["since"]),
        "until": _iso(s["until"]),
        "primary": s["primary"].name,
        "secondary": s["secondary"].name,
        "change": s["change"],
    }


def _role_row(role: str, person: Person, since: datetime, until: datetime) -> dict[str, str]:
    return {"role": role, "name": person.name, "handle": person.handle, "since": _iso(since), "until": _iso(until)}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
