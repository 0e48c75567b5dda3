"""runbook report: an incident report built from an archived record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runbook_lib.cli.common import echo, settings_for
from runbook_lib.core.errors import ConfigError

DESCRIPTION = """\
Build the incident report of a record from the record itself, never by hand: a timeline (the
alert firing, the receiver's receipt, each runbook step with its time, actions, the audit_logs
rows written in the incident window when RUNBOOK_POSTGRES_DSN is set, the resolution), the
findings, the SEV level and its deadlines (which have passed), the roles (IC, TL, CL) to fill
in, root cause and impact pre-filled from the findings and marked TO COMPLETE, and the
runbook's Post-Incident checklist.

The report is printed (or written to --out) and attached to the archive: reports/<record>/
report-<n>.<format>, its sha256 chained in the index as a `report` event, so `runbook verify`
covers it; a report that says exactly what the newest attached one says is not attached again.
--no-attach only prints."""

EPILOG = """\
exit codes: 0 written, 1 no such record, or the archive could not be read or written, 2 bad option

examples:
  runbook report 20261127T1403                 # Markdown on stdout, attached to the archive
  runbook report 20261127T1403 --format html --out report.html"""


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "report",
        parents=[common],
        formatter_class=fmt,
        help="an incident report built from a record (timeline, findings, roles, checklist)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("id", metavar="RECORD_ID", help="record id, or a unique part of it")
    p.add_argument("--format", choices=("md", "html"), default="md", help="Markdown (default) or HTML")
    p.add_argument("--out", metavar="PATH", help="also write the report here")
    p.add_argument("--no-attach", action="store_true", help="do not attach it to the archive")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from runbook_lib.clients.audit import rows_between
    from runbook_lib.record import report
    from runbook_lib.record.archive import archive_for

    settings = settings_for(args)
    archive = archive_for(settings)
    record_id = archive.find(args.id)
    record = archive.load(record_id)
    rows, note = [], "audit_logs not read: RUNBOOK_POSTGRES_DSN is not set"
    if settings.postgres.dsn:
        start, end = report.window(record)
        try:
            rows = rows_between(settings.postgres.dsn.get_secret_value(), start, end)
            note = f"{len(rows)} audit_logs row(s) in the incident window"
        except Exception as exc:  # the report is still worth having without them
            note = f"audit_logs not read: {type(exc).__name__}"
    built = report.build(archive, record_id, rows, note)
    text = report.html(built) if args.format == "html" else report.markdown(built)
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--out {args.out}: {exc.strerror}") from None
    if not args.no_attach:
        same = report.attached_unchanged(record, text, args.format)
        if same:
            echo(f"runbook: unchanged since {same}: not attached again", file=sys.stderr)
        else:
            path, _event = report.attach(archive, record_id, text, args.format)
            echo(f"runbook: report attached as {path} (chained in the index)", file=sys.stderr)
    if not args.out or args.format == "md":
        sys.stdout.write(text)
    return 0
