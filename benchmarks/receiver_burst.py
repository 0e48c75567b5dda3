"""Receiver under a burst: answer latency and receipt-to-record latency.

    .venv/bin/python benchmarks/receiver_burst.py [--alerts 500] [--workers 2] [--concurrency 50]

Starts the real `runbook serve` (subprocess, bearer auth, SQLite journal) with a minimal
runbook collection (a one-finding `noop` runbook; use --runbook triage for the real triage
runbook), posts N distinct alerts concurrently, waits until every one has an archived record,
replays the same N (which must start no run), and prints:
  * the webhook's answer latency, p50 / p99 / max (client-measured, per POST);
  * receipt-to-record latency p50 / p99 / max (journal timestamps);
  * throughput (records per second) and the ratio of answer to record latency.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HOME = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runbook", choices=("noop", "triage"), default="noop")
    parser.add_argument(
        "--answer-only",
        action="store_true",
        help="pause the workers (SIGSTOP) and measure the webhook's answer path alone at 1, 10 and 50 concurrent",
    )
    args = parser.parse_args()

    from runbook_lib.record.archive import LocalArchive
    from runbook_lib.record.archive.verify import verify
    from runbook_lib.sandbox.services import start_receiver
    from tests.support.load import burst_payloads, percentile, post_all
    from tests.support.minimal import write_minimal_collection

    work = Path(tempfile.mkdtemp(prefix="rb-burst-"))
    runbooks, catalog = write_minimal_collection(work, HOME)
    token = "bench-token-" + os.urandom(4).hex()
    env = {
        "RUNBOOK_ARCHIVE": str(work / "executed"),
        "RUNBOOK_RUNBOOKS_DIR": str(runbooks),
        "RUNBOOK_CATALOG": str(catalog),
        "RUNBOOK_WEBHOOK_TOKEN": token,
    }
    for var in ("RUNBOOK_PROMETHEUS_URL", "RUNBOOK_POSTGRES_DSN", "RUNBOOK_REDIS_URL", "KUBECONFIG"):
        os.environ.pop(var, None)
    alertname = "BurstAlert" if args.runbook == "noop" else "UnknownBurstAlert"
    payloads = burst_payloads(args.alerts, alertname=alertname)
    svc = start_receiver(work, env, workers=args.workers)
    if args.answer_only:
        return answer_only(svc, token)
    try:
        print(
            f"receiver {svc.url}, {args.workers} workers; posting {args.alerts} alerts, {args.concurrency} at a time",
            file=sys.stderr,
        )
        t0 = time.monotonic()
        results = post_all(f"{svc.url}/alerts", payloads, token, concurrency=args.concurrency)
        post_s = time.monotonic() - t0
        codes = {r.status for r in results}
        journal = work / "executed" / "intake.sqlite3"
        last = -1
        while True:
            with sqlite3.connect(journal) as db:
                done = db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0]
            if done >= args.alerts:
                break
            if done != last and done % 50 == 0:
                print(f"  {done}/{args.alerts} records after {time.monotonic() - t0:.0f}s", file=sys.stderr)
            last = done
            time.sleep(0.5)
        all_done_s = time.monotonic() - t0
        replay = post_all(f"{svc.url}/alerts", payloads, token, concurrency=args.concurrency)
        time.sleep(2)
        with sqlite3.connect(journal) as db:
            rows = db.execute("SELECT finished_at - received_at, outcome FROM jobs").fetchall()
            jobs = len(rows)
        count, problems = verify(LocalArchive(work / "executed"))
    finally:
        svc.stop()
    answers = [r.latency_s for r in results]
    to_record = [r[0] for r in rows]
    print(f"\n== receiver burst: {args.alerts} distinct alerts, runbook {args.runbook}, {args.workers} workers ==")
    print(f"answers                   {sorted(codes)} (all 200: {codes == {200}}); posting took {post_s:.2f} s")
    print(
        f"answer latency            p50 {percentile(answers, 50) * 1000:.1f} ms  p99 {percentile(answers, 99) * 1000:.1f} ms"
        f"  max {max(answers) * 1000:.1f} ms"
    )
    print(
        f"receipt -> record         p50 {percentile(to_record, 50):.1f} s  p99 {percentile(to_record, 99):.1f} s"
        f"  max {max(to_record):.1f} s"
    )
    print(
        f"all {args.alerts} recorded after  {all_done_s:.1f} s  ({args.alerts / all_done_s:.2f} records/s, "
        f"{all_done_s * args.workers / args.alerts:.2f} worker-s per record)"
    )
    print(f"ratio p50 record/answer   {percentile(to_record, 50) / percentile(answers, 50):.0f}x")
    print(
        f"replay of the same {args.alerts}  {sorted({r.status for r in replay})}; jobs in journal {jobs} (new runs: "
        f"{jobs - args.alerts})"
    )
    print(f"archive verify            {count} records, {len(problems)} problems")
    return 0 if codes == {200} and jobs == args.alerts and not problems else 1


def answer_only(svc, token: str) -> int:
    """The webhook alone: workers frozen, so nothing but the receiver and this client use the CPU."""
    import signal
    import subprocess

    from tests.support.load import burst_payloads, percentile, post_all

    workers = subprocess.run(["pgrep", "-P", str(svc.proc.pid)], capture_output=True, text=True).stdout.split()
    for pid in workers:
        os.kill(int(pid), signal.SIGSTOP)
    try:
        print("\n== webhook answer path alone (workers paused), 300 alerts per level ==")
        for conc in (1, 10, 50):
            payloads = burst_payloads(300)
            t0 = time.monotonic()
            results = post_all(f"{svc.url}/alerts", payloads, token, concurrency=conc)
            took = time.monotonic() - t0
            lat = [r.latency_s for r in results]
            codes = sorted({r.status for r in results})
            print(
                f"concurrency {conc:>2}: {len(payloads) / took:6.0f} req/s  p50 {percentile(lat, 50) * 1000:7.1f} ms"
                f"  p99 {percentile(lat, 99) * 1000:7.1f} ms  answers {codes}"
            )
    finally:
        for pid in workers:
            os.kill(int(pid), signal.SIGCONT)
        svc.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
