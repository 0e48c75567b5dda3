"""The durable intake journal: every accepted notification is committed here before the
webhook answers 200. Embedded default: SQLite in WAL mode with synchronous=FULL.

One row per (fingerprint, startsAt, status) in ``jobs`` is the deduplication key: a repeat
(Alertmanager re-sends every repeat_interval and on every group change) only bumps
``repeats``. Workers claim queued jobs in order; a job left ``running`` by a dead worker is
interrupted: it is queued again once (attempts < max_attempts), and its record says so.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.core.contract import GROUP_ALERTNAME
from runbook_lib.core.errors import JournalError
from runbook_lib.core.settings import Settings
from runbook_lib.sre.alertmanager import Alert, WebhookPayload

log = logging.getLogger("runbook.intake")
PAGING = {"critical"}  # the alerts that page (SEV-1 and SEV-2) escalate when nobody acknowledges

SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id          INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    group_key   TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    status      TEXT NOT NULL,
    alerts      INTEGER NOT NULL,
    new_jobs    INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id              INTEGER PRIMARY KEY,
    notification_id INTEGER NOT NULL REFERENCES notifications (id),
    fingerprint     TEXT NOT NULL,
    starts_at       TEXT NOT NULL,
    status          TEXT NOT NULL,
    alertname       TEXT NOT NULL,
    alert           TEXT NOT NULL,
    received_at     REAL NOT NULL,
    state           TEXT NOT NULL DEFAULT 'queued',
    attempts        INTEGER NOT NULL DEFAULT 0,
    worker          TEXT,
    claimed_at      REAL,
    record_id       TEXT,
    outcome         TEXT,
    finished_at     REAL,
    finished_seq    INTEGER,
    notes           TEXT NOT NULL DEFAULT '[]',
    repeats         INTEGER NOT NULL DEFAULT 0,
    last_seen       REAL,
    grouped_into    INTEGER,
    kind            TEXT NOT NULL DEFAULT 'alert',
    group_key       TEXT NOT NULL DEFAULT '',
    UNIQUE (fingerprint, starts_at, status)
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, id);
-- Escalation timers of paging alerts (receiver escalation mode): each (job, step) fires once.
CREATE TABLE IF NOT EXISTS escalations (
    job_id      INTEGER NOT NULL REFERENCES jobs (id),
    step        INTEGER NOT NULL,
    due_at      REAL NOT NULL,
    state       TEXT NOT NULL DEFAULT 'pending',
    record_id   TEXT,
    done_at     REAL,
    note        TEXT,
    tries       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, step)
);
CREATE INDEX IF NOT EXISTS escalations_due ON escalations (state, due_at);
-- Signed requests already acted on (Slack, PagerDuty): a replayed body is refused.
CREATE TABLE IF NOT EXISTS seen_requests (
    digest      TEXT PRIMARY KEY,
    seen_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_seq);
"""
# Added after the first release; applied to an older journal when it is opened.
MIGRATIONS = {
    "grouped_into": "ALTER TABLE jobs ADD COLUMN grouped_into INTEGER",
    "kind": "ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'alert'",  # 'alert' or 'group'
    "group_key": "ALTER TABLE jobs ADD COLUMN group_key TEXT NOT NULL DEFAULT ''",  # Alertmanager's groupKey
}
# jobs_runs serves the per-window run budget on every notification: a partial index, so the
# cost does not grow with the journal's history.
LATER_INDEXES = """
CREATE INDEX IF NOT EXISTS jobs_runs ON jobs (received_at) WHERE status = 'firing' AND grouped_into IS NULL;
CREATE INDEX IF NOT EXISTS jobs_grouped ON jobs (grouped_into) WHERE grouped_into IS NOT NULL;
DROP INDEX IF EXISTS jobs_received;
"""
# A job is runnable when queued, unless it is a resolution whose firing job is not finished yet
# (the resolution updates that job's record).
RUNNABLE = (
    "j.state = 'queued' AND NOT (j.status = 'resolved' AND EXISTS ("
    "  SELECT 1 FROM jobs f WHERE f.fingerprint = j.fingerprint AND f.starts_at = j.starts_at"
    "  AND f.status = 'firing' AND f.state IN ('queued', 'running', 'grouped')))"
)


