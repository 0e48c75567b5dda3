"""Worker processes: claim jobs from the intake journal, run the diagnosis, archive, notify.

Auto-runs are always mode="diagnose" with dry_run=True. Each worker is its own process (a
crash or a stuck kernel cannot take the receiver down) and dies with its parent (Linux
PR_SET_PDEATHSIG), so a killed receiver leaves no orphan working on the journal.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from .archive import new_record_id
from .context import parse_alert
from .engine import Engine, RunRequest
from .intake import Intake, Job
from .notify import Notifier
from .settings import Settings, load_settings

log = logging.getLogger("runbook.worker")
WORKER_NICENESS = 10


def worker_id(pid: int | None = None) -> str:
    return f"{socket.gethostname()}:{pid or os.getpid()}"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


class JobRunner:
    """Processes one claimed job. Shared by worker processes and tests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = Engine(settings)
        self.intake = Intake(settings.journal_path, settings.receiver.journal_busy_timeout_s)
        self.notifier = Notifier(settings)

    def process(self, job: Job) -> str:
        """Never raises: a job that cannot be processed is finished as "error" with a note, so
        one poisoned job cannot kill workers in a loop."""
        give_up_after = self.settings.receiver.max_attempts + 1  # the extra one writes the "interrupted" record
        if job.attempts > give_up_after:
            note = f"gave up after {job.attempts - 1} attempts that never finished"
            log.error("job %s (%s): %s", job.id, job.alertname, note)
            self.intake.finish(job.id, "error", note=note)
            return "error"
        try:
            if job.status == "resolved":
                return self._resolved(job)
            return self._firing(job)
        except Exception as exc:
            reason = self.engine.redactor.text(f"{type(exc).__name__}: {exc}")[:500]
            log.error("job %s (%s) could not be processed: %s", job.id, job.alertname, reason)
            try:
                self.intake.finish(job.id, "error", note=f"could not run: {reason}")
            except Exception:  # the journal itself failed: the job stays running and is requeued
                log.exception("job %s: could not record the error in the journal", job.id)
            return "error"

    def _firing(self, job: Job) -> str:
        alert = parse_alert(job.alert)
        slug, _route = self.engine.resolve(alert, None)
        archive = self.engine.archive
        rid = job.record_id
        recovered = None
        if rid and archive.is_indexed(rid):  # archived before a crash; only the journal missed it
            recovered = "record found archived after a restart"
        elif rid and archive.record_dir(rid).is_dir() and archive.adopt(rid):
            recovered = "record adopted into the index after a restart"
        if rid and recovered:
            record = archive.load(rid)
            self.intake.finish(job.id, record["status"], rid, note=recovered)
            self._notify(self.notifier.record_done, record, job=job)  # finish had not happened, so neither had this
            return "recovered"
        if not rid:
            rid = new_record_id(slug)
            self.intake.set_record_id(job.id, rid)
        max_attempts = self.settings.receiver.max_attempts
        skip = None
        if job.attempts > max_attempts:
            skip = f"interrupted {job.attempts - 1} times (worker died mid-run); not retried again"
        request = RunRequest(
            alert=alert,
            slug=slug,
            mode="diagnose",
            dry_run=True,
            record_id=rid,
            attempt=min(job.attempts, max_attempts),
            notes=list(job.notes),
            origin="receiver",
            intake={"job": job.id, "notification": job.notification_id, "received_at": _iso(job.received_at)},
            skip_execution=skip,
        )
        result = self.engine.run(request)
        self.intake.finish(job.id, result.status, rid)
        self._notify(self.notifier.record_done, result.record, job=job)
        return result.status

    def _resolved(self, job: Job) -> str:
        alert = parse_alert(job.alert)
        record_id, _ = self.intake.firing_record(job.fingerprint, job.starts_at)
        ends = alert.endsAt or datetime.fromtimestamp(job.received_at, UTC)
        duration = (ends - alert.startsAt).total_seconds()
        data = {
            "alertname": alert.name,
            "fingerprint": alert.fingerprint,
            "starts_at": alert.startsAt.isoformat(),
            "ends_at": ends.isoformat(),
            "duration_s": round(duration, 3),
            "notification": job.notification_id,
            "received_at": _iso(job.received_at),
        }
        data["job"] = job.id
        archive = self.engine.archive
        if any(e.get("type") == "event" and (e.get("data") or {}).get("job") == job.id for e in archive.entries()):
            pass  # chained before a crash; only the journal missed it
        elif record_id and archive.is_indexed(record_id):
            archive.append_event(record_id, "resolved", data)
        else:
            archive.append_event(None, "resolved-without-record", data)
        self.intake.finish(job.id, "resolved", record_id)
        self._notify(
            self.notifier.resolved, alert.name, alert.severity, alert.fingerprint, record_id, duration, job=job
        )
        return "resolved"

    def _notify(self, fn: Any, *args: Any, job: Job) -> None:
        if not self.notifier.enabled:
            return
        for err in fn(*args):
            log.warning("job %s: %s", job.id, err)
            self.intake.note(job.id, f"notification failed: {err}")


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def worker_main(env: str | None, overrides: dict[str, Any], parent: int) -> None:
    """Entry point of a worker process."""
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before we armed the signal
        return
    # Workers and their kernels yield the CPU to the receiver: answering Alertmanager quickly
    # matters more than starting the next diagnosis a few milliseconds sooner.
    os.nice(WORKER_NICENESS)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .cli import _setup_logging, skip_slow_imports

    _setup_logging(False)
    skip_slow_imports()
    settings = load_settings(env=env, overrides=overrides)
    runner = JobRunner(settings)
    me = worker_id()
    poll = settings.receiver.poll_interval_s
    while not stopping.is_set():
        job = runner.intake.claim(me)
        if job is None:
            stopping.wait(poll)
            continue
        t0 = time.monotonic()
        outcome = runner.process(job)
        log.info("job %s %s -> %s in %.1fs", job.id, job.alertname, outcome, time.monotonic() - t0)


