"""The regional-failover DR drill (dr-drill-regional-failover) through the runner, on the
session's primary with a real streaming replica (conftest ``pair``, put back after a test breaks it): it
passes and leaves the standby promoted; a standby that is not replicating fails it before
anything is touched; diagnose mode changes nothing. The DSNs' password never reaches a record."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook_lib.core.credentials import environment_secrets
from runbook_lib.core.settings import load_settings
from runbook_lib.kernel.drills.failover import redacted_env_name
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from tests.support.cluster import Cluster

pytestmark = pytest.mark.services

SLUG = "dr-drill-regional-failover"
PRIMARY_ENV, STANDBY_ENV = "RUNBOOK_DRILL_PRIMARY_DSN_SECRET", "RUNBOOK_DRILL_STANDBY_DSN_SECRET"
DRILL = {"mode": "resolve", "dry_run": False, "operator": "alice@omnihub.test", "approve": ["dr_failover"]}


def streaming(primary: Cluster) -> int:
    with psycopg.connect(primary.dsn(), connect_timeout=2) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()[0]


def wait_for(condition: Any, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the replication state"
        time.sleep(0.1)


@pytest.fixture
def drill(archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the drill through the runner on ``pair``: the DSNs only in the environment."""

    def go(pair: tuple[Cluster, Cluster], data_dir: Path | None = None, **request: Any) -> dict[str, Any]:
        primary, standby = pair
        with psycopg.connect(primary.dsn(), autocommit=True) as conn:  # rows the promoted standby must hold
            conn.execute("CREATE TABLE IF NOT EXISTS accounts (id serial PRIMARY KEY, name text)")
            if conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0:
                conn.execute("INSERT INTO accounts (name) SELECT 'user-' || g FROM generate_series(1, 200) g")
        monkeypatch.setenv(PRIMARY_ENV, primary.dsn())
        monkeypatch.setenv(STANDBY_ENV, standby.dsn())
        extra = {"primary_data_dir": str(data_dir or primary.data)}
        result = Runner(load_settings()).run(RunRequest(alert=None, slug=SLUG, extra=extra, **request))
        assert result.status == "succeeded", result.record.get("failed_cell")
        written = "".join((result.path / f).read_text() for f in ("record.json", "record.html", "notebook.ipynb"))
        assert primary.password not in written and standby.password not in written, "a DSN password leaked"
        return result.record

    return go


def finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    found = [f for f in record["findings"] if f["check"] == check]
    assert found, f"no {check!r} finding in {[f['check'] for f in record['findings']]}"
    return found[0]


def action(record: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in record["actions"] if a["name"] == "dr_failover")


def state(cluster: Cluster) -> dict[str, Any]:
    """Whether it answers, is in recovery, and how many rows the drill's marker table holds (an
    earlier drill on the session's pair may have left some: compare with the state before)."""
    try:
        with psycopg.connect(cluster.dsn(), connect_timeout=2) as conn:
            row = conn.execute("SELECT pg_is_in_recovery(), to_regclass('dr_drill_markers') IS NOT NULL").fetchone()
            markers = conn.execute("SELECT count(*) FROM dr_drill_markers").fetchone()[0] if row[1] else 0
    except psycopg.OperationalError:
        return {"up": False}
    return {"up": True, "in_recovery": row[0], "markers": markers}


def test_the_failover_drill_passes_and_leaves_the_standby_promoted(drill, pair) -> None:
    primary, standby = pair
    before = state(standby)["markers"]
    record = drill(pair, **DRILL)
    verdict = finding(record, "DR failover verdict")
    d = verdict["details"]
    assert d["drill_verdict"] == "PASS" and verdict["verdict"] == "ok", verdict["summary"]
    assert d["rows_lost"] == 0 and d["rows_written"] == 1 and d["reasons"] == []
    assert 0 < d["rto_s"] <= d["rto_target_s"] == 3600 and 0 <= d["rpo_s"] <= d["rpo_target_s"] == 900
    assert record["diagnosis"]["headline"].startswith("OK — DR drill regional-failover: PASS: 0 row(s) lost, RPO")
    assert finding(record, "Readiness")["details"]["receiver_status"] == "streaming"
    assert action(record)["status"] == "done"
    print(f"\nfailover drill: RPO {d['rpo_s']} s ({d['rows_lost']} rows lost), RTO {d['rto_s']} s")

    assert state(primary) == {"up": False}, "the old primary is stopped"
    after = state(standby)
    assert (after["up"], after["in_recovery"]) == (True, False), "the standby is the primary now"
    assert after["markers"] == before + 2, "the drill's marker before the failure and its first write after"
    with psycopg.connect(standby.dsn()) as conn:
        notes = [r[0] for r in conn.execute("SELECT note FROM dr_drill_markers ORDER BY id")]
        assert conn.execute("SELECT count(*) FROM accounts").fetchone()[0] == 200
    assert notes[0].startswith("before failure") and notes[-1].startswith("first write after failover")


