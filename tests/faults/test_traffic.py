"""The fault matrix's traffic cases (tests/faults/cases/traffic.py): each injected for real, its
record judged on cause, action and verdict bounds."""

from __future__ import annotations

import shlex
from pathlib import Path

import psycopg
import pytest

from tests.faults.cases.traffic import CASES
from tests.faults.matrix import Bench, Case, run_case
from tests.helpers import cli, load_record

pytestmark = pytest.mark.services


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_record_names_the_cause_and_the_action(case: Case, bench: Bench) -> None:
    outcome = run_case(case, bench)
    assert outcome.right, outcome.explain()


def test_the_recommended_command_does_what_the_record_says(bench: Bench) -> None:
    """The command a record shows ready to copy is the guarded one: pasted as it is (the
    operator from $RUNBOOK_OPERATOR), it resolves the same alert with that option approved,
    with an audit row; what it runs underneath is shown beside it, not offered to paste."""
    outcome = run_case(next(c for c in CASES if c.name == "errors-after-rollout"), bench)
    action = outcome.diagnosis["recommended_action"]
    assert action["performs"].startswith("kubectl rollout undo deployment/api-gateway")
    argv = shlex.split(action["command"])
    assert (
        argv[:3] == ["runbook", "run", "high-error-rate"]
        and "--record" in argv
        and argv[-2:] == ["--approve", "rollback"]
    )
    dsn = bench.database()
    ran = cli(*argv[1:], env={**outcome.environ, "RUNBOOK_OPERATOR": "alice@omnihub.test", "RUNBOOK_POSTGRES_DSN": dsn})
    assert ran.returncode == 0, ran.stderr
    record = load_record(Path(ran.stdout.strip().splitlines()[-1]))
    done = next(a for a in record["actions"] if a["name"] == "rollback")
    assert done["status"] == "done" and done["operator"] == "alice@omnihub.test", done
    assert record["alert"]["fingerprint"] == outcome.record["alert"]["fingerprint"]
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT actor, outcome FROM audit_logs WHERE action = 'runbook.rollback' ORDER BY id"
        ).fetchall()
    assert rows == [("alice@omnihub.test", "started"), ("alice@omnihub.test", "succeeded")]
