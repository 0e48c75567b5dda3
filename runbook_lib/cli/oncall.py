"""runbook oncall: who is primary, secondary and manager now (or at --at), and the schedule, with the
overrides stored in PostgreSQL applied; `oncall override` / `oncall overrides` set, cancel and list
them; --ics writes the schedule as an iCalendar."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.cli.common import echo, print_table, settings_for
from runbook_lib.core.errors import EXIT_FAILED, ConfigError, SourceError
from runbook_lib.core.present import iso
from runbook_lib.sre.oncall import (
    ROLES,
    WEEK,
    OnCall,
    Override,
    Person,
    Roster,
    calendar_ics,
    effective,
    effective_schedule,
    require_person,
    roster_path,
    schedule,
    validate_override,
    who,
)

DESCRIPTION = """\
Who is on call, from the roster in parameters/oncall.yaml (under RUNBOOK_HOME; or --roster FILE):
the primary rotates every 7 days from rotation_start through the people in order; the secondary
rotates every 7 days offset by 3.5 days and is the previous week's primary, so nobody is ever
primary and secondary at once (a roster needs at least 3 people). Escalation: after 15 minutes
the secondary and the senior SRE (senior_sre), after 30 minutes the incident commander
(incident_commander) and the manager. Page within 5 minutes, acknowledge within 10, status update
within 30, resolve or escalate within 1 hour (SRE package, "ON-CALL ROTATION").

Overrides (`runbook oncall override`: a swap, a sick day) are kept in PostgreSQL
(RUNBOOK_POSTGRES_DSN) and applied: what is shown is the EFFECTIVE schedule, and the OVERRIDE
column names the override holding a role. Without a database the plain rotation is shown, with a
note on stderr that overrides were not read.

--weeks N adds the schedule from --at for N weeks, one row per stretch with the same primary and
secondary (a half week, cut where an override starts or ends); CHANGE says which role changed at
its start. --ics [FILE] writes the schedule (--weeks, default 4) as an iCalendar (one event per
shift and per overridden stretch; stdout without FILE) for a calendar to import. Times are UTC; a
shift ending at 09:00 is over at 09:00. Instants before rotation_start are refused."""

EPILOG = """\
exit codes: 0 shown, 1 shown without overrides: PostgreSQL is configured but could not be read,
            2 bad input or a missing or broken roster (the message names the key)

examples:
  runbook oncall
  runbook oncall --weeks 4
  runbook oncall --at 2026-03-02T08:59:00Z --json
  runbook oncall --ics --weeks 8 > oncall.ics
  runbook oncall override --person "Blake Sample" --from 2026-03-02T09:00:00Z --to 2026-03-04T09:00:00Z
  runbook oncall overrides"""

OVERRIDE_DESCRIPTION = """\
Set an override: --person (a name or handle in the roster: people, manager, senior_sre or
incident_commander) is --role (primary by default) from --from until --to (half-open, like a
shift; ISO 8601, no zone: UTC; "now" for now) instead of the rotation. At most 30 days; --to must
be in the future. Several overrides may cover an instant: the one set last wins. An override is
refused when its person would be the other role at any instant of its window, by the rotation or
by another override: nobody is primary and secondary at once (override the other role first).
Who sets it: --operator, default $RUNBOOK_OPERATOR; required.

--cancel ID cancels override ID (see `runbook oncall overrides`): one that has not started never
applies; one in force ends now (before now it stays as it was). Refused when the rotation coming
back would make someone primary and secondary at once. Overrides live in the table
runbook_oncall_overrides of RUNBOOK_POSTGRES_DSN (created by the first override)."""

OVERRIDE_EPILOG = """\
exit codes: 0 stored or cancelled, 1 PostgreSQL failed, 2 bad input, a refused override, or no
            database configured (the message says what)

