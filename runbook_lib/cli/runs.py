"""Commands that run runbooks: list, run, open."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.cli.common import (
    echo,
    finding_lines,
    print_table,
    read_alert_input,
    settings_for,
    verdict_counts,
    worst,
)
from runbook_lib.core.contract import APPROVALS, MODES, PARAMETERS, extra_parameter_name
from runbook_lib.core.errors import EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK, ConfigError
from runbook_lib.core.present import more
from runbook_lib.core.sessions import SESSION_DIR_ENV
from runbook_lib.record import diagnosis

ARCHIVE_HELP = """\
Chain a notebook worked interactively into the archive as a record of its own (origin
"interactive"): the operator, the runbook and its sha256 when it was opened, the record it
continued (which gets a "continued" event), the cells on-call added or changed (marked in the
page), the actions the session ran and the audit_logs rows that operator wrote meanwhile.
Redaction, sanitising and CSP are those of every record: a secret a cell printed is redacted.
Save the notebook in JupyterLab first. A file `runbook open` did not prepare, one whose origin
metadata was altered, and one archived already are refused."""


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "archive",
        parents=[common],
        formatter_class=fmt,
        help="archive a notebook worked in JupyterLab (runbook open) as a record",
        description=ARCHIVE_HELP,
        epilog="exit codes: 0 archived, 2 refused (not prepared by `runbook open`, altered, already archived)",
    )
    p.add_argument(
        "path", metavar="WORKING_COPY", help="the notebook `runbook open` prepared (see `runbook open --list`)"
    )
    p.set_defaults(func=cmd_archive)

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
            "Without SLUG the runbook is chosen from the alert's alertname through the catalog; with SLUG\n"
            "the alert is optional (a drill, or a check on demand: `runbook run dr-drill-database-restore`).\n"
            "A runbook's own parameters (see the notebook's parameters cell) are set with --param.\n"
            "A runbook that fails or times out still produces a record; the command then exits 1.\n\n"
            "Only --mode resolve together with --execute, --operator and --approve can change anything.",
        ),
        (
            "open",
            "open a runbook (alert injected) or a record's executed notebook in JupyterLab",
            "With SLUG and --alert: inject the alert's parameters into a copy of the runbook (papermill\n"
            "prepare-only). With a RECORD id (or a unique part of it): copy that record's executed notebook,\n"
            "outputs included, to continue from where it stopped. Either copy goes to a working directory\n"
            "outside the archive ($XDG_CACHE_HOME/omnihub-runbooks/interactive) and opens in the JupyterLab\n"
            "of this environment; copies are never records. Options for Jupyter follow `--`, e.g.\n"
            "  runbook open 20261127T1538 -- --allow-root --port 8899 --no-browser\n"
            "--no-launch prints the path only. Exit 1 (path still printed) when JupyterLab is not installed.",
        ),
    ):
        p = sub.add_parser(name, parents=[common], formatter_class=fmt, help=helptext, description=desc)
        p.add_argument(
            "slug",
            nargs="?",
            metavar="SLUG" if name == "run" else "SLUG|RECORD",
            help="runbook slug (see `runbook list`)" + ("" if name == "run" else ", or a record id to continue from"),
        )
        p.add_argument("--alert", metavar="FILE", help=alert_help + " (needed without SLUG)")
        if name == "run":
            p.add_argument(
                "--record",
                metavar="ID",
                help="the alert of this archived record (its runbook unless SLUG is given): how a record's "
                "recommended command resolves what it diagnosed, on fresh evidence",
            )
        p.add_argument("--fingerprint", metavar="FP", help="which alert of a payload (default: the first firing one)")
        p.add_argument(
            "--mode",
            choices=MODES,
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
            choices=APPROVALS,
            help="approve one resolution option (repeatable)",
        )
        p.add_argument(
            "--param",
            metavar="NAME=VALUE",
            action="append",
            default=[],
            type=param_arg,
            help="set one of the runbook's own parameters (repeatable); VALUE is JSON when it parses "
            '(30, true, [12, 13], "text"), else text',
        )
        if name == "run":
            p.add_argument("--quiet", action="store_true", help="no progress output; print only the record path")
            p.set_defaults(func=cmd_run)
        else:
            p.add_argument("--no-launch", action="store_true", help="only print the prepared notebook's path")
            p.add_argument(
                "--list", action="store_true", help="list the working copies: which are archived, which are not"
            )
            p.set_defaults(func=cmd_open, passthrough=[])  # what follows `--`: see cli.main
            p.usage = p.format_usage().removeprefix("usage: ").rstrip() + " [-- JUPYTER_ARG ...]"


def param_arg(text: str) -> tuple[str, Any]:
    """NAME=VALUE from the command line: VALUE as JSON when it parses, else as text."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    if not extra_parameter_name(name) and name not in PARAMETERS:
        raise argparse.ArgumentTypeError(f"{name!r} is not a parameter name (lowercase letters, digits, _)")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def request_from(args: argparse.Namespace) -> Any:
    from runbook_lib.run.request import RunRequest

    if not args.alert and not args.slug:
        raise ConfigError("give a runbook SLUG, an --alert to route from, or both (see `runbook list`)")
    alert = read_alert_input(args.alert, args.fingerprint) if args.alert else getattr(args, "from_alert", None)
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
        extra=dict(args.param),
    )


