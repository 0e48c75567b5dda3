"""The receiver as operators run it (`runbook serve` in its own process), end to end:
Prometheus -> Alertmanager -> receiver -> records -> resolved; a burst and its replay; kill -9
mid-burst; grouped notifications; notifications to Slack/PagerDuty (local servers)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import verify
from runbook_lib.sandbox.services import Service, free_port, start_receiver, wait_for
from runbook_lib.sandbox.stack import Sandbox
from tests.helpers import HOME, alert_payload, cli
from tests.support.load import burst_payloads, post_all
from tests.support.minimal import write_minimal_collection

pytestmark = pytest.mark.slow
TOKEN = "e2e-token-" + os.urandom(6).hex()
BURST = 80  # enough to answer concurrently and run on both workers; the 500 burst is a benchmark


def running(pid: str) -> bool:
    """Alive and not a zombie (an orphan's exit status may wait for PID 1 to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def journal_rows(archive: Path, sql: str = "SELECT * FROM jobs") -> list[sqlite3.Row]:
    with sqlite3.connect(archive / "intake.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql).fetchall()


def done_count(archive: Path) -> int:
    return journal_rows(archive, "SELECT count(*) AS n FROM jobs WHERE state = 'done'")[0]["n"]


def records(archive: Path) -> list[dict[str, Any]]:
    arc = LocalArchive(archive)
    return [arc.load(e["id"]) for e in arc.entries() if e["type"] == "record"]


@pytest.fixture
def minimal_env(tmp_path: Path) -> dict[str, str]:
    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)
    return {
        "RUNBOOK_ARCHIVE": str(tmp_path / "executed"),
        "RUNBOOK_RUNBOOKS_DIR": str(runbooks),
        "RUNBOOK_CATALOG": str(catalog),
        "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
    }


@pytest.fixture
def receiver_factory(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    started: list[Service] = []

    def start(env: dict[str, str], port: int | None = None, workers: int = 2) -> Service:
        svc = start_receiver(tmp_path / "receiver", env, port=port, workers=workers)
        started.append(svc)
        return svc

    yield start
    for svc in started:
        svc.stop()


def test_alertmanager_chain_records_then_resolves(tmp_path: Path) -> None:
    """Prometheus (Debian) fires a catalog rule on backfilled data -> Alertmanager (Debian, bearer
    http_config) -> runbook serve -> a record; the rule stops firing -> the record gets a chained
    'resolved' event and its files do not change."""
    archive = tmp_path / "executed"
    with Sandbox(tmp_path / "sandbox", HOME, say=lambda m: None) as sb:
        sb.prepare_incident()
        sb.start_database(f"rbtest_chain_{os.getpid()}")
        sb.start_kube()
        env = {**sb.env(), "RUNBOOK_WEBHOOK_TOKEN": TOKEN, "RUNBOOK_ARCHIVE": str(archive)}
        receiver = start_receiver(tmp_path / "receiver", env)
        try:
            am = sb.start_alertmanager(f"{receiver.url}/alerts", TOKEN)
            sb.start_prometheus(alertmanager_url=am)

            def burn_rate_record() -> str | None:
                rows = (
                    journal_rows(
                        archive,
                        "SELECT record_id FROM jobs WHERE alertname = 'HighErrorBudgetBurnRate' "
                        "AND status = 'firing' AND state = 'done'",
                    )
                    if (archive / "intake.sqlite3").exists()
                    else []
                )
                return rows[0]["record_id"] if rows else None

            rid = wait_for("the HighErrorBudgetBurnRate record", burn_rate_record, 120, receiver)
            arc = LocalArchive(archive)
            record = arc.load(rid)
            assert (record["origin"], record["mode"], record["runbook"], record["status"]) == (
                "receiver",
                "diagnose",
                "high-error-rate",
                "succeeded",
            )
            assert record["parameters"]["dry_run"] is True
            endpoint = next(f for f in record["findings"] if f["check"] == "5xx rate by endpoint")
            assert endpoint["details"]["endpoint"] == "/api/v1/workflows/execute"
            assert record["alert"]["generatorURL"].startswith(f"http://127.0.0.1:{sb.prometheus_port}")
            files_before = {p.name: p.read_bytes() for p in arc.record_dir(rid).iterdir()}

            sb.write_rules(drop=("HighErrorBudgetBurnRate",))
            sb.reload_prometheus()

            def resolved() -> list:
                return [e for e in arc.load(rid)["events"] if e["event"] == "resolved"]

            events = wait_for("the resolved event", resolved, 90, receiver)
            assert events[0]["data"]["duration_s"] > 0 and events[0]["data"]["ends_at"] > record["alert"]["startsAt"]
            assert {p.name: p.read_bytes() for p in arc.record_dir(rid).iterdir()} == files_before
            count, problems = verify(arc)
            assert problems == [] and count >= 1
            served = httpx.get(f"{receiver.url}/records/{rid}", headers={"Authorization": f"Bearer {TOKEN}"})
            assert served.status_code == 200 and "Resolved at" in served.text
            assert served.headers["content-security-policy"] == "sandbox"
            metrics = httpx.get(f"{receiver.url}/metrics").text
            runs = {
                line.split(" ")[0]: float(line.split(" ")[1])
                for line in metrics.splitlines()
                if line.startswith("runbook_runs_total")
            }
            assert runs['runbook_runs_total{status="succeeded"}'] >= 1
            assert runs['runbook_runs_total{status="resolved"}'] >= 1
            _report_of_the_resolved_incident(arc, rid, {**env, "RUNBOOK_ARCHIVE": str(archive)}, tmp_path)
        finally:
            receiver.stop()


def _report_of_the_resolved_incident(arc: LocalArchive, rid: str, env: dict[str, str], tmp_path: Path) -> None:
    """`runbook report` on the real record: firing, receipt, the runbook's steps, the resolution,
    in time order; SEV-2 (a critical alert not listed as SEV-1); attached and verified."""
    res = cli("report", rid, env=env)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    (tmp_path / "report.md").write_text(text)
    timeline = text.split("## Timeline (UTC)\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    stamps = [line[2:22] for line in timeline if line.startswith("- 20")]
    assert stamps == sorted(stamps) and len(stamps) >= 8, timeline
    joined = "\n".join(timeline)
    order = [
        "HighErrorBudgetBurnRate fired",
        "notification received",
        "Step 1: Identify which endpoints are failing",
        "Step 4: Check logs for error patterns and resource pressure",
        "alert resolved",
    ]
    positions = [joined.index(what) for what in order]
    assert positions == sorted(positions), joined
    assert "**Severity:** SEV-2" in text and "Incident Commander (IC):** TO COMPLETE" in text
    assert "/api/v1/workflows/execute" in text  # the findings, and the impact pre-filled from them
    assert "- [ ] Schedule postmortem meeting (blameless)" in text  # the runbook's own checklist
    assert "audit_logs row(s) in the incident window" in text
    assert "preliminary report: due" in text and "full report: due" in text  # deadlines from the resolution
    attached = [e for e in arc.load(rid)["events"] if e["event"] == "report"]
    assert len(attached) == 1 and (arc.root / attached[0]["data"]["path"]).read_text() == text
    count, problems = verify(arc)
    assert problems == [] and count >= 1
    (arc.root / attached[0]["data"]["path"]).write_text(text.replace("SEV-2", "SEV-3"))
    assert any("attached report changed" in p.what for p in verify(arc)[1])


def test_a_group_of_three_runs_high_error_rate_once_and_links_both_alerts(
    tmp_path: Path, prometheus, receiver_factory
) -> None:
    """Issue 9, must-show 3, through the real receiver: HighErrorBudgetBurnRate and
    ElevatedErrorRate in one notification run high-error-rate once; the unknown alert gets triage."""
    archive = tmp_path / "executed"
    receiver = receiver_factory(
        {"RUNBOOK_ARCHIVE": str(archive), "RUNBOOK_WEBHOOK_TOKEN": TOKEN, "RUNBOOK_PROMETHEUS_URL": prometheus.url}
    )
    p = alert_payload(alertname="HighErrorBudgetBurnRate")
    for name in ("ElevatedErrorRate", "NoRunbookForThisOne"):
        extra = json.loads(json.dumps(p["alerts"][0]))
        extra["labels"]["alertname"] = name
        extra["fingerprint"] = f"fp-{name}"
        p["alerts"].append(extra)
    resp = httpx.post(f"{receiver.url}/alerts", json=p, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200 and resp.json()["accepted"] == 3
    wait_for("three alerts done", lambda: done_count(archive) == 3, 120, receiver)
    by_alert = {r["alert"]["labels"]["alertname"]: r for r in records(archive)}
    assert sorted(by_alert) == ["HighErrorBudgetBurnRate", "NoRunbookForThisOne"], "two runs, not three"
    main = by_alert["HighErrorBudgetBurnRate"]
    assert main["runbook"] == "high-error-rate"
    assert [a["alertname"] for a in main["linked_alerts"]] == ["ElevatedErrorRate"]
    jobs = {r["alertname"]: r for r in journal_rows(archive)}
    assert jobs["ElevatedErrorRate"]["outcome"] == "linked" and jobs["ElevatedErrorRate"]["record_id"] == main["id"]
    triage = by_alert["NoRunbookForThisOne"]
    assert triage["runbook"] == "triage"
    assert any("No dedicated runbook for NoRunbookForThisOne" in f["summary"] for f in triage["findings"])
    log = receiver.log_path.read_text()
    assert "notification received id=1 " in log and f"record written id={main['id']}" in log


def test_a_burst_all_answered_all_recorded_replay_runs_nothing(tmp_path: Path, minimal_env, receiver_factory) -> None:
    """BURST alerts posted 40 at a time: every one answered 200, recorded once, and the same
    burst again (Alertmanager's repeats) starts no run. Throughput is benchmarks/receiver_burst.py's."""
    archive = Path(minimal_env["RUNBOOK_ARCHIVE"])
    receiver = receiver_factory(minimal_env)
    payloads = burst_payloads(BURST)
    results = post_all(f"{receiver.url}/alerts", payloads, TOKEN, concurrency=40)
    assert [r.status for r in results] == [200] * BURST
    wait_for(f"{BURST} records", lambda: done_count(archive) >= BURST, 600, receiver)
    recs = records(archive)
    fingerprints = [r["alert"]["fingerprint"] for r in recs]
    assert len(recs) == BURST and len(set(fingerprints)) == BURST
    assert sorted(fingerprints) == sorted(p["alerts"][0]["fingerprint"] for p in payloads)
    assert {r["status"] for r in recs} == {"succeeded"}

    replay = post_all(f"{receiver.url}/alerts", payloads, TOKEN, concurrency=40)
    assert [r.status for r in replay] == [200] * BURST
    time.sleep(3)
    rows = journal_rows(archive, "SELECT count(*) AS jobs, SUM(repeats) AS repeats FROM jobs")[0]
    assert (rows["jobs"], rows["repeats"]) == (BURST, BURST)  # every repeat counted, none started a run
    assert len(records(archive)) == BURST
    count, problems = verify(LocalArchive(archive))
    assert (count, problems) == (BURST, [])


def test_kill_9_mid_burst_loses_nothing_and_retries_interrupted_runs(
    tmp_path: Path, minimal_env, receiver_factory
) -> None:
    archive = Path(minimal_env["RUNBOOK_ARCHIVE"])
    port = free_port()
    first = receiver_factory(minimal_env, port=port)
    payloads = burst_payloads(60)
    results: list[Any] = []
    poster = threading.Thread(
        target=lambda: results.extend(
            post_all(f"http://127.0.0.1:{port}/alerts", payloads, TOKEN, concurrency=1, retry_for_s=180, pace_s=0.15)
        )
    )
    poster.start()

    def a_run_in_progress() -> bool:  # the kill must land mid-run and mid-burst, however fast runs are
        return (archive / "intake.sqlite3").exists() and bool(
            journal_rows(archive, "SELECT id FROM jobs WHERE state = 'running'")
        )

    wait_for("a run in progress", a_run_in_progress, 60, first)
    children = subprocess.run(["pgrep", "-P", str(first.proc.pid)], capture_output=True, text=True).stdout.split()
    assert children, "the receiver should have worker processes"
    os.kill(first.proc.pid, signal.SIGKILL)  # kill -9, mid-burst and mid-run
    first.proc.wait()
    accepted_before = len([r for r in results if r.status == 200])
    wait_for("the receiver's workers to die with it", lambda: not [c for c in children if running(c)], 15)
    second = receiver_factory(minimal_env, port=port)
    poster.join(240)
    assert len(results) == 60 and {r.status for r in results} == {200}
    assert accepted_before < 60, "the kill should land mid-burst"
    wait_for("60 records", lambda: done_count(archive) >= 60, 300, second)
    recs = records(archive)
    fingerprints = [r["alert"]["fingerprint"] for r in recs]
    assert sorted(fingerprints) == sorted(p["alerts"][0]["fingerprint"] for p in payloads)  # all, once each
    retried = [r for r in recs if r["attempt"] == 2]
    assert retried, "a run interrupted by the kill is retried"
    assert all(any("interrupted" in n for n in r["notes"]) for r in retried)
    assert verify(LocalArchive(archive)) == (60, [])


def test_a_killed_worker_is_replaced_and_its_job_retried(tmp_path: Path, minimal_env, receiver_factory) -> None:
    archive = Path(minimal_env["RUNBOOK_ARCHIVE"])
    receiver = receiver_factory({**minimal_env, "RUNBOOK_WARM_KERNELS": "0"}, workers=1)  # cold: a run takes a second
    payloads = burst_payloads(12)
    assert {r.status for r in post_all(f"{receiver.url}/alerts", payloads, TOKEN)} == {200}
    wait_for("two records", lambda: done_count(archive) >= 2, 60, receiver)
    [worker] = subprocess.run(
        ["pgrep", "-P", str(receiver.proc.pid), "-f", "multiprocessing.spawn"], capture_output=True, text=True
    ).stdout.split()

    def just_claimed() -> bool:  # a run takes about a second: kill it right after it started
        rows = journal_rows(archive, "SELECT claimed_at FROM jobs WHERE state = 'running'")
        return bool(rows) and time.time() - rows[0]["claimed_at"] < 0.2

    wait_for("a job that has just started", just_claimed, 60, receiver)
    os.kill(int(worker), signal.SIGKILL)
    wait_for("12 records", lambda: done_count(archive) >= 12, 120, receiver)
    recs = records(archive)
    assert sorted(r["alert"]["fingerprint"] for r in recs) == sorted(p["alerts"][0]["fingerprint"] for p in payloads)
    retried = [r for r in recs if r["attempt"] == 2]
    assert len(retried) == 1 and f"worker {worker} died" in " ".join(retried[0]["notes"])
    assert httpx.get(f"{receiver.url}/healthz").json()["workers"] == 1


class Capture(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, json.loads(body)))
        self.send_response(202)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def test_slack_and_pagerduty_notifications(tmp_path: Path, minimal_env, receiver_factory) -> None:
    Capture.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    slack_secret = "T0001/B0001/SlackSecretPath42"
    env = {
        **minimal_env,
        "RUNBOOK_SLACK_WEBHOOK_URL": f"{base}/services/{slack_secret}",
        "RUNBOOK_PAGERDUTY_ROUTING_KEY": "pd-routing-key-123456",
        "RUNBOOK_PAGERDUTY_URL": f"{base}/v2/enqueue",
        "RUNBOOK_RECORD_BASE_URL": "http://runbooks.test:9095",
        "RUNBOOK_WARM_KERNELS": "0",  # three runs: cold kernels cost less than a kernel template
    }
    archive = Path(env["RUNBOOK_ARCHIVE"])
    receiver = receiver_factory(env, workers=1)
    try:
        critical, warning = burst_payloads(2)
        critical["alerts"][0]["labels"]["severity"] = "critical"
        assert post_all(f"{receiver.url}/alerts", [critical], TOKEN)[0].status == 200
        wait_for("Slack and PagerDuty", lambda: len(Capture.received) >= 2, 60, receiver)
        resolved = json.loads(json.dumps(critical))
        resolved["alerts"][0]["status"] = "resolved"
        resolved["alerts"][0]["endsAt"] = "2099-01-01T00:00:00Z"
        assert post_all(f"{receiver.url}/alerts", [resolved], TOKEN)[0].status == 200
        wait_for("the resolved message", lambda: len(Capture.received) >= 3, 60, receiver)
        assert post_all(f"{receiver.url}/alerts", [warning], TOKEN)[0].status == 200
        wait_for("the warning's Slack message", lambda: len(Capture.received) >= 4, 60, receiver)
        time.sleep(1)
    finally:
        server.shutdown()
    by_path: dict[str, list[dict[str, Any]]] = {}
    for path, body in Capture.received:
        by_path.setdefault(path, []).append(body)
    slack = by_path[f"/services/{slack_secret}"]
    first = next(r for r in records(archive) if r["alert"]["fingerprint"] == critical["alerts"][0]["fingerprint"])
    assert "BurstAlert" in slack[0]["text"] and f"http://runbooks.test:9095/records/{first['id']}" in json.dumps(
        slack[0]
    )
    assert "RESOLVED" in json.dumps(slack[1]) and "warning" in json.dumps(slack[2])
    pd = by_path["/v2/enqueue"]
    assert len(pd) == 1, "PagerDuty pages for critical alerts only; Alertmanager resolves its own incident"
    assert pd[0]["event_action"] == "trigger" and pd[0]["routing_key"] == "pd-routing-key-123456"
    assert pd[0]["payload"]["severity"] == "critical" and pd[0]["links"][0]["href"].endswith(first["id"])
    assert pd[0]["dedup_key"] == hashlib.sha256(critical["groupKey"].encode()).hexdigest()
    for folder in LocalArchive(archive).root.glob("20*/*/*/*"):
        for f in folder.iterdir():
            assert slack_secret not in f.read_text() and "pd-routing-key-123456" not in f.read_text()
    assert slack_secret not in receiver.log_path.read_text()


def test_serve_refuses_without_credentials_and_insecure_only_on_loopback(tmp_path: Path) -> None:
    runbook = str(Path(sys.executable).parent / "runbook")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNBOOK_WEBHOOK")}
    env["RUNBOOK_ARCHIVE"] = str(tmp_path / "executed")
    res = subprocess.run(
        [runbook, "serve", "--port", str(free_port())], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert res.returncode == 2 and "no webhook credentials configured" in res.stderr
    res = subprocess.run(
        [runbook, "serve", "--host", "0.0.0.0", "--port", str(free_port()), "--insecure-no-auth"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 2 and "only works on a loopback address" in res.stderr
    svc = start_receiver(tmp_path / "insecure", env, workers=1, extra_args=["--insecure-no-auth"])
    try:
        resp = httpx.post(f"{svc.url}/alerts", json=alert_payload())
        assert resp.status_code == 200  # no credentials configured, loopback: allowed
        second = subprocess.run(
            [runbook, "serve", "--port", str(free_port()), "--insecure-no-auth"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1 and "another receiver is already serving the journal" in second.stderr
    finally:
        svc.stop()