examples:
  runbook oncall override --person "Blake Sample" --from now --to 2026-03-04T09:00:00Z
  runbook oncall override --person @U0FAKE0004 --role secondary --from 2026-03-05T21:00:00Z \\
      --to 2026-03-06T09:00:00Z --operator alice
  runbook oncall override --cancel 7"""

OVERRIDES_DESCRIPTION = """\
The overrides in force now or later, by start: who, which role, from, until, who set them and
their state (current or upcoming). --all lists every override stored (the newest 1000), over and
cancelled ones included."""

OVERRIDES_EPILOG = """\
exit codes: 0 listed, 1 PostgreSQL failed, 2 no database configured or a broken roster

examples:
  runbook oncall overrides
  runbook oncall overrides --all --json"""

MAX_WEEKS = 520
ICS_WEEKS = 4


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    roster_opt = argparse.ArgumentParser(add_help=False)
    roster_opt.add_argument(
        "--roster", metavar="FILE", help="another roster file (default: <home>/parameters/oncall.yaml)"
    )
    p = sub.add_parser(
        "oncall",
        parents=[common, roster_opt],
        formatter_class=fmt,
        help="who is primary, secondary and manager on call; the schedule; overrides",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "--at",
        metavar="TIMESTAMP",
        help="ISO 8601 instant to answer for, e.g. 2026-03-02T08:59:00Z (no zone: UTC; default: now)",
    )
    p.add_argument("--weeks", metavar="N", type=_weeks, help="also show the schedule for N weeks from --at")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="machine-readable output")
    out.add_argument(
        "--ics",
        metavar="FILE",
        nargs="?",
        const="-",
        help=f"write the schedule from --at for --weeks (default {ICS_WEEKS}) as an iCalendar to FILE (default: stdout)",
    )
    p.set_defaults(func=cmd_oncall)
    commands = p.add_subparsers(title="commands", metavar="COMMAND")
    o = commands.add_parser(
        "override",
        parents=[common, roster_opt],
        formatter_class=fmt,
        help="set (or --cancel) an override: someone else is primary or secondary for a while",
        description=OVERRIDE_DESCRIPTION,
        epilog=OVERRIDE_EPILOG,
    )
    o.add_argument("--person", metavar="NAME", help="who takes the role: a name or handle in the roster")
    o.add_argument("--from", dest="since", metavar="TIMESTAMP", help='start (ISO 8601, no zone: UTC; or "now")')
    o.add_argument("--to", dest="until", metavar="TIMESTAMP", help="end, excluded (at most 30 days after --from)")
    o.add_argument("--role", choices=ROLES, help="primary (default) or secondary")
    o.add_argument(
        "--operator",
        metavar="NAME",
        default=os.environ.get("RUNBOOK_OPERATOR", ""),
        help="who sets (or cancels) it (default: $RUNBOOK_OPERATOR); required",
    )
    o.add_argument("--cancel", metavar="ID", type=_override_id, help="cancel override ID instead")
    o.set_defaults(func=cmd_override)
    ls = commands.add_parser(
        "overrides",
        parents=[common, roster_opt],
        formatter_class=fmt,
        help="list the current and upcoming overrides (--all: every one)",
        description=OVERRIDES_DESCRIPTION,
        epilog=OVERRIDES_EPILOG,
    )
    ls.add_argument("--all", action="store_true", help="every override stored, over and cancelled ones too")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=cmd_overrides)


def _weeks(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of weeks, got {text!r}") from None
    if not 1 <= value <= MAX_WEEKS:
        raise argparse.ArgumentTypeError(f"must be from 1 to {MAX_WEEKS}, got {value}")
    return value


def _override_id(text: str) -> int:
    raw = text.strip()
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) < 2**63:
        raise argparse.ArgumentTypeError(
            f"expected an override id (a whole number, see `runbook oncall overrides`), got {text!r}"
        )
    return int(raw)


def parse_at(text: str | None) -> datetime:
    """--at as an aware UTC instant (no zone given: UTC); now without it."""
    return datetime.now(UTC) if text is None else parse_instant(text, "--at")


def parse_instant(text: str, flag: str) -> datetime:
    """An ISO 8601 instant given to ``flag`` (no zone: UTC; "now": now), in UTC."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{flag}: {text!r} is not an ISO 8601 timestamp (e.g. 2026-03-02T08:59:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# -- runbook oncall -------------------------------------------------------------------------------


