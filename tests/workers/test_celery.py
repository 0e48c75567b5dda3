"""The celery executor against real RabbitMQ (a vhost of its own): `runbook serve --executor
celery` and two `runbook worker` processes, a burst of alerts through the receiver, one
worker killed with SIGKILL mid-run. Every alert gets exactly one record, the one interrupted run
is redelivered and marked retried, and the archive verifies."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import verify
from runbook_lib.sandbox.services import Service, start_receiver, wait_for
from tests.helpers import HOME
from tests.support.load import burst_payloads, post_all
from tests.support.minimal import make_runbook, write_minimal_collection
from tests.support.services import rabbitmq_vhost, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.services]
TOKEN = "celery-token-" + os.urandom(6).hex()
SIGNING_KEY = "celery-signing-key-" + os.urandom(16).hex()
BURST = 24  # enough to catch a worker mid-run; records per minute are benchmarks/celery_scale.py's
STARTED = re.compile(r"job started id=(\d+) .* record=(\S+) attempt=(\d+)")
WRITTEN = re.compile(r"record written id=(\S+) job=(\d+)")


def journal(archive: Path, sql: str) -> list[sqlite3.Row]:
    with sqlite3.connect(archive / "intake.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute(sql).fetchall()


def mid_run(worker: Service) -> tuple[int, str] | None:
    """(job, record id) the worker is running now, read from its log, or None between runs."""
    text = worker.log_path.read_text(errors="replace")
    started = {m.group(2): int(m.group(1)) for m in STARTED.finditer(text)}
    for m in WRITTEN.finditer(text):
        started.pop(m.group(1), None)
    return next(iter(((job, rid) for rid, job in started.items())), None)


def metric(text: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    assert m, f"{name}{labels} not in /metrics"
    return float(m.group(1))


def test_two_workers_a_burst_and_a_worker_killed_mid_run(tmp_path: Path) -> None:
    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)
    # noop, but long enough (0.3 s) that a worker is surely caught mid-run
    make_runbook(runbooks, "noop", "import time\ntime.sleep(0.3)", 'rb.finding("noop", "info", "ran")')
    archive = tmp_path / "executed"
    with rabbitmq_vhost("rbcelery") as vhost:
        env = {
            "RUNBOOK_ARCHIVE": str(archive),
            "RUNBOOK_RUNBOOKS_DIR": str(runbooks),
            "RUNBOOK_CATALOG": str(catalog),
            "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
            "RUNBOOK_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
            "RUNBOOK_BROKER_SIGNING_KEY": SIGNING_KEY,
            "RUNBOOK_EXECUTOR": "celery",
        }
        services: list[Service] = []
        try:
            receiver = start_receiver(tmp_path / "receiver", env)
            services.append(receiver)
            one = start_worker(tmp_path / "w1", env, "worker-1")
            services.append(one)
            two = start_worker(tmp_path / "w2", env, "worker-2")
            services.append(two)
            wait_for(  # the broker's consumer count
                "the receiver to see both workers",
                lambda: httpx.get(f"{receiver.url}/healthz").json()["workers"] == 2,
                30,
            )

            payloads = burst_payloads(BURST)
            results: list[Any] = []
            poster = threading.Thread(
                target=lambda: results.extend(post_all(f"{receiver.url}/alerts", payloads, TOKEN, concurrency=10))
            )
            poster.start()
            wait_for("worker 1 to have run a few", lambda: len(WRITTEN.findall(one.log_path.read_text())) >= 3, 120)
            killed = None
            deadline = time.monotonic() + 60
            while killed is None and time.monotonic() < deadline:
                killed = mid_run(one)
                if killed is None:
                    time.sleep(0.01)
            assert killed is not None, "worker 1 was never seen mid-run"
            os.kill(one.proc.pid, signal.SIGKILL)  # kill -9, mid-run, mid-burst
            one.proc.wait()
            metrics = httpx.get(f"{receiver.url}/metrics").text
            poster.join(120)
            assert [r.status for r in results] == [200] * BURST

            def all_done() -> bool:
                return journal(archive, "SELECT count(*) AS n FROM jobs WHERE state = 'done'")[0]["n"] >= BURST

            wait_for(f"{BURST} jobs done", all_done, 300, receiver)
            # while work was waiting, /metrics said so for this executor
            # in flight: what the (at most two) workers hold; a run taken or finished between the
            # scrape's two reads (journal, then broker) may count once more
            flight = metric(metrics, "runbook_runs_in_flight", '{executor="celery"}')
            assert 0 <= flight <= 4, metrics
            assert metric(metrics, "runbook_queue_depth", '{state="queued"}') > 0
        finally:
            for svc in services:
                svc.stop()

    arc = LocalArchive(archive)
    records = [arc.load(e["id"]) for e in arc.entries() if e["type"] == "record"]
    fingerprints = [r["alert"]["fingerprint"] for r in records]
    assert len(records) == BURST and len(set(fingerprints)) == BURST  # every alert, exactly once
    assert sorted(fingerprints) == sorted(p["alerts"][0]["fingerprint"] for p in payloads)
    assert {r["status"] for r in records} == {"succeeded"}
    job, rid = killed
    retried = [r for r in records if r["attempt"] > 1]
    assert [r["id"] for r in retried] == [rid]  # the interrupted run, and only it
    assert "interrupted" in " ".join(retried[0]["notes"]) and retried[0]["intake"]["job"] == job
    second = two.log_path.read_text()
    assert f"job started id={job} " in second  # redelivered to the surviving worker
    rows = journal(archive, f"SELECT outcome, record_id, worker FROM jobs WHERE id = {job}")
    assert (rows[0]["outcome"], rows[0]["record_id"]) == ("succeeded", rid)
    assert verify(arc) == (BURST, [])


def test_the_dispatcher_resends_what_the_broker_never_confirmed_and_finishes_each_job_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver that died between claiming a job and the broker's confirm sends it again at
    start (task id = job id); a worker's completion report finishes the job; a repeated report
    (a redelivered job reported twice) changes nothing."""
    from kombu import Connection

    from runbook_lib.core.settings import load_settings
    from runbook_lib.intake.journal import Intake
    from runbook_lib.sre.alertmanager import parse_payload
    from runbook_lib.workers.celery_executor import CLAIMED, SENT, Dispatcher, make_app, run_queue, send_done

    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)
    with rabbitmq_vhost("rbdispatch") as vhost:
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        for var, value in {
            "RUNBOOK_ARCHIVE": str(tmp_path / "executed"),
            "RUNBOOK_RUNBOOKS_DIR": str(runbooks),
            "RUNBOOK_CATALOG": str(catalog),
            "RUNBOOK_BROKER_URL": url,
            "RUNBOOK_BROKER_SIGNING_KEY": SIGNING_KEY,
        }.items():
            monkeypatch.setenv(var, value)
        settings = load_settings()
        intake = Intake.from_settings(settings)
        payload = burst_payloads(1)[0]
        intake.accept(parse_payload(payload), json.dumps(payload))
        job = intake.claim(CLAIMED)  # as a dispatcher that died before the broker confirmed
        assert job is not None and job.worker == CLAIMED

        dispatcher = Dispatcher(settings)
        dispatcher.start()
        try:
            wait_for("the job to be sent", lambda: intake.running(SENT) != [], 30)
            with Connection(url) as conn:
                queue = run_queue(settings)(conn.default_channel)
                message = queue.get(no_ack=False)
                assert message is not None and message.headers["id"] == str(job.id)
                plan = message.decode()[0][0]
                assert plan["job"] == job.id and plan["slug"] == "noop" and plan["attempt"] == 1
                assert plan["record_id"] == intake.running(SENT)[0].record_id  # assigned before sending
                message.ack()
            done = {"job": job.id, "outcome": "succeeded", "record_id": plan["record_id"], "notes": ["first"]}
            send_done(make_app(settings), settings, done)
            wait_for("the job to be finished", lambda: intake.job_state(job.id) == "done", 30)
            send_done(make_app(settings), settings, {**done, "outcome": "failed", "notes": ["second"]})
            send_done(make_app(settings), settings, {"job": "not a number"})  # malformed: dropped, not fatal
            time.sleep(1.5)
            with Connection(url) as conn:
                _, waiting, _ = conn.default_channel.queue_declare(
                    f"{settings.receiver.celery_queue}.done", passive=True
                )
            assert waiting == 0  # every report was consumed
        finally:
            dispatcher.stop()
        row = next(r for r in intake.jobs() if r["id"] == job.id)
        assert (row["outcome"], row["record_id"], json.loads(row["notes"])) == (
            "succeeded",
            plan["record_id"],
            ["first"],
        )
