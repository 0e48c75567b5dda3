"""The chaos DR drill (dr-drill-chaos) through the runner, on targets of the test's own: the fake
Kubernetes API (which here also deletes pods), a PostgreSQL cluster of this module's own, a
RabbitMQ vhost created and deleted with rabbitmqctl (a work queue dead-lettering into the DLQ),
and two ganache nodes. The drill runs the five runbooks in subprocesses (`runbook run`), each
against its real fault: PASS with every cause named; then, told to expect an application that
is not the leaking one, FAIL on that row only. Every removable fault is gone afterwards."""

from __future__ import annotations

import copy
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pika
import psycopg
import pytest

from runbook_lib.core.settings import load_settings
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox.fake_kube import FakeKube
from runbook_lib.sandbox.services import Service
from runbook_lib.sre import drill_calendar as drills
from tests.helpers import NAMESPACE
from tests.support import ganache
from tests.support.cluster import Cluster

pytestmark = pytest.mark.services

SLUG = "dr-drill-chaos"
DRILL = {"mode": "resolve", "dry_run": False, "operator": "alice@omnihub.test", "approve": ["chaos"]}
PG_ENV, AMQP_ENV = "RUNBOOK_CHAOS_PG_DSN_SECRET", "RUNBOOK_CHAOS_AMQP_URL_SECRET"
APP = "chaos-drill-leak"
DLQ, WORK_QUEUE = "chaos_dlq", "chaos_work"  # the session vhost is shared: names of its own
ROWS = {
    "Pods deleted": "service-down",
    "Network partition": "database-down",
    "Connection leak": "high-database-connections",
    "Dead letters": "dlq-backlog",
    "Lagging RPC node": "blockchain-rpc-down",
}


# -- the targets ------------------------------------------------------------------------------------
@pytest.fixture
def cluster(pair: tuple[Cluster, Cluster]) -> Cluster:
    """The session's own PostgreSQL primary (the drill cuts a proxy in front of it, never it)."""
    return pair[0]


@pytest.fixture(scope="module")
def nodes(ganache_pair: tuple[Service, Service]) -> Iterator[tuple[Service, Service]]:
    """The session's pair; the blocks the drill mines are undone afterwards."""
    a, b = ganache_pair
    with ganache.kept(a.url, b.url):
        yield a, b


@pytest.fixture(scope="module")
def amqp_url(vhost: str) -> str:
    """The session's vhost with this module's queues: chaos_work dead-letters (fanout exchange
    chaos_dlx) into chaos_dlq."""
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    ch.exchange_declare("chaos_dlx", "fanout")
    ch.queue_declare(DLQ)
    ch.queue_bind(DLQ, "chaos_dlx")
    ch.queue_declare(WORK_QUEUE, arguments={"x-dead-letter-exchange": "chaos_dlx"})
    conn.close()
    return url


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKube, Path]]:
    fake = FakeKube()
    fake.add_api_gateway(NAMESPACE, datetime.now(UTC) - timedelta(days=1))
    fake.start()
    yield fake, fake.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    fake.stop()


