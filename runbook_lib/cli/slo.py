"""runbook slo: every SLO of the catalog now, in the terminal: budget left, burn rates, the
policy band and its action, the burn-rate tiers firing."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_lib.cli.common import echo, print_table, settings_for
from runbook_lib.core.errors import ConfigError
from runbook_lib.core.present import iso

DESCRIPTION = """\
Measure every SLO in parameters/catalog.yaml against Prometheus (RUNBOOK_PROMETHEUS_URL) now:
the SLI's error ratio over the SLO's window (or --window), the share of the error budget left,
the burn rate over 1h, 6h and 3d, the policy band (> 50 % normal, 25-50 % caution, 10-25 %
freeze, < 10 % incident) with its action, the multiwindow burn-rate tiers firing (14.4x 1h/5m
and 6x 6h/30m page; 3x 1d/2h and 1x 3d/6h ticket) and when the budget runs out at the current
burn. An SLO whose data does not cover the window is marked provisional (*): Prometheus holds
less than 90 % of it, so the number is what the alert would see, not the whole window."""

EPILOG = """\
exit codes: 0 measured (whatever the bands), 1 Prometheus failed, 2 bad input or configuration

examples:
  runbook slo
  runbook slo --window 7d
  runbook slo --json | jq '.slos[] | {slo, band, budget_remaining}'"""


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "slo",
        parents=[common],
        formatter_class=fmt,
        help="every SLO's error budget, burn rate and policy band, now",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("--window", metavar="DURATION", help="override every SLO's window (e.g. 28d, 7d)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_slo)


def cmd_slo(args: argparse.Namespace) -> int:
    from runbook_lib.clients.prometheus import Prometheus
    from runbook_lib.sre import slo
    from runbook_lib.sre.catalog import Catalog
    from runbook_lib.sre.sli import evaluate

    if args.window:
        try:
            slo.parse_duration(args.window)
        except ValueError as exc:
            raise ConfigError(f"--window: {exc}") from None
    settings = settings_for(args)
    catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
    prom = Prometheus.from_settings(settings)
    now = datetime.now(UTC)
    try:
        statuses = [evaluate(prom, spec, settings.metrics, now, args.window) for spec in catalog.slos]
    finally:
        prom.close()
    if args.json:
        echo(json.dumps({"at": iso(now), "prometheus": prom.where, "slos": [s.to_dict() for s in statuses]}, indent=2))
        return 0
    echo(f"SLOs at {iso(now)} from {prom.where}" + (f", window {args.window}" if args.window else ""))
    echo()
    print_table(
        [_row(s, now) for s in statuses],
        ["slo", "objective", "window", "left", "1h", "6h", "3d", "band", "tiers", "exhausted"],
    )
    echo()
    for s in statuses:
        if s.band is not None:
            echo(f"{s.slo}: {s.band.name.upper()}: {s.band.policy} (deploys: {s.band.deploys})")
        else:
            echo(f"{s.slo}: not measured: {s.problem}")
    if any(s.provisional and s.band is not None for s in statuses):
        echo("* provisional: Prometheus holds less than 90 % of the window")
    return 0


def _row(s: Any, now: datetime) -> dict[str, str]:
    def x(v: float | None) -> str:
        return "n/a" if v is None or math.isnan(v) else f"{v:.1f}x"

    left = "n/a" if s.remaining is None else f"{s.remaining:.1%}" + ("*" if s.provisional else "")
    exhausted = (
        ""
        if s.band is None
        else "already"
        if s.exhaustion_s == 0
        else "never (<1x)"
        if s.exhaustion_s is None
        else iso(now + timedelta(seconds=s.exhaustion_s))
    )
    return {
        "slo": s.slo,
        "objective": f"{s.objective:.2%}",
        "window": s.window,
        "left": left,
        "1h": x(s.burns.get("1h")),
        "6h": x(s.burns.get("6h")),
        "3d": x(s.burns.get("3d")),
        "band": s.band.name if s.band else "-",
        "tiers": ",".join(t.name for t in s.firing) or "-",
        "exhausted": exhausted,
    }
