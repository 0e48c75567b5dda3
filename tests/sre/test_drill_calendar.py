"""The DR drill calendar: each drill's state in its quarter (done, failed, due, upcoming,
overdue), worked out by hand for fixed instants; the verdict read from both drills' findings;
`runbook drills` over an archive holding real-shaped drill records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook_lib.core.errors import ConfigError
from runbook_lib.record.archive import LocalArchive
from runbook_lib.sre import drill_calendar as drills
from tests.helpers import HOME, cli

CAL = drills.load(HOME / "parameters" / "drills.yaml")


def run(runbook: str, at: str, verdict: str | None, mode: str = "resolve") -> drills.Run:
    return drills.Run(f"id-{at}", runbook, datetime.fromisoformat(at).replace(tzinfo=UTC), mode, verdict)


def states(runs: list[drills.Run], now: str) -> dict[str, str]:
    at = datetime.fromisoformat(now).replace(tzinfo=UTC)
    return {s.drill.name: s.status for s in drills.calendar(CAL, runs, 2026, at)}


def test_the_package_schedule_one_drill_a_quarter() -> None:
    assert [(d.quarter, d.name) for d in CAL] == [
        (1, "database-restore"),
        (2, "regional-failover"),
        (3, "environment-restore"),
        (4, "chaos"),
    ]


def test_states_through_the_year() -> None:
    passed_q1 = run("dr-drill-database-restore", "2026-02-10T10:00:00", "PASS")
    assert states([passed_q1], "2026-05-15T00:00:00") == {
        "database-restore": "done",
        "regional-failover": "due",
        "environment-restore": "upcoming",
        "chaos": "upcoming",
    }
    failed_q2 = run("dr-drill-regional-failover", "2026-05-01T10:00:00", "FAIL")
    assert states([passed_q1, failed_q2], "2026-05-15T00:00:00")["regional-failover"] == "failed"
    assert states([passed_q1, failed_q2], "2026-07-01T00:00:00")["regional-failover"] == "overdue"  # quarter over
    # a pre-check (diagnose mode) is not a drill, and a PASS in another quarter does not count
    precheck = run("dr-drill-regional-failover", "2026-05-02T10:00:00", "PASS", mode="diagnose")
    late = run("dr-drill-regional-failover", "2026-07-02T10:00:00", "PASS")
    assert states([passed_q1, precheck, late], "2026-08-01T00:00:00")["regional-failover"] == "overdue"
    # next due: the overdue drill first
    at = datetime(2026, 8, 1, tzinfo=UTC)
    upcoming = drills.next_due(drills.calendar(CAL, [passed_q1], 2026, at), at)
    assert upcoming is not None and upcoming.drill.name == "regional-failover"


def test_the_verdict_is_read_from_either_drills_finding() -> None:
    q1 = {"findings": [{"check": "DR drill verdict", "details": {"drill_verdict": "PASS"}}]}
    q2 = {"findings": [{"check": "DR failover verdict", "details": {"verdict": "FAIL"}}]}
    none = {"findings": [{"check": "DR drill verdict", "details": {"drill_step": "verdict"}}]}
    assert (drills.verdict_of(q1), drills.verdict_of(q2), drills.verdict_of(none)) == ("PASS", "FAIL", None)


def test_a_broken_calendar_says_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "drills.yaml"
    bad.write_text("drills:\n  - {name: x, runbook: dr-x, quarter: 5}\n")
    with pytest.raises(ConfigError, match="quarter must be 1-4"):
        drills.load(bad)
    bad.write_text("drills: []\n")
    with pytest.raises(ConfigError, match="non-empty"):
        drills.load(bad)


def _drill_record(archive: LocalArchive, rid: str, runbook: str, started: str, verdict: str) -> None:
    record = {
        "id": rid,
        "runbook": runbook,
        "status": "succeeded",
        "mode": "resolve",
        "started_at": started,
        "alert": None,
        "findings": [
            {"check": "DR drill verdict", "verdict": "info", "summary": verdict, "details": {"drill_verdict": verdict}}
        ],
        "actions": [],
    }
    staging = archive.staging_dir(rid)
    (staging / "notebook.ipynb").write_text("{}")
    (staging / "record.html").write_text("<html></html>")
    (staging / "record.json").write_text(json.dumps(record))
    archive.commit(staging, record)


def test_runbook_drills_prints_the_calendar_with_last_verdicts(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path / "executed")
    year = datetime.now(UTC).year
    _drill_record(
        archive,
        f"{year}0110T100000Z-dr-drill-database-restore-0000000a",
        "dr-drill-database-restore",
        f"{year}-01-10T10:00:00+00:00",
        "FAIL",
    )
    _drill_record(
        archive,
        f"{year}0111T100000Z-dr-drill-database-restore-0000000b",
        "dr-drill-database-restore",
        f"{year}-01-11T10:00:00+00:00",
        "PASS",
    )
    res = cli("drills", "--json", env={"RUNBOOK_ARCHIVE": str(tmp_path / "executed")})
    assert res.returncode == 0, res.stderr
    got = {d["drill"]: d for d in json.loads(res.stdout)["drills"]}
    assert got["database-restore"]["status"] == "done" and got["database-restore"]["last_verdict"] == "PASS"
    assert got["regional-failover"]["last_run"] is None
    table = cli("drills", env={"RUNBOOK_ARCHIVE": str(tmp_path / "executed")})
    line = next(x for x in table.stdout.splitlines() if x.startswith("Q1"))
    assert "done" in line and "PASS" in line
    bad = cli("drills", "--year", "1999")
    assert bad.returncode == 2 and "--year" in bad.stderr