# -- commands ----------------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    from runbook_lib.sre.catalog import Catalog

    settings = settings_for(args)
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
    others = [
        {"runbook": slug, "kind": kind, "reached_by": how}
        for slug, (kind, how) in sorted(catalog.kinds.items())
        if catalog.has_notebook(slug)
    ]
    if args.json:
        print(json.dumps({"alerts": rows, "runbooks": catalog.slugs(), "not_alerted": others}, indent=2))
        return EXIT_OK
    print(f"Runbooks in {settings.runbooks_path}: {', '.join(catalog.slugs()) or '(none)'}\n")
    print_table(rows, ["alert", "severity", "routed_to", "note"])
    if others:
        print("\nRunbooks no alert routes to:")
        print_table(others, ["runbook", "kind", "reached_by"])
    print("\nAny other alertname is routed to: triage")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from runbook_lib.run.request import parameters, pick_runbook
    from runbook_lib.sre.catalog import Catalog

    settings = settings_for(args)
    if args.record:
        _from_record(settings, args)
    request = request_from(args)
    catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
    parameters(catalog, settings, request, pick_runbook(catalog, settings, request.alert, request.slug)[0])
    from runbook_lib.run.runner import Runner  # papermill, nbconvert: once the input is known to be good

    runner = Runner(settings)
    tty = sys.stderr.isatty() and not args.quiet

    def say(msg: str) -> None:
        if not args.quiet:
            echo(f"runbook: {msg}", file=sys.stderr, flush=True)

    result = runner.run(request, progress=tty, say=say)
    rec = result.record
    if not args.quiet:
        d = diagnosis.of(rec)
        echo(f"runbook: {d['headline']}", file=sys.stderr)
        counts = verdict_counts(rec["findings"])
        echo(f"runbook: run {result.status}; findings: {counts or 'none'}", file=sys.stderr)
        top = worst(rec["findings"], 5)
        for line in finding_lines(top):
            echo(line, file=sys.stderr)
        if len(rec["findings"]) > len(top):
            echo(f"  {more(len(top), len(rec['findings']))} (runbook show {rec['id']})", file=sys.stderr)
        if rec.get("failed_cell"):
            fc = rec["failed_cell"]
            echo(
                f"  stopped in In [{fc.get('execution_count')}]: {fc.get('ename')}: {fc.get('evalue')}", file=sys.stderr
            )
            echo(f"  continue from its outputs: runbook open {rec['id']}", file=sys.stderr)
    echo(result.html_location)
    if not result.ok:
        return EXIT_FAILED
    return EXIT_INCOMPLETE if result.incomplete else EXIT_OK


def cmd_open(args: argparse.Namespace) -> int:
    from runbook_lib.run.interactive import grant_session, prune

    settings = settings_for(args)
    work = interactive_dir()
    if args.list:
        return _list_copies(work)
    for old in prune(work, settings.archive.interactive_keep_days):
        echo(
            f"runbook: removed {old.name} (archived, older than {settings.archive.interactive_keep_days:g} days)",
            file=sys.stderr,
        )
    if args.execute and args.mode != "resolve":
        raise ConfigError("--execute only makes sense with --mode resolve")
    if args.mode == "resolve" and args.execute and not args.operator:
        raise ConfigError("--mode resolve --execute needs --operator NAME (or $RUNBOOK_OPERATOR) for the audit log")
    record_id = _record_id(settings, args.slug) if args.slug and not args.alert else None
    if record_id is not None:
        path, runbook = _working_copy(settings, record_id, work)
    else:
        from runbook_lib.run.runner import Runner

        request = request_from(args)
        runner = Runner(settings)
        path = runner.prepare(request, out_dir=work)
        runbook = runner.pick_runbook(request.alert, request.slug)[0]
    grant = grant_session(
        path,
        settings,
        runbook=runbook,
        operator=args.operator,
        mode=args.mode,
        dry_run=not args.execute,
        approve=list(dict.fromkeys(args.approve)),
        continued=record_id,
        extra=dict(args.param) if record_id else None,  # a fresh copy has them injected already
    )
    what = "actions RUN (resolve, --execute)" if not grant["dry_run"] else f"{grant['mode']} mode, actions are dry runs"
    echo(f"runbook: prepared {path.name}: {what}; archive it with `runbook archive {path}`", file=sys.stderr)
    if args.no_launch:
        print(path)
        return EXIT_OK
    lab = jupyter_lab()
    if lab is None:
        echo(
            "runbook: JupyterLab is not installed in this environment (pip install 'omnihub-runbooks[lab]'); "
            f"the notebook is ready at {path}",
            file=sys.stderr,
        )
        print(path)
        return EXIT_FAILED
    echo(f"runbook: opening {path} in JupyterLab ({lab})", file=sys.stderr)
    argv = [lab, *args.passthrough, str(path)]
    os.environ[SESSION_DIR_ENV] = str(work)  # its kernels take mode and approvals from the grant
    os.execv(lab, argv)  # noqa: S606 - hand the terminal to JupyterLab
    return EXIT_OK


