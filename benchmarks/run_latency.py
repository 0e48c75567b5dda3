"""Time from `runbook run` to record, for the sample alert, on the loopback sandbox.

    .venv/bin/python benchmarks/run_latency.py [--runs 5]

Prints per-run wall time of the real `runbook run` command (process start to exit, i.e. to the
archived record), the engine's own split (notebook execution vs. render+archive), and the ratio
against a bare papermill run of a one-cell notebook on the same machine (the floor any
notebook-based runbook pays: interpreter + kernel start).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def bare_papermill(runs: int) -> list[float]:
    import nbformat

    with tempfile.TemporaryDirectory() as tmp:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        cell = nbformat.v4.new_code_cell("x = 1")
        cell.metadata["tags"] = ["parameters"]
        nb.cells = [cell, nbformat.v4.new_code_cell("print(x)")]
        src = Path(tmp) / "bare.ipynb"
        nbformat.write(nb, src)
        out = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(
                [str(BIN / "papermill"), "--no-progress-bar", str(src), str(Path(tmp) / "out.ipynb"), "-p", "x", "2"],
                check=True,
                capture_output=True,
            )
            out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from runbook_lib.sandbox import database
    from runbook_lib.sandbox.stack import Sandbox

    work = Path(tempfile.mkdtemp(prefix="rb-bench-"))
    with Sandbox(work / "sandbox", HOME, say=lambda m: print(f"  sandbox: {m}", file=sys.stderr)) as sb:
        sb.start_prometheus(rules=False)
        sb.start_database(database.run_name("runbook_bench"))
        sb.start_kube()
        env = {**os.environ, **sb.env(), "RUNBOOK_ARCHIVE": str(work / "executed")}
        payload = json.loads((HOME / "examples" / "alerts" / "high-error-rate.json").read_text())
        payload["alerts"][0]["startsAt"] = (datetime.now(UTC) - timedelta(minutes=20)).isoformat()
        alert = work / "alert.json"
        alert.write_text(json.dumps(payload))
        walls, execs, renders = [], [], []
        for i in range(args.runs):
            t0 = time.perf_counter()
            res = subprocess.run(
                [str(BIN / "runbook"), "run", "--alert", str(alert), "--quiet"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - t0
            if res.returncode != 0:
                print(res.stderr, file=sys.stderr)
                return 1
            record = json.loads((Path(res.stdout.strip()).parent / "record.json").read_text())
            walls.append(wall)
            execs.append(record["timings"]["execute_s"])
            renders.append(record["timings"]["render_s"])
            print(
                f"run {i + 1}: {wall:.2f} s to record ({len(record['findings'])} findings, status {record['status']})"
            )
    bare = bare_papermill(args.runs)

    def med(xs: list[float]) -> float:
        return statistics.median(xs)

    print("\n== runbook run -> record (high-error-rate, all backends on loopback) ==")
    print(f"runs                      {args.runs}")
    print(f"wall p50 / min / max      {med(walls):.2f} / {min(walls):.2f} / {max(walls):.2f} s")
    print(f"  notebook execution p50  {med(execs):.2f} s  ({med(execs) / med(walls):.0%} of wall)")
    print(f"  redact+render+archive   {med(renders):.2f} s  ({med(renders) / med(walls):.0%} of wall)")
    print(f"  CLI start, routing      {med(walls) - med(execs) - med(renders):.2f} s")
    print(f"bare papermill p50        {med(bare):.2f} s  (one-cell notebook, same kernel)")
    print(f"ratio runbook / bare      {med(walls) / med(bare):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
