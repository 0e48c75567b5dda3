"""When does each alert fire? The generated rules (and, for comparison, the rule shapes Sloth and
Pyrra publish for the same objective, and this project's rules before issue 23) evaluated on
the same synthetic API traffic in a real Prometheus (Debian's, on loopback):

    .venv/bin/python -m benchmarks.alerting [--hours 9]

api-availability, 99.9 % over 28 days; 100 requests/s, 1 % of them on /api/login. Scenarios,
each from T0 after four days at 0.06 % errors (so the 3-day windows are full):

  steady        0.06 % errors throughout (0.6x: nothing should fire)
  spike-20m     2 % for 20 minutes from T0+60m
  slow-0.2%     0.2 % for 8 hours (2x)
  no-traffic    the counters stop moving (nothing to measure: nothing fires)
  dark-login    /api/login fails every request; the whole API reads 1.06 %
  3%-for-2h     3 % for 2 hours (30x)
  series-gone   the API's series vanish (the exporter died)

Each alert's expression is evaluated every minute (query_range), the recording rules inlined;
an alert fires once its condition has held for its `for`. The table prints the first firing
minute after T0 ("-": never within the run). Nothing is asserted: the same properties are
tests (tests/monitoring/test_rules.py).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import yaml

from runbook_lib.clients.prometheus import Prometheus
from runbook_lib.core.settings import load_settings
from runbook_lib.monitoring import rules as monitoring
from runbook_lib.sandbox import services
from runbook_lib.sre.catalog import Catalog
from runbook_lib.sre.slo import parse_duration

PER_MIN = 6000.0
ENDPOINTS = {"/api/v1/workflows": 0.99, "/api/login": 0.01}
HISTORY_MIN = 4 * 24 * 60
BASE = 0.0006
BUDGET = 0.001

# scenario -> (ratio(minute since T0, endpoint) or None for no requests, series stop at T0)
Ratio = Callable[[int, str], float | None]
SCENARIOS: dict[str, tuple[Ratio, bool]] = {
    "steady": (lambda t, ep: BASE, False),
    "spike-20m": (lambda t, ep: 0.02 if 60 <= t < 80 else BASE, False),
    "slow-0.2%": (lambda t, ep: 0.002 if 0 <= t < 480 else BASE, False),
    "no-traffic": (lambda t, ep: None if t >= 0 else BASE, False),
    "dark-login": (lambda t, ep: (1.0 if ep == "/api/login" else BASE) if t >= 0 else BASE, False),
    "3%-for-2h": (lambda t, ep: 0.03 if 0 <= t < 120 else BASE, False),
    "series-gone": (lambda t, ep: BASE, True),
}


def job(name: str) -> str:
    return "scn-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_data(path: Path, t0: datetime, minutes_after: int) -> None:
    with path.open("w") as out:
        out.write("# HELP http_requests Total HTTP requests.\n# TYPE http_requests counter\n")
        for name, (ratio, gone) in SCENARIOS.items():
            for ep, share in ENDPOINTS.items():
                ok = err = 0.0
                lines: dict[str, list[str]] = {"200": [], "500": []}
                for m in range(-HISTORY_MIN, minutes_after + 1):
                    if gone and m > 0:
                        break
                    r = ratio(m, ep)
                    n = 0.0 if r is None else PER_MIN * share
                    err += n * (r or 0.0)
                    ok += n - n * (r or 0.0)
                    ts = (t0 + timedelta(minutes=m)).timestamp()
                    lines["200"].append(f"{ok:.2f} {ts:.0f}")
                    lines["500"].append(f"{err:.2f} {ts:.0f}")
                for status, values in lines.items():
                    labels = f'endpoint="{ep}",job="{job(name)}",status="{status}"'
                    out.writelines(f"http_requests_total{{{labels}}} {v}\n" for v in values)
        out.write("# EOF\n")


# -- the rules compared ------------------------------------------------------------------------------
def ratio(w: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return (
        f'sum{grouping} (rate(http_requests_total{{job="api-gateway",status=~"5.."}}[{w}])) '
        f'/ sum{grouping} (rate(http_requests_total{{job="api-gateway"}}[{w}]))'
    )


def mwmb(long: str, short: str, factor: float, by: str = "") -> str:
    t = f"{factor * BUDGET:.10g}"
    return f"({ratio(long, by)}) > {t} and ({ratio(short, by)}) > {t}"


def generated_alerts() -> list[tuple[str, str, str]]:
    """(name, expr, for) of the generated burn-rate and package alerts, recording rules inlined."""
    settings = load_settings()
    catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
    files = monitoring.generate(catalog, settings)
    records: dict[tuple[str, str], str] = {}
    for group in yaml.safe_load(files["prometheus/slo_recording_rules.yml"])["groups"]:
        for r in group["rules"]:
            if r["labels"].get("sloth_slo") == "api-availability" and "sloth_window" in r["labels"]:
                records[(r["record"], r["labels"]["sloth_window"])] = r["expr"]

    def inline(expr: str) -> str:
        def one(m: re.Match[str]) -> str:
            return "(" + records[(f"slo:sli_error:ratio_rate{m.group(1)}", m.group(1))] + ")"

        return re.sub(r'slo:sli_error:ratio_rate(\w+)\{sloth_slo="api-availability"\}', one, expr)

    out = []
    for group in yaml.safe_load(files["prometheus/slo_burn_rate_alerts.yml"])["groups"]:
        for r in group["rules"]:
            if r["labels"].get("slo") != "api-availability":
                continue
            name = r["alert"] + (f" {r['labels']['burn_rate']}" if r["alert"] == "ErrorBudgetBurn" else "")
            out.append((f"new: {name}", inline(r["expr"]), r.get("for", "0s")))
    for r in yaml.safe_load(files["prometheus/alerts.yml"])["groups"][0]["rules"]:
        if r["alert"] in ("HighErrorBudgetBurnRate", "ElevatedErrorRate"):
            out.append((f"new: {r['alert']}", r["expr"], r["for"]))
    return out


def compared() -> list[tuple[str, str, str]]:
    """Rule shapes for the same objective: this project before issue 23 (14.4/6/3/1, no for),
    Sloth's published 28-day output (13.44/5.6 page, 2.8/0.933 ticket, no for), Pyrra's windows
    for 4w (14/7/2/1 over 1h/6h/1d/4d, for 2m/15m/1h/3h), and Pyrra grouped by endpoint."""
    return [
        ("old: 14.4x 1h/5m", mwmb("1h", "5m", 14.4), "0s"),
        ("old: 6x 6h/30m", mwmb("6h", "30m", 6), "0s"),
        ("old: 3x 1d/2h", mwmb("1d", "2h", 3), "0s"),
        ("old: 1x 3d/6h", mwmb("3d", "6h", 1), "0s"),
        ("sloth: page", f"({mwmb('1h', '5m', 13.44)}) or ({mwmb('6h', '30m', 5.6)})", "0s"),
        ("sloth: ticket", f"({mwmb('1d', '2h', 2.8)}) or ({mwmb('3d', '6h', 0.9333)})", "0s"),
        ("pyrra: 14x 1h/5m", mwmb("1h", "5m", 14), "2m"),
        ("pyrra: 7x 6h/30m", mwmb("6h", "30m", 7), "15m"),
        ("pyrra: 2x 1d/2h", mwmb("1d", "2h", 2), "1h"),
        ("pyrra: 1x 4d/6h", mwmb("4d", "6h", 1), "3h"),
        ("pyrra by endpoint: 14x", mwmb("1h", "5m", 14, "endpoint"), "2m"),
    ]


def first_fire(frame: pd.DataFrame, t0: datetime, hold: str) -> int | None:
    """The first minute after T0 at which the condition has held for ``hold``."""
    if frame.empty:
        return None
    minutes = sorted({int((ts - t0).total_seconds() // 60) for ts in frame["timestamp"]})
    need = int(parse_duration(hold) // 60)
    start = None
    prev = None
    for m in minutes:
        if prev is None or m != prev + 1:
            start = m
        prev = m
        if m - start >= need and m >= 0:
            return m
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hours", type=float, default=9.0, help="how long after T0 to evaluate (default 9)")
    args = parser.parse_args(argv)
    minutes = int(args.hours * 60)
    t0 = (datetime.now(UTC) - timedelta(minutes=minutes + 30)).replace(second=0, microsecond=0)
    alerts = generated_alerts() + compared()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rb-alerting-") as tmp:
        work = Path(tmp)
        print(
            f"writing {len(SCENARIOS)} scenarios x 4 days + {args.hours:g} h of per-minute samples ...", file=sys.stderr
        )
        write_data(work / "data.om", t0, minutes)
        services.backfill(work / "data.om", work / "tsdb")
        prom_svc = services.start_prometheus(work / "prometheus", work / "tsdb")
        prom = Prometheus(prom_svc.url, timeout_s=120)
        try:
            table: dict[str, dict[str, str]] = {}
            for i, (name, expr, hold) in enumerate(alerts, 1):
                print(f"[{i}/{len(alerts)}] {name}", file=sys.stderr)
                row = {}
                for scenario in SCENARIOS:
                    scoped = expr.replace('job="api-gateway"', f'job="{job(scenario)}"')
                    frame = prom.query_range(scoped, t0 - timedelta(minutes=10), t0 + timedelta(minutes=minutes), 60)
                    fired = first_fire(frame, t0, hold)
                    row[scenario] = "-" if fired is None else f"+{fired}m"
                table[name] = row
        finally:
            prom.close()
            prom_svc.stop()
    head = ["alert (for)", *SCENARIOS]
    rows = [[f"{name} ({hold})", *table[name].values()] for name, _expr, hold in alerts]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) + " |")
    print(f"\n{len(alerts)} alerts x {len(SCENARIOS)} scenarios in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
