"""Parsers for the commands that start long-running things (demo; serve comes next)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_serve_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "demo",
        parents=[common],
        formatter_class=fmt,
        help="run the loopback sandbox end to end and print the record path",
        description="Start the loopback sandbox (Prometheus backfilled with a synthetic incident by promtool,\n"
        "a seeded PostgreSQL database, local Redis, a fake Kubernetes API), run the high-error-rate\n"
        "runbook for the sample alert, print the HTML record's path, and stop everything it started.\n"
        "Needs Debian's prometheus package and the local PostgreSQL/Redis (make bootstrap).",
    )
    p.add_argument("--workdir", type=Path, default=None, help="sandbox working directory (default .sandbox/)")
    p.add_argument(
        "--alert", type=Path, default=None, help="alert payload (default examples/alerts/high-error-rate.json)"
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from .sandbox.demo import run_direct
    from .settings import load_settings

    home = load_settings(env=args.env).home
    workdir = args.workdir or home / ".sandbox"
    alert = args.alert or home / "examples" / "alerts" / "high-error-rate.json"
    return run_direct(home, workdir, alert)
