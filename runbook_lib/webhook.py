"""The Alertmanager receiver: validate -> persist to the intake journal -> answer.

Alertmanager's semantics: 2xx is final, 5xx and connection errors are retried, 4xx is
dropped for good. So a notification is answered 200 only after its journal commit, 503 when
that commit fails, and 4xx (with a body saying what is wrong) when the payload itself is bad.
Nothing in a payload can produce a 5xx. Work happens after the answer, in worker processes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
import logging
import threading
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pydantic import ValidationError

from .archive import RECORD_ID, Archive
from .context import WebhookPayload, format_validation_error
from .errors import ArchiveError
from .intake import Intake
from .settings import Settings

log = logging.getLogger("runbook.webhook")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
RECORD_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)


class JournalCollector(Collector):
    """Counts that must survive restarts are read from the journal at scrape time."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    def collect(self) -> Any:
        c = self.intake.counts()
        yield CounterMetricFamily(
            "runbook_notifications_received", "Notifications accepted and journaled.", value=c["notifications"]
        )
        yield CounterMetricFamily(
            "runbook_alerts_deduplicated",
            "Alerts that repeated a known (fingerprint, startsAt, status) and started no run.",
            value=c["deduplicated"],
        )
        runs = CounterMetricFamily("runbook_runs", "Finished jobs by outcome.", labels=["status"])
        for outcome, n in sorted(c["outcomes"].items()):
            runs.add_metric([str(outcome)], n)
        yield runs
        depth = GaugeMetricFamily("runbook_queue_depth", "Jobs waiting or running.", labels=["state"])
        for state in ("queued", "running"):
            depth.add_metric([state], c["states"].get(state, 0))
        yield depth


class Metrics:
    def __init__(self, intake: Intake) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(JournalCollector(intake))
        self.rejected = Counter(
            "runbook_notifications_rejected", "Notifications refused, by reason.", ["reason"], registry=self.registry
        )
        self.answer = Histogram(
            "runbook_webhook_answer_seconds",
            "Time from request to the webhook's answer.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.to_record = Histogram(
            "runbook_receipt_to_record_seconds",
            "Time from a firing alert's receipt to its archived record.",
            buckets=RECORD_BUCKETS,
            registry=self.registry,
        )


def _check_auth(settings: Settings, header: str | None) -> bool:
    """Bearer token or basic auth (what Alertmanager's http_config sends), in constant time."""
    cfg = settings.receiver
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and cfg.token is not None:
        return hmac.compare_digest(value.encode(), cfg.token.get_secret_value().encode())
    if scheme.lower() == "basic" and cfg.basic_user and cfg.basic_password is not None:
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        ok_user = hmac.compare_digest(user.encode(), cfg.basic_user.encode())
        ok_pw = hmac.compare_digest(password.encode(), cfg.basic_password.get_secret_value().encode())
        return ok_user and ok_pw
    return False


def auth_configured(settings: Settings) -> bool:
    cfg = settings.receiver
    return cfg.token is not None or bool(cfg.basic_user and cfg.basic_password is not None)


