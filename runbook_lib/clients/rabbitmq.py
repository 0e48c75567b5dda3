"""RabbitMQ over AMQP (pika): a queue's depth, a sample of dead letters peeked without losing
them, and the replay of dead letters to where they came from. Shared: the kernel's dlq checks
and its ``dlq_replay`` option and the host's ``runbook dlq replay`` call this same code.

Every connection is opened for one operation and closed after it. Errors are
:mod:`runbook_lib.core.errors` classes whose messages name the broker as ``amqp://host:port/vhost``
only (never the user info of the URL).

**Where a dead letter may go back to.** Anyone who can publish to the dead-letter queue (or to a
work queue, whose real dead-lettering keeps a forged ``x-death`` entry of the same queue and
reason) writes the ``x-death`` header. So a replay never trusts its exchange or routing keys:
it sends a dead letter only back to the queue its latest entry names, through the default
exchange, and only when that queue really dead-letters into this DLQ (:func:`dead_letter_sources`:
asked of the broker's management API, whose queues have an exchange bound to the DLQ as their
``x-dead-letter-exchange``, by argument or policy; else a configured allow-list). Any other
letter stays in the DLQ (``not_a_dead_letter_source``).

**Replay, one message at a time.** ``basic.get`` a dead letter (unacked); refuse it (leave it
unacked until the end of the run, then requeue it) when it has no ``x-death`` header, a
malformed one (``bad_x_death``: its latest entry must be a table whose ``queue``, ``reason`` and
``exchange`` are strings, whose ``routing-keys`` is a non-empty array of strings and whose
``count``, if any, is an integer), names a queue that is no dead-letter source of this DLQ, has
been replayed ``max_replays`` times already (header ``x-replay-count``), expired (its latest
entry's reason is ``expired``: its TTL ran out before any consumer took it, so it is likely stale
by now; only ``include_expired`` replays those), or its republish is unroutable or nacked; otherwise republish it, with every property and header kept and
``x-replay-count`` incremented, to that queue (default exchange, routing key = the queue's
name), ``mandatory`` and on a channel in confirm mode, and ack the dead letter only once the
broker has confirmed the republish. A run goes on until the queue is empty (or ``limit``
messages); each republish carries the run's id (``x-replay-run``), so a message that fails again
and comes back during the same run is left for the next one ("dead_again"), not replayed twice.

If the process dies (SIGKILL, OOM, lost connection), the broker requeues every unacked dead
letter: nothing is lost. Only one message is in flight at a time; if its republish had reached
the destination but its ack had not reached the broker, the next run replays it once more: at
most one duplicate per interruption, and only of that message (acks and the next ``basic.get``
share a channel, so the broker has processed the previous ack before it answers the next get).

**Peeks count.** A peek (:meth:`RabbitMQ.peek`, a dry run, a refused message put back) takes each
message and requeues it: on a quorum-queue DLQ every peek counts against delivery-limit; give the
DLQ ``delivery-limit: -1`` or use a classic queue.
"""

from __future__ import annotations

import itertools
import logging
import shlex
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pika
from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection
from pika.exceptions import (
    AMQPChannelError,
    AMQPConnectionError,
    AMQPError,
    AuthenticationError,
    ChannelClosedByBroker,
    NackError,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    UnroutableError,
)

from runbook_lib.core.credentials import password_of, safe_endpoint
from runbook_lib.core.errors import EXIT_USAGE, SourceError, SourceNotConfigured, SourceUnavailable

NAME = "RabbitMQ"
REPLAY_HEADER = "x-replay-count"
RUN_HEADER = "x-replay-run"  # the run that replayed it last: a run never replays a message twice
NO_X_DEATH = "(no x-death)"
BAD_X_DEATH = "bad_x_death"  # the refusal, and the reason a description gives, for a malformed x-death
BAD_X_DEATH_QUEUE = "(bad x-death)"
# pika logs every failed connection attempt at ERROR, several lines each; our error says it once.
if logging.getLogger("pika").level == logging.NOTSET:
    logging.getLogger("pika").setLevel(logging.CRITICAL)

NOT_A_SOURCE = "not_a_dead_letter_source"
EXPIRED = "expired"  # the x-death reason of a message whose TTL ran out, and the refusal for it
Progress = Callable[["ReplayResult", int], None]


