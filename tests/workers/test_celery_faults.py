"""The celery executor when things go wrong, against real RabbitMQ and moto's S3 server: the
archive down for a minute while jobs run, poison and forged messages on both queues. Nothing is
lost, nothing forged runs or finishes a job, and the queues keep flowing."""

from __future__ import annotations

import json
import os
import pickle
import re
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from kombu import Connection

from runbook_lib.kernel.drills.injectors import TcpProxy
from runbook_lib.record.archive import LocalArchive, open_archive
from runbook_lib.record.archive.verify import verify
from runbook_lib.sandbox.services import Service, start_receiver, wait_for
from tests.helpers import HOME
from tests.support.load import burst_payloads, post_all
from tests.support.minimal import make_runbook, write_minimal_collection
from tests.support.services import rabbitmq_vhost, start_s3, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.services]
TOKEN = "faults-token-" + os.urandom(6).hex()
KEY = "faults-signing-key-" + os.urandom(16).hex()
AWS = {
    "AWS_ACCESS_KEY_ID": "AKIATESTINGFAULTS001",
    "AWS_SECRET_ACCESS_KEY": "faults-secret-" + os.urandom(6).hex(),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


def jobs(journal: Path) -> list[sqlite3.Row]:
    with sqlite3.connect(journal) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT id, state, outcome, record_id, notes FROM jobs ORDER BY id").fetchall()


def done(journal: Path) -> int:
    return sum(1 for row in jobs(journal) if row["state"] == "done")


def queue_depth(url: str, name: str) -> int:
    with Connection(url) as conn:
        return int(conn.default_channel.queue_declare(name, passive=True)[1])


def parked(url: str, name: str = "runbook.runs.parked") -> list[dict[str, Any]]:
    """Every parked message (taken off the queue): its reason, where it came from, its body."""
    out = []
    with Connection(url) as conn:
        channel = conn.default_channel
        while (message := channel.basic_get(name, no_ack=True)) is not None:
            headers = message.headers or {}
            out.append(
                {
                    "reason": headers.get("x-parked-reason"),
                    "from": headers.get("x-parked-from"),
                    "body": message.body if isinstance(message.body, bytes) else message.body.encode(),
                }
            )
    return out


def children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), cmdline))
    return found


def spare_kernels(worker_pid: int) -> int:
    """Kernels forked and waiting under the worker's kernel template."""
    templates = [p for p, cmd in children(worker_pid) if "runbook_lib.kernel.template" in cmd]
    return sum(len(children(t)) for t in templates)


@pytest.fixture
def collection(tmp_path: Path) -> dict[str, str]:
    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)
    # noop, slow enough (2 s) to be caught mid-run by a forged report
    make_runbook(runbooks, "noop", "import time\ntime.sleep(2)", 'rb.finding("noop", "info", "ran")')
    return {"RUNBOOK_RUNBOOKS_DIR": str(runbooks), "RUNBOOK_CATALOG": str(catalog)}


def start_workers(tmp_path: Path, env: dict[str, str], n: int) -> list[Service]:
    """``n`` `runbook worker` processes, started side by side (each warms its kernels)."""
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(start_worker, tmp_path / f"worker-{i}", env, f"worker-{i}") for i in range(n)]
    return [f.result() for f in futures]