def create_app(
    settings: Settings,
    *,
    require_auth: bool = True,
    supervisor: Any = None,
) -> FastAPI:
    """The ASGI app. ``supervisor`` (worker processes) is started and stopped with the app."""
    intake = Intake(settings.journal_path, settings.receiver.journal_busy_timeout_s)
    intake.start_group_commit()
    commit_timeout = settings.receiver.journal_busy_timeout_s * 4 + 5  # past this, 503 and let Alertmanager retry
    archive = Archive(settings.archive_path)
    metrics = Metrics(intake)
    limit = settings.receiver.max_body_bytes
    stop = threading.Event()

    def watch_finished() -> None:
        seq = max((r["finished_seq"] for r in intake.finished_since(0)), default=0)
        while not stop.wait(0.5):
            try:
                for row in intake.finished_since(seq):
                    seq = row["finished_seq"]
                    if row["outcome"] != "resolved" and row["finished_at"]:
                        metrics.to_record.observe(row["finished_at"] - row["received_at"])
            except Exception as exc:
                log.warning("metrics watcher: %s", exc)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        watcher = threading.Thread(target=watch_finished, name="metrics-watcher", daemon=True)
        watcher.start()
        if supervisor is not None:
            supervisor.start()
        try:
            yield
        finally:
            stop.set()
            if supervisor is not None:
                await asyncio.to_thread(supervisor.stop)

    app = FastAPI(title="OmniHub runbook receiver", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    def unauthorized() -> Response:
        headers = {"WWW-Authenticate": 'Basic realm="runbooks"'} if settings.receiver.basic_user else {}
        return JSONResponse({"error": "missing or wrong credentials"}, status_code=401, headers=headers)

    def reject(status: int, reason: str, message: str) -> Response:
        metrics.rejected.labels(reason).inc()
        return JSONResponse({"error": message}, status_code=status)

    @app.post("/alerts")
    async def alerts(request: Request) -> Response:
        t0 = time.perf_counter()
        try:
            if require_auth and not _check_auth(settings, request.headers.get("authorization")):
                metrics.rejected.labels("unauthorized").inc()
                return unauthorized()
            declared = request.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > limit:
                return reject(413, "too_large", f"body larger than {limit} bytes")
            body = bytearray()
            async for chunk in request.stream():
                body += chunk
                if len(body) > limit:
                    return reject(413, "too_large", f"body larger than {limit} bytes")
            try:
                text = bytes(body).decode("utf-8")
                data = json.loads(text)
                # lone surrogates (valid JSON escapes) cannot be stored or rendered: refuse them now
                json.dumps(data, ensure_ascii=False).encode("utf-8")
            except json.JSONDecodeError as exc:
                return reject(400, "malformed", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
            except UnicodeError:
                return reject(400, "malformed", "malformed JSON: not valid UTF-8 (or contains lone surrogates)")
            except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
                return reject(400, "malformed", f"malformed JSON: {type(exc).__name__}: {str(exc)[:100]}")
            if not isinstance(data, dict):
                return reject(422, "invalid", f"payload: must be a JSON object, got {type(data).__name__}")
            try:
                payload = WebhookPayload.model_validate(data)
            except ValidationError as exc:
                return reject(422, "invalid", format_validation_error(exc))
            except Exception as exc:  # nothing in a payload may produce a 5xx
                log.warning("payload could not be validated: %s", type(exc).__name__)
                return reject(422, "invalid", f"payload could not be read: {type(exc).__name__}")
            try:
                pending = asyncio.wrap_future(intake.submit(payload, text))
                accepted = await asyncio.wait_for(pending, timeout=commit_timeout)
            except Exception as exc:  # JournalError, a commit that takes too long, anything else
                log.error("journal write failed, answering 503 so Alertmanager retries: %s", exc)
                metrics.rejected.labels("journal_error").inc()
                return JSONResponse({"error": "could not persist the notification; retry"}, status_code=503)
            return JSONResponse(
                {"accepted": accepted.new, "duplicates": accepted.duplicates, "notification": accepted.notification_id}
            )
        finally:
            metrics.answer.observe(time.perf_counter() - t0)

    @app.get("/healthz")
    async def healthz() -> Response:
        try:
            counts = await asyncio.to_thread(intake.counts)
        except Exception as exc:
            return JSONResponse({"status": "journal unavailable", "error": type(exc).__name__}, status_code=503)
        body = {
            "status": "ok",
            "queued": counts["states"].get("queued", 0),
            "running": counts["states"].get("running", 0),
        }
        if not intake.writer_alive():
            return JSONResponse({**body, "status": "journal writer stopped"}, status_code=503)
        if supervisor is not None:
            body["workers"] = supervisor.alive()
            if body["workers"] == 0:
                body["status"] = "no workers"
                return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    @app.get("/metrics")
    async def metrics_endpoint() -> Response:
        data = await asyncio.to_thread(generate_latest, metrics.registry)
        return PlainTextResponse(data, media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/records/{record_id}")
    async def record(record_id: str, request: Request) -> Response:
        if require_auth and not _check_auth(settings, request.headers.get("authorization")):
            return unauthorized()
        headers = {
            "Content-Security-Policy": "sandbox",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        }
        if not RECORD_ID.fullmatch(record_id):
            return JSONResponse({"error": "not a record id"}, status_code=404, headers=headers)
        try:
            loaded = await asyncio.to_thread(archive.load, record_id)
            html = (archive.record_dir(record_id) / "record.html").read_text(encoding="utf-8")
        except (ArchiveError, OSError):
            return JSONResponse({"error": "no such record"}, status_code=404, headers=headers)
        banner = _events_banner(loaded.get("events", []))
        if banner:
            html = html.replace(
                '<section class="rb-summary" id="summary">', banner + '<section class="rb-summary" id="summary">', 1
            )
        return HTMLResponse(html, headers=headers)

    app.state.intake = intake
    app.state.metrics = metrics
    return app


def _events_banner(events: list[dict[str, Any]]) -> str:
    """Later facts (resolved) shown above the archived page; the file itself is unchanged."""
    import html as html_lib

    lines = []
    for e in events:
        d = e.get("data") or {}
        if e.get("event") == "resolved":
            lines.append(
                f"Resolved at {d.get('ends_at')} after {float(d.get('duration_s') or 0):.0f} s "
                f"(notification received {d.get('received_at')})."
            )
        else:
            lines.append(f"{e.get('event')} at {e.get('at')}")
    if not lines:
        return ""
    body = "".join(f"<div>{html_lib.escape(line)}</div>" for line in lines)
    return f'<div class="rb-finding rb-ok"><b>Later events (chained in the archive index)</b>{body}</div>'
