"""The Alertmanager receiver's HTTP app: validate -> persist to the intake journal -> answer.

Alertmanager's semantics: 2xx is final, 5xx and connection errors are retried, 4xx is
dropped for good. So a notification is answered 200 only after its journal commit, 503 when
that commit fails, and 4xx (with a body saying what is wrong) when the payload itself is bad.
Nothing in a payload can produce a 5xx. Work happens after the answer, in worker processes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest

from runbook_lib.core import signing
from runbook_lib.core.environmental import environmental
from runbook_lib.core.errors import AlertError, ArchiveError, ArchiveUnavailable
from runbook_lib.core.health import Health
from runbook_lib.core.layout import RECORD_ID
from runbook_lib.core.present import visible
from runbook_lib.core.settings import Settings
from runbook_lib.intake.journal import Intake
from runbook_lib.receiver.auth import check_auth
from runbook_lib.receiver.escalation import Escalator
from runbook_lib.receiver.interact import MAX_BODY as MAX_INTERACTION_BODY
from runbook_lib.receiver.interact import Interactions
from runbook_lib.receiver.metrics import Metrics
from runbook_lib.record.archive import Archive, archive_for
from runbook_lib.record.events import with_events
from runbook_lib.sre.alertmanager import WebhookPayload, parse_payload
from runbook_lib.web.pages import PAGE_CSP
from runbook_lib.web.records import BadFilter, RecordsIndex
from runbook_lib.web.runbooks import RunbookPages

if TYPE_CHECKING:
    from runbook_lib.workers import Executor

log = logging.getLogger("runbook.webhook")
RECORD_HEADERS = {
    "Content-Security-Policy": "sandbox",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class Rejected(Exception):
    """A notification refused with a 4xx: status, metrics reason, message for the sender."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message