@pytest.fixture
def targets(
    cluster: Cluster,
    nodes: tuple[Service, Service],
    amqp_url: str,
    kube: tuple[FakeKube, Path],
    archive_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """The DSN and the AMQP URL only in the environment; the drill's ``targets`` parameter."""
    monkeypatch.setenv(PG_ENV, cluster.dsn())
    monkeypatch.setenv(AMQP_ENV, amqp_url)
    monkeypatch.setenv("KUBECONFIG", str(kube[1]))
    monkeypatch.setenv("RUNBOOK_KUBE_NAMESPACE", NAMESPACE)
    a, b = nodes
    return {
        "kubernetes": {"namespace": NAMESPACE, "deployment": "api-gateway"},
        "postgres": {"dsn_env": PG_ENV, "application": APP, "sessions": 8},
        "rabbitmq": {"url_env": AMQP_ENV, "dlq": DLQ, "work_queue": WORK_QUEUE, "messages": 12},
        "rpc": {"urls": [a.url, b.url], "names": ["node-a", "node-b"], "blocks": 50},
    }


# -- helpers ----------------------------------------------------------------------------------------
def run(targets: dict[str, Any], expect: dict[str, Any] | None = None, **request: Any) -> Any:
    extra = {"targets": targets, "expect": expect or {}}
    result = Runner(load_settings()).run(RunRequest(alert=None, slug=SLUG, extra=extra, **request))
    assert result.status == "succeeded", result.record.get("failed_cell")
    return result


def finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    found = [f for f in record["findings"] if f["check"] == check]
    assert found, f"no {check!r} finding in {[f['check'] for f in record['findings']]}"
    return found[0]


def leaked_sessions(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (APP,)).fetchone()[0]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def depth(url: str, queue: str) -> int:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    try:
        return conn.channel().queue_declare(queue, passive=True).method.message_count
    finally:
        conn.close()


def assert_faults_removed(record: dict[str, Any], cluster: Cluster, amqp_url: str) -> None:
    assert leaked_sessions(cluster.dsn()) == 0, "the leaked sessions are closed"
    port = finding(record, "Network partition")["details"]["proxy_port"]
    assert port and not port_open(port), "the proxy's port is closed"
    assert depth(amqp_url, DLQ) == 0 and depth(amqp_url, WORK_QUEUE) == 0, "the drill's messages are taken back"
    cleanup = finding(record, "Cleanup")
    assert cleanup["verdict"] == "ok" and cleanup["details"]["left_behind"] == [], cleanup["summary"]
    assert cleanup["details"]["leak_sessions_left"] == 0 and cleanup["details"]["drill_messages_left"] == 0
    assert any("deleted pod" in n for n in cleanup["details"]["not_undone"])
    assert any("blocks" in n for n in cleanup["details"]["not_undone"])


# -- the tests --------------------------------------------------------------------------------------
def test_the_chaos_drill_names_every_cause_then_fails_the_row_told_to_expect_another(
    targets: dict[str, Any], cluster: Cluster, amqp_url: str, kube: tuple[FakeKube, Path], archive_dir: Path
) -> None:
    fake = kube[0]
    pods_before = copy.deepcopy(fake.pods)
    result = run(targets, **DRILL)
    record = result.record
    verdict = finding(record, "DR chaos verdict")
    d = verdict["details"]
    assert d["drill_verdict"] == "PASS" and verdict["verdict"] == "ok", verdict["summary"]
    assert d["named"] == d["faults_run"] == 5 and d["not_named"] == [] and d["skipped"] == []
    rows = {r["fault"]: r for r in d["rows"]}
    assert {f: r["runbook"] for f, r in rows.items()} == ROWS
    print("\nchaos drill (PASS run):")
    for fault, row in rows.items():
        assert row["cause_named"] == "yes", row
        assert row["time_to_record_s"] > 0 and row["exit_code"] in (0, 3), row
        child = archive_dir / row["record"]
        assert child.is_file() and (child.parent / "record.json").is_file(), "the record lands next to the drill's"
        print(
            f"  {fault:18} {row['runbook']:26} named={row['cause_named']} {row['time_to_record_s']:5.1f} s  {row['record']}"
        )
    print(f"  {verdict['summary']}\n  headline: {record['diagnosis']['headline']}")
    for f in record["findings"]:
        print(f"  [{f['verdict']}] {f['check']}: {f['summary'][:400]}")
    assert record["diagnosis"]["headline"].startswith("OK — DR drill chaos: PASS")
    assert drills.verdict_of(record) == "PASS"
    assert rows["Network partition"]["found"] == {"failure": "refused"}
    assert rows["Connection leak"]["found"] == {"application": APP}
    assert rows["Dead letters"]["found"] == {"source": WORK_QUEUE}  # the queue whose consumer fails
    assert rows["Lagging RPC node"]["found"] == {"provider": "node-a"}, "node-b was mined ahead"
    assert rows["Pods deleted"]["found"] == {"pods": 0}
    assert [p for p in fake.pods if p[0] == NAMESPACE] == [], "the pods were deleted through the API"
    assert len([r for r in fake.requests if r["method"] == "DELETE"]) == len(pods_before)
    html = (result.path / "record.html").read_text()
    assert 'href="../../../../' in html and "service-down" in html, "the table links each record"
    action = next(a for a in record["actions"] if a["name"] == "chaos")
    assert action["status"] == "done"
    written = "".join((result.path / f).read_text() for f in ("record.json", "record.html", "notebook.ipynb"))
    assert cluster.password not in written, "the DSN's password never reaches the record"
    assert_faults_removed(record, cluster, amqp_url)

    fake.pods.update(pods_before)  # what the ReplicaSet would do
    broken = run(targets, expect={"high-database-connections": {"application": "billing-worker"}}, **DRILL).record
    verdict = finding(broken, "DR chaos verdict")
    d = verdict["details"]
    assert d["drill_verdict"] == "FAIL" and verdict["verdict"] == "critical" and drills.verdict_of(broken) == "FAIL"
    assert d["not_named"] == ["high-database-connections"] and d["named"] == 4
    rows = {r["fault"]: r for r in d["rows"]}
    assert rows["Connection leak"]["cause_named"] == "no"
    assert rows["Connection leak"]["found"]["application"] == APP, "the runbook named the real leaker"
    assert all(r["cause_named"] == "yes" for f, r in rows.items() if f != "Connection leak")
    assert "high-database-connections did not name the cause" in verdict["summary"]
    assert finding(broken, "Connection leak")["verdict"] == "critical"
    assert_faults_removed(broken, cluster, amqp_url)


def test_diagnose_mode_only_checks_the_targets_and_touches_nothing(
    targets: dict[str, Any], cluster: Cluster, kube: tuple[FakeKube, Path], archive_dir: Path
) -> None:
    fake = kube[0]
    pods = dict(fake.pods)
    record = run(targets).record
    ready = finding(record, "Readiness")
    assert ready["verdict"] == "ok", ready["summary"]
    assert {t["target"] for t in ready["details"]["targets"]} == {"kubernetes", "postgres", "rabbitmq", "rpc"}
    not_run = finding(record, "Steps not run")
    assert not_run["details"]["steps"] == list(ROWS) and not_run["summary"].startswith("Not run (proposed")
    assert not [f for f in record["findings"] if f["check"] in ROWS], "one line for the steps that did not run"
    assert finding(record, "DR chaos verdict")["summary"].startswith("DR drill chaos: not run (proposed")
    assert record["diagnosis"]["headline"].startswith("INFO — DR drill chaos: not run (proposed")
    assert next(a for a in record["actions"] if a["name"] == "chaos")["status"] == "proposed"
    assert fake.pods == pods and not [r for r in fake.requests if r["method"] == "DELETE"]
    assert leaked_sessions(cluster.dsn()) == 0
    assert list(archive_dir.glob("*/*/*/*-service-down-*")) == [], "no runbook was run"


def test_a_target_that_does_not_answer_fails_readiness_and_nothing_runs(
    targets: dict[str, Any], kube: tuple[FakeKube, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PG_ENV, "postgresql://postgres:not-the-pw-1234@127.0.0.1:9/postgres")
    record = run(targets, **DRILL).record
    verdict = finding(record, "DR chaos verdict")
    assert verdict["details"]["drill_verdict"] == "FAIL" and "nothing was touched" in verdict["summary"]
    assert "postgres" in verdict["summary"]
    assert next(a for a in record["actions"] if a["name"] == "chaos")["status"] == "refused"
    assert not [r for r in kube[0].requests if r["method"] == "DELETE"]


def test_the_partition_proxy_forwards_refuses_drops_heals_and_stops() -> None:
    """The drill's TCP proxy in front of a loopback echo server."""
    import threading

    from runbook_lib.kernel.drills.injectors import TcpProxy

    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.sendall(conn.recv(64))

    threading.Thread(target=echo, daemon=True).start()

    def ask(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"ping")
            return s.recv(64)

    proxy = TcpProxy("127.0.0.1", server.getsockname()[1]).start()
    try:
        assert ask(proxy.port) == b"ping"
        proxy.partition("refuse")
        with pytest.raises(ConnectionRefusedError):
            ask(proxy.port)
        proxy.heal()
        assert ask(proxy.port) == b"ping"
        proxy.partition("drop")
        with pytest.raises(TimeoutError):
            ask(proxy.port)
        proxy.heal()
        assert ask(proxy.port) == b"ping"
    finally:
        proxy.stop()
        server.close()
    assert not port_open(proxy.port) and not proxy.listening()
