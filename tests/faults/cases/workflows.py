"""Fault cases of the queue and workflow runbooks and the RPC providers: kill-switch-active and
approval-queue-backlog on a scratch PostgreSQL database (switches flipped and approvals queued
as the application or a person at psql would), dlq-backlog on a RabbitMQ virtual host of its own
(consumers that reject, or work again; messages that expire), blockchain-rpc-down on ganache
nodes of the module's own (mined to different heights, one on another chain) and a refused
address."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika

from runbook_lib.clients.rabbitmq import RabbitMQ
from tests.faults.matrix import Bench, Case, Setup
from tests.support import dbfaults

DLQ, WORK, WORK_QUEUE, ROUTING_KEY = "dead_letter_queue", "work", "work_q", "task.run"
EXPIRING = "expiring_q"


# -- PostgreSQL ------------------------------------------------------------------------------------
def _db(bench: Bench) -> tuple[str, dict[str, str]]:
    dsn = bench.database()
    return dsn, {"RUNBOOK_POSTGRES_DSN": dsn}


@contextlib.contextmanager
def switch_by_sql(bench: Bench, work: Path) -> Iterator[Setup]:
    """OMNIHUB_KILL_SWITCH switched on by an UPDATE 25 minutes ago (no audit row), behind an
    audit history of an older enable (3 days) and the seed's newer disable (alice, "drill over")."""
    dsn, env = _db(bench)
    dbfaults.kill_switch_by_sql(dsn, updated_by="postgres", reason="manual", minutes_ago=25, queued_after=3)
    yield Setup(env=env)


@contextlib.contextmanager
def switch_audited(bench: Bench, work: Path) -> Iterator[Setup]:
    """Switched on by carol through the application (the row and its audit enable), work queued after."""
    dsn, env = _db(bench)
    dbfaults.enable_kill_switch(dsn, "carol@omnihub.test", "suspicious trades on venue X", queued_after=5)
    yield Setup(env=env)


@contextlib.contextmanager
def expiry_stalled(bench: Bench, work: Path) -> Iterator[Setup]:
    """60 approvals over 3 hours, 10 past their expiry, nothing decided since."""
    dsn, env = _db(bench)
    dbfaults.approval_backlog(dsn, pending=60, past_expiry=10, hours_old=3)
    yield Setup(env=env)


@contextlib.contextmanager
def nobody_deciding(bench: Bench, work: Path) -> Iterator[Setup]:
    """60 approvals over 3 hours (the oldest 3 h 0 min 32 s), none past expiry, nothing decided."""
    dsn, env = _db(bench)
    dbfaults.approval_backlog(dsn, pending=60, past_expiry=0, hours_old=3)
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(
            "UPDATE approval_queue SET requested_at = now() - interval '3 hours 32 seconds'"
            " WHERE id = (SELECT id FROM approval_queue WHERE status = 'pending' ORDER BY requested_at LIMIT 1)"
        )
    yield Setup(env=env)


# -- RabbitMQ ----------------------------------------------------------------------------------------
def _declare(url: str) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare(DLQ)
    ch.queue_bind(DLQ, "dlx")
    ch.exchange_declare(WORK, "direct")
    ch.queue_declare(WORK_QUEUE, arguments={"x-dead-letter-exchange": "dlx"})
    ch.queue_bind(WORK_QUEUE, WORK, ROUTING_KEY)
    ch.queue_declare(EXPIRING, arguments={"x-dead-letter-exchange": "dlx", "x-message-ttl": 0})
    conn.close()


def _wait_depth(url: str, at_least: int, timeout: float = 15) -> None:
    mq = RabbitMQ(url)
    deadline = time.monotonic() + timeout
    while mq.depth(DLQ) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)


def reject_into_dlq(url: str, n: int, prefix: str = "msg") -> None:
    """``n`` messages published to the work queue and rejected (requeue=False) by a consumer
    that fails: the broker dead-letters each into the DLQ."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    before = ch.queue_declare(DLQ, passive=True).method.message_count
    for i in range(n):
        ch.basic_publish(WORK, ROUTING_KEY, b"{}", pika.BasicProperties(message_id=f"{prefix}-{i:04d}"))
    for _ in range(n):
        method, _props, _body = ch.basic_get(WORK_QUEUE)
        ch.basic_reject(method.delivery_tag, requeue=False)
    conn.close()
    _wait_depth(url, before + n)


def expire_into_dlq(url: str, n: int) -> None:
    """``n`` messages into a queue with a 0 ms TTL and no consumer: each expires into the DLQ."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    before = ch.queue_declare(DLQ, passive=True).method.message_count
    for i in range(n):
        ch.basic_publish("", EXPIRING, b"{}", pika.BasicProperties(message_id=f"exp-{i:04d}"))
    conn.close()
    _wait_depth(url, before + n)


