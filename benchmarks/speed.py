"""Alert to record: how fast, how many, how much memory. One run prints one table.

    .venv/bin/python benchmarks/speed.py [--sequential 30] [--burst 500] [--cli-runs 5]

(a) receipt -> record.html on disk for N sequential alerts on high-error-rate, every sandbox
    backend on (Prometheus, PostgreSQL, Redis, the fake Kubernetes API): p50, p95;
(b) the same with only Prometheus configured: p50, p95;
(c) the same notebook and alert through the `papermill` CLI, then `jupyter nbconvert --to html`:
    p50, and the ratio (c)/(b);
(d) a burst of distinct alerts on the real triage runbook (Prometheus only), 10 concurrent
    senders: time until the last record, records/s, lost and duplicated records, and the
    webhook's answer latency p50/p99 during the burst;
(e) unique memory (USS) per warm kernel, and the receiver with its workers, templates and
    kernels: RSS summed and PSS summed (PSS shares the forked pages fairly);
(f) a matplotlib figure saved as PNG inside a run: the cell's time in a warm kernel against a
    cold one (matplotlib pre-imported by the template, so plots cost no start-up);
(g) the design choice: what one ready kernel with every import costs, started cold (what a pool
    of pre-started single-use kernels pays per run) against forked from the template.

Receipt-to-record times come from the intake journal (receipt: the notification's commit;
record: the job finished, after the record was archived). Every receiver here is the real
`runbook serve` in its own process with its default 2 workers. Numbers only: nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HOME = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOKEN = "speed-" + os.urandom(6).hex()


def say(msg: str) -> None:
    print(f"[speed] {msg}", file=sys.stderr, flush=True)


def pct(values: list[float], p: float) -> float:
    from tests.support.load import percentile

    return percentile(values, p)


def journal_rows(archive: Path) -> list[sqlite3.Row]:
    path = archive / "intake.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM jobs WHERE status = 'firing' ORDER BY id").fetchall()


def alert_payloads(n: int, alertname: str, prefix: str) -> list[dict[str, Any]]:
    starts = (datetime.now(UTC) - timedelta(minutes=20)).isoformat().replace("+00:00", "Z")
    template = json.loads((HOME / "examples" / "alerts" / "high-error-rate.json").read_text())
    out = []
    for i in range(n):
        body = json.loads(json.dumps(template))
        alert = body["alerts"][0]
        alert["labels"] = {**alert["labels"], "alertname": alertname, "instance": f"{prefix}-{i}"}
        alert["startsAt"] = starts
        alert["fingerprint"] = f"{prefix}{i:012x}"
        body["groupKey"] = f'{{}}:{{instance="{prefix}-{i}"}}'  # distinct alerts, distinct groups (no linking)
        body["groupLabels"] = {"alertname": alertname}
        body["commonLabels"] = dict(alert["labels"])
        out.append(body)
    return out


def start_receiver(work: Path, env: dict[str, str]) -> Any:
    from runbook_lib.sandbox.services import start_receiver as start

    svc = start(work, {**env, "RUNBOOK_WEBHOOK_TOKEN": TOKEN, "RUNBOOK_ARCHIVE": str(work / "executed")})
    time.sleep(8)  # the workers' kernel templates import everything before the first alert
    return svc


def sequential(svc: Any, archive: Path, n: int, alertname: str, prefix: str) -> list[float]:
    from tests.support.load import post_all

    for i, body in enumerate(alert_payloads(n, alertname, prefix)):
        assert post_all(f"{svc.url}/alerts", [body], TOKEN, concurrency=1)[0].status == 200
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = [r for r in journal_rows(archive) if r["fingerprint"] == body["alerts"][0]["fingerprint"]]
            if rows and rows[0]["state"] == "done":
                break
            time.sleep(0.01)
        if (i + 1) % 10 == 0:
            say(f"  {i + 1}/{n}")
    rows = [r for r in journal_rows(archive) if r["fingerprint"].startswith(prefix)]
    statuses = {r["outcome"] for r in rows}
    if statuses != {"succeeded"}:
        say(f"  WARNING: outcomes {statuses}")
    return [r["finished_at"] - r["received_at"] for r in rows]


def cli_path(work: Path, prom_url: str, runs: int) -> list[float]:
    """papermill CLI, then jupyter nbconvert CLI, Prometheus only, the same alert."""
    import yaml

    body = alert_payloads(1, "HighErrorBudgetBurnRate", "cli")[0]
    params = work / "params.yaml"
    params.write_text(yaml.safe_dump({"alert": body["alerts"][0]}))
    env = {**os.environ, "RUNBOOK_PROMETHEUS_URL": prom_url}
    for var in ("RUNBOOK_POSTGRES_DSN", "RUNBOOK_REDIS_URL", "KUBECONFIG"):
        env.pop(var, None)
    out = []
    for i in range(runs):
        executed = work / f"cli-{i}.ipynb"
        t0 = time.perf_counter()
        subprocess.run(
            [
                str(BIN / "papermill"),
                "--no-progress-bar",
                str(HOME / "runbooks" / "high-error-rate.ipynb"),
                str(executed),
                "-f",
                str(params),
            ],
            env=env,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [str(BIN / "jupyter"), "nbconvert", "--to", "html", str(executed)], env=env, check=True, capture_output=True
        )
        out.append(time.perf_counter() - t0)
    return out


def burst(svc: Any, archive: Path, n: int, prefix: str) -> dict[str, Any]:
    from tests.support.load import post_all

    payloads = alert_payloads(n, "UnknownBurstAlert", prefix)  # not in the catalog: the real triage runbook
    t0 = time.monotonic()
    results = post_all(f"{svc.url}/alerts", payloads, TOKEN, concurrency=10)
    while True:
        rows = [r for r in journal_rows(archive) if r["fingerprint"].startswith(prefix)]
        if len(rows) >= n and all(r["state"] == "done" for r in rows):
            break
        if time.monotonic() - t0 > 900:
            break
        time.sleep(0.2)
    took = time.monotonic() - t0
    from runbook_lib.record.archive import LocalArchive

    arc = LocalArchive(archive)
    fingerprints = [arc.load(e["id"])["alert"]["fingerprint"] for e in arc.entries() if e["type"] == "record"]
    mine = [f for f in fingerprints if f.startswith(prefix)]
    answers = [r.latency_s for r in results]
    import httpx

    server = server_side_answers(httpx.get(f"{svc.url}/metrics", timeout=10).text)
    return {
        "server": server,
        "took": took,
        "records": len(set(mine)),
        "lost": n - len(set(mine)),
        "duplicated": len(mine) - len(set(mine)),
        "statuses": sorted({r.status for r in results}),
        "answer_p50": pct(answers, 50),
        "answer_p99": pct(answers, 99),
        "outcomes": sorted({r["outcome"] for r in rows}),
    }


def server_side_answers(metrics: str) -> str:
    """The receiver's own answer-time histogram (runbook_webhook_answer_seconds): the share of
    answers within each bucket, so client-side scheduling on a shared machine can be told apart."""
    buckets = {}
    for line in metrics.splitlines():
        if line.startswith("runbook_webhook_answer_seconds_bucket"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets[le] = float(line.rsplit(" ", 1)[1])
    total = buckets.get("+Inf", 0) or 1
    return ", ".join(
        f"<= {float(le) * 1000:g} ms: {n / total:.1%}"
        for le, n in buckets.items()
        if le in ("0.01", "0.025", "0.05", "0.1")
    )


def memory(svc: Any) -> dict[str, Any]:
    """USS of each idle warm kernel; RSS and PSS summed over the receiver's whole process tree."""

    def tree(pid: int) -> list[int]:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        return [pid, *(p for k in kids for p in tree(int(k)))]

    def rollup(pid: int) -> dict[str, int]:
        out = {}
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
        except OSError:
            pass
        return out

    pids = tree(svc.proc.pid)
    kernels = []
    for pid in pids:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ") if Path(f"/proc/{pid}").exists() else b""
        parent = (
            int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if Path(f"/proc/{pid}").exists()
            else 0
        )
        parent_cmd = (
            Path(f"/proc/{parent}/cmdline").read_bytes() if parent and Path(f"/proc/{parent}").exists() else b""
        )
        if b"runbook_lib.kernel.template" in parent_cmd and b"runbook_lib.kernel.template" in cmd:
            r = rollup(pid)
            kernels.append((r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)) / 1024)
    rollups = [rollup(p) for p in pids]
    return {
        "processes": len(pids),
        "kernel_uss_mb": kernels,
        "rss_mb": sum(r.get("Rss", 0) for r in rollups) / 1024,
        "pss_mb": sum(r.get("Pss", 0) for r in rollups) / 1024,
    }


