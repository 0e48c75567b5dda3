"""The ``runbook`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import AlertError, ArchiveError, ConfigError, RunbookError, RunbookNotFound

MAX_ALERT_BYTES = 1_048_576
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
OmniHub executable runbooks. Every alert's runbook is a parameterised Jupyter notebook;
`run` executes it with the alert's context and archives the executed notebook, rendered to
HTML, as a hash-chained incident record under the archive (executed/ by default).

Settings come from parameters/defaults.yaml < parameters/environments/<env>.yaml <
RUNBOOK_* environment variables (RUNBOOK_PROMETHEUS_URL, RUNBOOK_POSTGRES_DSN, RUNBOOK_REDIS_URL,
KUBECONFIG, RUNBOOK_KUBE_NAMESPACE, RUNBOOK_ARCHIVE, ...). Secrets only from the environment
or *_FILE paths."""

EPILOG = """\
exit codes: 0 success, 1 the runbook failed / timed out / verification failed,
            2 bad input or configuration (the message names what is wrong)

examples:
  runbook list
  runbook run --alert payload.json                 # route by alertname, diagnose only
  runbook run high-error-rate --alert - < alert.json
  runbook open high-error-rate --alert payload.json # prepare and open in JupyterLab
  runbook records && runbook show 20261126T1403
  runbook verify"""


