"""A drill's last run that does not count for its quarter (the sandbox drill `make demo` runs in
December, shown against Q1's database-restore) says so and why, by the calendar's own rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from runbook_lib.record.archive import LocalArchive
from runbook_lib.sre import drill_calendar as drills
from tests.helpers import HOME, cli

CAL = drills.load(HOME / "parameters" / "drills.yaml")
RESTORE = "dr-drill-database-restore"


def run(at: str, verdict: str | None = "PASS", mode: str = "resolve", env: str = "sandbox") -> drills.Run:
    return drills.Run(f"id-{at}", RESTORE, datetime.fromisoformat(at).replace(tzinfo=UTC), mode, verdict, env)


def q1(runs: list[drills.Run], now: str = "2026-12-08T00:00:00") -> drills.State:
    at = datetime.fromisoformat(now).replace(tzinfo=UTC)
    return next(s for s in drills.calendar(CAL, runs, 2026, at) if s.drill.quarter == 1)


def test_a_pass_in_another_quarter_is_shown_as_not_counted_and_why() -> None:
    state = q1([run("2026-12-07T10:00:00")])
    assert state.status == "overdue" and state.last is not None and state.in_quarter is None
    assert state.verdict_text() == "PASS (not counted)"
    assert state.last_run_note() == (
        "database-restore: last run: PASS on 2026-12-07 in sandbox (id-2026-12-07T10:00:00) does not count for "
        "Q1 2026: it ran in Q4 2026, and a drill counts only in its own quarter (2026-01-01 .. 2026-04-01)"
    )
    assert state.to_dict()["last_counts"] is False and "Q4 2026" in state.to_dict()["last_not_counted"]
    # the same PASS a year earlier: the right quarter, the wrong year
    assert "it ran in Q1 2025" in (q1([run("2025-02-10T10:00:00")]).last_not_counted or "")


def test_what_the_display_calls_counted_is_what_the_calendar_counts() -> None:
    counted = q1([run("2026-02-10T10:00:00", env="local")])
    assert counted.status == "done" and counted.last_not_counted is None and counted.last_run_note() is None
    assert counted.verdict_text() == "PASS" and counted.to_dict()["last_counts"] is True
    failed = q1([run("2026-02-10T10:00:00", verdict="FAIL")], now="2026-03-01T00:00:00")
    assert failed.status == "failed" and failed.verdict_text() == "FAIL"  # counted: a drill that failed
    for other in (run("2026-02-11T10:00:00", mode="diagnose"), run("2026-02-11T10:00:00", verdict=None)):
        assert drills.not_counted(CAL[0], other, 2026) is not None
        assert q1([other], now="2026-03-01T00:00:00").status == "due"  # a pre-check or no verdict: not a drill
    assert "pre-check" in (drills.not_counted(CAL[0], run("2026-02-11T10:00:00", mode="diagnose"), 2026) or "")


def test_runbook_drills_says_the_sandbox_run_does_not_count(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path / "executed")
    year = datetime.now(UTC).year - 1  # a year that is over: its Q1 drill is overdue without a Q1 PASS
    rid = f"{year}1207T100000Z-{RESTORE}-0000000a"
    record = {
        "id": rid,
        "runbook": RESTORE,
        "status": "succeeded",
        "mode": "resolve",
        "environment": "sandbox",
        "started_at": f"{year}-12-07T10:00:00+00:00",
        "alert": None,
        "findings": [
            {"check": "DR drill verdict", "verdict": "info", "summary": "PASS", "details": {"drill_verdict": "PASS"}}
        ],
        "actions": [],
    }
    staging = archive.staging_dir(rid)
    (staging / "notebook.ipynb").write_text("{}")
    (staging / "record.html").write_text("<html></html>")
    (staging / "record.json").write_text(json.dumps(record))
    archive.commit(staging, record)
    env = {"RUNBOOK_ARCHIVE": str(tmp_path / "executed")}

    res = cli("drills", "--year", str(year), env=env)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    row = next(x for x in lines if x.startswith("Q1"))
    assert "OVERDUE" in row and "PASS (not counted)" in row
    note = next(x for x in lines if x.startswith("Q1 database-restore: last run:"))
    assert note.startswith(
        f"Q1 database-restore: last run: PASS on {year}-12-07 in sandbox ({rid}) does not count for Q1 {year}: "
        f"it ran in Q4 {year}"
    )
    shown = {d["drill"]: d for d in json.loads(cli("drills", "--year", str(year), "--json", env=env).stdout)["drills"]}
    assert shown["database-restore"]["last_environment"] == "sandbox"
    assert shown["database-restore"]["last_counts"] is False and shown["database-restore"]["status"] == "overdue"
