"""The data-layer runbooks, each executed through the runner against a real PostgreSQL fault,
each asserting the finding that names the cause. Faults come from tests.support.dbfaults;
the server that must be stopped, want a password, run out of slots or be a standby is a cluster
of the test's own (tests.support.cluster)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook_lib.core.settings import load_settings
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox import database
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import alert_payload, row_counts, scratch_databases
from tests.support import dbfaults
from tests.support.cluster import Cluster

pytestmark = pytest.mark.services


@pytest.fixture
def run(archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run a runbook through the runner (a fresh kernel) against ``dsn``; returns record.json."""

    def go(slug: str, dsn: str, alertname: str | None = None, **request: Any) -> dict[str, Any]:
        monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", dsn)
        alert = parse_alert(alert_payload(alertname)["alerts"][0]) if alertname else None
        result = Runner(load_settings()).run(RunRequest(alert=alert, slug=None if alertname else slug, **request))
        assert result.status == "succeeded", result.record.get("failed_cell")
        assert result.record["runbook"] == slug
        return result.record

    return go


@pytest.fixture
def cluster(pair: tuple[Cluster, Cluster]) -> Cluster:
    """The session's own PostgreSQL primary: password authentication, 30 connections."""
    return pair[0]


def finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    found = [f for f in record["findings"] if f["check"] == check]
    assert found, f"no {check!r} finding in {[f['check'] for f in record['findings']]}"
    return found[0]


def action(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in record["actions"] if a["name"] == name)


def audit_rows(dsn: str, action_name: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT actor, action, outcome FROM audit_logs WHERE action = %s ORDER BY id", (action_name,)
        ).fetchall()


# -- database-down ----------------------------------------------------------------------------------
def test_database_down_tells_refused_auth_and_too_many_connections_apart(run, cluster: Cluster) -> None:
    wrong = run("database-down", cluster.dsn(password="not-the-password"))
    f = finding(wrong, "PostgreSQL connection")
    assert f["verdict"] == "critical" and f["role"] == "cause" and f["details"]["failure"] == "auth"
    assert wrong["diagnosis"]["cause_code"] == "auth_failed"
    assert wrong["diagnosis"]["recommended_action"]["name"] == "escalate"
    assert "Authentication failed" in f["summary"] and "not-the-password" not in json.dumps(wrong)

    slots = []
    try:
        while True:  # use every slot, the superuser reserve included
            slots.append(psycopg.connect(cluster.dsn()))
    except psycopg.OperationalError:
        pass
    try:
        full = run("database-down", cluster.dsn())
    finally:
        for conn in slots:
            conn.close()
    assert len(slots) >= 25
    assert finding(full, "PostgreSQL connection")["details"]["failure"] == "too_many_connections"
    assert full["diagnosis"]["cause_code"] == "connections_exhausted"

    nobody = run("database-down", "postgresql://runbook:secret-pw@127.0.0.1:9/omnihub")  # nothing listens on 9
    f = finding(nobody, "PostgreSQL connection")
    assert f["details"]["failure"] == "refused" and nobody["diagnosis"]["verdict"] == "critical"
    assert nobody["diagnosis"]["incomplete"] is False, "a refusal is the diagnosis, not a gap"
    assert nobody["diagnosis"]["cause_code"] == "server_down"


def test_database_down_on_a_stopped_cluster_and_on_a_standby(run, pair: tuple[Cluster, Cluster]) -> None:
    primary, standby = pair
    replica = run("database-down", standby.dsn())
    f = finding(replica, "PostgreSQL connection")
    assert f["details"]["failure"] == "in_recovery" and f["verdict"] == "critical"
    assert "in recovery" in f["summary"] and "promote" in f["summary"]
    repl = finding(replica, "Replication")
    assert repl["details"]["server_role"] == "standby" and repl["details"]["receiver_status"] == "streaming"
    up = finding(run("database-down", primary.dsn()), "Replication")
    assert up["details"]["server_role"] == "primary" and up["details"]["standbys"] == 1
    primary.stop()  # the pair is put back for the next test
    stopped = run("database-down", primary.dsn())
    f = finding(stopped, "PostgreSQL connection")
    assert f["details"]["failure"] == "refused" and "Connection refused" in f["summary"]
    assert stopped["diagnosis"]["headline"].startswith("CRITICAL — Connection refused")


