"""Commands that run runbooks: list, run, open."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

from ..contract import APPROVALS, MODES
from ..errors import EXIT_FAILED, EXIT_OK, ConfigError
from .common import echo, finding_lines, print_table, read_alert_input, settings_for, verdict_counts, worst


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
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
        if name == "run":
            p.add_argument("--quiet", action="store_true", help="no progress output; print only the record path")
            p.set_defaults(func=cmd_run)
        else:
            p.add_argument("--no-launch", action="store_true", help="only print the prepared notebook's path")
            p.set_defaults(func=cmd_open)


def request_from(args: argparse.Namespace) -> Any:
    from ..run.engine import RunRequest

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
    from ..catalog import Catalog

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
    if args.json:
        print(json.dumps({"alerts": rows, "runbooks": catalog.slugs()}, indent=2))
        return EXIT_OK
    print(f"Runbooks in {settings.runbooks_path}: {', '.join(catalog.slugs()) or '(none)'}\n")
    print_table(rows, ["alert", "severity", "routed_to", "note"])
    print("\nAny other alertname is routed to: triage")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ..run.engine import Engine

    settings = settings_for(args)
    request = request_from(args)
    engine = Engine(settings)
    tty = sys.stderr.isatty() and not args.quiet

    def say(msg: str) -> None:
        if not args.quiet:
            echo(f"runbook: {msg}", file=sys.stderr, flush=True)

    result = engine.run(request, progress=tty, say=say)
    rec = result.record
    if not args.quiet:
        counts = verdict_counts(rec["findings"])
        echo(f"runbook: status {result.status}; findings: {counts or 'none'}", file=sys.stderr)
        for line in finding_lines(worst(rec["findings"], 5)):
            echo(line, file=sys.stderr)
        if rec.get("failed_cell"):
            fc = rec["failed_cell"]
            echo(f"  failed at cell {fc.get('index')}: {fc.get('ename')}: {fc.get('evalue')}", file=sys.stderr)
    echo(result.html_path)
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_open(args: argparse.Namespace) -> int:
    from ..run.engine import Engine

    settings = settings_for(args)
    request = request_from(args)
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