@dataclass(frozen=True)
class RunCaps:
    """How many new firing alerts get a run of their own: per notification, and per window.
    Beyond either, alerts are journaled as members of one group job (a single triage record
    listing them), never dropped."""

    per_notification: int = 100
    per_window: int = 1000
    window_s: float = 300.0

    def describe(self) -> str:
        return f"{self.per_notification} per notification, {self.per_window} per {self.window_s:g} s"


@dataclass
class Accepted:
    notification_id: int
    new: int
    duplicates: int
    grouped: int = 0  # of ``new``: over the run caps, journaled into a group job


@dataclass
class Job:
    id: int
    notification_id: int
    fingerprint: str
    starts_at: str
    status: str
    alertname: str
    alert: dict[str, Any]
    received_at: float
    attempts: int
    record_id: str | None
    notes: list[str]
    kind: str = "alert"  # "group": stands for the alerts grouped into it over the run caps
    worker: str | None = None  # who claimed it
    group_key: str = ""  # the Alertmanager group it came in
    link_to: dict[str, Any] | None = None  # set by claim(): link to this run of its group, do not run

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(
            id=row["id"],
            notification_id=row["notification_id"],
            fingerprint=row["fingerprint"],
            starts_at=row["starts_at"],
            status=row["status"],
            alertname=row["alertname"],
            alert=json.loads(row["alert"]),
            received_at=row["received_at"],
            attempts=row["attempts"],
            record_id=row["record_id"],
            notes=json.loads(row["notes"]),
            kind=row["kind"],
            worker=row["worker"],
            group_key=row["group_key"],
        )


def _environmental(exc: JournalError) -> bool:
    """Locked, busy, disk full, I/O error: the journal, not a notification, is the problem."""
    return isinstance(exc.__cause__, sqlite3.OperationalError | OSError)


def starts_key(alert: Alert) -> str:
    """startsAt normalised (UTC, microseconds) so that the same instant always dedups."""
    return alert.startsAt.astimezone(UTC).isoformat(timespec="microseconds")


