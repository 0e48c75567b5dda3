"""The worker's job processing, in process: a corrupt index fails jobs cleanly, a resolved
notification processed twice chains one event, a job that keeps dying is given up, and an
environmental failure (disk full) is retried rather than final."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest
from tenacity import wait_none

from runbook_lib.core.environmental import environmental
from runbook_lib.core.errors import ArchiveError, JournalError
from runbook_lib.core.settings import load_settings
from runbook_lib.record.archive.verify import verify
from runbook_lib.record.events import events_banner
from runbook_lib.sre.alertmanager import parse_payload
from runbook_lib.workers.jobs import JobHandler
from runbook_lib.workers.local import Stopping, claim_next, run_until_done
from runbook_lib.workers.supervisor import Supervisor
from tests.helpers import alert_payload
from tests.support.load import burst_payloads


@pytest.fixture
def handler(tmp_path: Path) -> JobHandler:
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    return JobHandler(settings)


def test_a_corrupt_index_line_fails_jobs_cleanly_instead_of_killing_workers(handler: JobHandler) -> None:
    archive = handler.runner.archive
    archive.root.mkdir(parents=True, exist_ok=True)
    archive.index_path.write_text('{"seq": 1, "half a line\n')
    handler.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = handler.intake.claim("test")
    assert job is not None
    assert handler.process(job) == "error"
    [row] = handler.intake.jobs()
    assert row["state"] == "done" and row["outcome"] == "error"
    assert "line 1 is not a JSON object" in json.loads(row["notes"])[0]
    with pytest.raises(ArchiveError, match="line 1 is not a JSON object"):
        archive.is_indexed("x")


def test_resolved_processed_twice_chains_one_event(handler: JobHandler) -> None:
    firing = alert_payload(alertname="SomeAlert", fingerprint="feed01")
    handler.intake.accept(parse_payload(firing), "{}")
    assert handler.process(handler.intake.claim("t")) == "succeeded"  # triage, nothing configured
    resolved = json.loads(json.dumps(firing))
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2099-01-01T00:00:00Z"
    handler.intake.accept(parse_payload(resolved), "{}")
    job = handler.intake.claim("t")
    assert handler.process(job) == "resolved"
    handler.process(job)  # as after a crash between chaining the event and finishing the job
    events = [e for e in handler.runner.archive.entries() if e["type"] == "event"]
    assert len(events) == 1 and events[0]["event"] == "resolved" and events[0]["data"]["job"] == job.id
    assert verify(handler.runner.archive)[1] == []


def test_a_job_that_keeps_dying_is_given_up(handler: JobHandler) -> None:
    handler.intake.accept(parse_payload(alert_payload()), "{}")
    for _ in range(4):  # claimed, and its worker "died" each time
        job = handler.intake.claim("w")
        handler.intake.requeue(job.id, "worker died")
    job = handler.intake.claim("w")
    assert job.attempts == 5 and handler.process(job) == "error"
    assert handler.intake.jobs()[0]["outcome"] == "error"


def test_environmental_failures_are_recognised_through_their_causes() -> None:
    assert environmental(OSError(errno.ENOSPC, "No space left on device", "/x/record.html")) == (
        "no space left on device (/x/record.html)"
    )
    assert environmental(sqlite3.OperationalError("database or disk is full")) == "journal: database or disk is full"
    wrapped = JournalError("intake journal j: database is locked")
    wrapped.__cause__ = sqlite3.OperationalError("database is locked")
    assert environmental(wrapped) == "journal: database is locked"
    assert environmental(OSError(errno.ENOENT, "No such file")) is None
    assert environmental(ValueError("a runbook bug")) is None


def test_a_disk_full_run_is_retried_not_finished(handler: JobHandler, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the job ended 'error' for good. Now the environmental failure reaches the worker's
    retry loop, the job stays 'running', and a later try archives exactly one record."""
    handler.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = handler.intake.claim("w")
    real_run = handler.runner.run
    failures = iter([OSError(errno.ENOSPC, "No space left on device"), None])

    def flaky(request):
        exc = next(failures)
        if exc is not None:
            handler.runner.archive.staging_dir(request.record_id)  # as a half-written attempt leaves it
            raise exc
        return real_run(request)

    monkeypatch.setattr(handler.runner, "run", flaky)
    reports: list[str | None] = []
    stopping = threading.Event()
    outcome = run_until_done(handler, job, stopping, reports.append, wait=wait_none())
    assert outcome == "succeeded"
    assert reports == ["no space left on device", None]
    [row] = handler.intake.jobs()
    assert (row["state"], row["outcome"]) == ("done", "succeeded")
    assert verify(handler.runner.archive) == (1, [])
    assert not list((handler.runner.archive.root / ".staging").iterdir())