def cmd_oncall(args: argparse.Namespace) -> int:
    at = parse_at(args.at)
    settings = settings_for(args)
    path, roster = _roster(args, settings)
    weeks = args.weeks or (ICS_WEEKS if args.ics else None)
    who(roster, at)  # refused before rotation_start: before reading anything
    if weeks:
        schedule(roster, at, weeks)  # and when the schedule would end past year 9999
    # Every override overlapping the shifts shown (each at most a week, before and after): the
    # stretches' since/until are cut where any of them starts or ends, not only those holding at.
    overrides, note, failed = _read_overrides(settings, roster, at - WEEK, at + ((weeks or 0) + 1) * WEEK)
    if note:
        echo(f"runbook: note: {note}", file=sys.stderr)
    if args.ics:
        return _write_ics(args.ics, roster, at, weeks or ICS_WEEKS, overrides) or failed
    now = effective(roster, at, overrides)
    if args.json:
        out: dict[str, Any] = {"at": iso(at), "roster": str(path), **now.to_dict()}
        out["overrides_read"] = note is None
        if note:
            out["overrides_note"] = note
        out["overrides"] = [o.to_dict() for o in overrides]
        if weeks:
            out["weeks"] = weeks
            out["shifts"] = [s.to_dict() for s in effective_schedule(roster, at, weeks, overrides)]
            out["half_weeks"] = [_segment_dict(s) for s in _segments(roster, at, weeks, overrides)]
        echo(json.dumps(out, indent=2))
        return failed
    echo(f"On call at {iso(at)} (roster {path}):")
    rows = [
        _role_row("primary", now.primary, now.primary_since, now.primary_until, now.primary_override),
        _role_row("secondary", now.secondary, now.secondary_since, now.secondary_until, now.secondary_override),
        _escalation_row("manager", now.manager, "escalation (30 min)"),
    ]
    if now.senior_sre is not None:
        rows.append(_escalation_row("senior_sre", now.senior_sre, "escalation (15 min)"))
    if now.incident_commander is not None:
        rows.append(_escalation_row("incident_commander", now.incident_commander, "escalation (30 min)"))
    print_table(rows, ["role", "name", "handle", "since", "until", "override"])
    if weeks:
        echo()
        echo(f"Schedule for {weeks} week{'s' if weeks != 1 else ''} from {iso(at)} (UTC, one row per stretch):")
        print_table(
            [
                {
                    "from": iso(s["since"]),
                    "until": iso(s["until"]),
                    "primary": s["primary"].name,
                    "secondary": s["secondary"].name,
                    "change": s["change"],
                    "override": _override_cell(s),
                }
                for s in _segments(roster, at, weeks, overrides)
            ],
            ["from", "until", "primary", "secondary", "change", "override"],
        )
    return failed


def _read_overrides(
    settings: Any, roster: Roster, start: datetime, end: datetime
) -> tuple[list[Override], str | None, int]:
    """The stored overrides in force in [start, end); a note when they are not read, and the exit
    code that leaves: 0 without a database (nothing to read), 1 when the database failed."""
    if settings.postgres.dsn is None:
        return (
            [],
            "overrides are not read: PostgreSQL is not configured (RUNBOOK_POSTGRES_DSN); this is the plain rotation",
            0,
        )
    from runbook_lib.clients.oncall_overrides import list_overlapping

    try:
        found = list_overlapping(
            settings.postgres.dsn.get_secret_value(),
            start,
            end,
            roster=roster,
            connect_timeout_s=settings.postgres.connect_timeout_s,
        )
    except SourceError as exc:
        note = f"{exc}; this is the plain rotation, an override may change it"
        return [], note, EXIT_FAILED
    return found, None, 0


def _write_ics(target: str, roster: Roster, at: datetime, weeks: int, overrides: list[Override]) -> int:
    shifts = effective_schedule(roster, at, weeks, overrides)
    data = calendar_ics(shifts, datetime.now(UTC), name="On call")
    if target == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return 0
    try:
        Path(target).write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"--ics {target}: cannot be written ({exc.strerror})") from None
    echo(f"{len(shifts)} shifts from {iso(at)} for {weeks} week{'s' if weeks != 1 else ''} written to {target}")
    return 0


