"""Commands that read the archive: records, show, verify."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from runbook_lib.cli.common import echo, finding_lines, print_table, settings_for, worst
from runbook_lib.core.errors import EXIT_FAILED, EXIT_OK, ArchiveError
from runbook_lib.core.present import duration, iso
from runbook_lib.record import diagnosis
from runbook_lib.record.events import event_text


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "records",
        parents=[common],
        formatter_class=fmt,
        help="list incident records",
        description="List the archive's records, newest first, with status and worst finding.",
    )
    p.add_argument("--limit", type=int, default=30, metavar="N", help="show at most N (default 30; 0 = all)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_records)

    p = sub.add_parser(
        "show",
        parents=[common],
        formatter_class=fmt,
        help="summary of one record: findings, status, paths",
        description="Show one record: alert, status, findings (worst first), what could not be checked,\n"
        "actions, later events (e.g. resolved), and its file paths. ID may be a unique prefix or suffix.",
    )
    p.add_argument("id", metavar="ID", help="record id, or a unique part of it")
    p.add_argument("--json", action="store_true", help="print record.json (with events)")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser(
        "verify",
        parents=[common],
        formatter_class=fmt,
        help="check the archive's hash chain and every record's files",
        description="Recompute the index hash chain and every record file's sha256. Exits 1 and names the\n"
        "record when any byte of a record file changed, or a record or index line was deleted,\n"
        "inserted or reordered; a truncated index shows against HEAD. A hash chain cannot catch a\n"
        "whole archive rewritten consistently: keep the head hash elsewhere and pass --expect-head.",
    )
    p.add_argument("--expect-head", metavar="HASH", help="the index head hash you expect")
    p.add_argument(
        "--anchor",
        metavar="SEQ:HASH",
        action="append",
        type=_anchor,
        default=[],
        help="an entry the chain must still pass through, as printed by `runbook anchor` (repeatable)",
    )
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "anchor",
        parents=[common],
        formatter_class=fmt,
        help="verify the archive, then print the index head as SEQ:HASH, to keep outside the archive",
        description="Verify the archive, then print the index's current head as SEQ:HASH (nothing, and exit 1,\n"
        "when it does not verify). Keep it outside the archive (a ticket,\n"
        "a daily cron mail, another machine). Later, `runbook verify --anchor SEQ:HASH` proves the chain\n"
        "still passes through that entry however much the archive has grown: rewriting that entry or\n"
        "anything before it, even with the chain re-linked after it, changes its hash.",
    )
    p.set_defaults(func=cmd_anchor)


def cmd_records(args: argparse.Namespace) -> int:
    from runbook_lib.record.archive import archive_for

    settings = settings_for(args)
    archive = archive_for(settings)
    entries = list(archive.entries())
    resolved = {e["record"] for e in entries if e.get("type") == "event" and e.get("event") == "resolved"}
    ids = [e["id"] for e in entries if e.get("type") == "record"][::-1]
    if args.limit:
        ids = ids[: args.limit]
    rows = []
    for rid in ids:
        try:
            rec = archive.load(rid)
        except (ArchiveError, ValueError, OSError) as exc:
            rows.append({"id": rid, "status": "UNREADABLE", "alert": str(exc)[:60]})
            continue
        top = worst([f for f in rec.get("findings", []) if f.get("verdict") != "unchecked"], 1)
        d = diagnosis.of(rec)
        rows.append(
            {
                "id": rid,
                "runbook": rec.get("runbook"),
                "alert": ((rec.get("alert") or {}).get("labels") or {}).get("alertname", "-"),
                "verdict": d["verdict"].upper(),
                "status": rec.get("status"),
                "started": iso(rec.get("started_at")),
                "worst": f"{top[0]['check']}" if top else "-",
                "resolved": "yes" if rid in resolved else "",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        echo(f"no records in {archive.location}")
        return EXIT_OK
    print_table(rows, ["id", "alert", "verdict", "status", "worst", "resolved"])
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from runbook_lib.record.archive import archive_for

    settings = settings_for(args)
    archive = archive_for(settings)
    rec = archive.load(archive.find(args.id))
    if args.json:
        print(json.dumps(rec, indent=2, ensure_ascii=False))
        return EXIT_OK
    alert = rec.get("alert") or {}
    labels = alert.get("labels") or {}
    d = diagnosis.of(rec)
    out = [d["headline"], ""]
    action = d.get("recommended_action")
    if action and action["name"] not in ("none",):
        out.append(f"do        {action['title']}" + (f": {action['reason']}" if action.get("reason") else ""))
        if action.get("command"):
            out.append(f"          {action['command']}")
        if action.get("performs"):
            out.append(f"          (which runs, guarded and audited: {action['performs']})")
        out.append("")
    out += [
        f"record    {rec['id']}",
        f"alert     {labels.get('alertname', '(none)')}  severity={labels.get('severity', '')}  "
        f"fingerprint={alert.get('fingerprint', '')}",
        f"runbook   {rec['runbook']}  mode={rec['mode']}  environment={rec['environment']}  origin={rec.get('origin')}",
        f"run       {rec['status'].upper()}  started {iso(rec['started_at'])}  took {duration(rec['duration_s'])}"
        + (f"  attempt {rec['attempt']}" if rec.get("attempt", 1) > 1 else ""),
    ]
    if rec.get("incident"):
        from datetime import UTC, datetime

        from runbook_lib.sre import incident, lifecycle

        inc = rec["incident"]
        events = rec.get("events") or []
        fingerprint = (rec.get("alert") or {}).get("fingerprint")
        rows = incident.record_status(inc, datetime.now(UTC), events, fingerprint)
        story = lifecycle.summarize(events, fingerprint)
        out.append(f"incident  {inc['sev']}: {inc['meaning']}")
        out.append(f"state     {lifecycle.headline(story)}")
        for role, text in lifecycle.roles_text(story).items():
            out.append(f"          {role}: {text}")
        for row in rows:
            state = "met" if row["met"] else "MISSED" if row.get("done_at") else "PASSED" if row["passed"] else "ahead"
            done = f", done {row['done_at']}" if row.get("done_at") else ""
            out.append(f"          {state:<6} {row['name']:<20} due {row['due']}{done}")
    if rec.get("failed_cell"):
        fc = rec["failed_cell"]
        out.append(f"stopped   in In [{fc.get('execution_count')}]: {fc.get('ename')}: {fc.get('evalue')}")
        out.append(f"          continue from its outputs: runbook open {rec['id']}")
    for note in rec.get("notes") or []:
        out.append(f"note      {note}")
    checked = [f for f in rec.get("findings", []) if f["verdict"] != "unchecked"]
    if d.get("causes"):
        out.append(f"causes    {', '.join(d['causes'])}")
    out.append(f"\nfindings ({len(checked)}):")
    out += finding_lines(worst(checked, len(checked)))
    unchecked = [f for f in rec.get("findings", []) if f["verdict"] == "unchecked"]
    out.append(f"\ncould not be checked ({len(unchecked)}):")
    out += [f"  {f['check']}: {f['summary']}" for f in unchecked]
    out.append(f"\nactions ({len(rec.get('actions', []))}):")
    out += [f"  {a['status'].upper():<11} {a['title']} ({a.get('target')}): {a.get('reason')}" for a in rec["actions"]]
    if rec.get("events"):
        out.append("\nevents:")
        for e in rec["events"]:
            out.append(f"  {iso(e['at'])}  {event_text(e)}")
    folder = rec["dir"]  # a directory, or the record's s3:// URL
    out.append(f"\nhtml      {folder}/record.html\nnotebook  {folder}/notebook.ipynb\njson      {folder}/record.json")
    echo("\n".join(out))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from runbook_lib.record.archive import archive_for
    from runbook_lib.record.archive.verify import verify

    settings = settings_for(args)
    archive = archive_for(settings)
    count, problems = verify(archive, expect_head=args.expect_head, anchors=args.anchor)
    if problems:
        echo(f"runbook verify: FAILED: {len(problems)} problem(s) in {archive.location}", file=sys.stderr)
        for p in problems:
            echo(f"  {p}", file=sys.stderr)
        return EXIT_FAILED
    head = archive.read_head()
    anchored = f"; passes through {len(args.anchor)} anchor(s)" if args.anchor else ""
    print(
        f"ok: {count} records verified in {archive.location}; chain intact{anchored}; "
        f"head {head['hash'] if head else '(empty)'}"
    )
    return EXIT_OK


def cmd_anchor(args: argparse.Namespace) -> int:
    """The head, only of an archive that verifies: an anchor taken of a chain that was already
    rewritten (or of a HEAD that does not match the index) would vouch for the rewrite."""
    from runbook_lib.record.archive import archive_for
    from runbook_lib.record.archive.verify import verify

    archive = archive_for(settings_for(args))
    head = archive.read_head()
    if head is None:
        raise ArchiveError(f"{archive.location} has no index entries yet: nothing to anchor")
    echo(f"verifying {archive.location} before anchoring it ...", file=sys.stderr)
    count, problems = verify(archive)
    if problems:
        echo(
            f"runbook anchor: REFUSED: {archive.location} does not verify ({len(problems)} problem(s)):",
            file=sys.stderr,
        )
        for p in problems:
            echo(f"  {p}", file=sys.stderr)
        echo("an anchor of this chain would vouch for what is wrong with it; nothing printed", file=sys.stderr)
        return EXIT_FAILED
    print(f"{head['seq']}:{head['hash']}")
    echo(
        f"{count} records verified; keep it outside the archive; later: runbook verify --anchor "
        f"{head['seq']}:{head['hash']}",
        file=sys.stderr,
    )
    return EXIT_OK


def _anchor(text: str) -> Any:
    from runbook_lib.record.archive.verify import Anchor

    try:
        return Anchor.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
