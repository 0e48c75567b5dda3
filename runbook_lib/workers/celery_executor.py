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

Trust. Every task and every report is signed (HMAC-SHA256 under ``receiver.broker_signing_key``,
:func:`runbook_lib.core.signing.sign_message`; a task's signature covers its task id). A worker
runs only a task signed by the receiver, and the receiver believes only a report signed by a
worker: whoever can publish to the broker cannot choose a run, a record id, what a run skips or
how a job ends. Anything refused (unsigned, altered, not JSON, not a report) is parked whole on
``<celery_queue>.parked`` with the reason in its ``x-parked-reason`` header, acknowledged, and
logged; the queue it came from keeps flowing.
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

from runbook_lib.core import signing
from runbook_lib.core.environmental import environmental, process_bound
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


def parked_queue(settings: Settings) -> Queue:
    """Where refused messages wait for a person (``rabbitmqctl list_queues``, the management UI)."""
    name = f"{settings.receiver.celery_queue}.parked"
    return Queue(name, Exchange(name, "direct", durable=True), routing_key=name, durable=True)


class Refused(ValueError):
    """A message that is well-formed for the broker but not to be believed."""


def broker_key(settings: Settings) -> str:
    """The key tasks and reports are signed with; the celery executor refuses to start without it."""
    if settings.receiver.broker_signing_key is None:
        raise ConfigError(
            "the celery executor signs every task and report: set RUNBOOK_BROKER_SIGNING_KEY (or "
            "RUNBOOK_BROKER_SIGNING_KEY_FILE) to the same secret of at least 32 characters on the receiver "
            "and every worker, e.g. `openssl rand -hex 32`"
        )
    return settings.receiver.broker_signing_key.get_secret_value()


def task_signature(key: str, task_id: str | None, plan: object) -> str:
    return signing.sign_message(key, "task", {"id": task_id, "plan": plan})


def park(producer: Any, settings: Settings, body: bytes | str, reason: str, source: str, **message: Any) -> None:
    """Publish a refused message, as it came, to the parked queue (confirmed, persistent), with
    why and where it came from in its headers. Raises if the broker will not take it (the caller
    then leaves the original unacknowledged)."""
    queue = parked_queue(settings)
    headers = {**(message.pop("headers", None) or {}), "x-parked-reason": reason, "x-parked-from": source}
    producer.publish(
        body,
        exchange=queue.exchange,
        routing_key=queue.routing_key,
        declare=[queue],
        headers=headers,
        delivery_mode=2,
        content_type=message.get("content_type") or "application/octet-stream",
        content_encoding=message.get("content_encoding") or "binary",
    )
    log.error("parked a message from %s on %s: %s", source, queue.name, reason)


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
    # max_retries=None on the task itself: Task.retry(max_retries=None) means "the task's
    # default" (3), and a job must never be given up on while its environment is down.
    app.task(
        name=RUN_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=None
    )(run_job)
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


BEAT_S = 5.0  # how often a delivery says it is still running its record (Archive.mark_running)
STALE_BEATS = 6  # a mark this many beats old (30 s) belongs to a delivery that is gone


def perform(
    ex: RunExecutor, plan: dict[str, Any], counted: list[bool] | None = None, *, beat_s: float = BEAT_S
) -> dict[str, Any]:
    """One delivery of a planned job: the record (archived now, or by an earlier delivery) and
    what the receiver must note. Raises only environmental failures; ``counted`` is set once this
    start is counted (an environmental retry then gives it back: it was no interruption).

    A delivery first looks whether another delivery of the same job is running it now (the
    broker redelivers a job whose worker's connection dropped while that worker still runs it):
    if so it waits for that one's record instead of running the notebook a second time. Then
    every start is counted. A record can exist only after an earlier start, so only a second or
    later start looks in the archive: the first costs no index scan and no lock."""
    rid = plan["record_id"]
    done: dict[str, Any] = {"job": plan["job"], "record_id": rid, "notes": []}
    me = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
    try:
        other = wait_for_other_delivery(ex, rid, me, beat_s)
        with running_mark(ex, rid, me, beat_s):
            starts = ex.archive.note_attempt(rid)
            if counted is not None:
                counted[0] = True
            record = ex.recover(rid) if starts > 1 else None
            if record is not None:
                why = (
                    f"another delivery ({other}) was running it; this one waited"
                    if other
                    else "the broker delivered the job again"
                )
                done["notes"].append(f"{record['recovered']} ({why})")
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
    done["notes"] += [f"notification failed: {e}" for e in ex.announce(plan, record)]
    return done


def wait_for_other_delivery(ex: RunExecutor, rid: str, me: str, beat_s: float) -> str | None:
    """Wait while another delivery says (less than STALE_BEATS beats ago) that it runs ``rid``
    and its record is not indexed yet; who that was (None when nobody was)."""
    stale_s = STALE_BEATS * beat_s
    seen: str | None = None
    while True:
        mark = ex.archive.running_mark(rid)
        if mark is None or mark["owner"] == me or time.time() - mark["at"] > stale_s or ex.archive.is_indexed(rid):
            return seen
        if seen is None:
            log.warning("record %s: another delivery (%s) is running it; waiting for its record", rid, mark["owner"])
        seen = mark["owner"]
        time.sleep(beat_s)


@contextlib.contextmanager
def running_mark(ex: RunExecutor, rid: str, me: str, beat_s: float) -> Any:
    """Say every ``beat_s`` that ``me`` runs ``rid``, until the block ends (best effort: an
    archive that cannot be written now only makes a redelivery wait less)."""
    stop = threading.Event()

    def mark(done: bool = False) -> None:
        try:
            ex.archive.mark_running(rid, me, done=done)
        except Exception as exc:
            log.debug("record %s: running mark not written: %s", rid, exc)

    def beat() -> None:
        while not stop.wait(beat_s):
            mark()

    mark()
    beater = threading.Thread(target=beat, name=f"running-{rid}", daemon=True)
    beater.start()
    try:
        yield
    finally:
        stop.set()
        beater.join()
        mark(done=True)


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


_process_failures = 0  # tries in a row that failed for a reason of this process's own (EMFILE, ENOMEM)


def run_job(task: Any, *args: Any, **kwargs: Any) -> None:
    """The Celery task. Only a task the receiver signed is run (anything else is parked and
    acknowledged, and no report is sent: a forged task cannot finish a job either). A job never
    ends without its report: an environmental failure (or a report the broker would not take) is
    retried, as a new signed message with the same task id, with backoff (1 s doubling up to
    receiver.retry_max_s), for as long as the environment stays down; the start it used is given
    back. After receiver.restart_worker_after such failures in a row of this process's own (too
    many open files, out of memory), the worker restarts itself once the retry is queued."""
    global _process_failures
    from runbook_lib.core.settings import load_settings

    ex = _executor or executor_for(load_settings())
    key = broker_key(ex.settings)
    plan = args[0] if len(args) == 1 and not set(kwargs) - {"sig"} else None
    why = signing.message_problem(key, "task", {"id": task.request.id, "plan": plan}, kwargs.get("sig"))
    if plan is None or not isinstance(plan, dict):
        why = why or "not a runbook plan"
    if why is not None:
        body = json.dumps({"id": task.request.id, "args": args, "kwargs": kwargs}, default=str)
        with task.app.producer_or_acquire() as producer:
            park(
                producer,
                ex.settings,
                body,
                f"task refused: {why}",
                RUN_TASK,
                content_type="application/json",
                content_encoding="utf-8",
            )
        return
    counted = [False]
    try:
        done = perform(ex, plan, counted)
        send_done(task.app, ex.settings, done)
    except Exception as exc:
        reason = environmental_or_broker(exc) or f"{type(exc).__name__}: {str(exc)[:200]}"
        _process_failures = _process_failures + 1 if process_bound(exc) else 0
        delay = min(ex.settings.receiver.retry_max_s, 2 ** min(task.request.retries, 10))
        log.warning("job %s: %s; retrying in %.0f s", plan.get("job"), ex.runner.redactor.text(reason), delay)
        again = {**plan, "given_back": int(plan.get("given_back", 0)) + counted[0]}
        if _process_failures >= ex.settings.receiver.restart_worker_after:
            restart_soon(f"{_process_failures} tries in a row failed with {reason}")
        sig = task_signature(key, task.request.id, again)
        raise task.retry(args=[again], kwargs={"sig": sig}, exc=exc, countdown=delay) from None
    _process_failures = 0
    log.info("job %s -> %s record=%s", plan["job"], done["outcome"], done["record_id"])


def restart_soon(why: str) -> None:
    """Stop this worker warmly once the current task is acknowledged (its retry is queued): what
    leaked in this process (descriptors, memory) goes with it; Kubernetes, systemd or whoever
    runs `runbook worker` starts a fresh one."""
    import signal

    log.error("worker restarting: %s", why)
    WorkerHealth.ready.clear()
    threading.Timer(0.5, os.kill, args=(os.getpid(), signal.SIGTERM)).start()


def send_done(app: Celery, settings: Settings, done: dict[str, Any]) -> None:
    """Tell the receiver (signed, durable, persistent, confirmed by the broker)."""
    queue = done_queue(settings)
    body = {k: v for k, v in done.items() if k != "sig"}
    body["sig"] = signing.sign_message(broker_key(settings), "done", body)
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
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

    broker_key(settings)  # no key, no worker: a clear error before anything starts
    app = make_app(settings)
    os.nice(WORKER_NICENESS)  # as local workers: the receiver, if on this machine, answers first
    warm = WarmKernels(settings.kernels).start() if settings.kernels.warm_kernels else None
    executor_for(settings)
    prime_and_freeze()
    if warm is not None:  # consume (and say ready) only once the first run can be warm
        t0 = time.monotonic()
        ready = warm.wait_ready(settings.kernels.template_start_timeout_s + settings.kernels.start_timeout_s)
        log.info(
            "warm kernels %s after %.1f s", "ready" if ready else "NOT ready (runs start cold)", time.monotonic() - t0
        )
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
        self.key = broker_key(settings)  # no key, no dispatcher: a clear error at start
        self.intake = Intake.from_settings(settings)
        self.app = make_app(settings)
        self.runner: JobHandler | None = None
        self.parked = 0  # refused reports (parked), for tests and /metrics readers
        self._producer: Any = None
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
        done = conn.SimpleQueue(done_queue(self.settings), accept=["json"])
        producer = conn.Producer()
        self._producer = producer
        for job in self.intake.running(CLAIMED):  # claimed before the broker confirmed: again
            self._send(producer, job)
        poll = max(self.settings.receiver.poll_interval_s, 0.05)
        last_stats = 0.0
        try:
            while not self._stop.is_set():
                busy = self._drain(done)
                busy |= self._dispatch(producer)
                self.health.ok("broker")  # a whole round went through: not merely connected
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
                kwargs={"sig": task_signature(self.key, str(job.id), plan)},
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
        """Finish the job a worker reports on (once: a report of a job already done is dropped).
        A message that cannot be a worker's report (another serializer, not JSON, unsigned,
        altered, malformed) is parked and acknowledged: it never stops the queue."""
        assert self.runner is not None
        try:
            body = message.decode()
            if not isinstance(body, dict):
                raise Refused("report refused: not a JSON object")
            report = {k: v for k, v in body.items() if k != "sig"}
            why = signing.message_problem(self.key, "done", report, body.get("sig"))
            if why is not None:
                raise Refused(f"report refused: {why}")
            job_id = int(report["job"])
            outcome = str(report["outcome"])[:40]
            notes = [str(n)[:1000] for n in report.get("notes") or []]
        except Exception as exc:
            if broker_trouble(exc):
                raise
            reason = str(exc)[:300] if isinstance(exc, Refused) else f"{type(exc).__name__}: {str(exc)[:300]}"
            park(
                self._producer,
                self.settings,
                message.body,
                reason,
                done_queue(self.settings).name,
                headers=message.headers,
                content_type=message.content_type,
                content_encoding=message.content_encoding,
            )
            self.parked += 1
            message.ack()
            return
        if self.intake.job_state(job_id) == "running":
            self.intake.finish(job_id, outcome, report.get("record_id"), note=notes[0] if notes else None)
            for note in notes[1:]:
                self.runner.note_quietly(job_id, note)
            log.info("job %s finished by a worker -> %s record=%s", job_id, outcome, report.get("record_id"))
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
