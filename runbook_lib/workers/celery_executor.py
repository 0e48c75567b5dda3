"""The celery executor: runs go through the broker (the platform's RabbitMQ) to `runbook worker`
processes on any machine, instead of the receiver's own worker processes.

What stays with the receiver: the durable intake journal, deduplication, run caps, grouping,
linking and resolutions. Its :class:`Dispatcher` thread claims each runnable job from the
journal as a local worker would, plans it (:meth:`JobHandler.plan`: record id assigned now) and
publishes the plan as a Celery task whose **task id is the job id**, with publisher confirms.
Only then is the job marked sent (``worker = 'celery'``); a job claimed but not confirmed (the
receiver died in between, the broker was down) is published again, and its repeat is harmless:
the record id travels with the plan.

What the worker does (:func:`run_job`): ``acks_late`` (the message is acknowledged after the run,
so a worker lost mid-run has its job redelivered by RabbitMQ) and ``reject_on_worker_lost``. A
delivery first looks in the archive: a record already there (the previous worker died after
archiving, before acknowledging) is reported, not run again. Otherwise it counts the start
(:meth:`Archive.note_attempt`); a second start means the first was interrupted, and the record
says so ("retried", attempt 2), exactly like a local worker's retry. Past
``receiver.max_attempts`` an "interrupted" record is written without running, so a job that kills
its worker cannot loop. An environmental failure (full disk, archive or broker unreachable) is
retried by Celery with backoff, never acknowledged as done.

Completion comes back on a durable queue, ``<celery_queue>.done``: the worker publishes
{job, outcome, record id, notes} after archiving; the receiver finishes the job in its journal and
acknowledges. A receiver that is down meanwhile finds the messages waiting.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from kombu import Exchange, Queue

from runbook_lib.core.environmental import environmental
from runbook_lib.core.errors import ArchiveError, ConfigError, RecordTaken
from runbook_lib.core.health import Health
from runbook_lib.core.settings import Settings
from runbook_lib.intake.journal import Intake, Job

if TYPE_CHECKING:
    from celery import Celery

    from runbook_lib.workers.jobs import JobHandler, RunExecutor

log = logging.getLogger("runbook.celery")
RUN_TASK = "runbook.run"
SENT = "celery"  # jobs.worker of a job whose plan the broker confirmed
CLAIMED = "celery:claimed"  # claimed by the dispatcher, not yet confirmed by the broker


def broker_url(settings: Settings) -> str:
    if settings.receiver.broker_url is None:
        raise ConfigError(
            "the celery executor needs a broker: set RUNBOOK_BROKER_URL (or RUNBOOK_BROKER_URL_FILE) to "
            "amqp://user:password@host:5672/vhost"
        )
    return settings.receiver.broker_url.get_secret_value()


def run_queue(settings: Settings) -> Queue:
    name = settings.receiver.celery_queue
    return Queue(name, Exchange(name, "direct", durable=True), routing_key=name, durable=True)


def done_queue(settings: Settings) -> Queue:
    name = f"{settings.receiver.celery_queue}.done"
    return Queue(name, Exchange(name, "direct", durable=True), routing_key=name, durable=True)


def make_app(settings: Settings) -> Celery:
    """The Celery app both sides use: durable queues, JSON only, late acks, one message per
    worker at a time, publisher confirms, no result backend (results come back as messages)."""
    from celery import Celery

    app = Celery("runbook", broker=broker_url(settings), set_as_current=False)
    app.conf.update(
        task_queues=[run_queue(settings)],
        task_default_queue=settings.receiver.celery_queue,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        broker_transport_options={"confirm_publish": True},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=10,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    app.task(name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)(run_job)
    return app


def broker_trouble(exc: BaseException | None) -> str | None:
    """A short reason when ``exc`` is the broker being unreachable or refusing (retry later)."""
    from kombu.exceptions import OperationalError

    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OperationalError | ConnectionError | socket.timeout | TimeoutError):
            return f"broker: {type(exc).__name__}"
        exc = exc.__cause__ or exc.__context__
    return None


# -- the worker side ------------------------------------------------------------------------------
_executor: RunExecutor | None = None


def executor_for(settings: Settings) -> RunExecutor:
    global _executor
    if _executor is None:
        from runbook_lib.workers.jobs import RunExecutor

        _executor = RunExecutor(settings)
    return _executor


def perform(ex: RunExecutor, plan: dict[str, Any], counted: list[bool] | None = None) -> dict[str, Any]:
    """One delivery of a planned job: the record (archived now, or by an earlier delivery) and
    what the receiver must note. Raises only environmental failures; ``counted`` is set once this
    start is counted (an environmental retry then gives it back: it was no interruption).

    Every start is counted first. A record can exist only after an earlier start, so only a
    second or later start looks in the archive: the first costs no index scan and no lock."""
    rid = plan["record_id"]
    done: dict[str, Any] = {"job": plan["job"], "record_id": rid, "notes": []}
    try:
        starts = ex.archive.note_attempt(rid)
        if counted is not None:
            counted[0] = True
        record = ex.recover(rid) if starts > 1 else None
        if record is not None:
            done["notes"].append(f"{record['recovered']} (the broker delivered the job again)")
        else:
            given_back = int(plan.get("given_back", 0))
            record = ex.execute(retried(plan, starts - given_back, ex.settings.receiver.max_attempts))
    except ArchiveError as exc:
        if environmental_or_broker(exc):
            raise
        if isinstance(exc, RecordTaken):  # the other delivery's upload is complete: index it if it is not
            ex.archive.adopt(rid)
        if not ex.archive.is_indexed(rid):
            raise
        record = ex.archive.load(rid)  # two deliveries ran at once; the other archived it first
        done["notes"].append("another delivery of this job archived the record first")
    except Exception as exc:
        if environmental_or_broker(exc):
            raise
        reason = ex.runner.redactor.text(f"{type(exc).__name__}: {exc}")[:500]
        log.error("job %s could not be processed: %s", plan["job"], reason)
        return {**done, "outcome": "error", "record_id": None, "notes": [f"could not run: {reason}"]}
    done["outcome"] = record["status"]
    done["notes"] += [f"notification failed: {e}" for e in ex.notify(ex.notifier.record_done, record)]
    return done


def retried(plan: dict[str, Any], starts: int, max_attempts: int) -> dict[str, Any]:
    """The plan for the ``starts``-th start of its run: from the second on, the earlier one was
    interrupted (its worker was lost); past max_attempts the record is written without running."""
    if starts <= 1:
        return plan
    total = plan["attempt"] + starts - 1
    notes = [
        *plan["notes"],
        f"attempt {total - 1} was interrupted (its worker was lost mid-run); redelivered and retried",
    ]
    skip = plan["skip"]
    if total > max_attempts:
        skip = f"interrupted {total - 1} times (worker lost mid-run); not retried again"
    return {**plan, "attempt": min(total, max_attempts), "notes": notes, "skip": skip}


def environmental_or_broker(exc: BaseException | None) -> str | None:
    return environmental(exc) or broker_trouble(exc)


def run_job(task: Any, plan: dict[str, Any]) -> None:
    """The Celery task. A job never ends without its report: an environmental failure (or a
    report the broker would not take) is retried, as a new message with the same task id, with
    backoff up to 30 s, until the environment recovers; the start it used is given back."""
    from runbook_lib.core.settings import load_settings

    ex = _executor or executor_for(load_settings())
    counted = [False]
    try:
        done = perform(ex, plan, counted)
        send_done(task.app, ex.settings, done)
    except Exception as exc:
        reason = environmental_or_broker(exc) or f"{type(exc).__name__}: {str(exc)[:200]}"
        delay = min(30, 2 ** min(task.request.retries, 5))
        log.warning("job %s: %s; retrying in %d s", plan.get("job"), ex.runner.redactor.text(reason), delay)
        again = {**plan, "given_back": int(plan.get("given_back", 0)) + counted[0]}
        raise task.retry(args=[again], exc=exc, countdown=delay, max_retries=None) from None
    log.info("job %s -> %s record=%s", plan["job"], done["outcome"], done["record_id"])


def send_done(app: Celery, settings: Settings, done: dict[str, Any]) -> None:
    """Tell the receiver (durable, persistent, confirmed by the broker)."""
    queue = done_queue(settings)
    with app.producer_or_acquire() as producer:
        producer.publish(
            done,
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            declare=[queue],
            serializer="json",
            delivery_mode=2,
            retry=True,
            retry_policy={"max_retries": 3, "interval_start": 0.5, "interval_step": 1, "interval_max": 5},
        )


class WorkerHealth(BaseHTTPRequestHandler):
    """GET /healthz: 200 while the worker is consuming, 503 before it is (or after it stopped)."""

    ready: threading.Event = threading.Event()

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/healthz":
            self.send_error(404)
            return
        ok = self.ready.is_set()
        body = json.dumps({"status": "ok" if ok else "starting", "pid": os.getpid()}).encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


def run_worker(settings: Settings, health_host: str = "127.0.0.1", health_port: int | None = None) -> int:
    """`runbook worker`: a Celery worker (one run at a time, pool "solo") with warm kernels."""
    from celery import signals

    from runbook_lib.run.pool import WarmKernels
    from runbook_lib.workers.jobs import WORKER_NICENESS, prime_and_freeze

    app = make_app(settings)
    os.nice(WORKER_NICENESS)  # as local workers: the receiver, if on this machine, answers first
    warm = WarmKernels(settings.kernels).start() if settings.kernels.warm_kernels else None
    executor_for(settings)
    prime_and_freeze()
    server = None
    if health_port is not None:
        server = ThreadingHTTPServer((health_host, health_port), WorkerHealth)
        threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    signals.worker_ready.connect(lambda **_: WorkerHealth.ready.set(), weak=False)
    signals.worker_shutting_down.connect(lambda **_: WorkerHealth.ready.clear(), weak=False)
    name = f"runbook@{socket.gethostname()}-{os.getpid()}"
    argv = ["worker", "--pool=solo", "--concurrency=1", "--loglevel=INFO", f"--queues={settings.receiver.celery_queue}"]
    argv += ["--without-gossip", "--without-mingle", "--without-heartbeat", f"--hostname={name}"]
    try:
        app.worker_main(argv)
    finally:
        if server is not None:
            server.shutdown()
        if warm is not None:
            warm.close()
    return 0


# -- the receiver side ----------------------------------------------------------------------------
class Dispatcher:
    """In `runbook serve --executor celery`: sends the journal's runnable jobs to the broker and
    finishes them when their workers report back. Stands where the local Supervisor stands
    (start/stop/alive/health); one thread, one broker connection."""

    name = "celery"  # the executor, as /metrics labels it

    def __init__(self, settings: Settings, health: Health | None = None) -> None:
        self.settings = settings
        self.health = health or Health()
        self.intake = Intake.from_settings(settings)
        self.app = make_app(settings)
        self.runner: JobHandler | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self.broker_ready: int | None = None  # messages waiting in the broker (None: not known)
        self.broker_consumers: int | None = None
        self.sent = 0
        self._scrape_lock = threading.Lock()
        self._scrape_conn: Any = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="celery-dispatcher", daemon=True)
        self._thread.start()
        self._started.wait(60)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> int:
        """Worker processes this receiver knows of: the broker's consumer count (0 if unknown)."""
        return self.broker_consumers or 0

    def waiting(self) -> int:
        """Jobs sent to the broker that no worker has taken yet, asked now (a scrape reads this
        right after the journal's counts, so that running - waiting is what workers hold), on a
        connection of the scraper's own: the dispatcher's is not shared between threads."""
        from kombu import Connection

        with self._scrape_lock:
            try:
                if self._scrape_conn is None:
                    self._scrape_conn = Connection(broker_url(self.settings), connect_timeout=2)
                self._stats(self._scrape_conn)
            except Exception as exc:  # the last known figure, and /healthz says the broker is away
                log.debug("broker queue stats unavailable: %s", exc)
                self._scrape_conn = None
        return self.broker_ready or 0

    def in_flight(self, running: int) -> int:
        """Runs being executed now: sent jobs minus those still waiting in the broker."""
        return max(0, running - (self.broker_ready or 0))

    def _run(self) -> None:
        from runbook_lib.workers.jobs import JobHandler

        self.runner = JobHandler(self.settings)
        self._started.set()
        backoff = 1.0
        while not self._stop.is_set():
            try:
                with self.app.connection_for_write() as conn:
                    conn.ensure_connection(max_retries=1)
                    self.health.ok("broker")
                    backoff = 1.0
                    self._serve(conn)
            except Exception as exc:
                reason = environmental_or_broker(exc) or f"{type(exc).__name__}: {str(exc)[:200]}"
                log.warning("celery dispatcher: %s; retrying in %.0f s", reason, backoff)
                self.health.degraded("broker", f"cannot reach the broker or the journal: {reason}")
                self._stop.wait(backoff)
                backoff = min(30.0, backoff * 2)

    def _serve(self, conn: Any) -> None:
        assert self.runner is not None
        run_queue(self.settings)(conn.default_channel).declare()  # runs wait here even before any worker
        done = conn.SimpleQueue(done_queue(self.settings))
        producer = conn.Producer()
        for job in self.intake.running(CLAIMED):  # claimed before the broker confirmed: again
            self._send(producer, job)
        poll = max(self.settings.receiver.poll_interval_s, 0.05)
        last_stats = 0.0
        try:
            while not self._stop.is_set():
                busy = self._drain(done)
                busy |= self._dispatch(producer)
                if time.monotonic() - last_stats > 1.0:
                    self._stats(conn)
                    last_stats = time.monotonic()
                if not busy:
                    try:
                        self._finish(done.get(block=True, timeout=poll))
                    except done.Empty:
                        pass
        finally:
            done.close()

    def _dispatch(self, producer: Any) -> bool:
        assert self.runner is not None
        if not self.intake.has_queued():
            return False
        window = self.settings.receiver.link_window_s
        job = self.intake.claim(CLAIMED, self.runner.route if window > 0 else None, window)
        if job is None:
            return False
        self._send(producer, job)
        return True

    def _send(self, producer: Any, job: Job) -> None:
        """Plan the job and publish it (confirmed), or finish it here (resolutions, links,
        records already archived, errors): those need no notebook."""
        assert self.runner is not None

        def publish(plan: dict[str, Any]) -> None:
            self.app.send_task(
                RUN_TASK,
                args=[plan],
                task_id=str(job.id),
                queue=self.settings.receiver.celery_queue,
                producer=producer,
                retry=True,
                retry_policy={"max_retries": 3, "interval_start": 0.5, "interval_step": 1, "interval_max": 5},
            )
            self.intake.set_worker(job.id, SENT)
            self.sent += 1

        outcome = self.runner.process(job, dispatch=publish)
        if outcome != "dispatched":
            log.info("job %s %s -> %s (in the receiver)", job.id, job.alertname, outcome)

    def _drain(self, done: Any) -> bool:
        got = False
        while True:
            try:
                message = done.get(block=False)
            except done.Empty:
                return got
            self._finish(message)
            got = True

    def _finish(self, message: Any) -> None:
        """Finish the job a worker reports on (once: a report of a job already done is dropped)."""
        assert self.runner is not None
        body = message.payload
        try:
            job_id = int(body["job"])
            outcome = str(body["outcome"])[:40]
            notes = [str(n)[:1000] for n in body.get("notes") or []]
        except (KeyError, TypeError, ValueError):
            log.error("dropping a malformed completion message: %s", str(body)[:200])
            message.ack()
            return
        if self.intake.job_state(job_id) == "running":
            self.intake.finish(job_id, outcome, body.get("record_id"), note=notes[0] if notes else None)
            for note in notes[1:]:
                self.runner.note_quietly(job_id, note)
            log.info("job %s finished by a worker -> %s record=%s", job_id, outcome, body.get("record_id"))
        message.ack()

    def _stats(self, conn: Any) -> None:
        """Messages waiting in the broker and workers consuming, on a channel of its own (a
        failed passive declare closes its channel)."""
        channel = conn.channel()
        try:
            _, ready, consumers = run_queue(self.settings)(channel).queue_declare(passive=True)
            self.broker_ready, self.broker_consumers = ready, consumers
        except Exception as exc:
            log.debug("broker queue stats unavailable: %s", exc)
        finally:
            with contextlib.suppress(Exception):
                channel.close()