def test_a_real_failure_still_finishes_the_job_as_error(handler: JobHandler, monkeypatch: pytest.MonkeyPatch) -> None:
    handler.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = handler.intake.claim("w")
    monkeypatch.setattr(handler.runner, "run", lambda _r: (_ for _ in ()).throw(ValueError("bug")))
    assert run_until_done(handler, job, threading.Event(), lambda _r: None, wait=wait_none()) == "error"
    assert handler.intake.jobs()[0]["outcome"] == "error"


def test_an_end_before_the_start_is_a_clock_skew_note_never_a_negative_duration(handler: JobHandler) -> None:
    firing = alert_payload(alertname="SkewedAlert", fingerprint="feed02")
    handler.intake.accept(parse_payload(firing), "{}")
    assert handler.process(handler.intake.claim("t")) == "succeeded"
    resolved = json.loads(json.dumps(firing))
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2000-01-01T00:00:00Z"  # before startsAt
    handler.intake.accept(parse_payload(resolved), "{}")
    assert handler.process(handler.intake.claim("t")) == "resolved"
    [event] = [e for e in handler.runner.archive.entries() if e["type"] == "event"]
    assert event["data"]["duration_s"] is None and "is before startsAt" in event["data"]["clock_skew"]
    banner = events_banner([event])
    assert "duration unknown" in banner and "after -" not in banner