class Supervisor:
    """Keeps ``n`` worker processes alive; requeues what a dead worker left running."""

    def __init__(self, settings: Settings, env: str | None, overrides: dict[str, Any], n: int) -> None:
        self.settings = settings
        self.env = env
        self.overrides = overrides
        self.n = n
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.intake = Intake(settings.journal_path, settings.receiver.journal_busy_timeout_s)
        self._stop = threading.Event()
        self._started = threading.Event()
        self._stop_timeout = 30.0
        self._thread: threading.Thread | None = None
        self.restarts = 0

    def recover(self) -> int:
        """At start: every job left running was interrupted (no worker of ours exists yet)."""
        jobs = self.intake.interrupted()
        for job in jobs:
            self.intake.requeue(job.id, f"attempt {job.attempts} was interrupted (receiver stopped mid-run); retried")
        if jobs:
            log.warning("requeued %d interrupted job(s) after a restart", len(jobs))
        return len(jobs)

    def start(self) -> None:
        """Spawn the workers from one long-lived thread: Linux's parent-death signal follows the
        *thread* that forked a child, so the thread that starts workers must outlive them."""
        self.recover()
        self._thread = threading.Thread(target=self._own_workers, name="worker-supervisor", daemon=True)
        self._thread.start()
        self._started.wait(60)

    def _spawn(self) -> multiprocessing.process.BaseProcess:
        proc = self.ctx.Process(target=worker_main, args=(self.env, self.overrides, os.getpid()), daemon=False)
        proc.start()
        return proc

    def _own_workers(self) -> None:
        for _ in range(self.n):
            self.procs.append(self._spawn())
        self._started.set()
        while not self._stop.wait(0.5):
            for i, proc in enumerate(self.procs):
                if proc.is_alive():
                    continue
                log.error("worker %s exited with %s; requeueing its job and restarting it", proc.pid, proc.exitcode)
                for job in self.intake.interrupted(worker_id(proc.pid)):
                    self.intake.requeue(
                        job.id, f"attempt {job.attempts} was interrupted (worker {proc.pid} died); retried"
                    )
                self.procs[i] = self._spawn()
                self.restarts += 1
        self._shutdown(self._stop_timeout)

    def _shutdown(self, timeout: float) -> None:
        """Graceful: each worker finishes its current job, then exits; stragglers are killed and
        their jobs requeued at the next start."""
        for p in self.procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            p.join(max(0.1, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join(5)

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.is_alive())

    def stop(self, timeout: float = 30.0) -> None:
        self._stop_timeout = timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 15)