@contextlib.contextmanager
def consuming(url: str, queue: str, fail: bool, publish_every_s: float | None = None) -> Iterator[None]:
    """A real consumer on ``queue``: it rejects every message without requeue (``fail``: a broken
    handler, each one dead-lettered) or acks it (it works). With ``publish_every_s``, traffic
    keeps arriving meanwhile, so a failing consumer keeps dead-lettering."""
    stop = threading.Event()
    ready = threading.Event()

    def serve() -> None:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10)

        def handle(channel: Any, method: Any, _props: Any, _body: bytes) -> None:
            if fail:
                channel.basic_reject(method.delivery_tag, requeue=False)
            else:
                channel.basic_ack(method.delivery_tag)

        ch.basic_consume(queue, handle)
        ready.set()
        last, n = 0.0, 0
        while not stop.is_set():
            conn.process_data_events(time_limit=0.1)
            if publish_every_s and time.monotonic() - last >= publish_every_s:
                ch.basic_publish(WORK, ROUTING_KEY, b"{}", pika.BasicProperties(message_id=f"live-{n:04d}"))
                last, n = time.monotonic(), n + 1
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "the consumer did not start"
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def _mq_setup(url: str, quiet_s: float | None = None) -> Setup:
    parameters = f"rabbitmq:\n  quiet_s: {quiet_s}\n" if quiet_s else ""
    return Setup(
        env={"RUNBOOK_RABBITMQ_URL": url, "RUNBOOK_DLQ_SOURCES": f"{WORK_QUEUE},{EXPIRING}"},
        parameters=parameters,
    )


@contextlib.contextmanager
def dead_letters_still_arriving(bench: Bench, work: Path) -> Iterator[Setup]:
    """40 rejected, and the consumer (attached) still rejects what keeps arriving."""
    url = bench.vhost()
    _declare(url)
    reject_into_dlq(url, 40)
    with consuming(url, WORK_QUEUE, fail=True, publish_every_s=0.5):
        time.sleep(1.5)
        yield _mq_setup(url)


@contextlib.contextmanager
def dead_letters_stopped(bench: Bench, work: Path) -> Iterator[Setup]:
    """40 rejected; then nothing for longer than rabbitmq.quiet_s (3 s here, 600 s by default),
    and a consumer attached that acks what arrives: the consumer works again."""
    url = bench.vhost()
    _declare(url)
    reject_into_dlq(url, 40)
    with consuming(url, WORK_QUEUE, fail=False, publish_every_s=0.5):
        time.sleep(5)
        yield _mq_setup(url, quiet_s=3)


@contextlib.contextmanager
def dead_letters_expired(bench: Bench, work: Path) -> Iterator[Setup]:
    """30 messages expired (TTL) into the DLQ, 5 rejected; the work queue has a working consumer."""
    url = bench.vhost()
    _declare(url)
    expire_into_dlq(url, 30)
    reject_into_dlq(url, 5)
    with consuming(url, WORK_QUEUE, fail=False):
        yield _mq_setup(url, quiet_s=3)


@contextlib.contextmanager
def no_consumer(bench: Bench, work: Path) -> Iterator[Setup]:
    """40 rejected, long enough ago (quiet_s 3 s), and the work queue has no consumer at all."""
    url = bench.vhost()
    _declare(url)
    reject_into_dlq(url, 40)
    time.sleep(4)
    yield _mq_setup(url, quiet_s=3)


# -- RPC providers ---------------------------------------------------------------------------------
NODES = {"low": (1337, 5), "high": (1337, 55), "other": (5, 60)}  # name: (chain id, blocks mined)


def node(bench: Bench, name: str) -> str:
    """The URL of this module's ganache ``name`` (started once, mined to its height: only that
    node, so "low" is 50 blocks behind "high")."""
    from tests.support.ganache import start_ganache

    nodes: dict[str, str] = bench.__dict__.setdefault("_ganache", {})
    with bench._lock:
        if name not in nodes:
            chain, blocks = NODES[name]
            svc = start_ganache(bench.work / f"ganache-{name}", chain_id=chain, blocks=blocks)
            bench._cleanups.append(svc.stop)
            nodes[name] = svc.url
    return nodes[name]


# blockchain-rpc-down is run by hand (the catalog's "manual" kind): run_case names it, with the
# probe's alert as context
ALERT = "RpcProviderProbeFailed"


def _providers(work: Path, providers: list[dict[str, str]], primary: str) -> Setup:
    rows = "\n".join(f"    - {json.dumps(p)}" for p in providers)
    parameters = f"blockchain:\n  providers:\n{rows}\n  primary: {primary}\n  chain_id: 1337\n  timeout_s: 1\n"
    return Setup(parameters=parameters)


