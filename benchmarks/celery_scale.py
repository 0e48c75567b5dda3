"""Records per minute with the celery executor: 1 worker against 2 (and the local executor with
the same number of workers as a reference), on this machine.

    .venv/bin/python benchmarks/celery_scale.py [--alerts 200] [--runbook noop|triage] [--no-local]

Each configuration gets a fresh RabbitMQ vhost and archive: `runbook serve --executor celery`
plus N `runbook worker` processes (or `runbook serve --workers N`), a burst of distinct alerts
posted 10 at a time, and the clock runs from the first POST until the journal has every job done.
Prints records per minute, the ratio to one worker, the machine's busy CPU seconds per record
and average busy cores during the burst (all processes: receiver, broker, workers, kernels),
and the resident memory (RSS, summed over
each worker's process tree: worker + warm-kernel template + spare kernels) measured at the end.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HOME = Path(__file__).resolve().parent.parent


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and all its descendants, in MB."""
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid=,rss="], capture_output=True, text=True, check=True).stdout
    rows = [tuple(int(x) for x in line.split()) for line in out.splitlines() if line.strip()]
    children: dict[int, list[int]] = {}
    rss = {}
    for p, pp, r in rows:
        children.setdefault(pp, []).append(p)
        rss[p] = r
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total / 1024