def cpu_and_uss(pid: int) -> tuple[float, float]:
    """CPU seconds a process has used (user + system), and its unique memory in MB."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    uss = 0
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(("Private_Clean", "Private_Dirty")):
            uss += int(line.split()[1])
    return cpu, uss / 1024


def kernel_options(runs: int = 3) -> dict[str, tuple[float, float, float]]:
    """What one ready kernel with runbook_lib's imports costs: (wall s, CPU s, USS MB), started
    cold (what a pool of pre-started kernels pays for every single-use kernel) or forked from the
    template."""
    import asyncio

    from jupyter_client.manager import AsyncKernelManager

    from runbook_lib.core.settings import load_settings
    from runbook_lib.kernel.template import PRELOAD
    from runbook_lib.run.kernels import QuickClient
    from runbook_lib.run.pool import WarmKernels

    imports = "import " + ", ".join(PRELOAD)

    async def cold_once() -> tuple[float, float, float]:
        t0 = time.perf_counter()
        km = AsyncKernelManager(kernel_name="python3", transport="ipc")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        await kc.execute_interactive(imports, timeout=120)
        wall = time.perf_counter() - t0
        cpu, uss = cpu_and_uss(km.provisioner.pid)
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
        return wall, cpu, uss

    async def forked_once(warm: WarmKernels) -> tuple[float, float, float]:
        t0 = time.perf_counter()
        spare = warm._fork()
        kc = QuickClient(connection_file=spare.connection_file)
        kc.load_connection_file()
        kc.start_channels()
        await kc.wait_for_ready(timeout=60)
        wall = time.perf_counter() - t0
        cpu, uss = cpu_and_uss(spare.pid)
        kc.stop_channels()
        spare.discard()
        return wall, cpu, uss

    def median3(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
        return tuple(statistics.median(col) for col in zip(*rows, strict=True))  # type: ignore[return-value]

    cold = [asyncio.run(cold_once()) for _ in range(runs)]
    cfg = load_settings().kernels.model_copy(update={"warm_kernels": 0})
    warm = WarmKernels(cfg)  # not started: no keeper thread, this measures the fork alone
    try:
        warm._ensure_template()
        forked = [asyncio.run(forked_once(warm)) for _ in range(runs)]
    finally:
        warm.close()
    return {"cold": median3(cold), "forked": median3(forked)}


def plot_cost(work: Path) -> tuple[float, float]:
    """The first matplotlib figure of a run, saved as PNG: its cell time, warm and cold."""
    from runbook_lib.core.settings import load_settings
    from runbook_lib.run.pool import WarmKernels
    from runbook_lib.run.request import RunRequest
    from runbook_lib.run.runner import Runner
    from runbook_lib.sre.alertmanager import load_alert_text
    from tests.support.minimal import make_runbook

    cell = (
        "import io\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(6, 2))\nax.plot(range(100))\nfig.savefig(io.BytesIO(), format='png')"
    )
    runbooks = work / "plot-runbooks"
    make_runbook(runbooks, "plot", cell)
    make_runbook(runbooks, "triage")
    os.environ["RUNBOOK_RUNBOOKS_DIR"] = str(runbooks)
    settings = load_settings(overrides={"archive.path": str(work / "plot-executed"), "prometheus.url": None})
    engine = Runner(settings)
    alert, _ = load_alert_text(json.dumps(alert_payloads(1, "Plot", "plot")[0]))

    def cell_time() -> float:
        record_dir = engine.run(RunRequest(alert=alert, slug="plot")).path
        nb = json.loads((record_dir / "notebook.ipynb").read_text())
        return float(nb["cells"][-1]["metadata"]["papermill"]["duration"])

    cold = statistics.median(cell_time() for _ in range(3))
    warm = WarmKernels(settings.kernels).start()
    try:
        time.sleep(6)
        warm_t = statistics.median(cell_time() for _ in range(3))
    finally:
        warm.close()
        os.environ.pop("RUNBOOK_RUNBOOKS_DIR", None)
    return warm_t, cold


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=30)
    parser.add_argument("--burst", type=int, default=500)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--only", default="abcdefg", help="which measurements, e.g. --only bd (default: all)")
    args = parser.parse_args()
    only = set(args.only)

    from runbook_lib.core import process
    from runbook_lib.sandbox import database
    from runbook_lib.sandbox.stack import Sandbox

    process.prepare()
    for var in ("RUNBOOK_PROMETHEUS_URL", "RUNBOOK_POSTGRES_DSN", "RUNBOOK_REDIS_URL", "KUBECONFIG", "RUNBOOK_ARCHIVE"):
        os.environ.pop(var, None)
    work = Path(tempfile.mkdtemp(prefix="rb-speed-"))
    with Sandbox(work / "sandbox", HOME, say=lambda m: say(f"sandbox: {m}")) as sb:
        sb.start_prometheus(rules=False)
        sb.start_database(database.run_name("runbook_speed"))
        sb.start_kube()
        prom = sb.env()["RUNBOOK_PROMETHEUS_URL"]

        a = b = c = []
        d = e = None
        f_warm = f_cold = None
        if "a" in only:
            say(f"(a) {args.sequential} sequential alerts, every backend")
            svc = start_receiver(work / "a", sb.env())
            try:
                a = sequential(svc, work / "a" / "executed", args.sequential, "HighErrorBudgetBurnRate", "aa")
            finally:
                svc.stop()
        if only & set("bde"):
            say("(b) sequential alerts, Prometheus only; (e) memory; (d) the burst")
            svc = start_receiver(work / "b", {"RUNBOOK_PROMETHEUS_URL": prom})
            try:
                if "b" in only:
                    b = sequential(svc, work / "b" / "executed", args.sequential, "HighErrorBudgetBurnRate", "bb")
                if "e" in only:
                    e = memory(svc)
                if "d" in only:
                    d = burst(svc, work / "b" / "executed", args.burst, "dd")
            finally:
                svc.stop()
        if "c" in only:
            say(f"(c) {args.cli_runs} runs of papermill CLI + nbconvert CLI")
            c = cli_path(work, prom, args.cli_runs)
        if "f" in only:
            say("(f) a matplotlib figure in a warm and in a cold kernel")
            f_warm, f_cold = plot_cost(work)
        g = None
        if "g" in only:
            say("(g) one ready kernel with every import: cold start against a fork of the template")
            g = kernel_options()

    print("\n| measurement | result |")
    print("|---|---|")
    if a:
        print(
            f"| (a) receipt -> record.html, {len(a)} sequential, all backends | p50 {pct(a, 50):.3f} s, p95 {pct(a, 95):.3f} s |"
        )
    if b:
        print(f"| (b) the same, Prometheus only | p50 {pct(b, 50):.3f} s, p95 {pct(b, 95):.3f} s |")
    if c:
        ratio = f"; (c)/(b) = {statistics.median(c) / pct(b, 50):.1f}x" if b else ""
        print(f"| (c) papermill CLI + nbconvert CLI, {len(c)} runs | p50 {statistics.median(c):.2f} s{ratio} |")
    if d:
        print(
            f"| (d) burst of {args.burst} distinct alerts (triage), 10 senders | last record after {d['took']:.1f} s, "
            f"{args.burst / d['took']:.1f} records/s; {d['lost']} lost, {d['duplicated']} duplicated; answers "
            f"{d['statuses']}, p50 {d['answer_p50'] * 1000:.1f} ms, p99 {d['answer_p99'] * 1000:.1f} ms (client); "
            f"receiver's own answer times {d['server']} |"
        )
    if e:
        kernels = ", ".join(f"{x:.0f}" for x in e["kernel_uss_mb"]) or "none idle"
        print(
            f"| (e) memory | USS per idle warm kernel: {kernels} MB; receiver + workers + templates + kernels "
            f"({e['processes']} processes): RSS {e['rss_mb']:.0f} MB summed, PSS {e['pss_mb']:.0f} MB |"
        )
    if f_warm is not None and f_cold is not None:
        print(
            f"| (f) first matplotlib figure to PNG in a run | warm kernel {f_warm * 1000:.0f} ms, cold kernel {f_cold * 1000:.0f} ms |"
        )
    if g:
        (cw, cc, cu), (fw, fc, fu) = g["cold"], g["forked"]
        print(
            f"| (g) one ready kernel with every import (the design choice) | cold start (a pre-started pool pays "
            f"this per single-use kernel): {cw:.2f} s wall, {cc:.2f} s CPU, {cu:.0f} MB unique; forked from the "
            f"template: {fw * 1000:.0f} ms wall, {fc * 1000:.0f} ms CPU, {fu:.0f} MB unique |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
