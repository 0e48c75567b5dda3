"""runbook ack / assign / update / resolve / reopen: move an incident along, chained on its record."""

from __future__ import annotations

import argparse
import os
from typing import Any

from runbook_lib.cli.common import echo, settings_for
from runbook_lib.core.errors import EXIT_OK, Refused
from runbook_lib.sre.lifecycle import ROLES

DESCRIPTION = """\
Move an incident along: each command chains one event on the incident's record in the archive
index (the record's own files never change; `runbook verify` covers the events). The incident's
deadlines are then worked out from what happened: acknowledged at 03:07 against a 03:10 deadline
is met. The same events come from Slack's buttons and PagerDuty's webhooks (`runbook serve`).

Every command needs your identity: --operator NAME or $RUNBOOK_OPERATOR. A resolved incident only
takes `runbook reopen`; an incident is acknowledged once."""

EPILOG = """\
exit codes: 0 chained, 2 refused (unknown record, resolved incident, no operator: the message says why)

examples:
  runbook ack 20261207T0300
  runbook assign 20261207T0300 --role ic --person "Avery Example"
  runbook update 20261207T0300 "rolled back to revision 6; error rate falling"
  runbook resolve 20261207T0300 --note "error rate back under 0.1 % for 15 minutes"
  runbook reopen 20261207T0300 --why "errors are back\""""

COMMANDS = {
    "ack": ("acknowledged", "acknowledge an incident: you are on it"),
    "assign": ("assigned", "assign a role: incident commander (ic), technical lead (tl), communications lead (cl)"),
    "update": ("update", "post a status update"),
    "resolve": ("resolved", "resolve an incident, with a note"),
    "reopen": ("reopened", "reopen a resolved incident"),
}


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    for name, (_event, help_text) in COMMANDS.items():
        p = sub.add_parser(
            name, parents=[common], formatter_class=fmt, help=help_text, description=DESCRIPTION, epilog=EPILOG
        )
        p.add_argument("record", metavar="RECORD", help="the incident's record id, or a unique part of it")
        p.add_argument(
            "--operator",
            metavar="NAME",
            default=os.environ.get("RUNBOOK_OPERATOR", ""),
            help="who you are, as the roster names you (default: $RUNBOOK_OPERATOR)",
        )
        if name == "assign":
            p.add_argument("--role", required=True, choices=sorted(ROLES), help="ic, tl or cl")
            p.add_argument("--person", required=True, metavar="NAME", help="who takes the role")
        if name == "update":
            p.add_argument("text", metavar="TEXT", help="the update, one line")
        if name == "resolve":
            p.add_argument("--note", metavar="TEXT", help="what resolved it (recommended)")
        if name == "reopen":
            p.add_argument("--why", metavar="TEXT", help="why it is open again")
        p.set_defaults(func=cmd_incident, event=COMMANDS[name][0])


def cmd_incident(args: argparse.Namespace) -> int:
    from runbook_lib.record.archive import archive_for
    from runbook_lib.record.incidents import act, story
    from runbook_lib.sre.lifecycle import headline

    if not args.operator.strip():
        raise Refused("who are you? give --operator NAME (or set $RUNBOOK_OPERATOR)")
    settings = settings_for(args)
    archive = archive_for(settings)
    extra = {
        "role": getattr(args, "role", None),
        "person": getattr(args, "person", None),
        "text": getattr(args, "text", None),
        "note": getattr(args, "note", None),
        "why": getattr(args, "why", None),
    }
    if args.event != "assigned":
        extra.pop("person")
    record, _entry = act(archive, args.record, args.event, args.operator, **extra)
    after = archive.load(record["id"])
    echo(f"{record['id']}: {headline(story(after))}")
    return EXIT_OK