def interactive_dir() -> Path:
    """Working copies live outside the archive: they are scratch, never records."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = base / "omnihub-runbooks" / "interactive"
    path.mkdir(parents=True, exist_ok=True)
    return path


def jupyter_lab() -> str | None:
    """jupyter-lab from this environment first (a venv's bin need not be on PATH), then PATH."""
    own = Path(sys.executable).parent / "jupyter-lab"
    if own.exists():
        return str(own)
    return shutil.which("jupyter-lab")


def _from_record(settings: Any, args: argparse.Namespace) -> None:
    """--record ID: run for the alert that record ran for (and, without SLUG, its runbook)."""
    from runbook_lib.record.archive import archive_for
    from runbook_lib.sre.alertmanager import parse_alert

    if args.alert:
        raise ConfigError("give --alert or --record, not both")
    archive = archive_for(settings)
    rec = archive.load(archive.find(args.record))
    if not rec.get("alert"):
        raise ConfigError(f"record {rec['id']} ran without an alert: give the runbook SLUG instead")
    args.slug = args.slug or rec["runbook"]
    args.from_alert = parse_alert(rec["alert"])


def _record_id(settings: Any, text: str) -> str | None:
    """The record ``text`` names, if it is not a runbook slug."""
    from runbook_lib.record.archive import archive_for
    from runbook_lib.sre.catalog import Catalog

    if Catalog.load(settings.catalog_file, settings.runbooks_path).has_notebook(text):
        return None
    return archive_for(settings).find(text)


def _working_copy(settings: Any, record_id: str, work: Path) -> tuple[Path, str]:
    """A copy of a record's executed notebook to continue from, and the record's runbook."""
    from runbook_lib.record.archive import archive_for

    archive = archive_for(settings)
    notebook = archive.read_record_file(record_id, "notebook.ipynb")
    target = work / f"{record_id}-continued-{datetime.now(UTC):%H%M%S}-{secrets.token_hex(3)}.ipynb"
    target.write_bytes(notebook)
    return target, str(archive.load(record_id)["runbook"])


def _list_copies(work: Path) -> int:
    from runbook_lib.run.interactive import working_copies

    rows = [
        {
            "copy": Path(r["path"]).name,
            "runbook": r["runbook"],
            "operator": r["operator"] or "-",
            "mode": r["mode"],
            "prepared": r["prepared"],
            "archived": r["archived"] or ("NOT ARCHIVED" if r["granted"] else "no grant"),
        }
        for r in working_copies(work)
    ]
    if not rows:
        echo(f"no working copies in {work}")
        return EXIT_OK
    print_table(rows, ["copy", "runbook", "operator", "mode", "prepared", "archived"])
    return EXIT_OK


def cmd_archive(args: argparse.Namespace) -> int:
    from runbook_lib.record.archive import archive_for
    from runbook_lib.run.interactive import archive_session

    settings = settings_for(args)
    done = archive_session(settings, archive_for(settings), Path(args.path))
    session = done.record.get("session") or {}
    echo(
        f"runbook: {session.get('summary')}; {len(done.record.get('actions') or [])} action(s), "
        f"{len(session.get('audit_rows') or [])} audit row(s)",
        file=sys.stderr,
    )
    if session.get("continued"):
        echo(f"runbook: chained on {session['continued']} as its continuation", file=sys.stderr)
    echo(done.html_location)
    return EXIT_OK