class Intake:
    def __init__(
        self,
        path: Path,
        busy_timeout_s: float = 10.0,
        caps: RunCaps | None = None,
        escalate_after_s: tuple[float, ...] = (),
    ) -> None:
        self.path = Path(path)
        self.escalate_after_s = tuple(escalate_after_s)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.busy_timeout_s = busy_timeout_s
        self.caps = caps or RunCaps()
        self._local = threading.local()
        self._queue: queue.SimpleQueue[tuple[WebhookPayload, str, Future[Accepted]]] | None = None
        self._max_batch = 1
        self._writer_thread: threading.Thread | None = None
        conn = self._conn()
        conn.executescript(SCHEMA)  # executescript manages its own transaction
        columns = {row["name"] for row in conn.execute("PRAGMA table_info(jobs)")}
        for column, ddl in MIGRATIONS.items():
            if column not in columns:
                conn.execute(ddl)
        conn.executescript(LATER_INDEXES)

    @classmethod
    def from_settings(cls, settings: Settings) -> Intake:
        """The journal the settings name (receiver.journal, or <archive>/intake.sqlite3)."""
        r = settings.receiver
        caps = RunCaps(r.max_runs_per_notification, r.max_runs_per_window, r.run_window_s)
        steps = tuple(settings.incident.escalate_after_s) if settings.escalation_mode == "receiver" else ()
        return cls(settings.journal_path, r.journal_busy_timeout_s, caps, steps)

    # -- connections ------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=True)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
            self._local.conn = conn
            self._local.pid = os.getpid()
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # also when COMMIT itself failed (disk full, I/O error): never keep a transaction, and
            # with it the write lock, open on this thread's connection
            try:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            except sqlite3.Error:
                self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- intake -------------------------------------------------------------------------------
    def accept(self, payload: WebhookPayload, body: str) -> Accepted:
        """Persist a validated notification and one job per new alert; returns after the commit."""
        if self._queue is None:
            return self._write_batch([(payload, body)])[0]
        return self.submit(payload, body).result(timeout=self.busy_timeout_s * 4 + 5)

    def submit(self, payload: WebhookPayload, body: str) -> Future[Accepted]:
        """With group commit: hand the notification to the writer thread. The future resolves
        after the commit that holds it (or fails with JournalError); concurrent notifications
        share one transaction and one fsync. Await it with asyncio.wrap_future: no thread waits."""
        if self._queue is None or not self.writer_alive():
            raise JournalError(f"intake journal {self.path}: the journal writer is not running")
        done: Future[Accepted] = Future()
        self._queue.put((payload, body, done))
        return done

    def start_group_commit(self, max_batch: int = 256) -> None:
        if self._writer_thread is not None:
            raise RuntimeError("group commit is already running for this journal")
        self._queue = queue.SimpleQueue()
        self._max_batch = max_batch
        self._writer_thread = threading.Thread(target=self._writer, name="intake-writer", daemon=True)
        self._writer_thread.start()

    def writer_alive(self) -> bool:
        return self._writer_thread is not None and self._writer_thread.is_alive()

    def _writer(self) -> None:
        assert self._queue is not None
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write_group(batch)
            except BaseException as exc:  # never leave a caller waiting, never let the writer die
                log.exception("intake writer: unexpected failure")
                for _, _, fut in batch:
                    if not fut.done():
                        fut.set_exception(JournalError(f"intake journal {self.path}: {type(exc).__name__}"))

    def _write_group(self, batch: list[tuple[WebhookPayload, str, Future[Accepted]]]) -> None:
        try:
            results = self._write_batch([(p, b) for p, b, _ in batch])
        except JournalError as exc:
            if len(batch) == 1 or _environmental(exc):
                for _, _, fut in batch:  # the journal itself is unwritable: everyone retries
                    err = JournalError(str(exc))
                    err.__cause__ = exc.__cause__  # keeps the reason (disk full, locked) visible
                    fut.set_exception(err)
                return
            results = None  # one notification's data broke the batch: store the others one by one
        except Exception:
            results = None
        if results is not None:
            for (_, _, fut), result in zip(batch, results, strict=True):
                fut.set_result(result)
            return
        for p, b, fut in batch:
            try:
                fut.set_result(self._write_batch([(p, b)])[0])
            except Exception as exc:
                fut.set_exception(
                    exc if isinstance(exc, JournalError) else JournalError(f"{type(exc).__name__}: {exc}")
                )

    def _write_batch(self, items: list[tuple[WebhookPayload, str]]) -> list[Accepted]:
        now = time.time()
        out = []
        try:
            with self._tx() as conn:
                for payload, body in items:
                    out.append(self._insert(conn, payload, body, now))
        except sqlite3.Error as exc:
            raise JournalError(f"intake journal {self.path}: {exc}") from exc
        except OSError as exc:  # e.g. the journal's directory vanished
            raise JournalError(f"intake journal {self.path}: {exc.strerror}") from exc
        return out

    def _insert(self, conn: sqlite3.Connection, payload: WebhookPayload, body: str, now: float) -> Accepted:
        nid = conn.execute(
            "INSERT INTO notifications (received_at, group_key, receiver, status, alerts, new_jobs, body)"
            " VALUES (?, ?, ?, ?, ?, 0, ?)",
            (now, payload.groupKey, payload.receiver, payload.status, len(payload.alerts), body),
        ).lastrowid
        assert nid is not None
        new = dup = grouped = 0
        budget = self._run_budget(conn, now)
        group: int | None = None
        for alert in payload.alerts:
            key = (alert.fingerprint, starts_key(alert), alert.status)
            cur = conn.execute(
                "INSERT OR IGNORE INTO jobs (notification_id, fingerprint, starts_at, status, alertname, alert,"
                " received_at, last_seen, group_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (nid, *key, alert.name, alert.model_dump_json(), now, now, payload.groupKey),
            )
            if not cur.rowcount:
                dup += 1
                conn.execute(
                    "UPDATE jobs SET repeats = repeats + 1, last_seen = ? WHERE fingerprint = ? AND starts_at = ?"
                    " AND status = ?",
                    (now, *key),
                )
                continue
            new += 1
            if alert.status != "firing":
                continue
            if self.escalate_after_s and (alert.severity or "").lower() in PAGING:
                self._arm_escalation(conn, int(cur.lastrowid or 0), alert)
            if budget > 0:
                budget -= 1
                continue
            group = group or self._open_group(conn, nid, now)
            conn.execute("UPDATE jobs SET state = 'grouped', grouped_into = ? WHERE id = ?", (group, cur.lastrowid))
            grouped += 1
        conn.execute("UPDATE notifications SET new_jobs = ? WHERE id = ?", (new, nid))
        return Accepted(int(nid), new, dup, grouped)

    def _arm_escalation(self, conn: sqlite3.Connection, job_id: int, alert: Alert) -> None:
        """The escalation timers of a paging alert, due ``escalate_after_s`` after its startsAt."""
        fired = alert.startsAt.timestamp()
        conn.executemany(
            "INSERT OR IGNORE INTO escalations (job_id, step, due_at) VALUES (?, ?, ?)",
            [(job_id, step, fired + after) for step, after in enumerate(self.escalate_after_s, start=1)],
        )

    # -- escalation timers ----------------------------------------------------------------------
    def due_escalations(self, now: float) -> list[dict[str, Any]]:
        """Pending escalation timers due at ``now``, oldest first, with their job's alert and the
        record that job (or the job it was grouped or linked into) wrote, if any yet."""
        rows = (
            self._conn()
            .execute(
                "SELECT e.job_id, e.step, e.due_at, e.tries, j.alert, j.fingerprint, j.state AS job_state,"
                " COALESCE(j.record_id, g.record_id) AS record_id,"
                " EXISTS (SELECT 1 FROM jobs r WHERE r.fingerprint = j.fingerprint AND r.starts_at = j.starts_at"
                "   AND r.status = 'resolved') AS alert_resolved"
                " FROM escalations e JOIN jobs j ON j.id = e.job_id LEFT JOIN jobs g ON g.id = j.grouped_into"
                " WHERE e.state = 'pending' AND e.due_at <= ? ORDER BY e.due_at, e.job_id, e.step",
                (now,),
            )
            .fetchall()
        )
        return [
            {
                "job": r["job_id"],
                "step": r["step"],
                "due_at": r["due_at"],
                "alert": json.loads(r["alert"]),
                "record_id": r["record_id"],
                "job_state": r["job_state"],
                "alert_resolved": bool(r["alert_resolved"]),
                "tries": r["tries"],
            }
            for r in rows
        ]

    def retry_escalation(self, job_id: int, step: int, note: str) -> None:
        """A timer whose message could not go out: tried again at the next tick (tries counted)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE escalations SET tries = tries + 1, note = ? WHERE job_id = ? AND step = ? AND state = 'pending'",
                (note[:500], job_id, step),
            )

    def close_escalation(
        self, job_id: int, step: int, state: str, now: float, record_id: str | None, note: str
    ) -> bool:
        """Mark a timer 'fired' or 'stopped' (acknowledged, resolved) once; False if it was not pending."""
        with self._tx() as conn:
            cur = conn.execute(
                "UPDATE escalations SET state = ?, done_at = ?, record_id = ?, note = ?"
                " WHERE job_id = ? AND step = ? AND state = 'pending'",
                (state, now, record_id, note[:500], job_id, step),
            )
            return bool(cur.rowcount)

    def escalations(self) -> list[sqlite3.Row]:
        return self._conn().execute("SELECT * FROM escalations ORDER BY job_id, step").fetchall()

    # -- signed requests and approved actions ---------------------------------------------------
    def first_sight(self, digest: str, now: float, keep_s: float) -> bool:
        """Remember a signed request's digest (``<source>:<hex>``); False when it was seen
        before (a replay). That source's entries older than ``keep_s`` are dropped (past the
        signature window a replay is refused for its timestamp); other sources keep theirs."""
        source = digest.split(":", 1)[0] + ":"
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM seen_requests WHERE substr(digest, 1, ?) = ? AND seen_at < ?",
                (len(source), source, now - keep_s),
            )
            cur = conn.execute("INSERT OR IGNORE INTO seen_requests (digest, seen_at) VALUES (?, ?)", (digest, now))
            return bool(cur.rowcount)

    def seen(self, digest: str) -> bool:
        """Whether a request's digest was remembered (:meth:`first_sight`)."""
        return self._conn().execute("SELECT 1 FROM seen_requests WHERE digest = ?", (digest,)).fetchone() is not None

    def enqueue_action(self, incident_record: str, request: dict[str, Any], key: str) -> int:
        """Queue an approved action (a resolve run of the incident's runbook) for a worker: a job
        of kind 'action' whose ``alert`` column holds the request. ``key`` (the approval's index
        line hash) makes it idempotent: the same approval never queues two runs."""
        now = time.time()
        with self._tx() as conn:
            nid = conn.execute(
                "INSERT INTO notifications (received_at, group_key, receiver, status, alerts, new_jobs, body)"
                " VALUES (?, '', 'approval', 'firing', 1, 1, ?)",
                (now, json.dumps({"approval": key, "record": incident_record})),
            ).lastrowid
            conn.execute(
                "INSERT OR IGNORE INTO jobs (notification_id, fingerprint, starts_at, status, alertname, alert,"
                " received_at, last_seen, kind) VALUES (?, ?, ?, 'firing', ?, ?, ?, ?, 'action')",
                (nid, f"action-{key}", incident_record, f"action:{request['action']}", json.dumps(request), now, now),
            )
            row = conn.execute("SELECT id FROM jobs WHERE fingerprint = ?", (f"action-{key}",)).fetchone()
        return int(row["id"])

    def _run_budget(self, conn: sqlite3.Connection, now: float) -> int:
        """How many more firing alerts may get a run of their own now."""
        recent = conn.execute(
            "SELECT count(*) FROM jobs INDEXED BY jobs_runs"
            " WHERE status = 'firing' AND grouped_into IS NULL AND received_at > ?",
            (now - self.caps.window_s,),
        ).fetchone()[0]
        return max(0, min(self.caps.per_notification, self.caps.per_window - recent))

    @staticmethod
    def _open_group(conn: sqlite3.Connection, nid: int, now: float) -> int:
        """The queued group job new members join, or a new one (members of a group already being
        run start the next group)."""
        row = conn.execute(  # a group that has never been claimed: its record cannot exist yet
            "SELECT id FROM jobs WHERE kind = 'group' AND state = 'queued' AND attempts = 0 AND record_id IS NULL"
            " ORDER BY id DESC LIMIT 1"
        ).fetchone()
        if row is not None:
            return int(row["id"])
        started = datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")
        placeholder = json.dumps({"labels": {"alertname": GROUP_ALERTNAME}, "startsAt": started})
        cur = conn.execute(
            "INSERT INTO jobs (notification_id, fingerprint, starts_at, status, alertname, alert, received_at,"
            " last_seen, kind) VALUES (?, ?, ?, 'firing', ?, ?, ?, ?, 'group')",
            (nid, f"group-{nid}-{int(now * 1e6)}", started, GROUP_ALERTNAME, placeholder, now, now),
        )
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def group_members(self, group_job: int) -> list[dict[str, Any]]:
        """The alerts (as journaled) grouped into ``group_job``, oldest first."""
        rows = self._conn().execute(
            "SELECT alert, notification_id FROM jobs WHERE grouped_into = ? ORDER BY id", (group_job,)
        )
        return [{**json.loads(r["alert"]), "notification": r["notification_id"]} for r in rows]

    # -- work ---------------------------------------------------------------------------------
    def has_queued(self) -> bool:
        """Whether any job is runnable: a read that takes no lock, for idle workers to poll often
        (only then do they claim, which takes the write lock)."""
        return self._conn().execute(f"SELECT 1 FROM jobs j WHERE {RUNNABLE} LIMIT 1").fetchone() is not None

    def claim(
        self, worker: str, route: Callable[[str, str | None], str] | None = None, link_window_s: float = 600
    ) -> Job | None:
        """The oldest runnable job, marked running by ``worker``. A resolved job waits until its
        firing job is finished (it updates that job's record).

        With ``route`` ((alertname, runbook annotation) -> runbook, as the run decides): firing alerts of the same Alertmanager group that
        route to the same runbook within ``link_window_s`` are one story, run once. Queued ones
        are linked to the claimed job now (its run records them); a job whose group already has
        that runbook's run comes back with ``link_to`` set, to be linked, not run."""
        with self._tx() as conn:
            row = conn.execute(f"SELECT * FROM jobs j WHERE {RUNNABLE} ORDER BY j.id LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?, claimed_at = ? WHERE id = ?",
                (worker, time.time(), row["id"]),
            )
            link_to = self._link_group(conn, row, route, link_window_s) if route else None
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone()
        job = Job.from_row(row)
        job.link_to = link_to
        return job

    @staticmethod
    def _link_group(
        conn: sqlite3.Connection, row: sqlite3.Row, route: Callable[[str, str | None], str], window_s: float
    ) -> dict[str, Any] | None:
        if row["status"] != "firing" or row["kind"] != "alert" or not row["group_key"]:
            return None
        slug = route(row["alertname"], _runbook_hint(row["alert"]))
        same = conn.execute(
            "SELECT id, alertname, alert, state, record_id, outcome FROM jobs WHERE group_key = ? AND id != ?"
            " AND status = 'firing' AND kind = 'alert' AND received_at >= ? ORDER BY id",
            (row["group_key"], row["id"], row["received_at"] - window_s),
        ).fetchall()
        same = [r for r in same if route(r["alertname"], _runbook_hint(r["alert"])) == slug]
        primary = next(
            (r for r in same if r["state"] in ("running", "done") and r["outcome"] not in ("linked", "grouped")), None
        )
        if primary is not None and primary["id"] < row["id"]:
            if primary["state"] == "running":  # its run is under way: it records this one when it finishes
                conn.execute(
                    "UPDATE jobs SET state = 'grouped', grouped_into = ?, outcome = 'linked', worker = NULL"
                    " WHERE id = ?",
                    (primary["id"], row["id"]),
                )
                return {"job": primary["id"], "record_id": None, "pending": True}
            return {"job": primary["id"], "record_id": primary["record_id"], "pending": False}
        for sibling in same:
            if sibling["state"] == "queued":
                conn.execute(
                    "UPDATE jobs SET state = 'grouped', grouped_into = ?, outcome = 'linked' WHERE id = ?",
                    (row["id"], sibling["id"]),
                )
        return None

    def related_records(self, job: Job) -> list[dict[str, Any]]:
        """Other records of this job's Alertmanager group (runs of other runbooks), oldest first."""
        if not job.group_key:
            return []
        rows = (
            self._conn()
            .execute(
                "SELECT alertname, record_id FROM jobs WHERE group_key = ? AND id != ? AND status = 'firing'"
                " AND state = 'done' AND record_id IS NOT NULL AND COALESCE(outcome, '') NOT IN ('linked', 'grouped')"
                " ORDER BY id",
                (job.group_key, job.id),
            )
            .fetchall()
        )
        return [{"alertname": r["alertname"], "record_id": r["record_id"]} for r in rows]

    def group_firing(self, group_key: str) -> int:
        """How many alerts of an Alertmanager group still fire: firing jobs with no resolution."""
        if not group_key:
            return 0
        row = (
            self._conn()
            .execute(
                "SELECT count(*) FROM jobs f WHERE f.group_key = ? AND f.status = 'firing' AND f.kind = 'alert'"
                " AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.fingerprint = f.fingerprint"
                " AND r.starts_at = f.starts_at AND r.status = 'resolved')",
                (group_key,),
            )
            .fetchone()
        )
        return int(row[0])

    def paged_records(self, limit: int = 5000) -> list[sqlite3.Row]:
        """(record_id, group_key, fingerprint) of the newest firing jobs that wrote a record,
        newest first: what a PagerDuty webhook's dedup key is matched against."""
        return (
            self._conn()
            .execute(
                "SELECT record_id, group_key, fingerprint FROM jobs WHERE status = 'firing' AND kind = 'alert'"
                " AND record_id IS NOT NULL AND COALESCE(outcome, '') NOT IN ('error') ORDER BY id DESC LIMIT ?",
                (limit,),
            )
            .fetchall()
        )

    def set_record_id(self, job_id: int, record_id: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET record_id = ? WHERE id = ?", (record_id, job_id))

    def finish(self, job_id: int, outcome: str, record_id: str | None = None, note: str | None = None) -> None:
        """Mark a job done (and, for a group job, its members: outcome 'grouped', the same record)."""
        now = time.time()
        with self._tx() as conn:
            seq = conn.execute("SELECT COALESCE(MAX(finished_seq), 0) + 1 FROM jobs").fetchone()[0]
            conn.execute(
                "UPDATE jobs SET state = 'done', outcome = ?, record_id = COALESCE(?, record_id), finished_at = ?,"
                " finished_seq = ?, notes = CASE WHEN ? IS NULL THEN notes ELSE json_insert(notes, '$[#]', ?) END"
                " WHERE id = ?",
                (outcome, record_id, now, seq, note, note, job_id),
            )
            conn.execute(
                "UPDATE jobs SET state = 'done', outcome = COALESCE(outcome, 'grouped'), record_id = COALESCE(?, record_id),"
                " finished_at = ? WHERE grouped_into = ? AND state = 'grouped'",
                (record_id, now, job_id),
            )

    def set_worker(self, job_id: int, worker: str) -> None:
        """Who holds a running job now (the celery executor: 'celery' once the broker has it)."""
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET worker = ? WHERE id = ? AND state = 'running'", (worker, job_id))

    def job_state(self, job_id: int) -> str | None:
        row = self._conn().execute("SELECT state FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return row["state"] if row else None

    def note(self, job_id: int, note: str) -> None:
        """Append a note to a job (e.g. a notification that could not be sent)."""
        with self._tx() as conn:
            conn.execute("UPDATE jobs SET notes = json_insert(notes, '$[#]', ?) WHERE id = ?", (note, job_id))

    def firing_record(self, fingerprint: str, starts_at: str) -> tuple[str | None, bool]:
        """The record of the alert's firing job, and whether that alert was grouped (its record is
        the group's, which notified once for all of them)."""
        row = (
            self._conn()
            .execute(
                "SELECT record_id, outcome FROM jobs WHERE fingerprint = ? AND starts_at = ? AND status = 'firing'"
                " AND state = 'done'",
                (fingerprint, starts_at),
            )
            .fetchone()
        )
        return (row["record_id"], row["outcome"] in ("grouped", "linked")) if row else (None, False)

    def give_back_attempt(self, job_id: int) -> None:
        """An environmental failure is not an interruption: the claim that met it does not count
        towards receiver.max_attempts (best effort: the journal may be the thing that failed)."""
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET attempts = max(attempts - 1, 0) WHERE id = ? AND state = 'running'", (job_id,)
            )

    def running(self, worker: str | None = None) -> list[Job]:
        """Jobs in state 'running' (claimed by ``worker``, or by anyone when None)."""
        if worker is None:
            rows = self._conn().execute("SELECT * FROM jobs WHERE state = 'running' ORDER BY id").fetchall()
        else:
            rows = (
                self._conn()
                .execute("SELECT * FROM jobs WHERE state = 'running' AND worker = ? ORDER BY id", (worker,))
                .fetchall()
            )
        return [Job.from_row(r) for r in rows]

    def stuck(self, older_than_s: float, now: float | None = None) -> list[dict[str, Any]]:
        """Jobs 'running' (claimed, or sent to a worker) for longer than ``older_than_s``, oldest
        first: {"id", "alertname", "worker", "for_s"}."""
        moment = time.time() if now is None else now
        rows = (
            self._conn()
            .execute(
                "SELECT id, alertname, worker, claimed_at FROM jobs WHERE state = 'running' AND claimed_at < ? "
                "ORDER BY claimed_at LIMIT 20",
                (moment - older_than_s,),
            )
            .fetchall()
        )
        return [
            {
                "id": r["id"],
                "alertname": r["alertname"],
                "worker": r["worker"],
                "for_s": round(moment - r["claimed_at"]),
            }
            for r in rows
        ]

    def requeue(self, job_id: int, note: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL, notes = json_insert(notes, '$[#]', ?) WHERE id = ?",
                (note, job_id),
            )

    # -- observation --------------------------------------------------------------------------
    def counts(self) -> dict[str, Any]:
        conn = self._conn()
        states = dict(conn.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall())
        outcomes = dict(
            conn.execute("SELECT outcome, count(*) FROM jobs WHERE state = 'done' GROUP BY outcome").fetchall()
        )
        notifications, repeats, grouped = conn.execute(
            "SELECT (SELECT count(*) FROM notifications), (SELECT COALESCE(SUM(repeats), 0) FROM jobs),"
            " (SELECT count(*) FROM jobs WHERE grouped_into IS NOT NULL)"
        ).fetchone()
        return {
            "states": states,
            "outcomes": outcomes,
            "notifications": notifications,
            "deduplicated": repeats,
            "grouped": grouped,
        }

    def finished_since(self, seq: int) -> list[sqlite3.Row]:
        return (
            self._conn()
            .execute(
                "SELECT finished_seq, outcome, received_at, finished_at FROM jobs WHERE finished_seq > ? ORDER BY finished_seq",
                (seq,),
            )
            .fetchall()
        )

    def jobs(self) -> list[sqlite3.Row]:
        return self._conn().execute("SELECT * FROM jobs ORDER BY id").fetchall()


def _runbook_hint(alert_json: str) -> str | None:
    """The alert's ``runbook`` annotation (stored JSON), which routing also reads."""
    try:
        hint = (json.loads(alert_json).get("annotations") or {}).get("runbook")
    except (ValueError, AttributeError):
        return None
    return hint if isinstance(hint, str) else None