def test_connection_failures_are_classified_without_the_engine(fresh_db: str) -> None:
    """The kinds that need no second cluster: DNS, a port that never answers, read-only."""
    from runbook_lib.kernel.sources.postgres import ConnectFailed, Postgres

    with pytest.raises(ConnectFailed) as dns:
        Postgres("postgresql://u:pw12@db.invalid:5432/x").server_state()
    assert dns.value.failure.kind == "dns"
    with dbfaults.silent_port() as port, pytest.raises(ConnectFailed) as hung:
        Postgres(f"postgresql://u:pw12@127.0.0.1:{port}/x", connect_timeout_s=1).server_state()
    assert hung.value.failure.kind == "timeout"
    with psycopg.connect(database.ADMIN_DSN, autocommit=True) as conn:
        name = fresh_db.rsplit("/", 1)[1]
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    assert Postgres(fresh_db).server_state()["default_read_only"] is True


def test_database_down_routes_from_the_alert_and_says_read_only(run, fresh_db: str) -> None:
    with psycopg.connect(database.ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{fresh_db.rsplit("/", 1)[1]}" SET default_transaction_read_only = on')
    record = run("database-down", fresh_db, alertname="DatabaseDown")
    f = finding(record, "PostgreSQL connection")
    assert f["details"]["failure"] == "read_only" and "read-only" in f["summary"]


# -- high-database-connections ------------------------------------------------------------------------
def test_high_connections_names_the_application_and_its_idle_transactions(run, cluster: Cluster) -> None:
    dsn = database.create_database("conns", admin_dsn=cluster.dsn())
    with dbfaults.hold_connections(dsn, 24, "workflow-worker", idle_in_transaction=8) as held:
        time.sleep(1.2)  # idle longer than the runbook's idle_older_than_s below
        record = run(
            "high-database-connections", dsn, alertname="HighDatabaseConnections", extra={"idle_older_than_s": 1}
        )
        use = finding(record, "Connections in use")
        assert use["verdict"] in ("warning", "critical") and use["details"]["used"] >= 25
        top = finding(record, "Connections by application")
        assert top["role"] == "cause" and top["details"]["application"] == "workflow-worker"
        assert top["details"]["connections"] == 24
        idle = finding(record, "Idle in transaction")
        assert idle["details"]["count"] == 8 and idle["details"]["over_threshold"] == 8
        assert idle["details"]["application"] == "workflow-worker"
        assert record["diagnosis"]["cause_code"] == "pool_exhausted", "24 of 25 sessions: its pool, 8 of them leaking"
        assert "idle_in_transaction_leak" in record["diagnosis"]["causes"]
        proposed = action(record, "terminate_idle")
        assert proposed["status"] == "proposed" and proposed["recommended"] is True
        assert "application_name = 'workflow-worker'" in proposed["command"], "only the leaking application's"
        assert "pg_terminate_backend" in proposed["command"] and sorted(proposed["plan"]["pids"]) == sorted(
            held.idle_pids
        )


def test_terminate_idle_changes_nothing_until_resolve_with_approval_and_audits(run, cluster: Cluster) -> None:
    dsn = database.create_database("conns2", admin_dsn=cluster.dsn())
    with dbfaults.hold_connections(dsn, 6, "workflow-worker", idle_in_transaction=3) as held:
        params = {"extra": {"idle_older_than_s": 0, "application": "workflow-worker"}}

        def alive() -> set[int]:
            with psycopg.connect(dsn) as conn:
                return {r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity").fetchall()}

        for kw in ({}, {"mode": "resolve"}, {"mode": "resolve", "dry_run": False, "operator": "bob@omnihub.test"}):
            record = run("high-database-connections", dsn, **params, **kw)
            assert action(record, "terminate_idle")["status"] in ("proposed", "dry_run", "refused")
            assert set(held.idle_pids) <= alive(), kw
        assert audit_rows(dsn, "runbook.terminate_idle") == []
        record = run(
            "high-database-connections",
            dsn,
            **params,
            mode="resolve",
            dry_run=False,
            operator="bob@omnihub.test",
            approve=["terminate_idle"],
        )
        done = action(record, "terminate_idle")
        assert done["status"] == "done" and sorted(done["result"]["terminated"]) == sorted(held.idle_pids)
        assert not set(held.idle_pids) & alive() and set(held.pids[3:]) <= alive(), "only the idle ones ended"
        assert audit_rows(dsn, "runbook.terminate_idle") == [
            ("bob@omnihub.test", "runbook.terminate_idle", "started"),
            ("bob@omnihub.test", "runbook.terminate_idle", "succeeded"),
        ]


# -- database-migration-failure ------------------------------------------------------------------------
def test_migration_failure_names_the_blocker_the_relation_and_the_invalid_index(run, fresh_db: str) -> None:
    index = dbfaults.invalid_index(fresh_db)
    with dbfaults.blocked_migration(fresh_db) as fault:
        record = run("database-migration-failure", fresh_db)
        locks = finding(record, "Lock waits")
        assert locks["verdict"] == "critical" and locks["role"] == "cause" and locks["cause"] == "lock_blocker"
        d = locks["details"]
        assert d["root_blocker"] == fault.blocker_pid and d["relation"] == "workflows"
        assert {fault.migration_pid, fault.reader_pid} <= set(d["blocked"]) and d["wants"] == "AccessExclusiveLock"
        assert "AccessExclusiveLock on workflows" in d["holds"] and "ALTER TABLE workflows" in locks["summary"]
        assert d["blocker_state"] == "idle in transaction"
        assert finding(record, "Schema changes running")["details"]["waiting_on_lock"] >= 1
        assert index in finding(record, "Invalid indexes")["summary"]
        assert "alembic" in finding(record, "Migration state")["summary"]
        assert action(record, "terminate_blocker")["recommended"] is True
        assert action(record, "cancel_blocker")["recommended"] is False, "cancelling an idle session does nothing"

        record = run(
            "database-migration-failure",
            fresh_db,
            mode="resolve",
            dry_run=False,
            operator="alice@omnihub.test",
            approve=["terminate_blocker"],
        )
        done = action(record, "terminate_blocker")
        assert done["status"] == "done" and done["result"]["pid"] == fault.blocker_pid
    assert fault.migration_error == [], "the migration finished once the blocker was gone"
    with psycopg.connect(fresh_db) as conn:
        cols = conn.execute("SELECT 1 FROM information_schema.columns WHERE column_name = 'drill_note'").fetchall()
    assert cols, "the migration's ALTER TABLE went through"
    assert [r[2] for r in audit_rows(fresh_db, "runbook.terminate_blocker")] == ["started", "succeeded"]


# -- data-corruption --------------------------------------------------------------------------------------
def test_data_corruption_names_the_table_and_the_check(run, fresh_db: str) -> None:
    dbfaults.orphan_rows(fresh_db, workflows=3, approvals=2)
    record = run("data-corruption", fresh_db)
    orphans = [f for f in record["findings"] if f["check"] == "Orphaned rows" and f["verdict"] == "critical"]
    named = {f["details"]["table"]: f["details"] for f in orphans}
    assert named["workflows"]["orphans"] == 3 and named["workflows"]["integrity_check"] == "foreign_keys"
    assert named["approval_queue"]["orphans"] == 2 and "workflows" in named["approval_queue"]["foreign_key"]
    assert all(f["role"] == "cause" for f in orphans) and record["diagnosis"]["verdict"] == "critical"
    assert record["diagnosis"]["cause_code"] == "orphan_rows"
    assert finding(record, "Index consistency (amcheck)")["verdict"] == "ok"
    safe = action(record, "safe_mode")
    assert safe["recommended"] is True and action(record, "record_baseline")["recommended"] is False


def test_a_recorded_baseline_catches_rows_deleted_from_an_append_only_table(run, fresh_db: str) -> None:
    for kw in ({}, {"mode": "resolve"}, {"mode": "resolve", "dry_run": False, "operator": "alice@omnihub.test"}):
        record = run("data-corruption", fresh_db, **kw)
        assert action(record, "record_baseline")["status"] in ("proposed", "dry_run", "refused")
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('runbook_row_baseline')").fetchone()[0] is None, "nothing written"
    record = run(
        "data-corruption",
        fresh_db,
        mode="resolve",
        dry_run=False,
        operator="alice@omnihub.test",
        approve=["record_baseline"],
    )
    assert action(record, "record_baseline")["status"] == "done"
    assert [r[2] for r in audit_rows(fresh_db, "runbook.record_baseline")] == ["started", "succeeded"]
    with psycopg.connect(fresh_db) as conn:
        base = conn.execute("SELECT row_count FROM runbook_row_baseline WHERE table_name = 'audit_logs'").fetchone()[0]
        conn.execute("DELETE FROM audit_logs WHERE source = 'app'")  # the seed's three rows
        now = conn.execute("SELECT count(*) FROM audit_logs").fetchone()[0]
    assert now < base
    record = run("data-corruption", fresh_db)
    lost = [f for f in record["findings"] if f["check"] == "Row counts" and f["verdict"] == "critical"]
    assert len(lost) == 1 and lost[0]["details"]["table"] == "audit_logs" and lost[0]["role"] == "cause"
    assert record["diagnosis"]["cause_code"] == "row_count_drop"
    assert lost[0]["details"] == {
        **lost[0]["details"],
        "integrity_check": "row_counts",
        "lost": base - now,
        "baseline": base,
    }
    assert "append-only" in lost[0]["summary"]


# -- approval-queue-backlog ----------------------------------------------------------------------------
def test_approval_backlog_names_the_stalled_expiry_and_expires_only_with_approval(run, fresh_db: str) -> None:
    dbfaults.approval_backlog(fresh_db, pending=60, past_expiry=10, hours_old=3)
    record = run("approval-queue-backlog", fresh_db, alertname="ApprovalQueueBacklog")
    backlog = finding(record, "Approval backlog")
    assert backlog["verdict"] == "warning" and backlog["details"]["pending"] == 67  # 60 + the seed's 7
    assert backlog["details"]["past_expiry"] == 10 and backlog["details"]["oldest_s"] > 3 * 3600 - 60
    flow = finding(record, "Approval flow")
    assert flow["role"] == "cause" and flow["cause"] == "expiry_stalled"
    assert "expiry job is not running" in flow["summary"] and "nobody is reviewing" in flow["summary"]
    ids = backlog["details"]["past_expiry_ids"]
    assert len(ids) == 10 and action(record, "expire_items")["plan"]["pending"] == sorted(ids)

    def statuses() -> dict[str, int]:
        with psycopg.connect(fresh_db) as conn:
            return dict(conn.execute("SELECT status, count(*) FROM approval_queue GROUP BY status").fetchall())

    before = statuses()
    run("approval-queue-backlog", fresh_db, mode="resolve", dry_run=False, operator="bob@omnihub.test")
    assert statuses() == before, "not approved: nothing changes"
    record = run(
        "approval-queue-backlog",
        fresh_db,
        mode="resolve",
        dry_run=False,
        operator="bob@omnihub.test",
        approve=["expire_items"],
    )
    done = action(record, "expire_items")
    assert done["status"] == "done" and sorted(done["result"]["expired"]) == sorted(ids)
    after = statuses()
    assert after["expired"] == before.get("expired", 0) + 10 and after["pending"] == before["pending"] - 10
    assert [r[2] for r in audit_rows(fresh_db, "runbook.expire_items")] == ["started", "succeeded"]
    assert len(audit_rows(fresh_db, "approval.expire")) == 10, "each item gets the application's own audit row"
    assert action(record, "approve_items")["status"] == "refused", "approving needs named items"


def test_approvals_nobody_decides_name_absent_approvers_and_a_3h_wait_reads_3h00m(run, fresh_db: str) -> None:
    """No item past its expiry, nothing decided for 3 hours: approvers_absent (once a code the
    vocabulary did not know, which failed the run), escalate; the oldest item, 3 h 0 min 32 s
    old, reads "3h00m" (once "3h32s", read as 3 h 32 min)."""
    dbfaults.approval_backlog(fresh_db, pending=60, past_expiry=0, hours_old=3)
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "UPDATE approval_queue SET requested_at = now() - interval '3 hours 32 seconds'"
            " WHERE id = (SELECT id FROM approval_queue WHERE status = 'pending' ORDER BY requested_at LIMIT 1)"
        )
    record = run("approval-queue-backlog", fresh_db, alertname="ApprovalQueueBacklog")
    flow = finding(record, "Approval flow")
    assert flow["role"] == "cause" and flow["cause"] == "approvers_absent" and "nobody is reviewing" in flow["summary"]
    d = record["diagnosis"]
    assert d["cause_code"] == "approvers_absent" and d["recommended_action"]["name"] == "escalate"
    assert action(record, "expire_items")["recommended"] is False, "nothing is past its expiry"
    backlog = finding(record, "Approval backlog")
    assert 3 * 3600 + 30 <= backlog["details"]["oldest_s"] < 3 * 3600 + 59
    assert "the oldest waiting 3h00m" in backlog["summary"], backlog["summary"]
    import re

    for text in (backlog["summary"], d["headline"], json.dumps(record["findings"])):
        assert not re.search(r"\b\d+h\d+s\b", text), text


# -- kill-switch-active -----------------------------------------------------------------------------------
def test_kill_switch_says_who_when_why_and_what_waits(run, fresh_db: str) -> None:
    dbfaults.enable_kill_switch(fresh_db, "carol@omnihub.test", "suspicious trades on venue X", queued_after=5)
    record = run("kill-switch-active", fresh_db, alertname="KillSwitchEnabled")
    switch = finding(record, "OMNIHUB_KILL_SWITCH")
    assert switch["verdict"] == "critical" and switch["role"] == "cause"
    assert (
        switch["details"]["actor"] == "carol@omnihub.test"
        and switch["details"]["reason"] == "suspicious trades on venue X"
    )
    assert "carol@omnihub.test" in record["diagnosis"]["headline"]
    held = finding(record, "Work held")
    assert held["details"]["queued_since"] == 5
    off = action(record, "disable_kill_switch")
    assert off["status"] == "proposed" and off["recommended"] is False
    d = record["diagnosis"]
    assert d["cause_code"] == "switch_audited" and d["recommended_action"]["name"] == "escalate"
    assert "carol@omnihub.test" in d["recommended_action"]["title"], "escalate to whoever switched it on"


def test_a_kill_switch_turned_on_by_sql_names_no_one_from_an_older_audit_row(run, fresh_db: str) -> None:
    """Switched on by an UPDATE 25 minutes ago, no audit row; the audit history holds an older
    enable (3 days) and the seed's newer disable (alice, 2 days, "drill over"). The record once
    said "ON since 2 days ago, switched by alice (emergency_control.disable): drill over"."""
    dbfaults.kill_switch_by_sql(fresh_db, updated_by="postgres", reason="manual", minutes_ago=25, queued_after=4)
    record = run("kill-switch-active", fresh_db, alertname="KillSwitchEnabled")
    switch = finding(record, "OMNIHUB_KILL_SWITCH")
    assert switch["verdict"] == "critical" and switch["role"] == "cause" and switch["cause"] == "switch_unaudited"
    details = switch["details"]
    assert details["audited"] is False and details["actor"] is None and details["updated_by"] == "postgres"
    assert "alice" not in switch["summary"] and "drill" not in switch["summary"]
    assert "no audit_logs row explains it" in switch["summary"] and "'postgres'" in switch["summary"]
    assert "was a disable" in details["why_unaudited"]
    with psycopg.connect(fresh_db) as conn:
        since_switch, since_days = conn.execute(
            "SELECT count(*) FILTER (WHERE created_at >= now() - interval '25 minutes'),"
            " count(*) FILTER (WHERE created_at >= now() - interval '2 days') FROM workflows WHERE status = 'queued'"
        ).fetchone()
    held = finding(record, "Work held")
    assert since_switch < since_days, "the 4 queued 50 minutes ago are before the switch"
    assert held["details"]["queued_since"] == since_switch, "counted from the row's change 25 min ago, not 2 days"
    d = record["diagnosis"]
    assert d["cause_code"] == "switch_unaudited" and d["recommended_action"]["name"] == "escalate"
    assert "alice" not in d["headline"] and "drill over" not in d["headline"]
    assert action(record, "disable_kill_switch")["recommended"] is False, "never switched off automatically"


def test_an_enable_older_than_the_state_row_does_not_explain_it(run, fresh_db: str) -> None:
    """The newest audited change is an enable, but from 3 days ago; the row changed 25 minutes
    ago and no audit row explains that."""
    with psycopg.connect(fresh_db) as conn:
        conn.execute("DELETE FROM audit_logs WHERE resource_type = 'emergency_control'")
    dbfaults.kill_switch_by_sql(fresh_db, updated_by="postgres", minutes_ago=25)
    record = run("kill-switch-active", fresh_db, alertname="KillSwitchEnabled")
    switch = finding(record, "OMNIHUB_KILL_SWITCH")
    assert switch["cause"] == "switch_unaudited" and "older than the state row" in switch["details"]["why_unaudited"]
    assert "alice" not in switch["summary"] and "quarterly drill" not in switch["summary"]


def test_the_report_pre_fills_the_diagnosis_cause(run, fresh_db: str) -> None:
    from runbook_lib.record import report

    dbfaults.kill_switch_by_sql(fresh_db, minutes_ago=25)
    record = run("kill-switch-active", fresh_db, alertname="KillSwitchEnabled")
    text = report.markdown(report.Report(record=record, timeline=[], audit_note="", checklist=[]))
    root = text.split("## Root cause (TO COMPLETE)")[1].split("##")[0]
    assert "switch\\_unaudited" in root or "switch_unaudited" in root, root
    assert "no audit\\_logs row explains it" in root or "no audit_logs row explains it" in root, root
    assert "alice" not in root and "drill over" not in root


def test_disabling_the_kill_switch_needs_a_reason_an_approval_and_is_audited(fresh_db: str, archive_dir: Path) -> None:
    """Through the real `runbook` command, as an operator would type it."""
    from tests.helpers import cli, load_record

    dbfaults.enable_kill_switch(fresh_db, "carol@omnihub.test", "suspicious trades on venue X")
    env = {"RUNBOOK_POSTGRES_DSN": fresh_db}
    base = ["run", "kill-switch-active", "--mode", "resolve", "--execute", "--operator", "bob@omnihub.test"]

    def switch() -> bool:
        with psycopg.connect(fresh_db) as conn:
            return bool(conn.execute("SELECT omnihub_kill_switch FROM emergency_controls").fetchone()[0])

    no_reason = load_record(cli(*base, "--approve", "disable_kill_switch", env=env).stdout)
    refused = action(no_reason, "disable_kill_switch")
    assert refused["status"] == "refused" and "reason" in refused["reason"] and switch()
    not_approved = load_record(cli(*base, "--param", "reason=venue cleared", env=env).stdout)
    assert action(not_approved, "disable_kill_switch")["status"] == "refused" and switch()
    res = cli(*base, "--approve", "disable_kill_switch", "--param", "reason=venue X cleared by risk", env=env)
    done = action(load_record(res.stdout), "disable_kill_switch")
    assert done["status"] == "done" and not switch()
    assert [r[2] for r in audit_rows(fresh_db, "runbook.disable_kill_switch")] == ["started", "succeeded"]
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute("SELECT reason, updated_by FROM emergency_controls").fetchone()
    assert row == ("venue X cleared by risk", "bob@omnihub.test")
    later = load_record(cli("run", "kill-switch-active", env=env).stdout)
    assert finding(later, "Emergency controls")["verdict"] == "ok"


# -- dr-drill-database-restore ---------------------------------------------------------------------------


DRILL = {"mode": "resolve", "dry_run": False, "operator": "alice@omnihub.test", "approve": ["dr_drill"]}


def test_the_dr_drill_passes_on_the_sandbox_database_and_leaves_nothing_behind(
    run, fresh_db: str, drill_server: str
) -> None:
    before, scratch_before = row_counts(fresh_db), scratch_databases(drill_server)
    proposed = run("dr-drill-database-restore", fresh_db)
    assert action(proposed, "dr_drill")["status"] == "proposed" and not (
        scratch_databases(drill_server) - scratch_before
    )
    # diagnose mode: the record leads with the drill's name, and the five steps it did not run are one line
    assert proposed["diagnosis"]["headline"].startswith("INFO — DR drill database-restore: not run (proposed")
    not_run = [f for f in proposed["findings"] if "not run" in f["summary"].lower()]
    assert [f["check"] for f in not_run] == ["Steps not run", "DR drill verdict"], not_run
    steps = ["Backup", "Failure declared", "Restore", "Verification", "RPO and RTO"]
    assert not_run[0]["details"]["steps"] == steps and all(s in not_run[0]["summary"] for s in steps)
    record = run("dr-drill-database-restore", fresh_db, **DRILL)
    verdict = finding(record, "DR drill verdict")
    d = verdict["details"]
    assert d["drill_verdict"] == "PASS" and verdict["verdict"] == "ok"
    assert record["diagnosis"]["headline"].startswith("OK — DR drill database-restore: PASS: ")
    assert "Steps not run" not in [f["check"] for f in record["findings"]]
    assert 0 <= d["rpo_s"] <= d["rpo_target_s"] == 900 and 0 < d["rto_s"] <= d["rto_target_s"] == 3600
    assert d["tables"]["workflows"] == {"source": 300, "restored": 300}
    restored = finding(record, "Restore")["details"]["scratch"]
    assert restored.startswith("rb_drill_") and restored not in scratch_databases(drill_server)
    assert finding(record, "Cleanup")["details"]["dropped"] is True
    assert not (scratch_databases(drill_server) - scratch_before) and row_counts(fresh_db) == before, (
        "the source is untouched"
    )
    assert action(record, "dr_drill")["status"] == "done"


def test_a_backup_missing_a_table_fails_the_drill(run, fresh_db: str, tmp_path: Path, drill_server: str) -> None:
    from runbook_lib.kernel.sources.postgres import backup

    partial = tmp_path / "partial.dump"
    subprocess.run(  # made without audit_logs, as a misconfigured backup job would
        [backup.tool("pg_dump", None), "-Fc", "-T", "audit_logs", "-f", str(partial), fresh_db], check=True
    )
    before, scratch_before = row_counts(fresh_db), scratch_databases(drill_server)
    record = run("dr-drill-database-restore", fresh_db, **DRILL, extra={"backup_file": str(partial)})
    verify = finding(record, "Verification")
    assert verify["verdict"] == "critical" and verify["details"]["missing"] == ["audit_logs"]
    assert "audit_logs is missing from the backup" in verify["summary"]
    verdict = finding(record, "DR drill verdict")
    assert verdict["details"]["drill_verdict"] == "FAIL" and record["diagnosis"]["verdict"] == "critical"
    assert not (scratch_databases(drill_server) - scratch_before) and row_counts(fresh_db) == before
