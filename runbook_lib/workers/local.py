"""Local worker processes of `runbook serve` (the ``local`` executor): claim jobs from the
intake journal, run them (:mod:`.jobs`), archive, notify.

Each worker is its own process (a crash or a stuck kernel cannot take the receiver down) and dies
with its parent (Linux PR_SET_PDEATHSIG), so a killed receiver leaves no orphan working on the
journal. An environmental failure (disk full, I/O error, read-only file system, locked journal) is
never a job's final state: the worker keeps the job, reports itself degraded to the supervisor,
and retries it with backoff until it succeeds (a run that finished and only failed to be written
is written again, not run again: :class:`runbook_lib.run.runner.Runner`). When the failure is
the worker's own process running out of descriptors or memory, ``receiver.restart_worker_after``
times in a row, the worker gives its job back to the queue and exits; the supervisor starts a
fresh one.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from tenacity import Retrying, retry_if_exception, stop_when_event_set, wait_random_exponential

from runbook_lib.core import process
from runbook_lib.core.environmental import environmental, process_bound
from runbook_lib.core.settings import load_settings
from runbook_lib.intake.journal import Job
from runbook_lib.workers.jobs import WORKER_NICENESS, JobHandler, prime_and_freeze, worker_id

if TYPE_CHECKING:
    from runbook_lib.run.pool import WarmKernels

log = logging.getLogger("runbook.worker")


class Stopping(Exception):
    """The worker was told to stop while a job waited out an environmental failure."""


class RestartWorker(Exception):
    """This process ran out of descriptors or memory too many times in a row: a fresh one may not."""


RESTART_EXIT = 75  # EX_TEMPFAIL: the worker restarts itself; the supervisor starts another


def run_until_done(runner: JobHandler, job: Job, stopping: threading.Event, report: Any, wait: Any = None) -> str:
    """Process ``job``; on an environmental failure report it and retry with backoff (1 s doubling
    to 30 s, jittered) until it succeeds. The claim that met the failure is given back (it was no
    interruption), so restarts during a long outage do not use up ``receiver.max_attempts``.
    When the worker is told to stop, :class:`Stopping` is raised before another try; the job,
    still 'running', is requeued when the receiver starts again. :class:`RestartWorker` is raised
    after ``receiver.restart_worker_after`` failures in a row of this process's own."""
    given_back = False
    own_failures = 0
    restart_after = runner.settings.receiver.restart_worker_after

    def attempt() -> str:
        if stopping.is_set():
            raise Stopping(f"job {job.id}")
        return runner.process(job)

    def degraded(state: Any) -> None:
        nonlocal given_back, own_failures
        exc = state.outcome.exception()
        reason = environmental(exc) or "environmental failure"
        own_failures = own_failures + 1 if process_bound(exc) else 0
        if own_failures >= restart_after:
            raise RestartWorker(f"{own_failures} tries in a row failed with '{reason}'")
        log.warning("job %s (%s): %s; retrying (try %d)", job.id, job.alertname, reason, state.attempt_number)
        report(reason)
        if not given_back:
            try:
                runner.intake.give_back_attempt(job.id)
                given_back = True
            except Exception as exc:  # the journal is what failed: a restart then counts it
                log.warning("job %s: attempt not given back: %s", job.id, environmental(exc) or exc)

    retrying = Retrying(
        retry=retry_if_exception(lambda exc: environmental(exc) is not None),
        wait=wait or wait_random_exponential(multiplier=1, max=runner.settings.receiver.retry_max_s),
        stop=stop_when_event_set(stopping),
        sleep=stopping.wait,
        before_sleep=degraded,
        reraise=True,
    )
    outcome = retrying(attempt)
    report(None)
    return outcome


def claim_next(runner: JobHandler, me: str, report: Any) -> Job | None:
    """The next job, or None when there is none or the journal cannot be read right now. A
    successful look at the journal clears this worker's degraded state."""
    try:
        window = runner.settings.receiver.link_window_s
        route = runner.route if window > 0 else None
        job = runner.intake.claim(me, route, window) if runner.intake.has_queued() else None
    except Exception as exc:
        reason = environmental(exc)
        if reason is None:
            raise
        report(reason)
        return None
    report(None)
    return job


def worker_main(env: str | None, overrides: dict[str, Any], parent: int, status: Any = None) -> None:
    """Entry point of a worker process. ``status`` (a multiprocessing queue) receives
    (worker id, reason) when this worker becomes degraded and (worker id, None) when it recovers."""
    if not process.die_with_parent(parent):  # the parent died before we armed the signal
        return
    # Workers and their kernels yield the CPU to the receiver: answering Alertmanager quickly
    # matters more than starting the next diagnosis a few milliseconds sooner.
    os.nice(WORKER_NICENESS)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    process.prepare()
    process.setup_logging(False)
    logging.getLogger("runbook").setLevel(logging.INFO)  # one structured line per job and record
    settings = load_settings(env=env, overrides=overrides)
    from runbook_lib.run.pool import WarmKernels  # after process.prepare(): it imports jupyter_client

    warm: WarmKernels | None = WarmKernels(settings.kernels).start() if settings.kernels.warm_kernels else None
    runner = JobHandler(settings)
    prime_and_freeze()
    me = worker_id()
    poll = settings.receiver.poll_interval_s
    reported: list[str | None] = [None]

    def report(reason: str | None) -> None:
        if status is not None and reason != reported[0]:
            reported[0] = reason
            status.put((me, reason))

    code = serve_jobs(runner, me, stopping, report, poll, reported)
    if warm is not None:
        warm.close()
    if code:
        sys.exit(code)


def serve_jobs(
    runner: JobHandler, me: str, stopping: threading.Event, report: Any, poll: float, reported: list[str | None]
) -> int:
    """Claim and run jobs until told to stop (0) or until this process must be replaced
    (:data:`RESTART_EXIT`, its job given back to the queue first)."""
    while not stopping.is_set():
        job = claim_next(runner, me, report)
        if job is None:
            stopping.wait(poll if reported[0] is None else 2.0)
            continue
        t0 = time.monotonic()
        try:
            outcome = run_until_done(runner, job, stopping, report)
        except RestartWorker as exc:
            log.error("worker %s restarting: job %s %s", me, job.id, exc)
            try:
                runner.intake.requeue(job.id, f"worker {me} restarted: {exc}; not an interruption")
            except Exception as why:  # the supervisor requeues it when it sees this process gone
                log.warning("job %s not requeued by its worker: %s", job.id, environmental(why) or why)
            return RESTART_EXIT
        except Exception as exc:
            log.warning("job %s left for the next start: %s", job.id, environmental(exc) or exc)
            break
        log.info("job %s %s -> %s in %.1fs", job.id, job.alertname, outcome, time.monotonic() - t0)
    return 0
