"""The fault matrix as a benchmark: every case of tests/faults/cases/*.py injected for real
(PostgreSQL, RabbitMQ, Prometheus data, the fake Kubernetes API server, ganache, loopback
health endpoints), its alert run through the real runner, and one table:

    .venv/bin/python -m benchmarks.faults [--area traffic] [--case NAME] [--verbose]

case, runbook, cause right, action right, verdict in bounds, the case's own expectations,
time to record (the run, not the injection), then the accuracy over all cases. Nothing is
asserted (the same cases are tests: tests/faults/test_*.py); a wrong case prints why with
--verbose. Exit status 1 when any case is wrong, so a script can tell.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from runbook_lib.core.present import duration
from tests.faults import cases as case_modules
from tests.faults.matrix import Bench, Case, Outcome, run_case

MARK = {True: "yes", False: "NO"}


def areas() -> dict[str, list[Case]]:
    """Every area module's CASES, by area name (tests/faults/cases/<area>.py)."""
    found = {}
    for info in sorted(pkgutil.iter_modules(case_modules.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{case_modules.__name__}.{info.name}")
        found[info.name] = list(module.CASES)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--area", action="append", help="only this area (repeatable): " + ", ".join(areas()))
    parser.add_argument("--case", action="append", help="only the case of this name (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print the record's first screen for a wrong case")
    args = parser.parse_args(argv)
    chosen = {a: cs for a, cs in areas().items() if not args.area or a in args.area}
    if args.area and set(args.area) - set(chosen):
        parser.error(f"no such area: {', '.join(sorted(set(args.area) - set(chosen)))}")
    if args.case:
        chosen = {a: [c for c in cs if c.name in args.case] for a, cs in chosen.items()}
        chosen = {a: cs for a, cs in chosen.items() if cs}
        if not chosen:
            parser.error(f"no such case: {', '.join(args.case)}")
    total = sum(len(cs) for cs in chosen.values())
    outcomes: list[Outcome] = []
    failed: list[tuple[Case, str]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rb-faults-") as tmp:
        for area, cases in chosen.items():
            bench = Bench(Path(tmp) / area)
            try:
                for case in cases:
                    print(f"[{len(outcomes) + len(failed) + 1}/{total}] {area}: {case.name} ...", file=sys.stderr)
                    try:
                        outcomes.append(run_case(case, bench))
                    except Exception as exc:  # a case that cannot run is wrong, and the table says so
                        failed.append((case, f"{type(exc).__name__}: {exc}"[:300]))
            finally:
                bench.close()
    wall = time.monotonic() - started
    print(table(outcomes, failed))
    right = sum(o.right for o in outcomes)
    print(
        f"\naccuracy: {right}/{total} cases right ({right / total:.0%}); cause right {sum(o.cause_right for o in outcomes)}"
        f"/{total}, action right {sum(o.action_right for o in outcomes)}/{total}, verdict in bounds "
        f"{sum(o.verdict_in_bounds for o in outcomes)}/{total}"
    )
    if outcomes:
        times = sorted(o.seconds for o in outcomes)
        print(
            f"time to record: median {statistics.median(times):.1f} s, max {times[-1]:.1f} s; "
            f"all {total} cases with their injection in {duration(wall)}"
        )
    if args.verbose:
        for o in outcomes:
            if not o.right:
                print("\n" + o.explain())
    for case, error in failed:
        print(f"\n{case.name}: could not run: {error}")
    return 0 if right == total else 1


def table(outcomes: list[Outcome], failed: list[tuple[Case, str]]) -> str:
    head = (
        "case",
        "runbook",
        "fault",
        "cause",
        "cause right",
        "action",
        "action right",
        "verdict",
        "in bounds",
        "own checks",
        "s",
    )
    rows = [
        (
            o.case.name,
            o.case.runbook,
            o.case.what,
            str(o.diagnosis.get("cause_code")),
            MARK[o.cause_right],
            str((o.diagnosis.get("recommended_action") or {}).get("name")),
            MARK[o.action_right],
            o.diagnosis["verdict"],
            MARK[o.verdict_in_bounds],
            "yes" if not o.problems else f"NO ({len(o.problems)})",
            f"{o.seconds:.1f}",
        )
        for o in outcomes
    ]
    rows += [(c.name, c.runbook, c.what, "-", "NO", "-", "NO", "-", "NO", "could not run", "-") for c, _ in failed]
    widths = [min(max(len(str(r[i])) for r in [head, *rows]), 48) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(v)[:48].ljust(w) for v, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


if __name__ == "__main__":
    sys.exit(main())