@dataclass(frozen=True)
class Sources:
    """The queues that really dead-letter into a DLQ, and how that is known (for people and audits)."""

    queues: frozenset[str]
    how: str


class AccessRefused(SourceError):
    """The broker refused the login or the virtual host: a configuration error (exit 2)."""

    exit_code = EXIT_USAGE


class QueueNotFound(SourceError):
    """The queue does not exist in the virtual host: bad input (exit 2)."""

    exit_code = EXIT_USAGE


class ReplayInterrupted(SourceUnavailable):
    """The broker went away during a replay; ``result`` holds what was done until then."""

    def __init__(self, message: str, result: ReplayResult) -> None:
        super().__init__(NAME, message)
        self.result = result


@dataclass
class ReplayResult:
    """What a replay did (or, with ``dry_run``, would do)."""

    queue: str
    where: str
    dry_run: bool
    max_replays: int
    limit: int | None
    depth_before: int
    include_expired: bool = False
    considered: int = 0
    replayed: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    destinations: Counter[tuple[str, str]] = field(default_factory=Counter)
    depth_after: int | None = None
    seconds: float = 0.0
    sources: Sources = field(default_factory=lambda: Sources(frozenset(), "none known"))

    @property
    def refused_total(self) -> int:
        return sum(self.refused.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: for audit rows, records and ``--json``."""
        return {
            "from": {"broker": self.where, "queue": self.queue},
            "to": [{"exchange": e, "routing_key": k, "messages": n} for (e, k), n in self.destinations.most_common()],
            "dry_run": self.dry_run,
            "limit": self.limit,
            "max_replays": self.max_replays,
            "include_expired": self.include_expired,
            "depth_before": self.depth_before,
            "depth_after": self.depth_after,
            "considered": self.considered,
            "replayed": self.replayed,
            "refused": self.refused_total,
            "refused_by_reason": dict(self.refused.most_common()),
            "sources": sorted(self.sources.queues),
            "sources_from": self.sources.how,
            "seconds": round(self.seconds, 3),
        }

    def summary(self) -> str:
        """One sentence for people."""
        verb = "would replay" if self.dry_run else "replayed"
        to = "; ".join(f"{n} to {destination(e, k)}" for (e, k), n in self.destinations.most_common()) or "none"
        refused = ", ".join(f"{n} {r}" for r, n in self.refused.most_common())
        left = f"; {self.depth_after} left in the queue" if self.depth_after is not None and not self.dry_run else ""
        return (
            f"{verb} {self.replayed} of {self.considered} dead letters from {self.queue} on {self.where} ({to})"
            + (f"; refused {self.refused_total} ({refused}), left in {self.queue}" if self.refused_total else "")
            + left
            + "."
        )


def destination(exchange: str, routing_key: str) -> str:
    """How people read a replay target."""
    return (
        f"exchange {exchange!r} (routing key {routing_key!r})"
        if exchange
        else f"queue {routing_key!r} (default exchange)"
    )


def replay_command(
    queue: str, limit: int | None, max_replays: int | None, operator: str = "", include_expired: bool = False
) -> str:
    """The ``runbook dlq replay`` command line that does what these arguments ask."""
    words = ["runbook", "dlq", "replay", "--queue", queue]
    if limit is not None:
        words += ["--limit", str(limit)]
    if max_replays is not None:
        words += ["--max-replays", str(max_replays)]
    if include_expired:
        words += ["--include-expired"]
    words += ["--operator", operator or "NAME"]
    return shlex.join(words)


# -- one dead letter -----------------------------------------------------------------------------
def describe(method: Any, props: pika.BasicProperties, body: bytes) -> dict[str, Any]:
    """A dead letter as a plain dict: where it died (its latest x-death entry) and why. Total: any
    header shape gives a description (a malformed x-death gives reason ``bad_x_death``), never
    an exception. ``x_death`` is "ok", "missing" or "bad"."""
    headers = props.headers if isinstance(props.headers, dict) else {}
    shape, last = latest_death(props.headers)
    ok = shape == "ok"
    died = last.get("time")
    return {
        "message_id": _text(props.message_id),
        "x_death": shape,
        "reason": last["reason"] if ok else NO_X_DEATH if shape == "missing" else BAD_X_DEATH,
        "original_queue": last["queue"] if ok else NO_X_DEATH if shape == "missing" else BAD_X_DEATH_QUEUE,
        "original_exchange": last["exchange"] if ok else None,
        "routing_key": last["routing-keys"][0] if ok else _text(method.routing_key) if shape == "missing" else "",
        "death_count": last.get("count", 0) if ok else 0,
        "dead_lettered_at": died.isoformat() if isinstance(died, datetime) else None,
        "replays": _int(headers.get(REPLAY_HEADER)),
        "replay_run": _text(headers.get(RUN_HEADER)),
        "redelivered": bool(method.redelivered),
        "bytes": len(body or b""),
    }


def latest_death(headers: Any) -> tuple[str, dict[str, Any]]:
    """("ok", the latest x-death entry) when it is well formed; ("missing", {}) without an
    x-death header; ("bad", {}) for any other shape (a forged or corrupted header must not choose
    where its message is replayed)."""
    if headers is None:
        return "missing", {}
    if not isinstance(headers, dict):
        return "bad", {}
    deaths = headers.get("x-death")
    if deaths is None:
        return "missing", {}
    if isinstance(deaths, list) and deaths and _well_formed(deaths[0]):
        return "ok", deaths[0]
    return "bad", {}


def _well_formed(entry: Any) -> bool:
    """An x-death entry as the broker writes it: queue, reason and exchange are str,
    routing-keys a non-empty list of str, count (if present) an int."""
    if not isinstance(entry, dict):
        return False
    if not all(isinstance(entry.get(k), str) for k in ("queue", "reason", "exchange")):
        return False
    keys = entry.get("routing-keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        return False
    count = entry.get("count", 0)
    return isinstance(count, int) and not isinstance(count, bool)


def refusal(
    letter: dict[str, Any], max_replays: int, sources: Collection[str], include_expired: bool = False
) -> str | None:
    """Why a dead letter must stay in the queue, or None when it may be replayed (to its
    ``original_queue``, one of ``sources``). An expired one (TTL) stays unless ``include_expired``."""
    shape = letter.get("x_death")
    if shape == "missing":
        return "no_x_death"
    if shape != "ok":
        return BAD_X_DEATH
    if letter.get("reason") == EXPIRED and not include_expired:
        return EXPIRED
    if letter["original_queue"] not in sources:
        return NOT_A_SOURCE
    if letter["replays"] >= max_replays:
        return "max_replays"
    return None


def dead_letter_sources(
    mq: RabbitMQ,
    dlq: str,
    management_url: str | None = None,
    allowed: Collection[str] = (),
    timeout_s: float = 5.0,
) -> Sources:
    """The queues that dead-letter into ``dlq``. With ``management_url`` (the broker's management
    API, asked with the AMQP URL's user): every queue of the virtual host whose
    ``x-dead-letter-exchange`` (its argument, else its policy's ``dead-letter-exchange``) is an
    exchange bound to ``dlq``; ``allowed``, when given too, narrows that. Without it: ``allowed``
    as configured, which nothing can check (an empty set: nothing is replayed)."""
    if not management_url:
        return Sources(frozenset(allowed), "the configured allow-list (rabbitmq.dead_letter_sources or --source)")
    base = management_url.rstrip("/")
    vhost = quote(mq.vhost, safe="")
    auth = mq.login
    try:
        with httpx.Client(base_url=base, auth=auth, timeout=timeout_s, follow_redirects=False) as http:
            bindings = _management(http, f"/api/queues/{vhost}/{quote(dlq, safe='')}/bindings", mq.where)
            exchanges = {b["source"] for b in bindings if isinstance(b, dict) and b.get("source")}
            queues = _management(
                http, f"/api/queues/{vhost}?columns=name,arguments,effective_policy_definition", mq.where
            )
    except httpx.HTTPError as exc:
        raise SourceUnavailable(
            NAME, f"the management API at {base} cannot be reached ({type(exc).__name__})"
        ) from None
    found = set()
    for q in queues:
        if not isinstance(q, dict) or q.get("name") == dlq:
            continue
        args = q.get("arguments") or {}
        policy = q.get("effective_policy_definition") or {}
        dlx = args.get(
            "x-dead-letter-exchange", policy.get("dead-letter-exchange") if isinstance(policy, dict) else None
        )
        if isinstance(dlx, str) and dlx in exchanges:
            found.add(str(q["name"]))
    if allowed:
        found &= set(allowed)
    names = ", ".join(sorted(exchanges)) or "none"
    return Sources(frozenset(found), f"the management API at {base} (queues dead-lettering to {names})")


def _management(http: httpx.Client, path: str, where: str) -> list[Any]:
    resp = http.get(path)
    if resp.status_code in (401, 403):
        raise AccessRefused(NAME, f"{where}: the management API refused the URL's user ({resp.status_code})")
    if resp.status_code == 404:
        raise QueueNotFound(NAME, f"{where}: the management API knows no such queue or virtual host")
    if resp.status_code != 200:
        raise SourceError(NAME, f"{where}: the management API answered {resp.status_code}")
    data = resp.json()
    if not isinstance(data, list):
        raise SourceError(NAME, f"{where}: the management API answered something that is not a list")
    return data


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    """A count from a header: 0 when it is not a non-negative whole number."""
    if isinstance(value, bool):
        return 0
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError, ArithmeticError):
        return 0


# -- the client ----------------------------------------------------------------------------------
class RabbitMQ:
    def __init__(self, url: str, timeout_s: float = 5.0) -> None:
        self.where = safe_endpoint(url)
        self._secrets = sorted(password_of(url), key=len, reverse=True)
        if not url.startswith(("amqp://", "amqps://")):
            raise SourceError(NAME, f"the configured URL is not an amqp:// or amqps:// URL ({self.where})")
        try:
            params = pika.URLParameters(url)
        except Exception as exc:  # pika raises several kinds for a malformed URL
            raise SourceError(NAME, f"the configured URL is not valid ({type(exc).__name__})") from None
        params.connection_attempts = 1
        params.socket_timeout = timeout_s
        params.stack_timeout = 2 * timeout_s
        params.blocked_connection_timeout = timeout_s
        params.client_properties = {"connection_name": "omnihub-runbook"}
        self.vhost = params.virtual_host
        self._timeout_s = timeout_s
        self._params = params

    @property
    def login(self) -> tuple[str, str]:
        """The URL's user and password (the management API takes the same login)."""
        return str(self._params.credentials.username), str(self._params.credentials.password)

    def sources(self, settings: Any, dlq: str, allowed: Collection[str] = ()) -> Sources:
        """:func:`dead_letter_sources` of ``dlq`` as the settings say: rabbitmq.management_url,
        else ``allowed`` (given by a person), else rabbitmq.dead_letter_sources for
        rabbitmq.dlq_queue."""
        cfg = settings.rabbitmq
        configured = allowed or (cfg.dead_letter_sources if dlq == cfg.dlq_queue else ())
        return dead_letter_sources(
            self, dlq, cfg.management_url, allowed if cfg.management_url else configured, cfg.timeout_s
        )

    @classmethod
    def from_settings(cls, settings: Any) -> RabbitMQ:
        cfg = settings.rabbitmq
        if cfg.url is None:
            raise SourceNotConfigured(NAME, "set RUNBOOK_RABBITMQ_URL or RUNBOOK_RABBITMQ_URL_FILE")
        return cls(cfg.url.get_secret_value(), cfg.timeout_s)

    # -- reading -----------------------------------------------------------------------------
    def depth(self, queue: str) -> int:
        """Messages ready in ``queue`` (unacked ones are not counted)."""
        with self._session(queue) as conn:
            return self._depth(conn.channel(), queue)

    def consumers(self, queue: str) -> int:
        """Consumers attached to ``queue`` now (QueueNotFound when there is no such queue)."""
        with self._session(queue) as conn:
            return int(conn.channel().queue_declare(queue, passive=True).method.consumer_count)

    def peek(self, queue: str, n: int) -> list[dict[str, Any]]:
        """Up to ``n`` messages from the head of ``queue``, described by :func:`describe`. Each is
        taken unacked and every one is put back (requeued, in place) before returning; if this
        process dies first, the broker puts them back itself. Nothing is lost; the broker marks
        them redelivered."""
        with self._session(queue) as conn:
            channel = conn.channel()
            letters = [describe(*got) for got in self._take(channel, queue, n)]
            self._requeue(channel, queue, len(letters))
            return letters

    # -- replay ------------------------------------------------------------------------------
    def replay(
        self,
        queue: str,
        sources: Sources,
        *,
        limit: int | None = None,
        max_replays: int = 3,
        dry_run: bool = False,
        include_expired: bool = False,
        progress: Progress | None = None,
        progress_every: int = 100,
    ) -> ReplayResult:
        """Republish the dead letters of ``queue`` to the queues they died in, each only when
        that queue is one of ``sources`` (see the module docstring for every guarantee).
        ``limit``: at most this many (default: until the queue is empty). ``dry_run``: classify
        them as :meth:`peek` does and change nothing. ``include_expired``: replay expired (TTL) dead
        letters too (by default they stay). ``progress(result, expected)`` is called
        every ``progress_every`` messages."""
        started = time.monotonic()
        with self._session(queue) as conn:
            take = conn.channel()
            result = ReplayResult(
                queue, self.where, dry_run, max_replays, limit, self._depth(take, queue), include_expired
            )
            result.sources = sources
            if dry_run:
                self._classify(take, result)
            else:
                self._replay_all(conn, take, result, progress, max(1, progress_every))
            result.depth_after = self._depth(take, queue)
        result.seconds = time.monotonic() - started
        return result

    def _classify(self, take: BlockingChannel, result: ReplayResult) -> None:
        for got in self._take(take, result.queue, result.limit):
            letter = describe(*got)
            result.considered += 1
            reason = refusal(letter, result.max_replays, result.sources.queues, result.include_expired)
            if reason:
                result.refused[reason] += 1
            else:
                result.replayed += 1
                result.destinations[("", letter["original_queue"])] += 1
        self._requeue(take, result.queue, result.considered)

    def _replay_all(
        self,
        conn: BlockingConnection,
        take: BlockingChannel,
        result: ReplayResult,
        progress: Progress | None,
        every: int,
    ) -> None:
        run = uuid.uuid4().hex[:16]
        expected = result.depth_before if result.limit is None else min(result.limit, result.depth_before)
        send = _confirming(conn)
        try:
            for got in self._take(take, result.queue, result.limit):
                send = self._replay_one(conn, take, send, got, run, result)
                if progress and result.considered % every == 0:
                    progress(result, expected)
            self._requeue(take, result.queue, result.refused_total)  # the refused go back where they were
        except AMQPError as exc:
            raise ReplayInterrupted(
                f"{self.where}: the replay stopped after {result.replayed} of about {expected} dead letters were "
                f"replayed ({self._safe(exc)}); the broker requeued the rest: run it again",
                result,
            ) from None
        if progress and result.considered % every:
            progress(result, expected)

    def _replay_one(
        self,
        conn: BlockingConnection,
        take: BlockingChannel,
        send: BlockingChannel,
        got: Any,
        run: str,
        result: ReplayResult,
    ) -> BlockingChannel:
        method, props, body = got
        letter = describe(method, props, body)
        result.considered += 1
        reason = (
            "dead_again"
            if letter["replay_run"] == run
            else refusal(letter, result.max_replays, result.sources.queues, result.include_expired)
        )
        target = ("", letter["original_queue"])  # the queue it died in, never the header's exchange or keys
        if reason is None:
            props.headers = {**(props.headers or {}), REPLAY_HEADER: letter["replays"] + 1, RUN_HEADER: run}
            reason, send = _publish(conn, send, target, props, body)
        if reason:  # left unacked until the end of the run, then requeued
            result.refused[reason] += 1
            return send
        take.basic_ack(method.delivery_tag)
        result.replayed += 1
        result.destinations[target] += 1
        return send

    # -- AMQP plumbing -------------------------------------------------------------------------
    @staticmethod
    def _take(channel: BlockingChannel, queue: str, n: int | None) -> Iterator[tuple[Any, Any, bytes]]:
        """Up to ``n`` (None: any number of) messages by basic.get, unacked, until the queue runs
        dry. Messages this channel holds unacked are not delivered to it again."""
        for _ in itertools.count() if n is None else range(n):
            method, props, body = channel.basic_get(queue, auto_ack=False)
            if method is None:
                return
            yield method, props, body

    def _requeue(self, channel: BlockingChannel, queue: str, held: int) -> None:
        """Put back every message this channel holds unacked, and wait (bounded) until the queue
        shows them again: the broker requeues asynchronously (2000 messages take about 0.4 s
        here), and a depth read or a replay started right after must see them."""
        if not held:
            return
        expect = self._depth(channel, queue) + held
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        deadline = time.monotonic() + self._timeout_s + held / 1000
        while self._depth(channel, queue) < expect and time.monotonic() < deadline:
            time.sleep(0.01)

    @staticmethod
    def _depth(channel: BlockingChannel, queue: str) -> int:
        return int(channel.queue_declare(queue, passive=True).method.message_count)

    @contextmanager
    def _session(self, queue: str) -> Iterator[BlockingConnection]:
        """One connection for one operation; pika's errors become ours, with safe messages."""
        if not queue:
            raise QueueNotFound(NAME, f"{self.where}: no queue name given")
        conn = self._open()
        try:
            yield conn
        except ChannelClosedByBroker as exc:
            raise self._channel_error(exc, queue) from None
        except AMQPConnectionError as exc:
            raise SourceUnavailable(NAME, f"{self.where}: connection lost ({self._safe(exc)})") from None
        except AMQPError as exc:
            raise SourceError(NAME, f"{self.where}: {self._safe(exc)}") from None
        finally:
            _close(conn)

    def _open(self) -> BlockingConnection:
        try:
            return BlockingConnection(self._params)
        except (ProbableAuthenticationError, AuthenticationError):
            raise AccessRefused(
                NAME, f"{self.where}: login refused: wrong user or password (check RUNBOOK_RABBITMQ_URL)"
            ) from None
        except ProbableAccessDeniedError:
            raise AccessRefused(
                NAME, f"{self.where}: virtual host {self.vhost!r} refused: it does not exist or the user has no access"
            ) from None
        except AMQPConnectionError as exc:
            raise SourceUnavailable(NAME, f"{self.where}: cannot connect ({_cause(exc)})") from None
        except OSError as exc:
            raise SourceUnavailable(NAME, f"{self.where}: cannot connect ({type(exc).__name__})") from None

    def _channel_error(self, exc: ChannelClosedByBroker, queue: str) -> SourceError:
        if exc.reply_code == 404:
            return QueueNotFound(NAME, f"{self.where}: no queue {queue!r} in virtual host {self.vhost!r}")
        if exc.reply_code == 403:
            return AccessRefused(NAME, f"{self.where}: access to queue {queue!r} refused ({self._safe(exc)})")
        return SourceError(NAME, f"{self.where}: the broker closed the channel ({self._safe(exc)})")

    def _safe(self, exc: BaseException) -> str:
        """An exception as text, with any password of the URL taken out (belt and braces: the
        broker's replies carry none)."""
        text = f"{type(exc).__name__}: {exc}"[:300]
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return text


def _confirming(conn: BlockingConnection) -> BlockingChannel:
    channel = conn.channel()
    channel.confirm_delivery()
    return channel


def _publish(
    conn: BlockingConnection, send: BlockingChannel, target: tuple[str, str], props: Any, body: bytes
) -> tuple[str | None, BlockingChannel]:
    """Publish and wait for the broker's confirm: (None, channel) when confirmed, else (why it
    was not, a usable confirm channel)."""
    exchange, routing_key = target
    try:
        send.basic_publish(exchange, routing_key, body, props, mandatory=True)
        return None, send
    except UnroutableError:
        return "unroutable", send
    except NackError:
        return "nacked", send
    except ChannelClosedByBroker as exc:  # e.g. 404: the original exchange is gone
        reason = "exchange_missing" if exc.reply_code == 404 else f"channel_closed_{exc.reply_code}"
        return reason, _confirming(conn)
    except AMQPChannelError:
        return "publish_failed", _confirming(conn)


def _cause(exc: AMQPConnectionError) -> str:
    text = repr(exc)
    for needle, said in (
        ("ConnectionRefusedError", "connection refused"),
        ("gaierror", "host name does not resolve"),
        ("Timeout", "timed out"),
        ("timed out", "timed out"),
        ("IncompatibleProtocolError", "not an AMQP 0-9-1 server"),
    ):
        if needle in text:
            return said
    return type(exc).__name__


def _close(conn: BlockingConnection) -> None:
    try:
        if conn.is_open:
            conn.close()
    except AMQPError:
        pass