def test_a_claim_that_met_an_environmental_failure_is_given_back(
    handler: JobHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Restarts during a long outage must not use up receiver.max_attempts."""
    handler.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = handler.intake.claim("w")
    assert handler.intake.jobs()[0]["attempts"] == 1
    real_run = handler.runner.run
    failures = iter([OSError(errno.ENOSPC, "No space left on device"), None])

    def flaky(request):
        exc = next(failures)
        if exc is not None:
            assert handler.intake.jobs()[0]["attempts"] == 1
            raise exc
        assert handler.intake.jobs()[0]["attempts"] == 0, "given back before the retry"
        return real_run(request)

    monkeypatch.setattr(handler.runner, "run", flaky)
    assert run_until_done(handler, job, threading.Event(), lambda _r: None, wait=wait_none()) == "succeeded"


def test_a_stop_during_the_backoff_runs_no_further_try(handler: JobHandler, monkeypatch: pytest.MonkeyPatch) -> None:
    handler.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = handler.intake.claim("w")
    stopping = threading.Event()
    tries = []

    def always_full(_request):
        tries.append(1)
        stopping.set()  # SIGTERM arrives while the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(handler.runner, "run", always_full)
    with pytest.raises((Stopping, OSError)):
        run_until_done(handler, job, stopping, lambda _r: None, wait=wait_none())
    assert len(tries) == 1
    assert handler.intake.jobs()[0]["state"] == "running", "left for the next start, not finished"


def test_an_idle_look_at_the_journal_clears_a_degraded_worker(handler: JobHandler) -> None:
    reports: list[str | None] = []
    assert claim_next(handler, "w", reports.append) is None
    assert reports == [None]


def test_jobs_of_dead_workers_are_requeued_by_the_supervisors_loop(tmp_path: Path) -> None:
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed")})
    supervisor = Supervisor(settings, None, {}, 1)
    intake = supervisor.intake
    intake.accept(parse_payload(alert_payload(alertname="Orphan")), "{}")
    intake.claim("host:999999")  # a worker that no longer exists
    assert supervisor.requeue_orphans("its worker died") == 1
    [row] = intake.jobs()
    assert row["state"] == "queued" and "its worker died" in json.loads(row["notes"])[-1]


def test_a_second_journal_on_the_same_archive_still_chains_its_resolutions(tmp_path: Path) -> None:
    """Job ids restart in every journal (the demo makes one per run): an earlier journal's event
    for job 2 must not hide this journal's resolution for its job 2."""
    for n, journal in enumerate(("j1.sqlite3", "j2.sqlite3")):
        settings = load_settings(
            overrides={
                "archive.path": str(tmp_path / "executed"),
                "receiver.journal": str(tmp_path / journal),
                "prometheus.url": None,
            }
        )
        handler = JobHandler(settings)
        firing = alert_payload(alertname="Twice", fingerprint=f"feed0{n}")
        handler.intake.accept(parse_payload(firing), "{}")
        assert handler.process(handler.intake.claim("t")) == "succeeded"
        resolved = json.loads(json.dumps(firing))
        resolved["alerts"][0]["status"] = "resolved"
        resolved["alerts"][0]["endsAt"] = "2099-01-01T00:00:00Z"
        handler.intake.accept(parse_payload(resolved), "{}")
        job = handler.intake.claim("t")
        assert job.id == 2 and handler.process(job) == "resolved"
    events = [e for e in handler.runner.archive.entries() if e["type"] == "event"]
    assert [e["data"]["fingerprint"] for e in events] == ["feed00", "feed01"]


def counting_collection(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Settings overrides for a collection whose `noop` runbook counts its executions in a file."""
    from tests.helpers import HOME
    from tests.support.minimal import make_runbook, write_minimal_collection

    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)
    count = tmp_path / "executions"
    make_runbook(runbooks, "noop", f"open({str(count)!r}, 'a').write('ran\\n')", 'rb.finding("noop", "info", "ran")')
    overrides = {
        "archive.path": str(tmp_path / "executed"),
        "prometheus.url": None,
        "runbooks_dir": str(runbooks),
        "catalog_path": str(catalog),
        "receiver.restart_worker_after": 3,
    }
    return overrides, count


def test_a_run_whose_write_met_a_full_disk_is_written_again_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notebook that finished, and a disk that was full when its record was written: the retry
    writes that run's record; the notebook (and its queries) runs once."""
    overrides, count = counting_collection(tmp_path)
    handler = JobHandler(load_settings(overrides=overrides))
    handler.intake.accept(parse_payload(burst_payloads(1)[0]), "{}")
    job = handler.intake.claim("w")
    archive = handler.runner.archive
    real_commit = archive.commit
    failures = iter([OSError(errno.ENOSPC, "No space left on device", "record.html")])

    def full_once(staging, record):
        exc = next(failures, None)
        if exc is not None:
            raise exc
        return real_commit(staging, record)

    monkeypatch.setattr(archive, "commit", full_once)
    reports: list[str | None] = []
    assert run_until_done(handler, job, threading.Event(), reports.append, wait=wait_none()) == "succeeded"
    assert count.read_text() == "ran\n"  # executed once, archived on the second try
    assert reports == ["no space left on device (record.html)", None]
    [entry] = [e for e in archive.entries() if e["type"] == "record"]
    record = archive.load(entry["id"])
    assert record["attempt"] == 1 and verify(archive) == (1, [])
    assert any("archived on a later try" in n and "the run was not repeated" in n for n in record["notes"])


def test_a_worker_out_of_file_descriptors_restarts_itself_and_gives_its_job_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE from the run, receiver.restart_worker_after (3) times in a row: the worker gives the
    job back to the queue (not counted as an interruption) and exits to be replaced. (The error
    is raised, not provoked by lowering RLIMIT_NOFILE: where zmq meets the limit it aborts the
    whole process, which the supervisor already handles as a dead worker.)"""
    from runbook_lib.workers.local import RESTART_EXIT, serve_jobs

    overrides, count = counting_collection(tmp_path)
    handler = JobHandler(load_settings(overrides=overrides))
    handler.intake.accept(parse_payload(burst_payloads(1)[0]), "{}")
    tries: list[int] = []

    def starved(_request):
        tries.append(1)
        raise OSError(errno.EMFILE, "Too many open files", "/proc/self/fd")

    monkeypatch.setattr(handler.runner, "run", starved)
    monkeypatch.setattr("runbook_lib.workers.local.wait_random_exponential", lambda **_: wait_none())
    reports: list[str | None] = []
    code = serve_jobs(handler, "w", threading.Event(), reports.append, 0.01, [None])
    assert code == RESTART_EXIT and len(tries) == 3
    assert not count.exists()  # the notebook never ran
    [row] = handler.intake.jobs()
    assert (row["state"], row["attempts"]) == ("queued", 0)
    assert "restarted: 3 tries in a row failed with 'too many open files" in json.loads(row["notes"])[-1]

    # another kind of failure in between starts the count again
    handler.intake.claim("w")
    failures = iter([errno.EMFILE, errno.EMFILE, errno.ENOSPC, errno.EMFILE, errno.EMFILE, None])
    real_run = JobHandler(load_settings(overrides=overrides)).runner.run

    def mixed(request):
        code = next(failures)
        if code is None:
            return real_run(request)
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(handler.runner, "run", mixed)
    job = handler.intake.running("w")[0]
    assert run_until_done(handler, job, threading.Event(), reports.append, wait=wait_none()) == "succeeded"
    assert count.read_text() == "ran\n"
