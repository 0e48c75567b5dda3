"""Keeps the worker processes alive and requeues what a dead worker left running."""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from typing import Any

from runbook_lib.core.environmental import environmental
from runbook_lib.core.health import Health
from runbook_lib.core.settings import Settings
from runbook_lib.intake.journal import Intake
from runbook_lib.workers.jobs import worker_id
from runbook_lib.workers.local import RESTART_EXIT, worker_main

log = logging.getLogger("runbook.worker")


class Supervisor:
    """Keeps ``n`` worker processes alive; requeues what a dead worker left running."""

    name = "local"  # the executor, as /metrics labels it

    def __init__(
        self, settings: Settings, env: str | None, overrides: dict[str, Any], n: int, health: Health | None = None
    ) -> None:
        self.settings = settings
        self.health = health or Health()
        self.env = env
        self.overrides = overrides
        self.n = n
        self.ctx = multiprocessing.get_context("spawn")
        self.status: Any = self.ctx.Queue()  # (worker id, reason or None) from the workers
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.intake = Intake.from_settings(settings)
        self._stop = threading.Event()
        self._started = threading.Event()
        self._stop_timeout = 30.0
        self._thread: threading.Thread | None = None
        self._orphans_pending = False
        self.restarts = 0

    def recover(self) -> int:
        """At start: every job left running was interrupted (no worker of ours exists yet). Best
        effort: on a journal that cannot be written now, the supervisor's loop requeues them later."""
        try:
            return self.requeue_orphans("receiver stopped mid-run")
        except Exception as exc:
            log.error("could not requeue interrupted jobs at start (%s); will retry", environmental(exc) or exc)
            self._orphans_pending = True
            return 0

    def requeue_orphans(self, why: str) -> int:
        """Requeue every job left 'running' by a worker that is not alive (none at start)."""
        alive = {worker_id(p.pid) for p in self.procs if p.is_alive() and p.pid}
        jobs = [job for job in self.intake.running() if job.worker not in alive]
        for job in jobs:
            self.intake.requeue(job.id, f"attempt {job.attempts} was interrupted ({why}); retried")
        if jobs:
            log.warning("requeued %d interrupted job(s): %s", len(jobs), why)
        self._orphans_pending = False
        return len(jobs)

    def start(self) -> None:
        """Spawn the workers from one long-lived thread: Linux's parent-death signal follows the
        *thread* that forked a child, so the thread that starts workers must outlive them."""
        self.recover()
        self._thread = threading.Thread(target=self._own_workers, name="worker-supervisor", daemon=True)
        self._thread.start()
        self._started.wait(60)

    def _spawn(self) -> multiprocessing.process.BaseProcess:
        args = (self.env, self.overrides, os.getpid(), self.status)
        proc = self.ctx.Process(target=worker_main, args=args, daemon=False)
        proc.start()
        return proc

    def _own_workers(self) -> None:
        for _ in range(self.n):
            self.procs.append(self._spawn())
        self._started.set()
        while not self._stop.wait(0.5):
            self._read_status()
            for i, proc in enumerate(self.procs):
                if not proc.is_alive():
                    self.procs[i] = self._replace(proc)
            if self._orphans_pending:
                try:
                    self.requeue_orphans("its worker died or the receiver restarted")
                except Exception as exc:  # still unwritable: next tick
                    log.debug("orphaned jobs not requeued yet: %s", environmental(exc) or exc)
        self._shutdown(self._stop_timeout)

    def _read_status(self) -> None:
        while True:
            try:
                who, reason = self.status.get_nowait()
            except queue.Empty:
                return
            if reason:
                self.health.degraded(f"worker {who}", f"cannot archive or journal: {reason}; retrying")
            else:
                self.health.ok(f"worker {who}")

    def _replace(self, proc: multiprocessing.process.BaseProcess) -> multiprocessing.process.BaseProcess:
        """Requeue what a dead worker left running and start another in its place."""
        if proc.exitcode == RESTART_EXIT:
            log.warning("worker %s restarted itself (out of descriptors or memory); starting a fresh one", proc.pid)
        else:
            log.error("worker %s exited with %s; requeueing its job and restarting it", proc.pid, proc.exitcode)
        self.health.ok(f"worker {worker_id(proc.pid)}")
        try:
            for job in self.intake.running(worker_id(proc.pid)):
                self.intake.requeue(job.id, f"attempt {job.attempts} was interrupted (worker {proc.pid} died); retried")
        except Exception as exc:  # the journal is unwritable now: the loop keeps trying
            log.error("could not requeue worker %s's job yet: %s", proc.pid, environmental(exc) or exc)
            self._orphans_pending = True
        self.restarts += 1
        return self._spawn()

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

    def waiting(self) -> int:
        """Jobs handed to workers but not yet taken: none (workers claim from the journal)."""
        return 0

    def in_flight(self, running: int) -> int:
        """Runs being executed now: every running job is on a live worker (or about to be requeued)."""
        return running

    def stop(self, timeout: float = 30.0) -> None:
        self._stop_timeout = timeout
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout + 15)