def main(argv: Sequence[str] | None = None) -> int:
    skip_slow_imports()
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except (AlertError, ConfigError, RunbookNotFound) as exc:
        print(f"runbook: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ArchiveError as exc:
        print(f"runbook: archive error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except RunbookError as exc:
        print(f"runbook: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("runbook: interrupted", file=sys.stderr)
        return 130


def skip_slow_imports() -> None:
    """jsonschema (imported by nbformat) loads rfc3987_syntax when it is installed (JupyterLab's
    extras bring it), which compiles a grammar at import: 1.1 s of every process start on this
    machine. Notebook validation never uses its IRI format checks, so our processes skip it."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="runbook", description=DESCRIPTION, epilog=EPILOG, formatter_class=fmt)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more on stderr")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more on stderr")
    common.add_argument(
        "--env",
        metavar="ENV",
        help="settings environment: parameters/environments/ENV.yaml (default: $RUNBOOK_ENV or local)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser(
        "list",
        parents=[common],
        formatter_class=fmt,
        help="runbooks and the alerts routed to them",
        description="List every alert in parameters/catalog.yaml, its severity, and the runbook it is routed to.\n"
        "An alert whose runbook notebook is not written yet is routed to `triage`.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_list)

    alert_help = "an Alertmanager webhook payload (v4) or one alert object, as JSON; '-' reads stdin"
    for name, helptext, desc in (
        (
            "run",
            "run a runbook for an alert and archive the record",
            "Execute a runbook notebook with papermill, the alert's context injected as parameters, and\n"
            "archive the executed notebook as an incident record (notebook.ipynb, record.html, record.json).\n"
            "Without SLUG the runbook is chosen from the alert's alertname through the catalog.\n"
            "A runbook that fails or times out still produces a record; the command then exits 1.\n\n"
            "Only --mode resolve together with --execute, --operator and --approve can change anything.",
        ),
        (
            "open",
            "prepare a runbook with the alert injected and open it in JupyterLab",
            "Inject the alert's parameters into a copy of the runbook (papermill prepare-only) under\n"
            "<archive>/interactive/, then open it in JupyterLab. Without JupyterLab installed (the optional\n"
            "'lab' extra), or with --no-launch, print the path instead. Interactive copies are not records.",
        ),
    ):
        p = sub.add_parser(name, parents=[common], formatter_class=fmt, help=helptext, description=desc)
        p.add_argument("slug", nargs="?", metavar="SLUG", help="runbook slug (see `runbook list`)")
        p.add_argument("--alert", metavar="FILE", required=(name == "run"), help=alert_help)
        p.add_argument("--fingerprint", metavar="FP", help="which alert of a payload (default: the first firing one)")
        p.add_argument(
            "--mode",
            choices=("diagnose", "resolve"),
            default="diagnose",
            help="diagnose (default) only reads; resolve lets approved actions run",
        )
        p.add_argument(
            "--execute",
            action="store_true",
            help="with --mode resolve: dry_run=False (really change things)",
        )
        p.add_argument(
            "--operator",
            metavar="NAME",
            default=os.environ.get("RUNBOOK_OPERATOR", ""),
            help="your identity for audit_logs (default: $RUNBOOK_OPERATOR)",
        )
        p.add_argument(
            "--approve",
            metavar="ACTION",
            action="append",
            default=[],
            choices=("rollback", "scale", "safe_mode"),
            help="approve one resolution option (repeatable)",
        )
        if name == "run":
            p.add_argument("--quiet", action="store_true", help="no progress output; print only the record path")
            p.set_defaults(func=cmd_run)
        else:
            p.add_argument("--no-launch", action="store_true", help="only print the prepared notebook's path")
            p.set_defaults(func=cmd_open)

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
    p.set_defaults(func=cmd_verify)

    from .cli_serve import add_serve_parsers

    add_serve_parsers(sub, common, fmt)
    return parser


# -- helpers -----------------------------------------------------------------------------------------
def _setup_logging(verbose: bool) -> None:
    from .redact import RedactingFilter, Redactor
    from .settings import environment_secrets

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor(environment_secrets())))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("papermill", "traitlets", "httpx", "kubernetes", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _settings(args: argparse.Namespace) -> Any:
    from .settings import load_settings

    return load_settings(env=args.env)


def read_alert_input(path: str, fingerprint: str | None) -> Any:
    from .context import load_alert_text

    if path == "-":
        data = sys.stdin.buffer.read(MAX_ALERT_BYTES + 1)
        where = "stdin"
    else:
        p = Path(path)
        try:
            with p.open("rb") as fh:
                data = fh.read(MAX_ALERT_BYTES + 1)
        except OSError as exc:
            raise AlertError(f"--alert {path}: {exc.strerror}") from None
        where = path
    if len(data) > MAX_ALERT_BYTES:
        raise AlertError(f"--alert {where}: larger than {MAX_ALERT_BYTES} bytes")
    try:
        alert, _payload = load_alert_text(data, fingerprint)
    except AlertError as exc:
        raise AlertError(f"--alert {where}: {exc}") from None
    return alert


def _request(args: argparse.Namespace) -> Any:
    from .engine import RunRequest

    alert = read_alert_input(args.alert, args.fingerprint) if args.alert else None
    if args.execute and args.mode != "resolve":
        raise ConfigError("--execute only makes sense with --mode resolve")
    if args.mode == "resolve" and args.execute and not args.operator:
        raise ConfigError("--mode resolve --execute needs --operator NAME (or $RUNBOOK_OPERATOR) for the audit log")
    return RunRequest(
        alert=alert,
        slug=args.slug,
        mode=args.mode,
        dry_run=not args.execute,
        operator=args.operator,
        approve=list(dict.fromkeys(args.approve)),
    )


# -- commands ----------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from .catalog import Catalog

    settings = _settings(args)
    catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
    rows = []
    for spec in catalog.alerts.values():
        route = catalog.route(spec.name)
        rows.append(
            {
                "alert": spec.name,
                "severity": spec.severity,
                "runbook": spec.runbook,
                "routed_to": route.slug,
                "note": "" if route.reason == "catalog" else route.reason,
            }
        )
    if args.json:
        print(json.dumps({"alerts": rows, "runbooks": catalog.slugs()}, indent=2))
        return EXIT_OK
    print(f"Runbooks in {settings.runbooks_path}: {', '.join(catalog.slugs()) or '(none)'}\n")
    _print_table(rows, ["alert", "severity", "routed_to", "note"])
    print("\nAny other alertname is routed to: triage")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from .engine import Engine

    settings = _settings(args)
    request = _request(args)
    engine = Engine(settings)
    tty = sys.stderr.isatty() and not args.quiet

    def say(msg: str) -> None:
        if not args.quiet:
            echo(f"runbook: {msg}", file=sys.stderr, flush=True)

    result = engine.run(request, progress=tty, say=say)
    rec = result.record
    if not args.quiet:
        counts = _verdict_counts(rec["findings"])
        echo(f"runbook: status {result.status}; findings: {counts or 'none'}", file=sys.stderr)
        for f in _worst(rec["findings"], 5):
            echo(f"  {f['verdict'].upper():<9} {f['check']}: {f['summary']}", file=sys.stderr)
        if rec.get("failed_cell"):
            fc = rec["failed_cell"]
            echo(f"  failed at cell {fc.get('index')}: {fc.get('ename')}: {fc.get('evalue')}", file=sys.stderr)
    echo(result.html_path)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_open(args: argparse.Namespace) -> int:
    from .engine import Engine

    settings = _settings(args)
    request = _request(args)
    path = Engine(settings).prepare(request)
    jupyter = shutil.which("jupyter-lab") or shutil.which("jupyter")
    has_lab = False
    try:
        import jupyterlab  # noqa: F401

        has_lab = True
    except ImportError:
        pass
    if args.no_launch or not has_lab or not jupyter:
        if not has_lab and not args.no_launch:
            print("runbook: JupyterLab is not installed (pip install 'omnihub-runbooks[lab]'); open:", file=sys.stderr)
        print(path)
        return EXIT_OK
    print(f"runbook: opening {path} in JupyterLab", file=sys.stderr)
    cmd = [jupyter, str(path)] if jupyter.endswith("jupyter-lab") else [jupyter, "lab", str(path)]
    os.execv(jupyter, cmd)  # noqa: S606 - hand the terminal to JupyterLab
    return EXIT_OK


def cmd_records(args: argparse.Namespace) -> int:
    from .archive import Archive

    settings = _settings(args)
    archive = Archive(settings.archive_path)
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
        worst = _worst(rec.get("findings", []), 1)
        rows.append(
            {
                "id": rid,
                "runbook": rec.get("runbook"),
                "alert": ((rec.get("alert") or {}).get("labels") or {}).get("alertname", "-"),
                "status": rec.get("status"),
                "started": str(rec.get("started_at", ""))[:19],
                "worst": f"{worst[0]['verdict']}: {worst[0]['check']}" if worst else "-",
                "resolved": "yes" if rid in resolved else "",
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        echo(f"no records in {settings.archive_path}")
        return EXIT_OK
    _print_table(rows, ["id", "alert", "status", "worst", "resolved"])
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from .archive import Archive

    settings = _settings(args)
    archive = Archive(settings.archive_path)
    rec = archive.load(archive.find(args.id))
    if args.json:
        print(json.dumps(rec, indent=2, ensure_ascii=False))
        return EXIT_OK
    alert = rec.get("alert") or {}
    labels = alert.get("labels") or {}
    out = [
        f"record    {rec['id']}",
        f"alert     {labels.get('alertname', '(none)')}  severity={labels.get('severity', '')}  "
        f"fingerprint={alert.get('fingerprint', '')}",
        f"runbook   {rec['runbook']}  mode={rec['mode']}  environment={rec['environment']}  origin={rec.get('origin')}",
        f"status    {rec['status'].upper()}  started {rec['started_at']}  duration {rec['duration_s']:.1f} s"
        + (f"  attempt {rec['attempt']}" if rec.get("attempt", 1) > 1 else ""),
    ]
    if rec.get("failed_cell"):
        fc = rec["failed_cell"]
        out.append(f"failed    cell {fc.get('index')}: {fc.get('ename')}: {fc.get('evalue')}")
    for note in rec.get("notes") or []:
        out.append(f"note      {note}")
    checked = [f for f in rec.get("findings", []) if f["verdict"] != "unchecked"]
    out.append(f"\nfindings ({len(checked)}):")
    out += [f"  {f['verdict'].upper():<9} {f['check']}: {f['summary']}" for f in _worst(checked, len(checked))]
    unchecked = [f for f in rec.get("findings", []) if f["verdict"] == "unchecked"]
    out.append(f"\ncould not be checked ({len(unchecked)}):")
    out += [f"  {f['check']}: {f['summary']}" for f in unchecked]
    out.append(f"\nactions ({len(rec.get('actions', []))}):")
    out += [f"  {a['status'].upper():<11} {a['title']} ({a.get('target')}): {a.get('reason')}" for a in rec["actions"]]
    if rec.get("events"):
        out.append("\nevents:")
        for e in rec["events"]:
            out.append(f"  {e['at']}  {e['event']}  {json.dumps(e.get('data', {}), ensure_ascii=False)}")
    folder = Path(rec["dir"])
    out.append(
        f"\nhtml      {folder / 'record.html'}\nnotebook  {folder / 'notebook.ipynb'}\njson      {folder / 'record.json'}"
    )
    echo("\n".join(out))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from .archive import Archive

    settings = _settings(args)
    archive = Archive(settings.archive_path)
    count, problems = archive.verify(expect_head=args.expect_head)
    if problems:
        print(f"runbook verify: FAILED: {len(problems)} problem(s) in {archive.root}", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return EXIT_FAILED
    head = archive.head()
    print(f"ok: {count} records verified in {archive.root}; chain intact; head {head['hash'] if head else '(empty)'}")
    return EXIT_OK


# -- formatting ---------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def echo(text: object = "", file: Any = None, flush: bool = False) -> None:
    """print() for text that may hold alert labels: terminal control characters (escape
    sequences) are shown as U+FFFD instead of being obeyed by the operator's terminal."""
    print(_CONTROL.sub("\ufffd", str(text)), file=file or sys.stdout, flush=flush)


def _worst(findings: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    from .display import worst_first

    return worst_first(findings)[:n]


def _verdict_counts(findings: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
    from .display import VERDICTS

    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


def _print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    width = shutil.get_terminal_size((120, 20)).columns
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        line = "  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip()
        echo(textwrap.shorten(line, width=max(width, 60), placeholder="...") if len(line) > width else line)
