"""The dlq-backlog runbook and `runbook dlq replay`, on the real RabbitMQ (127.0.0.1:5672), each
test in a virtual host of its own: a work queue whose rejected messages are dead-lettered (via
the fanout exchange ``dlx``) into ``dead_letter_queue``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pika
import psycopg
import pytest

import runbook_lib
from runbook_lib import checks
from runbook_lib.clients.rabbitmq import (
    REPLAY_HEADER,
    AccessRefused,
    QueueNotFound,
    RabbitMQ,
    Sources,
    describe,
    refusal,
)
from runbook_lib.core.errors import EXIT_FAILED, EXIT_USAGE
from runbook_lib.core.settings import load_settings
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox import services
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import alert_payload, cli

pytestmark = pytest.mark.services

DLQ = "dead_letter_queue"
WORK, WORK_QUEUE, ROUTING_KEY = "work", "work_q", "task.run"
BAD_PASSWORD = "wrong-pw-7f3a9c"
EXTRA_QUEUES = ("expiring", "dlq_quorum", "victim_payments")  # queues single tests declare besides the two above
SOURCES = Sources(frozenset({WORK_QUEUE, "expiring"}), "the test's allow-list")  # what dead-letters into DLQ
MANAGEMENT = "http://127.0.0.1:15672"


# -- the broker -----------------------------------------------------------------------------------
@pytest.fixture
def vhost(vhost: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The session's virtual host with the work queue and its dead-letter queue declared afresh
    (what an earlier test left is deleted first); the environment points RUNBOOK_RABBITMQ_URL at it."""
    url = url_for(vhost)
    conn, ch = channel(url)
    for queue in (DLQ, WORK_QUEUE, *EXTRA_QUEUES):
        ch.queue_delete(queue)
    for exchange in ("dlx", WORK, "gone"):
        ch.exchange_delete(exchange)
    conn.close()
    declare(url)
    for var in (
        "RUNBOOK_RABBITMQ_URL_FILE",
        "RUNBOOK_DLQ_QUEUE",
        "RUNBOOK_POSTGRES_DSN",
        "RUNBOOK_RABBITMQ_MANAGEMENT_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RUNBOOK_RABBITMQ_URL", url)
    monkeypatch.setenv("RUNBOOK_DLQ_SOURCES", ",".join(sorted(SOURCES.queues)))
    return vhost


def url_for(vhost: str, password: str = "guest") -> str:
    return f"amqp://guest:{password}@127.0.0.1:5672/{vhost}"


def channel(url: str) -> tuple[pika.BlockingConnection, Any]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    return conn, conn.channel()


def declare(url: str) -> None:
    conn, ch = channel(url)
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare(DLQ)
    ch.queue_bind(DLQ, "dlx")
    ch.exchange_declare(WORK, "direct")
    ch.queue_declare(WORK_QUEUE, arguments={"x-dead-letter-exchange": "dlx"})
    ch.queue_bind(WORK_QUEUE, WORK, ROUTING_KEY)
    conn.close()


def dead_letter(url: str, n: int, prefix: str = "msg", headers: dict[str, Any] | None = None) -> list[str]:
    """Publish ``n`` messages with distinct ids to the work queue and reject each
    (requeue=False) into the DLQ; returns their ids once the DLQ holds them."""
    conn, ch = channel(url)
    ids = [f"{prefix}-{i:05d}" for i in range(n)]
    before = ch.queue_declare(DLQ, passive=True).method.message_count
    for mid in ids:
        ch.basic_publish(
            WORK, ROUTING_KEY, f"body of {mid}".encode(), pika.BasicProperties(message_id=mid, headers=headers)
        )
    for _ in ids:
        method, _props, _body = ch.basic_get(WORK_QUEUE)
        ch.basic_reject(method.delivery_tag, requeue=False)
    conn.close()
    wait_depth(url, DLQ, before + n)
    return ids


def wait_depth(url: str, queue: str, at_least: int, timeout: float = 15) -> int:
    mq = RabbitMQ(url)
    deadline = time.monotonic() + timeout
    while (depth := mq.depth(queue)) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return depth