async def read_payload(request: Request, limit: int) -> tuple[WebhookPayload, str]:
    """The validated payload and its body text, or Rejected (400 / 413 / 422)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Rejected(413, "too_large", f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(413, "too_large", f"body larger than {limit} bytes")
    try:
        text = bytes(body).decode("utf-8")
        data = json.loads(text)
        # lone surrogates (valid JSON escapes) cannot be stored or rendered: refuse them now
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        raise Rejected(400, "malformed", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeError:
        raise Rejected(400, "malformed", "malformed JSON: not valid UTF-8 (or contains lone surrogates)") from None
    except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
        raise Rejected(400, "malformed", f"malformed JSON: {type(exc).__name__}: {str(exc)[:100]}") from None
    try:
        return parse_payload(data), text
    except AlertError as exc:
        raise Rejected(422, "invalid", str(exc)) from None
    except Exception as exc:  # nothing in a payload may produce a 5xx
        log.warning("payload could not be validated: %s", type(exc).__name__)
        raise Rejected(422, "invalid", f"payload could not be read: {type(exc).__name__}") from None


def create_app(settings: Settings, *, require_auth: bool = True, executor: Executor | None = None) -> FastAPI:
    """The ASGI app. ``executor`` (whoever runs the jobs) is started and stopped with the app."""
    intake = Intake.from_settings(settings)
    intake.start_group_commit()
    health = executor.health if executor is not None else Health()
    metrics = Metrics(intake, health, executor)
    app = FastAPI(
        title="OmniHub runbook receiver",
        lifespan=_lifespan(metrics, executor, settings),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Starlette would answer "/records/" with a redirect to an absolute URL built from the
        # Host header, which a client chooses: a 404 it is.
        redirect_slashes=False,
    )
    _alerts_route(app, settings, intake, metrics, health, require_auth)
    _status_routes(app, settings, intake, metrics, health, executor)
    archive = archive_for(settings)  # one client for the pages (an archive in S3 is listed, not walked)
    _records_route(app, settings, archive, require_auth)
    _records_index_route(app, settings, archive, require_auth)
    _signed_record_route(app, settings, archive)
    _runbooks_route(app, settings, archive, require_auth)
    interactions = Interactions(settings, intake, archive)
    _interaction_routes(app, interactions)
    if settings.escalation_mode == "receiver":
        app.state.escalator = Escalator(settings, intake, archive, interactions.notifier)
    app.state.intake = intake
    app.state.metrics = metrics
    app.state.health = health
    return app


def _lifespan(metrics: Metrics, executor: Executor | None, settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        stop = threading.Event()
        watcher = threading.Thread(target=metrics.watch_finished, args=(stop,), name="metrics-watcher", daemon=True)
        watcher.start()
        escalator = getattr(app.state, "escalator", None)
        if escalator is not None:  # incident.escalation "receiver": durable timers in the journal
            threading.Thread(target=escalator.run, args=(stop,), name="escalation", daemon=True).start()
        if executor is not None:
            executor.start()
        try:
            yield
        finally:
            stop.set()
            if executor is not None:
                await asyncio.to_thread(executor.stop)

    return lifespan


def _interaction_routes(app: FastAPI, interactions: Interactions) -> None:
    """``POST /slack/actions`` (Slack's buttons) and ``POST /pagerduty/webhook`` (PagerDuty v3):
    each verifies its own signature (.interact); 404 while its secret is not configured."""

    async def handle(request: Request, which: Any) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_INTERACTION_BODY:
                return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            answer = await asyncio.to_thread(which, request.headers, bytes(body), time.time())
        except Exception as exc:  # the journal or the archive failed: the sender retries, nothing was half-done
            log.error("interaction not handled: %s", environmental(exc) or type(exc).__name__)
            return JSONResponse({"error": "cannot be handled right now; retry"}, status_code=503)
        tasks = BackgroundTasks()
        for step in answer.after:  # the reply to Slack goes out after the answer: Slack waits 3 s at most
            tasks.add_task(step)
        return JSONResponse(answer.body, status_code=answer.status, background=tasks)

    @app.post("/slack/actions")
    async def slack_actions(request: Request) -> Response:
        return await handle(request, interactions.slack)

    @app.post("/pagerduty/webhook")
    async def pagerduty_webhook(request: Request) -> Response:
        return await handle(request, interactions.pagerduty)


def _unauthorized(settings: Settings) -> Response:
    headers = {"WWW-Authenticate": 'Basic realm="runbooks"'} if settings.receiver.basic_user else {}
    return JSONResponse({"error": "missing or wrong credentials"}, status_code=401, headers=headers)


def _alerts_route(
    app: FastAPI, settings: Settings, intake: Intake, metrics: Metrics, health: Health, require_auth: bool
) -> None:
    commit_timeout = settings.receiver.journal_busy_timeout_s * 4 + 5  # past this, 503 and let Alertmanager retry

    @app.post("/alerts")
    async def alerts(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            if require_auth and not check_auth(settings, request.headers.get("authorization")):
                metrics.rejected.labels("unauthorized").inc()
                return _unauthorized(settings)
            try:
                payload, text = await read_payload(request, settings.receiver.max_body_bytes)
            except Rejected as exc:
                metrics.rejected.labels(exc.reason).inc()
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            try:
                pending = asyncio.wrap_future(intake.submit(payload, text))
                accepted = await asyncio.wait_for(pending, timeout=commit_timeout)
            except Exception as exc:  # JournalError, a commit that takes too long, anything else
                log.error("journal write failed, answering 503 so Alertmanager retries: %s", exc)
                metrics.rejected.labels("journal_error").inc()
                reason = environmental(exc) or f"{type(exc).__name__}"
                health.degraded("journal", f"cannot commit notifications ({reason}); answering 503")
                return JSONResponse({"error": "could not persist the notification; retry"}, status_code=503)
            health.ok("journal")
            log.info(
                "notification received id=%s group=%s alerts=%d new=%d duplicates=%d grouped=%d answer_ms=%.1f",
                accepted.notification_id,
                visible(payload.groupKey)[:120],
                len(payload.alerts),
                accepted.new,
                accepted.duplicates,
                accepted.grouped,
                (time.perf_counter() - t0) * 1000,
            )
            return JSONResponse(
                {
                    "accepted": accepted.new,
                    "duplicates": accepted.duplicates,
                    "grouped": accepted.grouped,
                    "notification": accepted.notification_id,
                }
            )
        finally:
            metrics.answer.observe(time.perf_counter() - t0)


def _status_routes(
    app: FastAPI, settings: Settings, intake: Intake, metrics: Metrics, health: Health, executor: Executor | None
) -> None:
    stuck_after = settings.receiver.stuck_after_s

    @app.get("/healthz")
    async def healthz() -> Response:
        """200 "ok"; 503 with a status and the reasons when the receiver cannot do its job,
        including a job running longer than any run takes (receiver.stuck_after_s)."""
        try:
            counts = await asyncio.to_thread(intake.counts)
            stuck = await asyncio.to_thread(intake.stuck, stuck_after)
        except Exception as exc:
            reason = environmental(exc) or type(exc).__name__
            return JSONResponse({"status": "journal unavailable", "error": reason}, status_code=503)
        body: dict[str, Any] = {
            "status": "ok",
            "queued": counts["states"].get("queued", 0),
            "running": counts["states"].get("running", 0),
        }
        if executor is not None:
            body["workers"] = executor.alive()
        problems = health.problems() + [
            {
                "component": f"job {job['id']}",
                "reason": f"{job['alertname']} running for {job['for_s']} s (worker {job['worker']}), longer than "
                f"any run takes (receiver.stuck_after_s {stuck_after:g})",
                "for_s": job["for_s"] - stuck_after,
            }
            for job in stuck
        ]
        if problems:
            body["problems"] = problems
        if not intake.writer_alive():
            body["status"] = "journal writer stopped"
        elif executor is not None and body["workers"] == 0 and executor.name == "local":
            body["status"] = "no workers"  # (celery workers come and go on their own; the broker holds the runs)
        elif problems:
            body["status"] = "degraded"
        return JSONResponse(body, status_code=200 if body["status"] == "ok" else 503)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        data = await asyncio.to_thread(generate_latest, metrics.registry)
        return PlainTextResponse(data, media_type="text/plain; version=0.0.4; charset=utf-8")


async def _record_page(archive: Archive, record_id: str) -> Response:
    """One record's archived page with its later events: what /records/{id} and a valid /r/{id} serve."""
    if not RECORD_ID.fullmatch(record_id):
        return JSONResponse({"error": "not a record id"}, status_code=404, headers=RECORD_HEADERS)
    try:
        loaded = await asyncio.to_thread(archive.load, record_id)
        page = (await asyncio.to_thread(archive.read_record_file, record_id, "record.html")).decode("utf-8")
    except ArchiveUnavailable as exc:  # the storage, not the record: say so, and let the client retry
        log.warning("record %s not served: %s", record_id, exc)
        return JSONResponse({"error": "the archive cannot be read right now"}, status_code=503, headers=RECORD_HEADERS)
    except (ArchiveError, OSError, ValueError):
        return JSONResponse({"error": "no such record"}, status_code=404, headers=RECORD_HEADERS)
    return HTMLResponse(with_events(page, loaded.get("events", []), loaded), headers=RECORD_HEADERS)


def _records_route(app: FastAPI, settings: Settings, archive: Archive, require_auth: bool) -> None:
    @app.get("/records/{record_id}")
    async def record(record_id: str, request: Request) -> Response:
        if require_auth and not check_auth(settings, request.headers.get("authorization")):
            return _unauthorized(settings)
        return await _record_page(archive, record_id)


def _records_index_route(app: FastAPI, settings: Settings, archive: Archive, require_auth: bool) -> None:
    """``GET /records``: the index of incidents, filtered by plain links (.records_page)."""
    index = RecordsIndex(archive)
    headers = {**RECORD_HEADERS, "Content-Security-Policy": PAGE_CSP}

    @app.get("/records")
    async def records_index(request: Request) -> Response:
        if require_auth and not check_auth(settings, request.headers.get("authorization")):
            return _unauthorized(settings)
        try:
            page = await asyncio.to_thread(index.page, request.query_params.multi_items(), datetime.now(UTC))
        except BadFilter as exc:  # names the parameter and what it allows, never the value sent
            return JSONResponse(exc.body(), status_code=400, headers=RECORD_HEADERS)
        return HTMLResponse(page, headers=headers)


SIGNED_LINK_ERRORS = {
    "missing": "this link is incomplete: it needs its exp and sig",
    "malformed": "this link is not valid",
    "bad signature": "this link is not valid",
    "expired": "this link has expired; open the record at /records with your credentials",
}


def _signed_record_route(app: FastAPI, settings: Settings, archive: Archive) -> None:
    """``GET /r/{id}?exp=&sig=``: the one record a signed link in a message names, without other
    credentials, until it expires (runbook_lib.core.signing); 403 otherwise. It grants nothing else.
    Without notify.link_signing_key: 404 (messages then link /records/{id})."""
    configured = settings.notify.link_signing_key
    key = configured.get_secret_value() if configured is not None else None

    @app.get("/r/{record_id:path}")  # ":path": "a/b" reaches the checks below, with their headers
    async def signed_record(record_id: str, request: Request) -> Response:
        if key is None:
            return JSONResponse({"error": "not found"}, status_code=404, headers=RECORD_HEADERS)
        params = request.query_params
        if len(params.getlist("exp")) > 1 or len(params.getlist("sig")) > 1:
            why: str | None = "malformed"
        else:
            why = signing.problem(key, record_id, params.get("exp"), params.get("sig"), time.time())
        if why is not None:
            return JSONResponse({"error": SIGNED_LINK_ERRORS[why]}, status_code=403, headers=RECORD_HEADERS)
        return await _record_page(archive, record_id)


def _runbooks_route(app: FastAPI, settings: Settings, archive: Archive, require_auth: bool) -> None:
    """``GET /runbooks/{slug}``, where generated alerts' ``runbook_url`` points (.runbook_page)."""
    pages = RunbookPages(settings.runbooks_path, settings.catalog_file, archive)
    headers = {**RECORD_HEADERS, "Content-Security-Policy": PAGE_CSP}

    @app.get("/runbooks/{slug:path}")  # ":path": "../x", "a/b" reach the 404 below, with its headers
    async def runbook_page(slug: str, request: Request) -> Response:
        if require_auth and not check_auth(settings, request.headers.get("authorization")):
            return _unauthorized(settings)
        page = await asyncio.to_thread(pages.page, slug)
        if page is None:  # the slug is never echoed
            return JSONResponse({"error": "no such runbook"}, status_code=404, headers=RECORD_HEADERS)
        return HTMLResponse(page, headers=headers)