def _segments(roster: Roster, at: datetime, weeks: int, overrides: list[Override]) -> list[dict[str, Any]]:
    """Stretches with the same primary and secondary (and overrides) covering [at, at + weeks),
    from the one holding at."""
    end = at + weeks * WEEK
    out: list[dict[str, Any]] = []
    t = at
    while t < end:
        now = effective(roster, t, overrides)
        since = max(now.primary_since, now.secondary_since)
        until = min(now.primary_until, now.secondary_until)
        if not out:
            change = "now"
        else:
            change = " + ".join(
                role
                for role in ROLES
                if (getattr(out[-1]["now"], role), _oid(out[-1]["now"], role)) != (getattr(now, role), _oid(now, role))
            )
        out.append(
            {
                "since": since,
                "until": until,
                "primary": now.primary,
                "secondary": now.secondary,
                "change": change,
                "now": now,
            }
        )
        t = until
    return out


def _oid(now: OnCall, role: str) -> Any:
    o = getattr(now, f"{role}_override")
    return None if o is None else (o.id, o.since)


def _override_cell(s: dict[str, Any]) -> str:
    now: OnCall = s["now"]
    return ", ".join(
        f"{role} #{o.id}" if o.id is not None else role
        for role in ROLES
        if (o := getattr(now, f"{role}_override")) is not None
    )


def _segment_dict(s: dict[str, Any]) -> dict[str, Any]:
    now: OnCall = s["now"]
    return {
        "since": iso(s["since"]),
        "until": iso(s["until"]),
        "primary": s["primary"].name,
        "secondary": s["secondary"].name,
        "change": s["change"],
        "primary_override_id": now.primary_override.id if now.primary_override else None,
        "secondary_override_id": now.secondary_override.id if now.secondary_override else None,
    }


def _role_row(role: str, person: Person, since: datetime, until: datetime, o: Override | None) -> dict[str, str]:
    return {
        "role": role,
        "name": person.name,
        "handle": person.handle,
        "since": iso(since),
        "until": iso(until),
        "override": f"#{o.id} by {o.by}" if o is not None else "",
    }


def _escalation_row(role: str, person: Person, since: str) -> dict[str, str]:
    return {"role": role, "name": person.name, "handle": person.handle, "since": since}


# -- runbook oncall override / overrides ----------------------------------------------------------