def drain(url: str, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """Take every message of ``queue`` (acked): (message id, headers) each."""
    conn, ch = channel(url)
    out = []
    while True:
        method, props, _body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append((props.message_id, dict(props.headers or {})))
    conn.close()
    return out


def audit_rows(dsn: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT actor, resource_id, outcome, details FROM audit_logs WHERE action = 'runbook.dlq_replay' ORDER BY id"
        ).fetchall()


# -- running the runbook ----------------------------------------------------------------------------
@pytest.fixture
def run(archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    """dlq-backlog through the runner (a fresh kernel); returns record.json."""

    def go(alertname: str | None = None, dsn: str | None = None, **request: Any) -> dict[str, Any]:
        if dsn:
            monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", dsn)
        alert = parse_alert(alert_payload(alertname)["alerts"][0]) if alertname else None
        result = Runner(load_settings()).run(
            RunRequest(alert=alert, slug=None if alertname else "dlq-backlog", **request)
        )
        assert result.status == "succeeded", result.record.get("failed_cell")
        assert result.record["runbook"] == "dlq-backlog"
        return result.record

    return go


def finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    found = [f for f in record["findings"] if f["check"] == check]
    assert found, f"no {check!r} finding in {[f['check'] for f in record['findings']]}"
    return found[0]


def action(record: dict[str, Any], name: str = "dlq_replay") -> dict[str, Any]:
    return next(a for a in record["actions"] if a["name"] == name)


# -- the runbook ------------------------------------------------------------------------------------
def test_dlq_backlog_names_the_queue_the_reason_and_the_count_and_loses_nothing(vhost: str, run) -> None:
    url = url_for(vhost)
    ids = dead_letter(url, 37)
    record = run("DLQBacklog")
    depth = finding(record, "Dead-letter queue depth")
    assert depth["details"] == {"queue": DLQ, "messages": 37, "threshold": 100} and depth["role"] == "symptom"
    cause = finding(record, "Dead letters by reason")
    assert cause.get("role") is None and cause["verdict"] == "warning", "what died is evidence; step 4 says why"
    details = cause["details"]
    assert details["original_queue"] == WORK_QUEUE and details["reason"] == "rejected"
    assert details["count"] == 37 and details["sampled"] == 37
    assert details["routing_key"] == ROUTING_KEY and details["replayable"] == 37
    assert details["by_reason"] == {"rejected": 37} and details["by_original_queue"] == {WORK_QUEUE: 37}
    assert "37 of 37" in cause["summary"] and WORK_QUEUE in cause["summary"] and "rejected" in cause["summary"]
    trend = finding(record, "Dead-letter queue trend")
    assert trend["verdict"] == "unchecked" and trend["summary"].startswith("Prometheus: "), "no Prometheus here"
    consumer = finding(record, "Consumer of the dead letters' queue")
    assert consumer["cause"] == "no_consumer" and consumer["verdict"] == "critical"
    assert consumer["details"]["consumers"] == 0 and consumer["details"]["source"] == WORK_QUEUE
    assert record["diagnosis"]["cause_code"] == "no_consumer"
    assert record["diagnosis"]["recommended_action"]["name"] == "escalate"
    proposed = action(record)
    assert proposed["status"] == "proposed" and proposed["recommended"] is False, "nobody would take them"
    assert (
        proposed["command"]
        == "runbook dlq replay --queue dead_letter_queue --limit 100 --max-replays 3 --operator NAME"
    )
    assert proposed["plan"]["depth"] == 37 and "preview" not in proposed["plan"], "diagnose mode peeks nothing"
    assert "guest" not in json.dumps(record).replace("[REDACTED]", ""), "the password never reaches a record"
    assert wait_depth(url, DLQ, 37) == 37
    assert sorted(mid for mid, _ in drain(url, DLQ)) == ids, "peeked and put back: every one still there"


def test_the_trend_comes_from_prometheus_and_is_info_when_absent(
    vhost: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Prometheus of this test's own holding a DLQ that grew 0 -> 240 over the last hour."""
    now = time.time()
    lines = ["# TYPE rabbitmq_queue_messages gauge"]
    lines += [
        f'rabbitmq_queue_messages{{queue="{DLQ}",vhost="{vhost}"}} {4 * m} {now - 3600 + 60 * m:.3f}' for m in range(61)
    ]
    (tmp_path / "dlq.om").write_text("\n".join(lines) + "\n# EOF\n")
    services.backfill(tmp_path / "dlq.om", tmp_path / "tsdb")
    prom = services.start_prometheus(tmp_path, tmp_path / "tsdb")
    try:
        monkeypatch.setenv("RUNBOOK_PROMETHEUS_URL", prom.url)
        rb = runbook_lib.start()
        grew = checks.dlq.trend(rb)
        assert grew.series and grew.first == 0 and grew.last == 240 and 3.5 < (grew.per_minute or 0) < 4.5
        assert rb.findings[-1]["verdict"] == "warning" and "still growing" in rb.findings[-1]["summary"]
        absent = checks.dlq.trend(rb, "other_queue")
        assert not absent.series and absent.checked
        assert (
            rb.findings[-1]["verdict"] == "info" and "No rabbitmq_queue_messages series" in rb.findings[-1]["summary"]
        )
    finally:
        prom.stop()


def test_a_consumer_still_rejecting_is_named_and_no_replay_is_recommended(vhost: str, run) -> None:
    """Once the runbook recommended replaying while the consumer still failed: the letters came
    straight back."""
    from tests.faults.cases.workflows import consuming

    url = url_for(vhost)
    dead_letter(url, 20)
    with consuming(url, WORK_QUEUE, fail=True, publish_every_s=0.3):
        time.sleep(1)
        record = run("DLQBacklog")
    consumer = finding(record, "Consumer of the dead letters' queue")
    assert consumer["cause"] == "consumer_failing" and consumer["verdict"] == "critical"
    assert consumer["details"]["consumers"] == 1 and consumer["details"]["still_arriving"] is True
    assert record["diagnosis"]["cause_code"] == "consumer_failing"
    assert action(record)["recommended"] is False
    assert record["diagnosis"]["recommended_action"]["name"] == "escalate"
    assert WORK_QUEUE in record["diagnosis"]["recommended_action"]["title"]


def test_a_consumer_that_works_again_gets_its_dead_letters_replayed(
    vhost: str, run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No dead letter for longer than rabbitmq.quiet_s (2 s here) and a consumer attached."""
    from tests.faults.cases.workflows import consuming
    from tests.helpers import own_parameters

    own_parameters(tmp_path, monkeypatch, "rabbitmq:\n  quiet_s: 2\n")
    url = url_for(vhost)
    dead_letter(url, 20)
    with consuming(url, WORK_QUEUE, fail=False):
        time.sleep(3.5)
        record = run("DLQBacklog")
    consumer = finding(record, "Consumer of the dead letters' queue")
    assert consumer["cause"] == "consumer_recovered" and consumer["details"]["still_arriving"] is False
    assert record["diagnosis"]["cause_code"] == "consumer_recovered"
    assert action(record)["recommended"] is True
    assert record["diagnosis"]["recommended_action"]["name"] == "dlq_replay"


def test_expired_dead_letters_are_counted_apart_and_not_replayed_unless_asked(vhost: str, run, fresh_db: str) -> None:
    url = url_for(vhost)
    conn, ch = channel(url)
    ch.queue_declare("expiring", arguments={"x-dead-letter-exchange": "dlx", "x-message-ttl": 0})
    for i in range(30):
        ch.basic_publish("", "expiring", b"x", pika.BasicProperties(message_id=f"exp-{i}"))
    conn.close()
    wait_depth(url, DLQ, 30)
    dead_letter(url, 5)
    record = run("DLQBacklog")
    letters = finding(record, "Dead letters by reason")["details"]
    assert (letters["expired"], letters["replayable"]) == (30, 5) and "30 expired (TTL" in finding(
        record, "Dead letters by reason"
    )["summary"]
    consumer = finding(record, "Consumer of the dead letters' queue")
    assert consumer["cause"] == "messages_expired" and record["diagnosis"]["cause_code"] == "messages_expired"
    assert action(record)["recommended"] is False
    dry = cli("dlq", "replay", "--queue", DLQ, "--dry-run", "--json")
    assert json.loads(dry.stdout)["refused_by_reason"] == {"expired": 30} and json.loads(dry.stdout)["replayed"] == 5
    both = cli("dlq", "replay", "--queue", DLQ, "--dry-run", "--json", "--include-expired")
    assert json.loads(both.stdout)["replayed"] == 35 and json.loads(both.stdout)["include_expired"] is True
    res = cli("dlq", "replay", "--queue", DLQ, "--operator", "alice", "--json", env={"RUNBOOK_POSTGRES_DSN": fresh_db})
    assert json.loads(res.stdout)["replayed"] == 5 and wait_depth(url, DLQ, 30) == 30, "the expired stay"


# -- the replay tool --------------------------------------------------------------------------------
def test_replay_returns_every_dead_letter_exactly_once_and_audits(vhost: str, fresh_db: str) -> None:
    url = url_for(vhost)
    ids = dead_letter(url, 37)
    dry = cli("dlq", "replay", "--queue", DLQ, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["replayed"] == 37 and json.loads(dry.stdout)["dry_run"] is True
    no_db = cli("dlq", "replay", "--queue", DLQ, "--operator", "alice")
    assert no_db.returncode == EXIT_USAGE and "RUNBOOK_POSTGRES_DSN" in no_db.stderr, no_db.stderr
    no_operator = cli("dlq", "replay", "--queue", DLQ, env={"RUNBOOK_POSTGRES_DSN": fresh_db})
    assert no_operator.returncode == EXIT_USAGE and "--operator" in no_operator.stderr
    assert wait_depth(url, DLQ, 37) == 37 and audit_rows(fresh_db) == [], "dry run and refusals change nothing"

    res = cli("dlq", "replay", "--queue", DLQ, "--operator", "alice", "--json", env={"RUNBOOK_POSTGRES_DSN": fresh_db})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["replayed"] == 37 and out["refused"] == 0 and out["depth_after"] == 0
    assert out["to"] == [{"exchange": "", "routing_key": WORK_QUEUE, "messages": 37}]  # the queue they died in
    assert out["sources"] == sorted(SOURCES.queues) and "allow-list" in out["sources_from"]
    assert RabbitMQ(url).depth(DLQ) == 0
    back = drain(url, WORK_QUEUE)
    assert sorted(mid for mid, _ in back) == ids, "each dead letter back in the work queue exactly once"
    assert {h[REPLAY_HEADER] for _, h in back} == {1} and all(h["x-death"][0]["reason"] == "rejected" for _, h in back)
    rows = audit_rows(fresh_db)
    assert [(actor, queue, outcome) for actor, queue, outcome, _ in rows] == [
        ("alice", DLQ, "started"),
        ("alice", DLQ, "succeeded"),
    ]
    assert rows[0][3]["depth"] == 37 and rows[0][3]["from"] == f"amqp://127.0.0.1:5672/{vhost}"
    assert rows[1][3]["result"]["replayed"] == 37 and rows[1][3]["result"]["to"] == out["to"]


def test_a_replay_killed_mid_way_loses_nothing_and_duplicates_at_most_one(vhost: str, fresh_db: str) -> None:
    url = url_for(vhost)
    n = 3000
    ids = dead_letter(url, n)
    env = {**os.environ, "RUNBOOK_POSTGRES_DSN": fresh_db}
    argv = [str(Path(sys.executable).parent / "runbook"), "dlq", "replay", "--queue", DLQ, "--operator", "alice"]
    proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # progress every 100 messages: kill once some were replayed
            if "dlq replay: " in line and int(line.split(" replayed")[0].rsplit(" ", 1)[1]) >= 300:
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the replay was killed, not finished"
    moved = RabbitMQ(url).depth(WORK_QUEUE)
    assert 300 <= moved < n, moved
    assert wait_depth(url, DLQ, n - moved) >= n - moved, "the broker requeued what was not acked"

    again = cli(
        "dlq", "replay", "--queue", DLQ, "--operator", "alice", "--json", env={"RUNBOOK_POSTGRES_DSN": fresh_db}
    )
    assert again.returncode == 0, again.stderr
    assert RabbitMQ(url).depth(DLQ) == 0
    back = Counter(mid for mid, _ in drain(url, WORK_QUEUE))
    assert set(back) == set(ids), "nothing lost"
    assert sum(back.values()) - n <= 1 and all(c <= 2 for c in back.values()), "at most the one in flight twice"
    assert [r[2] for r in audit_rows(fresh_db)] == ["started", "started", "succeeded"], "the killed run: no outcome"


def test_max_replays_no_x_death_and_dead_again_stay_in_the_queue(vhost: str) -> None:
    url = url_for(vhost)
    worn = dead_letter(url, 2, "worn", headers={REPLAY_HEADER: 3})
    once_more = dead_letter(url, 1, "last", headers={REPLAY_HEADER: 2})
    conn, ch = channel(url)
    ch.basic_publish("", DLQ, b"straight in", pika.BasicProperties(message_id="no-death"))
    conn.close()
    wait_depth(url, DLQ, 4)
    res = cli("dlq", "replay", "--queue", DLQ, "--dry-run", "--json")
    assert json.loads(res.stdout)["refused_by_reason"] == {"max_replays": 2, "no_x_death": 1}

    result = RabbitMQ(url).replay(DLQ, SOURCES, max_replays=3)
    assert (result.replayed, dict(result.refused)) == (1, {"max_replays": 2, "no_x_death": 1})
    assert result.depth_after == 3
    assert sorted(mid for mid, _ in drain(url, DLQ)) == sorted([*worn, "no-death"])
    assert [(mid, h[REPLAY_HEADER]) for mid, h in drain(url, WORK_QUEUE)] == [(once_more[0], 3)]

    # A message that dies again while the run is going is left for the next run, never replayed twice.
    conn, ch = channel(url)
    ch.queue_declare("expiring", arguments={"x-dead-letter-exchange": "dlx", "x-message-ttl": 0})
    for i in range(50):
        ch.basic_publish("", "expiring", b"x", pika.BasicProperties(message_id=f"exp-{i}"))
    conn.close()
    wait_depth(url, DLQ, 50)
    kept = RabbitMQ(url).replay(DLQ, SOURCES)
    assert (kept.replayed, dict(kept.refused)) == (0, {"expired": 50}), "expired ones stay unless asked"
    looped = RabbitMQ(url).replay(DLQ, SOURCES, include_expired=True)
    assert looped.replayed == 50 and set(looped.refused) <= {"dead_again"}
    back = drain(url, DLQ) if wait_depth(url, DLQ, 50) == 50 else []
    assert len(back) == 50 and {h[REPLAY_HEADER] for _, h in back} == {1}


def test_a_republish_nobody_receives_is_not_acked(vhost: str) -> None:
    """mandatory + confirms: a dead letter whose queue is gone (the default exchange cannot route
    to it) stays in the DLQ, and goes back once the queue is there again."""
    url = url_for(vhost)
    ids = dead_letter(url, 3)
    conn, ch = channel(url)
    ch.queue_delete(WORK_QUEUE)
    conn.close()
    stuck = RabbitMQ(url).replay(DLQ, SOURCES)
    assert (stuck.replayed, dict(stuck.refused), stuck.depth_after) == (0, {"unroutable": 3}, 3)
    declare(url)
    fixed = RabbitMQ(url).replay(DLQ, SOURCES)
    assert (fixed.replayed, dict(fixed.refused), fixed.depth_after) == (3, {}, 0)
    assert sorted(mid for mid, _ in drain(url, WORK_QUEUE)) == ids


def forge(url: str) -> None:
    """The three forged dead letters of the attack: two published straight into the DLQ, naming
    victim_payments (through the default exchange, and through another exchange), and one sent
    through the real work queue with a forged x-death entry for it, which RabbitMQ keeps (and
    counts up) when it really dead-letters the message."""
    conn, ch = channel(url)
    ch.queue_declare("victim_payments")  # a queue nothing dead-letters from
    ch.exchange_declare("payments", "direct")
    ch.queue_bind("victim_payments", "payments", "pay")
    death = {"reason": "rejected", "count": 1, "time": datetime(2026, 12, 7, tzinfo=UTC)}
    for mid, entry in (
        ("forged-default", {**death, "queue": "victim_payments", "exchange": "", "routing-keys": ["victim_payments"]}),
        ("forged-exchange", {**death, "queue": "victim_payments", "exchange": "payments", "routing-keys": ["pay"]}),
    ):
        ch.basic_publish("", DLQ, mid.encode(), pika.BasicProperties(message_id=mid, headers={"x-death": [entry]}))
    entry = {**death, "queue": WORK_QUEUE, "exchange": "", "routing-keys": ["victim_payments"]}
    props = pika.BasicProperties(message_id="forged-through-work", headers={"x-death": [entry]})
    ch.basic_publish(WORK, ROUTING_KEY, b"forged", props)
    method, _props, _body = ch.basic_get(WORK_QUEUE)
    ch.basic_reject(method.delivery_tag, requeue=False)
    conn.close()
    wait_depth(url, DLQ, 3)


@pytest.mark.parametrize("how", ["allow-list", "management API"])
def test_a_forged_dead_letter_never_chooses_where_a_replay_sends_it(vhost: str, fresh_db: str, how: str) -> None:
    """Replay sends a dead letter only back to the queue it died in, and only when that queue
    really dead-letters into this DLQ: the forged ones naming victim_payments stay in the DLQ
    with the reason; the one that really died in the work queue goes back to the work queue,
    whatever its forged routing keys say. Nothing reaches victim_payments."""
    url = url_for(vhost)
    forge(url)
    ids = dead_letter(url, 2, "genuine")
    env = {"RUNBOOK_POSTGRES_DSN": fresh_db}
    if how == "management API":  # the broker says which queues dead-letter here (argument x-dead-letter-exchange)
        env |= {"RUNBOOK_RABBITMQ_MANAGEMENT_URL": MANAGEMENT, "RUNBOOK_DLQ_SOURCES": ""}
    res = cli("dlq", "replay", "--queue", DLQ, "--operator", "alice", "--json", env=env)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert (out["replayed"], out["refused_by_reason"]) == (3, {"not_a_dead_letter_source": 2})
    assert out["to"] == [{"exchange": "", "routing_key": WORK_QUEUE, "messages": 3}]
    if how == "management API":
        assert out["sources"] == ["expiring", WORK_QUEUE] or out["sources"] == [WORK_QUEUE], out
        assert out["sources_from"].startswith(f"the management API at {MANAGEMENT}") and "dlx" in out["sources_from"]
    assert RabbitMQ(url).depth("victim_payments") == 0
    assert sorted(mid for mid, _ in drain(url, WORK_QUEUE)) == sorted([*ids, "forged-through-work"])
    assert sorted(mid for mid, _ in drain(url, DLQ)) == ["forged-default", "forged-exchange"]


def test_without_known_sources_a_replay_is_refused_before_anything_moves(vhost: str, fresh_db: str) -> None:
    url = url_for(vhost)
    dead_letter(url, 2)
    res = cli(
        "dlq",
        "replay",
        "--queue",
        DLQ,
        "--operator",
        "alice",
        env={"RUNBOOK_POSTGRES_DSN": fresh_db, "RUNBOOK_DLQ_SOURCES": ""},
    )
    assert res.returncode == EXIT_USAGE and "no queue is known to dead-letter into" in res.stderr
    assert "--source" in res.stderr and "RUNBOOK_RABBITMQ_MANAGEMENT_URL" in res.stderr
    dry = cli("dlq", "replay", "--queue", DLQ, "--dry-run", "--json", env={"RUNBOOK_DLQ_SOURCES": ""})
    assert json.loads(dry.stdout)["refused_by_reason"] == {"not_a_dead_letter_source": 2}
    named = cli(
        "dlq", "replay", "--queue", DLQ, "--source", WORK_QUEUE, "--dry-run", "--json", env={"RUNBOOK_DLQ_SOURCES": ""}
    )
    assert json.loads(named.stdout)["replayed"] == 2
    assert RabbitMQ(url).depth(DLQ) == 2 and audit_rows(fresh_db) == []


# -- the notebook's option -----------------------------------------------------------------------------
def test_the_notebook_option_replays_only_when_resolved_executed_and_approved(vhost: str, run, fresh_db: str) -> None:
    url = url_for(vhost)
    ids = dead_letter(url, 37)
    operator = {"operator": "bob@omnihub.test"}
    dry = run(dsn=fresh_db, mode="resolve", approve=["dlq_replay"], **operator)
    assert action(dry)["status"] == "dry_run" and action(dry)["plan"]["preview"]["replayed"] == 37
    unapproved = run(dsn=fresh_db, mode="resolve", dry_run=False, **operator)
    assert action(unapproved)["status"] == "refused" and "not approved" in action(unapproved)["reason"]
    assert wait_depth(url, DLQ, 37) == 37 and RabbitMQ(url).depth(WORK_QUEUE) == 0 and audit_rows(fresh_db) == []

    done = run(
        dsn=fresh_db, mode="resolve", dry_run=False, approve=["dlq_replay"], extra={"replay_limit": 30}, **operator
    )
    replayed = action(done)
    assert replayed["status"] == "done" and replayed["result"]["replayed"] == 30, replayed["reason"]
    assert RabbitMQ(url).depth(DLQ) == 7
    assert sorted(mid for mid, _ in drain(url, WORK_QUEUE)) == ids[:30], "the first 30, in order, once each"
    rows = audit_rows(fresh_db)
    assert [(a, q, o) for a, q, o, _ in rows] == [
        ("bob@omnihub.test", DLQ, "started"),
        ("bob@omnihub.test", DLQ, "succeeded"),
    ]
    assert rows[1][3]["result"]["to"] == [{"exchange": "", "routing_key": WORK_QUEUE, "messages": 30}]


# -- bad input -------------------------------------------------------------------------------------------
def test_unknown_queue_wrong_password_and_no_broker_are_clear_errors_without_the_password(
    vhost: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = cli("dlq", "replay", "--queue", "no_such_queue", "--dry-run")
    assert unknown.returncode == EXIT_USAGE
    assert f"no queue 'no_such_queue' in virtual host '{vhost}'" in unknown.stderr, unknown.stderr

    wrong = url_for(vhost, BAD_PASSWORD)
    denied = cli("-v", "dlq", "replay", "--queue", DLQ, "--dry-run", env={"RUNBOOK_RABBITMQ_URL": wrong})
    assert denied.returncode == EXIT_USAGE and "login refused: wrong user or password" in denied.stderr
    assert f"amqp://127.0.0.1:5672/{vhost}" in denied.stderr
    assert BAD_PASSWORD not in denied.stdout + denied.stderr

    nobody = cli(
        "dlq", "replay", "--queue", DLQ, "--dry-run", env={"RUNBOOK_RABBITMQ_URL": "amqp://u:pw-secret-9@127.0.0.1:9/x"}
    )
    assert nobody.returncode == EXIT_FAILED and "cannot connect (connection refused)" in nobody.stderr
    assert "pw-secret-9" not in nobody.stderr

    with pytest.raises(QueueNotFound):
        RabbitMQ(url_for(vhost)).peek("no_such_queue", 5)
    with pytest.raises(AccessRefused) as exc:
        RabbitMQ(wrong).depth(DLQ)
    assert BAD_PASSWORD not in str(exc.value)
    monkeypatch.setenv("RUNBOOK_RABBITMQ_URL", wrong)
    rb = runbook_lib.start()
    assert not checks.dlq.depth(rb).checked, "a check never raises: the finding is unchecked"
    assert rb.findings[-1]["verdict"] == "unchecked" and BAD_PASSWORD not in json.dumps(rb.findings)

    helptext = cli("dlq", "replay", "--help")
    assert helptext.returncode == 0
    for words in ("x-death", "x-replay-count", "SIGKILL", "audit_logs", "--max-replays", "--dry-run", "exit codes"):
        assert words in helptext.stdout, words
    said = " ".join(helptext.stdout.split())
    assert "every peek" in said and "counts against its delivery-limit" in said and "delivery-limit: -1" in said
    assert "malformed" in said


# -- malformed x-death -------------------------------------------------------------------------------------
GOOD_DEATH = {
    "count": 1,
    "reason": "rejected",
    "queue": WORK_QUEUE,
    "time": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
    "exchange": WORK,
    "routing-keys": [ROUTING_KEY],
}
BAD_DEATHS: dict[str, Any] = {
    "a-number": 5,
    "a-table": GOOD_DEATH,
    "empty": [],
    "not-a-table": ["work_q"],
    "count-lots": [{**GOOD_DEATH, "count": "lots"}],
    "keys-a-string": [{**GOOD_DEATH, "routing-keys": ROUTING_KEY}],
    "keys-empty": [{**GOOD_DEATH, "routing-keys": []}],
    "keys-not-strings": [{**GOOD_DEATH, "routing-keys": [7]}],
    "no-exchange": [{k: v for k, v in GOOD_DEATH.items() if k != "exchange"}],
    "bytes": [
        {"count": 1, "reason": b"rejected", "queue": b"work_q", "exchange": b"work", "routing-keys": [b"task.run"]}
    ],
}


def test_a_malformed_x_death_is_refused_stays_in_the_queue_and_the_checks_still_work(vhost: str, run) -> None:
    """Forged or corrupted x-death headers published straight into the DLQ: none chooses where it
    is replayed; a well-formed one alongside is replayed as usual."""
    url = url_for(vhost)
    conn, ch = channel(url)
    for mid, deaths in BAD_DEATHS.items():
        ch.basic_publish("", DLQ, b"forged", pika.BasicProperties(message_id=mid, headers={"x-death": deaths}))
    ch.basic_publish(
        "", DLQ, b"fine", pika.BasicProperties(message_id="well-formed", headers={"x-death": [GOOD_DEATH]})
    )
    conn.close()
    n = len(BAD_DEATHS)
    assert wait_depth(url, DLQ, n + 1) == n + 1

    record = run("DLQBacklog")
    cause = finding(record, "Dead letters by reason")
    assert cause["verdict"] == "warning" and cause["details"]["sampled"] == n + 1
    assert cause["details"]["by_reason"] == {"bad_x_death": n, "rejected": 1}
    assert cause["details"]["replayable"] == 1 and "malformed x-death" in cause["summary"]
    assert finding(record, "Dead-letter queue depth")["details"]["messages"] == n + 1

    dry = cli("dlq", "replay", "--queue", DLQ, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["refused_by_reason"] == {"bad_x_death": n}

    result = RabbitMQ(url).replay(DLQ, SOURCES)
    assert (result.replayed, dict(result.refused), result.depth_after) == (1, {"bad_x_death": n}, n)
    assert sorted(mid for mid, _ in drain(url, DLQ)) == sorted(BAD_DEATHS), "every malformed one left in the DLQ"
    assert [mid for mid, _ in drain(url, WORK_QUEUE)] == ["well-formed"]


def test_describe_is_total_and_only_a_well_formed_x_death_is_replayable() -> None:
    def letter(headers: Any) -> dict[str, Any]:
        method = SimpleNamespace(routing_key=DLQ, redelivered=False)
        return describe(method, pika.BasicProperties(message_id="m", headers=headers), b"body")

    shapes: list[Any] = [
        *BAD_DEATHS.values(),
        "x-death",
        b"\x00",
        [None],
        [[GOOD_DEATH]],
        [{**GOOD_DEATH, "count": True}],
        [{**GOOD_DEATH, "count": 1.5}],
        [{**GOOD_DEATH, "queue": None}],
        [{**GOOD_DEATH, "reason": ["rejected"]}],
        [{**GOOD_DEATH, "routing-keys": {"0": ROUTING_KEY}}],
        [{"x": {"y": [1, 2, {"z": b"\xff"}]}}],
    ]
    for deaths in shapes:
        d = letter({"x-death": deaths, REPLAY_HEADER: "lots", "x-replay-run": b"\xff\xfe"})
        assert d["reason"] == "bad_x_death" and d["original_exchange"] is None and d["routing_key"] == "", deaths
        assert refusal(d, 3, SOURCES.queues) == "bad_x_death", deaths
    for replays in (float("inf"), -7, [1], {"a": 1}, True, "9" * 5000):
        assert letter({"x-death": [GOOD_DEATH], REPLAY_HEADER: replays})["replays"] == 0, replays
    assert letter("not a table")["reason"] == "bad_x_death"
    odd_time = letter({"x-death": [{**GOOD_DEATH, "time": "yesterday"}, 5]})
    assert odd_time["x_death"] == "ok" and odd_time["dead_lettered_at"] is None, "a bad time is only not shown"
    missing = letter({"other": 1})
    assert (missing["reason"], missing["routing_key"], refusal(missing, 3, SOURCES.queues)) == (
        "(no x-death)",
        DLQ,
        "no_x_death",
    )
    good = letter({"x-death": [GOOD_DEATH, 5], REPLAY_HEADER: 2})
    assert (good["original_exchange"], good["routing_key"], good["death_count"], good["replays"]) == (
        WORK,
        ROUTING_KEY,
        1,
        2,
    )
    assert good["dead_lettered_at"] == "2024-01-02T03:04:05+00:00" and refusal(good, 3, SOURCES.queues) is None
    assert refusal({**good, "replays": 3}, 3, SOURCES.queues) == "max_replays"
    assert refusal(good, 3, {"some_other_queue"}) == refusal(good, 3, set()) == "not_a_dead_letter_source"


# -- peeks -------------------------------------------------------------------------------------------------
def test_a_diagnose_run_peeks_each_dead_letter_only_once(vhost: str, run) -> None:
    """On a quorum queue every requeue counts against delivery-limit (x-delivery-count): a
    diagnose run must peek each dead letter once (step 2's sample), not again for the option's plan."""
    url = url_for(vhost)
    conn, ch = channel(url)
    ch.queue_declare("dlq_quorum", durable=True, arguments={"x-queue-type": "quorum"})
    ch.queue_bind("dlq_quorum", "dlx")
    conn.close()
    ids = dead_letter(url, 20)
    assert wait_depth(url, "dlq_quorum", 20) == 20

    record = run(extra={"queue": "dlq_quorum"})
    assert finding(record, "Dead letters by reason")["details"]["sampled"] == 20
    proposed = action(record)
    assert proposed["status"] == "proposed" and proposed["plan"]["depth"] == 20
    assert "preview" not in proposed["plan"] and "nothing was peeked" in proposed["plan"]["would"]
    assert proposed["command"].startswith("runbook dlq replay --queue dlq_quorum --limit 100")
    assert wait_depth(url, "dlq_quorum", 20) == 20
    back = drain(url, "dlq_quorum")
    assert sorted(mid for mid, _ in back) == ids
    assert Counter(int(h["x-delivery-count"]) for _, h in back) == {1: 20}, "delivered by step 2's peek only"