def test_an_archive_down_for_a_minute_loses_no_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten jobs while the S3 endpoint refuses every connection for 60 s: the worker retries each
    (Celery's retry, no limit), nothing is acknowledged as done meanwhile, and once the archive is
    back there are exactly ten records and the chain verifies."""
    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)  # noop: one finding, at once
    collection = {"RUNBOOK_RUNBOOKS_DIR": str(runbooks), "RUNBOOK_CATALOG": str(catalog)}
    moto = start_s3(tmp_path / "moto")
    proxy = TcpProxy("127.0.0.1", moto.port).start()
    bucket = f"rbfaults-{uuid.uuid4().hex[:10]}"
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=moto.url).create_bucket(Bucket=bucket)
    journal = tmp_path / "journal" / "intake.sqlite3"
    journal.parent.mkdir()
    services: list[Service] = []
    try:
        with rabbitmq_vhost("rbarchive") as vhost:
            env = {
                **AWS,
                **collection,
                "RUNBOOK_ARCHIVE": f"s3://{bucket}/records",
                "RUNBOOK_ARCHIVE_ENDPOINT": f"http://127.0.0.1:{proxy.port}",
                "RUNBOOK_JOURNAL": str(journal),
                "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
                "RUNBOOK_BROKER_URL": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
                "RUNBOOK_BROKER_SIGNING_KEY": KEY,
                "RUNBOOK_EXECUTOR": "celery",
                "RUNBOOK_RETRY_MAX_S": "4",  # the default 30 s would only make the test wait longer
            }
            receiver = start_receiver(tmp_path / "receiver", env)
            services.append(receiver)
            # three workers: enough tries in the minute that jobs go past Celery's default of 3 retries
            workers = start_workers(tmp_path, env, 3)
            services += workers

            proxy.partition("refuse")
            payloads = burst_payloads(10)
            answers = post_all(f"{receiver.url}/alerts", payloads, TOKEN, concurrency=5)
            assert [r.status for r in answers] == [200] * 10
            # down for a minute, and on until some job has failed more often than Celery's default
            # of 3 retries allows (each failed try takes seconds: the S3 client's own retries)
            outage_ends, give_up = time.monotonic() + 60, time.monotonic() + 300
            tries: Counter[str] = Counter()
            while time.monotonic() < outage_ends or max(tries.values(), default=0) <= 3:
                assert time.monotonic() < give_up, f"not enough retries in 5 minutes: {tries}"
                assert done(journal) == 0, "a job was finished while the archive was down"
                time.sleep(2)
                log = "".join(w.log_path.read_text(errors="replace") for w in workers)
                tries = Counter(m.group(1) for m in re.finditer(r"job (\d+): archive unavailable: .*; retrying", log))
            assert len(tries) == 10, tries
            assert "raised unexpected" not in log and "MaxRetriesExceeded" not in log
            proxy.heal()
            wait_for("all ten jobs done", lambda: done(journal) == 10, 120, receiver)
        rows = jobs(journal)
        assert {row["outcome"] for row in rows} == {"succeeded"}
        archive = open_archive(f"s3://{bucket}/records", endpoint=moto.url)
        records = [archive.load(e["id"]) for e in archive.entries() if e["type"] == "record"]
        fingerprints = sorted(r["alert"]["fingerprint"] for r in records)
        assert fingerprints == sorted(p["alerts"][0]["fingerprint"] for p in payloads)  # each once
        assert sorted(r["id"] for r in records) == sorted(row["record_id"] for row in rows)
        assert {r["attempt"] for r in records} == {1}  # an outage is no interruption
        assert verify(archive) == (10, [])
    finally:
        for svc in reversed(services):
            svc.stop()
        proxy.stop()
        moto.stop()


@pytest.fixture
def celery_receiver(tmp_path: Path, collection: dict[str, str]) -> Iterator[dict[str, Any]]:
    archive = tmp_path / "executed"
    with rabbitmq_vhost("rbpoison") as vhost:
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        env = {
            **collection,
            "RUNBOOK_ARCHIVE": str(archive),
            "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
            "RUNBOOK_BROKER_URL": url,
            "RUNBOOK_BROKER_SIGNING_KEY": KEY,
            "RUNBOOK_EXECUTOR": "celery",
        }
        services: list[Service] = []
        try:
            services.append(start_receiver(tmp_path / "receiver", env))
            services.append(start_worker(tmp_path / "worker", env))
            warm = spare_kernels(services[1].proc.pid)  # the moment /healthz first said ready
            yield {"receiver": services[0], "worker": services[1], "url": url, "archive": archive, "warm": warm}
        finally:
            for svc in reversed(services):
                svc.stop()


def post(receiver: Service, alertname: str) -> None:
    payload = burst_payloads(1)[0]
    payload["alerts"][0]["annotations"]["summary"] = alertname
    resp = httpx.post(f"{receiver.url}/alerts", json=payload, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200, resp.text


def test_poison_and_forged_messages_are_parked_and_dispatching_goes_on(celery_receiver: dict[str, Any]) -> None:
    """On the done queue: a pickle, a body that is not JSON, an unsigned report and one signed
    with another key, for a job that is running. On the run queue: an unsigned task and one
    signed with another key. None is believed or run; each is parked with its reason; the job
    ends with its real record, and an alert posted after all of them is diagnosed."""
    from celery import Celery

    from runbook_lib.core import signing

    receiver, worker, url = celery_receiver["receiver"], celery_receiver["worker"], celery_receiver["url"]
    assert celery_receiver["warm"] >= 1, "the worker said ready before its first run could be warm"
    journal = celery_receiver["archive"] / "intake.sqlite3"
    post(receiver, "Before")
    wait_for("the first job to be running", lambda: any(r["state"] == "running" for r in jobs(journal)), 60, worker)
    running = next(r for r in jobs(journal) if r["state"] == "running")
    forged_report = {"job": running["id"], "outcome": "succeeded", "record_id": "20261207T000000Z-noop-0badf00d"}
    other_key = "not-the-key-" + "x" * 32
    with Connection(url) as conn:
        producer = conn.Producer()
        done_q = "runbook.runs.done"
        producer.publish(
            pickle.dumps(forged_report),
            routing_key=done_q,
            content_type="application/x-python-serialize",
            content_encoding="binary",
        )
        producer.publish(b"{not json", routing_key=done_q, content_type="application/json", content_encoding="utf-8")
        producer.publish(forged_report, routing_key=done_q, serializer="json")
        producer.publish(
            {**forged_report, "sig": signing.sign_message(other_key, "done", forged_report)},
            routing_key=done_q,
            serializer="json",
        )
    plan = {"job": 999, "record_id": "20261207T000000Z-noop-0badcafe", "slug": "noop"}
    app = Celery("forger", broker=url, set_as_current=False)
    app.send_task("runbook.run", args=[plan], task_id="999", queue="runbook.runs")
    app.send_task(
        "runbook.run",
        args=[plan],
        kwargs={"sig": signing.sign_message(other_key, "task", {"id": "999", "plan": plan})},
        task_id="999",
        queue="runbook.runs",
    )
    post(receiver, "After")
    wait_for("both jobs done", lambda: [r["state"] for r in jobs(journal)] == ["done", "done"], 90, receiver)

    rows = jobs(journal)
    archive = LocalArchive(celery_receiver["archive"])
    for row in rows:
        assert row["outcome"] == "succeeded" and archive.is_indexed(row["record_id"])
        assert "0badf00d" not in row["record_id"]
    assert not archive.is_indexed(plan["record_id"]) and verify(archive) == (2, [])
    wait_for("six parked messages", lambda: queue_depth(url, "runbook.runs.parked") == 6, 30, receiver)
    got = sorted((p["from"], p["reason"]) for p in parked(url))
    expected = [
        ("runbook.run", "task refused: bad signature"),
        ("runbook.run", "task refused: unsigned"),
        ("runbook.runs.done", "ContentDisallowed: Refusing to deserialize untrusted content of type pickle"),
        ("runbook.runs.done", "DecodeError: Expecting property name"),
        ("runbook.runs.done", "report refused: bad signature"),
        ("runbook.runs.done", "report refused: unsigned"),
    ]
    assert len(got) == len(expected) and all(
        g[0] == e[0] and g[1].startswith(e[1]) for g, e in zip(got, expected, strict=True)
    ), got
    assert queue_depth(url, "runbook.runs.done") == 0 and queue_depth(url, "runbook.runs") == 0
    health = httpx.get(f"{receiver.url}/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok", health.text
    assert KEY not in receiver.log_path.read_text() + worker.log_path.read_text()
    assert json.dumps(forged_report) not in "".join(row["notes"] or "" for row in rows)