def test_a_standby_that_is_not_replicating_fails_the_drill_and_nothing_is_touched(drill, pair) -> None:
    primary, standby = pair
    with psycopg.connect(standby.dsn(), autocommit=True) as conn:  # its upstream: a port nothing listens on
        conn.execute("ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=9 user=postgres'")
        conn.execute("SELECT pg_reload_conf()")
    wait_for(lambda: streaming(primary) == 0)
    untouched = state(primary)
    record = drill(pair, **DRILL)
    verdict = finding(record, "DR failover verdict")
    assert verdict["details"]["drill_verdict"] == "FAIL" and verdict["verdict"] == "critical"
    assert "not replicating" in verdict["summary"] and "nothing was touched" in verdict["summary"]
    assert any("replicating" in r for r in verdict["details"]["reasons"])
    assert finding(record, "Readiness")["verdict"] == "critical"
    not_run = finding(record, "Steps not run")["details"]
    assert "Failure declared" in not_run["steps"] and not_run["reasons"] == ["not ready (see Readiness)"]
    assert record["diagnosis"]["headline"].startswith(
        "CRITICAL — DR drill regional-failover: FAIL: the drill did not start"
    )
    assert action(record)["status"] == "refused"
    assert state(primary) == untouched == {**untouched, "up": True, "in_recovery": False}, "the primary is untouched"
    assert state(standby)["in_recovery"] is True


def test_diagnose_mode_checks_readiness_and_changes_nothing(drill, pair) -> None:
    primary, standby = pair
    untouched = (state(primary), state(standby))
    record = drill(pair)
    assert finding(record, "Readiness")["verdict"] == "ok"
    # the steps that did not run: one line, not one finding each
    [not_run] = [
        f for f in record["findings"] if "not run" in f["summary"].lower() and f["check"] != "DR failover verdict"
    ]
    assert not_run["check"] == "Steps not run" and not_run["verdict"] == "info"
    assert not_run["details"]["steps"] == ["Marker", "Failure declared", "Promotion", "RPO and RTO"]
    assert finding(record, "DR failover verdict")["summary"].startswith("DR drill regional-failover: not run (proposed")
    assert record["diagnosis"]["headline"].startswith("INFO — DR drill regional-failover: not run (proposed")
    assert action(record)["status"] == "proposed" and "pg_ctl" in action(record)["command"]
    assert (state(primary), state(standby)) == untouched
    assert (untouched[0]["in_recovery"], untouched[1]["in_recovery"]) == (False, True)


def test_a_data_directory_that_is_not_the_primarys_is_refused_even_when_approved(drill, pair) -> None:
    primary, standby = pair
    untouched = (state(primary), state(standby))
    record = drill(pair, data_dir=standby.data, **DRILL)  # the standby's: same system, another port
    verdict = finding(record, "DR failover verdict")
    assert verdict["details"]["drill_verdict"] == "FAIL" and "is not the primary's" in verdict["summary"]
    assert action(record)["status"] == "refused"
    assert (state(primary), state(standby)) == untouched
    assert (untouched[0]["up"], untouched[1]["in_recovery"]) == (True, True)


def test_the_dsn_variables_the_notebook_names_are_ones_the_engine_redacts() -> None:
    dsn = "postgresql://postgres:s3cret-pw-1234@127.0.0.1:5432/postgres"
    for var in (PRIMARY_ENV, STANDBY_ENV):
        assert redacted_env_name(var) and "s3cret-pw-1234" in environment_secrets({var: dsn})
    assert not redacted_env_name("RUNBOOK_DRILL_PRIMARY_DSN"), "a plain *_DSN name is not redacted"
    assert environment_secrets({"RUNBOOK_DRILL_PRIMARY_DSN": dsn}) == []


@pytest.fixture(scope="module")
def twin_pair() -> Any:
    """A primary at 127.0.0.1:P and its streaming standby at 127.0.0.2:P: the same port, the same
    system identifier, another address."""
    primary = Cluster(name="twin-primary").init().start()
    try:
        standby = primary.standby(host="127.0.0.2", same_port=True)
        try:
            standby.wait_accepting()
            wait_for(lambda: streaming(primary) == 1, 30)
            yield primary, standby
        finally:
            standby.remove()
    finally:
        primary.remove()


def test_the_standbys_data_directory_on_the_same_port_is_refused_before_anything_stops(drill, twin_pair) -> None:
    """Given the standby's data directory as primary_data_dir, the drill must not stop the
    standby: asked over the directory's own socket, its server is in recovery, and the primary
    DSN is served by another postmaster."""
    primary, standby = twin_pair
    assert (primary.port, primary.host, standby.host) == (standby.port, "127.0.0.1", "127.0.0.2")
    untouched = (state(primary), state(standby))
    record = drill(twin_pair, data_dir=standby.data, **DRILL)
    verdict = finding(record, "DR failover verdict")
    assert verdict["details"]["drill_verdict"] == "FAIL" and action(record)["status"] == "refused"
    reasons = " | ".join(verdict["details"]["reasons"])
    assert "is in recovery, a standby" in reasons and "the primary DSN (postgresql://127.0.0.1" in reasons, reasons
    assert "is the running primary's" not in finding(record, "Readiness")["summary"]
    assert (state(primary), state(standby)) == untouched
    assert (untouched[0]["up"], untouched[1]["up"], untouched[1]["in_recovery"]) == (True, True, True)

    # the real primary's directory passes the same proof (diagnose mode: nothing is stopped)
    record = drill(twin_pair, data_dir=primary.data)
    assert finding(record, "Readiness")["verdict"] == "ok", finding(record, "Readiness")["summary"]
    assert (state(primary), state(standby)) == untouched
