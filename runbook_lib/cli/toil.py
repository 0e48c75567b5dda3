"""runbook toil add / report: log repetitive manual work and see its weekly share of on-call time."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

from runbook_lib.cli.common import echo, print_table, settings_for
from runbook_lib.core.errors import EXIT_USAGE, ConfigError

DESCRIPTION = """\
The toil log (SRE package, "TOIL REDUCTION"): repetitive, manual, automatable work, one entry
per piece, kept in the table toil_entries of RUNBOOK_POSTGRES_DSN (created when missing). The
package's target is under 30 % of SRE time on toil; a week's share is its toil minutes over
toil_hours_per_week (parameters/oncall.yaml, e.g. 40 h = 2400 min). Categories are
toil_categories in the same file. Log toil at the end of a shift (the end-of-shift checklist)."""

ADD_DESCRIPTION = """\
Log one piece of toil: what it was (at most 500 characters), how many minutes it took (1 to
1440), its category (one of toil_categories in parameters/oncall.yaml; default: other) and who
did it (--operator, default $RUNBOOK_OPERATOR). --at logs it at an earlier time (a past shift)."""

ADD_EPILOG = """\
exit codes: 0 recorded, 1 PostgreSQL failed, 2 bad input or configuration (the message says what)

examples:
  runbook toil add "deployed edge function by hand" --minutes 10 --category manual-deploy
  runbook toil add "replayed DLQ by hand" --minutes 30 --operator alice --at 2026-03-05T16:00:00Z"""

REPORT_DESCRIPTION = """\
Toil per ISO week (UTC, Monday to Monday) for the last --weeks weeks up to this one: entries,
minutes, the share of toil_hours_per_week, whether the week misses the package's target (under
30 %: a week at or over it is marked OVER) and its top categories; then the categories over the
whole period."""

REPORT_EPILOG = """\
exit codes: 0 reported (whatever the shares), 1 PostgreSQL failed, 2 bad input or configuration