@contextlib.contextmanager
def rpc_refused(bench: Bench, work: Path) -> Iterator[Setup]:
    """The primary's address refuses connections; the fallback is a healthy ganache."""
    yield _providers(
        work,
        [{"name": "primary", "url": f"http://{bench.refused()}/"}, {"name": "fallback", "url": node(bench, "high")}],
        "primary",
    )


@contextlib.contextmanager
def rpc_behind(bench: Bench, work: Path) -> Iterator[Setup]:
    """The primary ganache was mined 5 blocks, the fallback 55: the primary is 50 behind."""
    yield _providers(
        work,
        [{"name": "primary", "url": node(bench, "low")}, {"name": "fallback", "url": node(bench, "high")}],
        "primary",
    )


@contextlib.contextmanager
def rpc_other_chain(bench: Bench, work: Path) -> Iterator[Setup]:
    """The primary ganache serves chain 5; blockchain.chain_id is 1337, the fallback's."""
    yield _providers(
        work,
        [{"name": "primary", "url": node(bench, "other")}, {"name": "fallback", "url": node(bench, "high")}],
        "primary",
    )


@contextlib.contextmanager
def rpc_all_refused(bench: Bench, work: Path) -> Iterator[Setup]:
    """Every provider refuses: nothing to switch to."""
    yield _providers(
        work,
        [
            {"name": "primary", "url": f"http://{bench.refused()}/"},
            {"name": "fallback", "url": f"http://{bench.refused()}/"},
        ],
        "primary",
    )


# -- what each record must say beyond cause, action and verdict ----------------------------------------
def _finding(record: dict[str, Any], check: str) -> dict[str, Any] | None:
    return next((f for f in record["findings"] if f["check"] == check), None)


