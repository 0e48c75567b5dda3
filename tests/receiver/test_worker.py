"""The worker's job processing, in process: a corrupt index fails jobs cleanly, a resolved
notification processed twice chains one event, a job that keeps dying is given up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runbook_lib.alertmanager import parse_payload
from runbook_lib.errors import ArchiveError
from runbook_lib.receiver.worker import JobRunner
from runbook_lib.record.verify import verify
from runbook_lib.settings import load_settings
from tests.helpers import alert_payload


@pytest.fixture
def runner(tmp_path: Path) -> JobRunner:
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    return JobRunner(settings)


def test_a_corrupt_index_line_fails_jobs_cleanly_instead_of_killing_workers(runner: JobRunner) -> None:
    archive = runner.engine.archive
    archive.root.mkdir(parents=True, exist_ok=True)
    archive.index_path.write_text('{"seq": 1, "half a line\n')
    runner.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = runner.intake.claim("test")
    assert job is not None
    assert runner.process(job) == "error"
    [row] = runner.intake.jobs()
    assert row["state"] == "done" and row["outcome"] == "error"
    assert "line 1 is not a JSON object" in json.loads(row["notes"])[0]
    with pytest.raises(ArchiveError, match="line 1 is not a JSON object"):
        archive.is_indexed("x")


def test_resolved_processed_twice_chains_one_event(runner: JobRunner) -> None:
    firing = alert_payload(alertname="SomeAlert", fingerprint="feed01")
    runner.intake.accept(parse_payload(firing), "{}")
    assert runner.process(runner.intake.claim("t")) == "succeeded"  # triage, nothing configured
    resolved = json.loads(json.dumps(firing))
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2099-01-01T00:00:00Z"
    runner.intake.accept(parse_payload(resolved), "{}")
    job = runner.intake.claim("t")
    assert runner.process(job) == "resolved"
    runner.process(job)  # as after a crash between chaining the event and finishing the job
    events = [e for e in runner.engine.archive.entries() if e["type"] == "event"]
    assert len(events) == 1 and events[0]["event"] == "resolved" and events[0]["data"]["job"] == job.id
    assert verify(runner.engine.archive)[1] == []


def test_a_job_that_keeps_dying_is_given_up(runner: JobRunner) -> None:
    runner.intake.accept(parse_payload(alert_payload()), "{}")
    for _ in range(4):  # claimed, and its worker "died" each time
        job = runner.intake.claim("w")
        runner.intake.requeue(job.id, "worker died")
    job = runner.intake.claim("w")
    assert job.attempts == 5 and runner.process(job) == "error"
    assert runner.intake.jobs()[0]["outcome"] == "error"