def cmd_override(args: argparse.Namespace) -> int:
    if args.cancel is not None:
        given = [f for f, v in (("--person", args.person), ("--from", args.since), ("--to", args.until)) if v]
        if given or args.role:
            raise ConfigError(f"--cancel ID takes no {', '.join(given or ['--role'])}: it cancels a stored override")
        return _cancel(args)
    missing = [f for f, v in (("--person", args.person), ("--from", args.since), ("--to", args.until)) if not v]
    if missing:
        raise ConfigError(f"an override needs {', '.join(missing)} (or --cancel ID to cancel one)")
    from runbook_lib.clients.oncall_overrides import add
    from runbook_lib.core.credentials import safe_endpoint

    settings = settings_for(args)
    _path, roster = _roster(args, settings)
    role = args.role or "primary"
    person = require_person(roster, args.person)
    since, until = parse_instant(args.since, "--from"), parse_instant(args.until, "--to")
    if until <= since:
        raise ConfigError(f"--to {iso(until)} is not after --from {iso(since)}")
    now = datetime.now(UTC)
    if until <= now:
        raise ConfigError(
            f"--to {iso(until)} is in the past: the override would be over already; who was on call stays as it was"
        )
    operator = _operator(args)
    validate_override(roster, Override(person, role, since, until, operator, now))  # before connecting
    dsn = _dsn(settings, "no override was stored")
    oid = add(
        dsn,
        roster=roster,
        person=person.name,
        role=role,
        since=since,
        until=until,
        by=operator,
        connect_timeout_s=settings.postgres.connect_timeout_s,
    )
    weeks = max(1, -(-(until - since) // WEEK))
    replaced = sorted(
        {
            s.person.name
            for s in schedule(roster, since, weeks)
            if s.role == role and s.since < until and s.until > since and s.person.name != person.name
        }
    )
    instead = (
        f" instead of {', '.join(replaced)} (the rotation)" if replaced else " (the rotation names them then anyway)"
    )
    echo(
        f"override {oid} stored: {person.name} is {role} from {iso(since)} until {iso(until)}{instead}; "
        f"set by {operator} ({safe_endpoint(dsn)})"
    )
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from runbook_lib.clients.oncall_overrides import cancel
    from runbook_lib.core.credentials import safe_endpoint

    settings = settings_for(args)
    _path, roster = _roster(args, settings)
    operator = _operator(args)
    dsn = _dsn(settings, "nothing was cancelled")
    done = cancel(dsn, args.cancel, operator, roster=roster, connect_timeout_s=settings.postgres.connect_timeout_s)
    assert done.cancelled_at is not None
    if done.in_force:
        what = f"it applied from {iso(done.since)} until now, {iso(done.cancelled_at)}; the rotation is back"
    else:
        what = "it had not started and never applies"
    echo(
        f"override {done.id} cancelled by {operator}: {done.person.name} as {done.role} "
        f"({iso(done.since)} until {iso(done.until)}); {what} ({safe_endpoint(dsn)})"
    )
    return 0


def cmd_overrides(args: argparse.Namespace) -> int:
    from runbook_lib.clients.oncall_overrides import list_overrides
    from runbook_lib.core.credentials import safe_endpoint

    settings = settings_for(args)
    _path, roster = _roster(args, settings)
    dsn = _dsn(settings, "no overrides listed")
    found = list_overrides(
        dsn, roster=roster, include_past=args.all, connect_timeout_s=settings.postgres.connect_timeout_s
    )
    now = datetime.now(UTC)
    if args.json:
        out = {
            "at": iso(now),
            "database": safe_endpoint(dsn),
            "all": args.all,
            "overrides": [{**o.to_dict(), "state": _state(o, now)} for o in found],
        }
        echo(json.dumps(out, indent=2))
        return 0
    which = "Every override stored" if args.all else "Current and upcoming overrides"
    echo(f"{which} ({safe_endpoint(dsn)}, UTC):")
    if not found:
        echo("none")
        return 0
    print_table(
        [
            {
                "id": o.id,
                "role": o.role,
                "person": o.person.name,
                "handle": o.person.handle,
                "from": iso(o.since),
                "until": iso(o.until),
                "by": o.by,
                "state": _state(o, now),
            }
            for o in found
        ],
        ["id", "role", "person", "handle", "from", "until", "by", "state"],
    )
    return 0


def _state(o: Override, now: datetime) -> str:
    if o.cancelled_at is not None and not o.in_force:
        return f"cancelled by {o.cancelled_by} (never applied)"
    cut = f", cancelled by {o.cancelled_by} at {iso(o.cancelled_at)}" if o.cancelled_at is not None else ""
    if o.ends <= now:
        return "over" + cut
    return ("current" if o.since <= now else "upcoming") + cut


def _roster(args: argparse.Namespace, settings: Any) -> tuple[Path, Roster]:
    path = Path(args.roster) if args.roster else roster_path(settings.home)
    return path, Roster.load(path)


def _operator(args: argparse.Namespace) -> str:
    operator = (args.operator or "").strip()
    if not operator:
        raise ConfigError("who sets or cancels an override: give --operator NAME (or set $RUNBOOK_OPERATOR)")
    return operator


def _dsn(settings: Any, what: str) -> str:
    if settings.postgres.dsn is None:
        raise ConfigError(
            f"on-call overrides are kept in PostgreSQL, which is not configured: set RUNBOOK_POSTGRES_DSN "
            f"(or RUNBOOK_POSTGRES_DSN_FILE); {what}"
        )
    return str(settings.postgres.dsn.get_secret_value())