def cpu_busy_s() -> float:
    """Busy CPU seconds of the whole machine so far (all cores; /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def done_count(archive: Path) -> int:
    with sqlite3.connect(archive / "intake.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM jobs WHERE state = 'done'").fetchone()[0])


S3: dict[str, str] = {}  # with --archive s3: moto's endpoint (set in main)
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "AKIABENCHMARK0000001",
    "AWS_SECRET_ACCESS_KEY": "bench-secret-" + os.urandom(8).hex(),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def environment(work: Path, vhost: str, executor: str) -> tuple[dict[str, str], str]:
    """The settings of one measured configuration (a minimal collection in ``work``, the journal
    at work/executed/intake.sqlite3; the archive there too, or in a new bucket) and its token."""
    from tests.support.minimal import write_minimal_collection

    runbooks, catalog = write_minimal_collection(work / "collection", HOME)
    token = "bench-token-" + os.urandom(4).hex()
    (work / "executed").mkdir(parents=True, exist_ok=True)
    env = {
        "RUNBOOK_ARCHIVE": str(work / "executed"),
        "RUNBOOK_JOURNAL": str(work / "executed" / "intake.sqlite3"),
        "RUNBOOK_RUNBOOKS_DIR": str(runbooks),
        "RUNBOOK_CATALOG": str(catalog),
        "RUNBOOK_WEBHOOK_TOKEN": token,
        "RUNBOOK_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "RUNBOOK_BROKER_SIGNING_KEY": "bench-signing-key-" + os.urandom(16).hex(),
        "RUNBOOK_EXECUTOR": executor,
    }
    if S3:
        import boto3

        bucket = f"rbbench-{os.urandom(6).hex()}"
        boto3.client("s3", endpoint_url=S3["endpoint"], **_boto_credentials()).create_bucket(Bucket=bucket)
        env |= {"RUNBOOK_ARCHIVE": f"s3://{bucket}/records", "RUNBOOK_ARCHIVE_ENDPOINT": S3["endpoint"]}
        env |= S3_CREDENTIALS
    return env, token


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": "us-east-1",
    }


def sent_count(archive: Path) -> int:
    with sqlite3.connect(archive / "intake.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM jobs WHERE state = 'running' AND worker = 'celery'").fetchone()[0])


def measure_dispatch(alerts: int) -> float:
    """The receiver alone (no worker): how fast its dispatcher plans and publishes jobs to the
    broker (each publish confirmed, each job journaled as sent), in jobs per second."""
    from runbook_lib.sandbox.services import start_receiver
    from tests.support.load import burst_payloads, post_all
    from tests.support.services import rabbitmq_vhost

    work = Path(tempfile.mkdtemp(prefix="rb-scale-dispatch-"))
    archive = work / "executed"
    with rabbitmq_vhost("rbbench") as vhost:
        env, token = environment(work, vhost, "celery")
        receiver = start_receiver(work / "receiver", env)
        try:
            payloads = burst_payloads(alerts)
            t0 = time.monotonic()
            post_all(f"{receiver.url}/alerts", payloads, token, concurrency=10)
            while sent_count(archive) < alerts:
                if time.monotonic() - t0 > 600:
                    raise SystemExit(f"dispatch: only {sent_count(archive)} of {alerts} sent after 10 min")
                time.sleep(0.05)
            return alerts / (time.monotonic() - t0)
        finally:
            receiver.stop()


def measure(executor: str, workers: int, alerts: int, runbook: str) -> dict[str, Any]:
    from runbook_lib.sandbox.services import start_receiver
    from tests.support.load import burst_payloads, post_all
    from tests.support.services import rabbitmq_vhost, start_worker

    work = Path(tempfile.mkdtemp(prefix=f"rb-scale-{executor}{workers}-"))
    archive = work / "executed"
    with rabbitmq_vhost("rbbench") as vhost:
        env, token = environment(work, vhost, executor)
        started = []
        try:
            receiver = start_receiver(work / "receiver", env, workers=workers)
            started.append(receiver)
            if executor == "celery":
                for i in range(workers):
                    started.append(start_worker(work / f"w{i}", env, f"worker-{i}"))
            logs = [svc.log_path for svc in started]
            deadline = time.monotonic() + 120
            while sum(p.read_text(errors="replace").count("kernel template") for p in logs) < workers:
                if time.monotonic() > deadline:  # warm kernels ready everywhere before the clock starts
                    raise SystemExit(f"{executor} x{workers}: the kernel templates did not start within 120 s")
                time.sleep(0.2)
            alertname = "BurstAlert" if runbook == "noop" else "UnknownBurstAlert"
            payloads = burst_payloads(alerts, alertname=alertname)
            t0, busy0 = time.monotonic(), cpu_busy_s()
            results = post_all(f"{receiver.url}/alerts", payloads, token, concurrency=10)
            if {r.status for r in results} != {200}:
                raise SystemExit(f"not every alert was accepted: {sorted({r.status for r in results})}")
            last = -1
            while (n := done_count(archive)) < alerts:
                if n // 50 != last // 50:
                    print(f"  {executor} x{workers}: {n}/{alerts} done", file=sys.stderr, flush=True)
                last = n
                if time.monotonic() - t0 > 1800:
                    raise SystemExit(f"{executor} x{workers}: only {n} of {alerts} done after 30 min")
                time.sleep(0.2)
            elapsed = time.monotonic() - t0
            busy = cpu_busy_s() - busy0
            pids = [s.proc.pid for s in started[1:]] if executor == "celery" else [receiver.proc.pid]
            rss = sum(tree_rss_mb(p) for p in pids)
        finally:
            for svc in started:
                svc.stop()
    return {
        "executor": executor,
        "workers": workers,
        "elapsed": elapsed,
        "per_min": alerts / elapsed * 60,
        "rss": rss,
        "cpu_per_record": busy / alerts,
        "cores_busy": busy / elapsed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=200, help="alerts per configuration (default 200)")
    parser.add_argument("--runbook", choices=("noop", "triage"), default="noop", help="noop (default) or real triage")
    parser.add_argument("--no-local", action="store_true", help="skip the local-executor reference runs")
    parser.add_argument(
        "--archive",
        choices=("local", "s3"),
        default="local",
        help="where records go: a local directory (default) or an S3 bucket on moto's server (loopback)",
    )
    args = parser.parse_args()
    moto = None
    if args.archive == "s3":
        from tests.support.services import start_s3

        moto = start_s3(Path(tempfile.mkdtemp(prefix="rb-scale-moto-")))
        S3["endpoint"] = moto.url
    try:
        return report(args)
    finally:
        if moto is not None:
            moto.stop()


def report(args: argparse.Namespace) -> int:
    for var in ("RUNBOOK_PROMETHEUS_URL", "RUNBOOK_POSTGRES_DSN", "RUNBOOK_REDIS_URL", "KUBECONFIG"):
        os.environ.pop(var, None)
    configs = [("celery", 1), ("celery", 2)] + ([] if args.no_local else [("local", 1), ("local", 2)])
    rows = []
    for executor, workers in configs:
        print(f"measuring {executor} with {workers} worker(s), {args.alerts} alerts ...", file=sys.stderr, flush=True)
        rows.append(measure(executor, workers, args.alerts, args.runbook))
    print("measuring the dispatcher alone (no workers) ...", file=sys.stderr, flush=True)
    dispatch = measure_dispatch(args.alerts)
    base = {r["executor"]: r["per_min"] for r in rows if r["workers"] == 1}
    print(f"\n{args.alerts} alerts, runbook {args.runbook}, archive {args.archive}, {os.cpu_count()} cores")
    print(
        f"{'executor':<8} {'workers':>7} {'seconds':>8} {'records/min':>12} {'vs 1 worker':>12} {'worker RSS MB':>14}"
    )
    for r in rows:
        ratio = r["per_min"] / base[r["executor"]]
        rss = f"{r['rss']:.0f}" + (" (with receiver)" if r["executor"] == "local" else "")
        print(
            f"{r['executor']:<8} {r['workers']:>7} {r['elapsed']:>8.1f} {r['per_min']:>12.0f} {ratio:>11.2f}x "
            f"{r['cpu_per_record']:>13.2f} {r['cores_busy']:>11.2f} {rss:>14}"
        )
    print(
        f"dispatcher alone (receipt -> planned, published with confirm, journaled as sent; no worker): "
        f"{dispatch:.0f} jobs/s = {dispatch * 60:.0f}/min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