def _action(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next((a for a in record["actions"] if a["name"] == name), {})


def unaudited_names_no_one(record: dict[str, Any]) -> list[str]:
    """The defect: "ON since 2 days ago, switched by alice (emergency_control.disable): drill over"."""
    problems = []
    f = _finding(record, "OMNIHUB_KILL_SWITCH") or {"details": {}, "summary": ""}
    if f["details"].get("actor") or f["details"].get("audited") is not False:
        problems.append(f"the switch finding names an actor or says audited: {f['details']}")
    for word in ("alice", "drill"):
        if word in f["summary"] or word in record["diagnosis"]["headline"]:
            problems.append(f"{word!r} in the switch finding or the headline: {f['summary']}")
    if f["details"].get("updated_by") != "postgres":
        problems.append("the state row's updated_by is not given as the evidence")
    held = _finding(record, "Work held") or {"details": {}}
    if held["details"].get("queued_since", 99) > 5:
        problems.append(f"work held counted from the wrong time: {held['details']}")
    if _action(record, "disable_kill_switch").get("recommended"):
        problems.append("switching the kill switch off is recommended")
    return problems


def audited_names_carol(record: dict[str, Any]) -> list[str]:
    f = _finding(record, "OMNIHUB_KILL_SWITCH") or {"details": {}}
    d = f["details"]
    problems = []
    if (d.get("actor"), d.get("reason")) != ("carol@omnihub.test", "suspicious trades on venue X"):
        problems.append(f"who/why is not carol's enable: {d}")
    if "carol" not in record["diagnosis"]["recommended_action"].get("title", ""):
        problems.append("the escalation does not name whoever switched it on")
    return problems


def no_3h32s(record: dict[str, Any]) -> list[str]:
    """No duration reads like "3h32s" (3 h 0 min 32 s, which on-call reads as 3 h 32 min)."""
    if re.search(r"\b\d+h\d+s\b", json.dumps(record["findings"]) + record["diagnosis"]["headline"]):
        return ["a duration reads like 3h32s"]
    return []


def reads_3h00m(record: dict[str, Any]) -> list[str]:
    """The oldest item, 3 h 0 min 32 s old, reads "3h00m"."""
    f = _finding(record, "Approval backlog") or {"summary": ""}
    problems = [] if "waiting 3h00m" in f["summary"] else [f"the oldest item does not read 3h00m: {f['summary']}"]
    return problems + no_3h32s(record)


def no_replay(record: dict[str, Any]) -> list[str]:
    replay = _action(record, "dlq_replay")
    return ["a replay is recommended"] if replay.get("recommended") else []


def replay_recommended(record: dict[str, Any]) -> list[str]:
    replay = _action(record, "dlq_replay")
    problems = [] if replay.get("recommended") else ["the replay is not recommended"]
    f = _finding(record, "Dead letters by reason") or {"details": {}}
    if f["details"].get("replayable") != 40:
        problems.append(f"replayable is not 40: {f['details'].get('replayable')}")
    return problems


def expired_not_replayable(record: dict[str, Any]) -> list[str]:
    problems = no_replay(record)
    f = _finding(record, "Dead letters by reason") or {"details": {}}
    d = f["details"]
    if (d.get("expired"), d.get("replayable")) != (30, 5):
        problems.append(f"expired/replayable not 30/5: {d.get('expired')}/{d.get('replayable')}")
    return problems


def switches_to_fallback(record: dict[str, Any]) -> list[str]:
    plan = _action(record, "switch_rpc_provider").get("plan") or {}
    return [] if plan.get("to") == "fallback" else [f"the switch does not go to the fallback: {plan}"]


CASES = [
    Case(
        name="kill-switch-by-sql",
        alertname="KillSwitchEnabled",
        runbook="kill-switch-active",
        cause="switch_unaudited",
        action="escalate",
        verdicts=("critical",),
        inject=switch_by_sql,
        what="switch ON by SQL 25 min ago; audit: older enable, newer disable (alice)",
        severity="critical",
        expect=unaudited_names_no_one,
    ),
    Case(
        name="kill-switch-audited",
        alertname="KillSwitchEnabled",
        runbook="kill-switch-active",
        cause="switch_audited",
        action="escalate",
        verdicts=("critical",),
        inject=switch_audited,
        what="switch ON by carol through the application (audit enable)",
        severity="critical",
        expect=audited_names_carol,
    ),
    Case(
        name="approvals-expiry-stalled",
        alertname="ApprovalQueueBacklog",
        runbook="approval-queue-backlog",
        cause="expiry_stalled",
        action="expire_items",
        verdicts=("warning",),
        inject=expiry_stalled,
        what="60 pending over 3 h, 10 past expiry, no decision",
        expect=no_3h32s,
    ),
    Case(
        name="approvals-nobody-deciding",
        alertname="ApprovalQueueBacklog",
        runbook="approval-queue-backlog",
        cause="approvers_absent",
        action="escalate",
        verdicts=("warning",),
        inject=nobody_deciding,
        what="60 pending over 3 h 0 min 32 s, none past expiry, no decision",
        expect=reads_3h00m,
    ),
    Case(
        name="dlq-consumer-failing",
        alertname="DLQBacklog",
        runbook="dlq-backlog",
        cause="consumer_failing",
        action="escalate",
        verdicts=("critical",),
        inject=dead_letters_still_arriving,
        what="a consumer still rejecting what arrives",
        severity="critical",
        expect=no_replay,
    ),
    Case(
        name="dlq-consumer-recovered",
        alertname="DLQBacklog",
        runbook="dlq-backlog",
        cause="consumer_recovered",
        action="dlq_replay",
        verdicts=("warning",),
        inject=dead_letters_stopped,
        what="40 rejected, none since quiet_s, a working consumer",
        severity="critical",
        expect=replay_recommended,
    ),
    Case(
        name="dlq-expired",
        alertname="DLQBacklog",
        runbook="dlq-backlog",
        cause="messages_expired",
        action="escalate",
        verdicts=("warning",),
        inject=dead_letters_expired,
        what="30 expired (TTL) and 5 rejected dead letters",
        severity="critical",
        expect=expired_not_replayable,
    ),
    Case(
        name="dlq-no-consumer",
        alertname="DLQBacklog",
        runbook="dlq-backlog",
        cause="no_consumer",
        action="escalate",
        verdicts=("critical",),
        inject=no_consumer,
        what="40 rejected, the work queue has no consumer",
        severity="critical",
        expect=no_replay,
    ),
    Case(
        name="rpc-refused",
        alertname=ALERT,
        runbook="blockchain-rpc-down",
        cause="rpc_down",
        action="switch_rpc_provider",
        verdicts=("critical",),
        inject=rpc_refused,
        what="the primary's address refuses; the fallback is healthy",
        severity="critical",
        expect=switches_to_fallback,
    ),
    Case(
        name="rpc-lagging",
        alertname=ALERT,
        runbook="blockchain-rpc-down",
        cause="rpc_lagging",
        action="switch_rpc_provider",
        verdicts=("critical",),
        inject=rpc_behind,
        what="the primary ganache 50 blocks behind the fallback",
        severity="critical",
        expect=switches_to_fallback,
    ),
    Case(
        name="rpc-wrong-chain",
        alertname=ALERT,
        runbook="blockchain-rpc-down",
        cause="rpc_wrong_chain",
        action="switch_rpc_provider",
        verdicts=("critical",),
        inject=rpc_other_chain,
        what="the primary ganache serves chain 5, not 1337",
        severity="critical",
        expect=switches_to_fallback,
    ),
    Case(
        name="rpc-all-refused",
        alertname=ALERT,
        runbook="blockchain-rpc-down",
        cause="rpc_down",
        action="escalate",
        verdicts=("critical",),
        inject=rpc_all_refused,
        what="every provider refuses: nothing to switch to",
        severity="critical",
    ),
]