examples:
  runbook toil report
  runbook toil report --weeks 12 --json | jq '.weeks[] | select(.over_target)'"""

DEFAULT_CATEGORY = "other"
MAX_WEEKS = 520


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "toil",
        parents=[common],
        formatter_class=fmt,
        help="log toil and report its weekly share against the 30 %% target",
        description=DESCRIPTION,
    )
    p.set_defaults(func=lambda _args: _usage(p))
    commands = p.add_subparsers(title="commands", metavar="COMMAND")
    a = commands.add_parser(
        "add",
        parents=[common],
        formatter_class=fmt,
        help="log one piece of toil",
        description=ADD_DESCRIPTION,
        epilog=ADD_EPILOG,
    )
    a.add_argument("text", help="what the manual work was (at most 500 characters)")
    a.add_argument("--minutes", metavar="N", required=True, help="minutes it took: a whole number from 1 to 1440")
    a.add_argument("--category", metavar="C", default=DEFAULT_CATEGORY, help="one of toil_categories (default: other)")
    a.add_argument(
        "--operator",
        metavar="NAME",
        default=os.environ.get("RUNBOOK_OPERATOR", ""),
        help="who did it (default: $RUNBOOK_OPERATOR); required",
    )
    a.add_argument("--at", metavar="TIMESTAMP", help="when (ISO 8601; no zone: UTC; default: now); not in the future")
    a.set_defaults(func=cmd_add)
    r = commands.add_parser(
        "report",
        parents=[common],
        formatter_class=fmt,
        help="toil per week: minutes, share of on-call time, top categories",
        description=REPORT_DESCRIPTION,
        epilog=REPORT_EPILOG,
    )
    r.add_argument("--weeks", metavar="N", default="4", help="how many ISO weeks up to this one (default: 4)")
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.set_defaults(func=cmd_report)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _config(args: argparse.Namespace) -> tuple[Any, Any]:
    from runbook_lib.clients.toil import ToilConfig
    from runbook_lib.sre.oncall import roster_path

    settings = settings_for(args)
    return settings, ToilConfig.load(roster_path(settings.home))


def _dsn(settings: Any, what: str) -> str:
    if settings.postgres.dsn is None:
        raise ConfigError(
            f"toil is kept in PostgreSQL, which is not configured: set RUNBOOK_POSTGRES_DSN "
            f"(or RUNBOOK_POSTGRES_DSN_FILE); {what}"
        )
    return str(settings.postgres.dsn.get_secret_value())


def cmd_add(args: argparse.Namespace) -> int:
    from runbook_lib.clients.toil import add, check_entry
    from runbook_lib.core.credentials import safe_endpoint

    settings, config = _config(args)
    operator, minutes, category, text = check_entry(
        args.operator, args.minutes, args.category, args.text, config.categories
    )
    at = _parse_at(args.at)
    dsn = _dsn(settings, "nothing was recorded")
    entry = add(
        dsn,
        operator,
        minutes,
        category,
        text,
        categories=config.categories,
        at=at,
        connect_timeout_s=settings.postgres.connect_timeout_s,
    )
    when = f" at {at.strftime('%Y-%m-%dT%H:%M:%SZ')}" if at else ""
    echo(f"toil entry {entry} recorded: {minutes} min {category} by {operator}{when} ({safe_endpoint(dsn)})")
    return 0


def _parse_at(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--at: {text!r} is not an ISO 8601 timestamp (e.g. 2026-03-05T16:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment > datetime.now(UTC):
        raise ConfigError(f"--at: {text} is in the future; log toil once it is done")
    return moment


def _weeks(text: str) -> int:
    raw = str(text).strip()
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_WEEKS:
        raise ConfigError(f"--weeks must be a whole number from 1 to {MAX_WEEKS}, got {text!r}")
    return int(raw)


def cmd_report(args: argparse.Namespace) -> int:
    from runbook_lib.clients.toil import report, top_categories
    from runbook_lib.core.credentials import safe_endpoint

    weeks = _weeks(args.weeks)
    settings, config = _config(args)
    dsn = _dsn(settings, "no report")
    now = datetime.now(UTC)
    rows = report(
        dsn,
        weeks,
        now,
        hours_per_week=config.hours_per_week,
        target=config.target,
        connect_timeout_s=settings.postgres.connect_timeout_s,
    )
    overall = top_categories(rows)
    total = sum(w.minutes for w in rows)
    over = [w for w in rows if w.over_target]
    if args.json:
        out = {
            "at": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "database": safe_endpoint(dsn),
            "hours_per_week": config.hours_per_week,
            "target": config.target,
            "weeks": [w.to_dict() for w in rows],
            "total_minutes": total,
            "by_category": overall,
            "weeks_over_target": [w.week for w in over],
        }
        echo(json.dumps(out, indent=2))
        return 0
    budget = config.hours_per_week * 60
    echo(f"Toil per ISO week (UTC), the last {weeks} week{'s' if weeks != 1 else ''}, from {safe_endpoint(dsn)}")
    echo(
        f"Share of {config.hours_per_week:g} h of on-call a week ({budget:g} min); target: under "
        f"{config.target:.0%} ({config.target * budget:g} min)"
    )
    echo()
    print_table(
        [
            {
                "week": w.week,
                "from": w.start.strftime("%Y-%m-%d"),
                "entries": w.entries,
                "minutes": w.minutes,
                "share": f"{w.share:.1%}",
                "target": "OVER" if w.over_target else "ok",
                "top categories": ", ".join(f"{c} {m}" for c, m in list(w.by_category.items())[:3]),
            }
            for w in rows
        ],
        ["week", "from", "entries", "minutes", "share", "target", "top categories"],
    )
    echo()
    if over:
        echo(
            f"{len(over)} of {len(rows)} weeks at or over the {config.target:.0%} target: {', '.join(w.week for w in over)}"
        )
    else:
        echo(f"every week under the {config.target:.0%} target")
    if overall:
        echo(
            f"top categories over {total} min: "
            + ", ".join(f"{c} {m} min ({m / total:.0%})" for c, m in list(overall.items())[:5])
        )
    else:
        echo("no toil logged in these weeks")
    return 0
