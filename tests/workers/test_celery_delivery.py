"""What one delivery of a celery task does, in process (no broker): the plan a local worker
would run, a redelivery of a job whose record is already archived (reported, not run again), a
second start of an interrupted run (retried, attempt 2), and a job past its attempts (an
'interrupted' record, not run)."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import pytest

from runbook_lib.core.settings import load_settings
from runbook_lib.record.archive.verify import verify
from runbook_lib.sre.alertmanager import parse_payload
from runbook_lib.workers.celery_executor import perform, retried
from runbook_lib.workers.jobs import JobHandler
from tests.helpers import alert_payload


@pytest.fixture
def handler(tmp_path: Path) -> JobHandler:
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    return JobHandler(settings)


def planned(handler: JobHandler) -> dict:
    handler.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = handler.intake.claim("celery:claimed")
    assert job is not None
    plan = handler.plan(job)
    assert plan is not None
    return plan


def test_a_redelivered_job_whose_record_is_archived_is_reported_not_run_again(handler: JobHandler) -> None:
    plan = planned(handler)
    first = perform(handler.executor, plan)
    assert (first["outcome"], first["record_id"], first["notes"]) == ("succeeded", plan["record_id"], [])
    again = perform(handler.executor, plan)  # the worker died after archiving, before its ack
    assert (again["outcome"], again["record_id"]) == ("succeeded", plan["record_id"])
    assert "found archived" in again["notes"][0]
    assert verify(handler.runner.archive) == (1, [])
    record = handler.runner.archive.load(plan["record_id"])
    assert record["attempt"] == 1 and record["intake"]["job"] == plan["job"]


def test_a_second_start_is_a_retry_and_a_third_writes_an_interrupted_record(handler: JobHandler) -> None:
    plan = planned(handler)
    archive = handler.runner.archive
    assert archive.note_attempt(plan["record_id"]) == 1  # a first start, lost before it archived
    done = perform(handler.executor, plan)
    record = archive.load(plan["record_id"])
    assert (done["outcome"], record["attempt"]) == ("succeeded", 2)
    assert any("attempt 1 was interrupted" in n for n in record["notes"])

    other = planned(handler)
    for _ in range(2):  # two starts lost
        archive.note_attempt(other["record_id"])
    done = perform(handler.executor, other)
    record = archive.load(other["record_id"])
    assert (done["outcome"], record["status"], record["attempt"]) == ("interrupted", "interrupted", 2)
    assert "not retried again" in record["failed_cell"]["evalue"]
    assert verify(archive) == (2, [])


def test_retried_keeps_a_first_start_as_planned_and_counts_from_the_plans_attempt() -> None:
    plan = {"attempt": 1, "notes": ["from the journal"], "skip": None}
    assert retried(plan, 1, 2) is plan
    second = retried(plan, 2, 2)
    assert (second["attempt"], second["skip"], second["notes"][0]) == (2, None, "from the journal")
    locally_retried = {**plan, "attempt": 2}  # already a retry in the journal, then lost once more
    assert retried(locally_retried, 2, 2)["skip"] == "interrupted 2 times (worker lost mid-run); not retried again"
    assert retried(locally_retried, 2, 3)["skip"] is None


def test_a_start_that_met_a_full_disk_is_given_back_not_counted_as_an_interruption(
    handler: JobHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = planned(handler)
    real_run = handler.runner.run

    def full(_request):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(handler.runner, "run", full)
    counted = [False]
    with pytest.raises(OSError, match="No space left"):
        perform(handler.executor, plan, counted)
    assert counted == [True]  # the task retries with given_back=1 (run_job)
    monkeypatch.setattr(handler.runner, "run", real_run)
    done = perform(handler.executor, {**plan, "given_back": 1})
    record = handler.runner.archive.load(plan["record_id"])
    assert (done["outcome"], record["attempt"]) == ("succeeded", 1)
    assert not any("interrupted" in n for n in record["notes"])


def test_a_second_delivery_of_a_running_job_waits_for_its_record_and_runs_nothing(tmp_path: Path) -> None:
    """The broker redelivers a job whose worker's connection dropped while that worker still runs
    it: the second delivery sees the first's running mark, waits, and reports the first's
    record; the notebook runs once."""
    import threading

    from tests.helpers import HOME
    from tests.support.minimal import make_runbook, write_minimal_collection

    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)
    count = tmp_path / "executions"
    slow = f"import time\nopen({str(count)!r}, 'a').write('ran\\n')\ntime.sleep(2)"
    make_runbook(runbooks, "noop", slow, 'rb.finding("noop", "info", "ran")')
    overrides = {
        "archive.path": str(tmp_path / "executed"),
        "prometheus.url": None,
        "runbooks_dir": str(runbooks),
        "catalog_path": str(catalog),
    }
    first, second = JobHandler(load_settings(overrides=overrides)), JobHandler(load_settings(overrides=overrides))
    from tests.support.load import burst_payloads

    first.intake.accept(parse_payload(burst_payloads(1)[0]), "{}")
    plan = first.plan(first.intake.claim("celery:claimed"))
    assert plan is not None and plan["slug"] == "noop"
    results: dict[str, dict] = {}
    one = threading.Thread(target=lambda: results.update(first=perform(first.executor, plan, beat_s=0.2)))
    one.start()
    deadline = time.monotonic() + 30
    while not count.exists():  # the first delivery is mid-run
        assert time.monotonic() < deadline and one.is_alive()
        time.sleep(0.02)
    results["second"] = perform(second.executor, plan, beat_s=0.2)
    one.join(30)
    assert count.read_text() == "ran\n"
    assert results["first"]["outcome"] == results["second"]["outcome"] == "succeeded"
    assert results["second"]["record_id"] == plan["record_id"] and results["first"]["notes"] == []
    [note] = results["second"]["notes"]
    assert "another delivery" in note and "was running it; this one waited" in note
    archive = first.runner.archive
    assert archive.load(plan["record_id"])["attempt"] == 1 and verify(archive) == (1, [])
    assert archive.running_mark(plan["record_id"]) is None  # cleared when the run ended


def test_a_running_mark_of_a_delivery_that_is_gone_does_not_hold_anyone(
    handler: JobHandler, caplog: pytest.LogCaptureFixture
) -> None:
    plan = planned(handler)
    archive = handler.runner.archive
    archive.mark_running(plan["record_id"], "gone-host:1:1")
    stale = json.loads((archive.root / ".running" / plan["record_id"]).read_text())
    stale["at"] -= 60  # last said so a minute ago: that worker is gone
    (archive.root / ".running" / plan["record_id"]).write_text(json.dumps(stale))
    done = perform(handler.executor, plan, beat_s=0.2)
    assert done["outcome"] == "succeeded" and done["notes"] == []
    assert "waiting for its record" not in caplog.text
