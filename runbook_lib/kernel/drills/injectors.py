"""Fault injectors for the chaos DR drill (dr-drill-chaos), kernel side, loopback-safe.

Each injector makes one real fault the way production meets it and knows how to take it away
again; nothing here touches anything but what its caller names:

- :class:`TcpProxy`: a TCP proxy owned by the drill (one accept thread, two pump threads per
  connection) on 127.0.0.1 in front of a server. ``partition("refuse")`` stops listening and
  cuts every live connection (clients see "connection refused"); ``partition("drop")`` keeps
  accepting but never forwards a byte (clients time out); ``heal()`` forwards again;
  ``stop()`` closes everything.
- :func:`leak_connections`: sessions under one application name, each left idle in an open
  transaction, as a pool that never commits; :func:`close_all` ends them.
- :func:`dead_letter` publishes messages tagged with the drill's id to a work queue and rejects
  each (requeue=False) so the queue's dead-letter exchange routes them to the DLQ;
  :func:`purge_tagged` takes back only the drill's messages from the queues it names (others
  are put back untouched).
- :func:`delete_pods`: every pod of one deployment deleted through the Kubernetes API.
- :func:`rpc` / :func:`block_number` / :func:`evm_mine`: JSON-RPC to a development node
  (``evm_mine`` exists on ganache, hardhat and anvil only).
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pika
import psycopg

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.sources.kubernetes import Kubernetes

DRILL_HEADER = "x-chaos-drill"  # every message the drill publishes carries its run tag here


# -- a TCP proxy that can be partitioned ---------------------------------------------------------
class TcpProxy:
    """127.0.0.1:<port> -> upstream host:port, in threads of this process."""

    def __init__(self, upstream_host: str, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, int(upstream_port))
        self.host = host
        self.port = 0
        self.mode = "stopped"  # forward | refuse | drop | stopped
        self.accepted = 0
        self._listener: socket.socket | None = None
        self._socks: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life --------------------------------------------------------------------------------
    def start(self) -> TcpProxy:
        self._listen(0)
        self.mode = "forward"
        return self

    def partition(self, how: str = "refuse") -> None:
        """Cut the link: "refuse" (the port closes, live connections are reset) or "drop"
        (connections are accepted and never answered, live ones hang)."""
        if how not in ("refuse", "drop"):
            raise ValueError(f"partition mode must be 'refuse' or 'drop', not {how!r}")
        self.mode = how
        self._cut_connections()
        if how == "refuse":
            self._close_listener()

    def heal(self) -> None:
        """Forward again, on the same port."""
        if self.mode == "stopped":
            return
        self._cut_connections()
        if self._listener is None:
            self._listen(self.port)
        self.mode = "forward"

    def stop(self) -> None:
        self.mode = "stopped"
        self._close_listener()
        self._cut_connections()

    def listening(self) -> bool:
        with socket.socket() as s:
            s.settimeout(1)
            return s.connect_ex((self.host, self.port)) == 0

    # -- internals ---------------------------------------------------------------------------
    def _listen(self, port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        sock.listen(64)
        self.port = int(sock.getsockname()[1])
        self._listener = sock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, args=(sock, self._stop), daemon=True)
        self._thread.start()

    def _close_listener(self) -> None:
        self._stop.set()
        sock, self._listener = self._listener, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None

    def _cut_connections(self) -> None:
        with self._lock:
            socks, self._socks = list(self._socks), set()
        for s in socks:
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
            with contextlib.suppress(OSError):
                s.close()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.add(s)

    def _accept(self, sock: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                ready, _, _ = select.select([sock], [], [], 0.1)
                if not ready:
                    continue
                client, _ = sock.accept()
            except (OSError, ValueError):
                return
            self.accepted += 1
            self._track(client)
            if self.mode != "forward":  # "drop": hold it, say nothing
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            self._track(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while self.mode == "forward":
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)


# -- a connection leak ---------------------------------------------------------------------------
def leak_connections(
    dsn: str, count: int, application: str, connect_timeout_s: int = 5
) -> list[psycopg.Connection[Any]]:
    """``count`` sessions named ``application``, each in an open transaction that read a row and
    then went idle. On any failure the sessions opened so far are closed and the error raised."""
    held: list[psycopg.Connection[Any]] = []
    try:
        for _ in range(count):
            conn = psycopg.connect(dsn, application_name=application, connect_timeout=connect_timeout_s)
            held.append(conn)
            conn.execute("SELECT 1")  # psycopg opened a transaction; it is never committed
    except BaseException:
        close_all(held)
        raise
    return held


def close_all(conns: list[psycopg.Connection[Any]]) -> int:
    closed = 0
    for conn in conns:
        with contextlib.suppress(Exception):
            if not conn.closed:
                conn.close()
                closed += 1
    conns.clear()
    return closed


def sessions_of(dsn: str, application: str) -> dict[str, int]:
    """The server's sessions under ``application``, by state (the drill's own check of a leak)."""
    with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT coalesce(state, '?'), count(*) FROM pg_stat_activity WHERE application_name = %s GROUP BY 1",
            (application,),
        ).fetchall()
    return {str(state): int(n) for state, n in rows}


# -- dead letters --------------------------------------------------------------------------------
def _channel(url: str, timeout_s: float = 5.0) -> tuple[pika.BlockingConnection, Any]:
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = timeout_s
    params.blocked_connection_timeout = timeout_s
    params.client_properties = {"connection_name": "omnihub-chaos-drill"}
    conn = pika.BlockingConnection(params)
    return conn, conn.channel()


def queue_depth(url: str, queue: str) -> int:
    conn, ch = _channel(url)
    try:
        return int(ch.queue_declare(queue, passive=True).method.message_count)
    finally:
        with contextlib.suppress(Exception):
            conn.close()


def dead_letter(url: str, work_queue: str, dlq: str, count: int, tag: str, timeout_s: float = 15.0) -> list[str]:
    """Publish ``count`` messages tagged ``tag`` to ``work_queue`` (default exchange) and reject
    each without requeue: the queue's dead-letter exchange moves them to ``dlq``. Messages of
    others taken on the way are put back. Returns the message ids once ``dlq`` holds them all;
    SourceError when the work queue does not dead-letter into ``dlq``."""
    conn, ch = _channel(url)
    ids = [f"{tag}-{i:04d}" for i in range(count)]
    try:
        before = int(ch.queue_declare(dlq, passive=True).method.message_count)
        ch.queue_declare(work_queue, passive=True)
        ch.confirm_delivery()
        for mid in ids:
            ch.basic_publish(
                "",
                work_queue,
                f"chaos drill {tag}: dead letter {mid}".encode(),
                pika.BasicProperties(message_id=mid, headers={DRILL_HEADER: tag}, delivery_mode=2),
                mandatory=True,
            )
        ours, others, tries = 0, [], 0
        while ours < count and tries < 20 * count:
            tries += 1
            method, props, _body = ch.basic_get(work_queue)
            if method is None:
                time.sleep(0.05)
                continue
            if (props.headers or {}).get(DRILL_HEADER) == tag:
                ch.basic_reject(method.delivery_tag, requeue=False)
                ours += 1
            else:
                others.append(method.delivery_tag)
        for delivery_tag in others:
            ch.basic_nack(delivery_tag, requeue=True)
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    deadline = time.monotonic() + timeout_s
    depth = before
    while time.monotonic() < deadline:
        depth = queue_depth(url, dlq)
        if depth >= before + count:
            return ids
        time.sleep(0.1)
    raise SourceError(
        "RabbitMQ",
        f"{work_queue} did not dead-letter the drill's {count} rejected messages into {dlq} "
        f"({dlq} went from {before} to {depth}): is its x-dead-letter-exchange bound to {dlq}?",
    )


def purge_tagged(url: str, queues: list[str], tag: str) -> dict[str, int]:
    """Take the drill's messages (header ``x-chaos-drill`` = ``tag``) out of each queue; every
    other message is put back. {queue: messages removed}."""
    removed: dict[str, int] = {}
    for queue in queues:
        conn, ch = _channel(url)
        try:
            depth = int(ch.queue_declare(queue, passive=True).method.message_count)
            n, held = 0, []
            for _ in range(depth):
                method, props, _body = ch.basic_get(queue)
                if method is None:
                    break
                if (props.headers or {}).get(DRILL_HEADER) == tag:
                    ch.basic_ack(method.delivery_tag)
                    n += 1
                else:
                    held.append(method.delivery_tag)
            for delivery_tag in held:
                ch.basic_nack(delivery_tag, requeue=True)
            removed[queue] = n
        finally:
            with contextlib.suppress(Exception):
                conn.close()
    return removed


def count_tagged(url: str, queue: str, tag: str) -> int:
    """How many of ``queue``'s messages carry the drill's tag (peeked, every one put back)."""
    conn, ch = _channel(url)
    try:
        depth = int(ch.queue_declare(queue, passive=True).method.message_count)
        n = 0
        for _ in range(depth):
            method, props, _body = ch.basic_get(queue)
            if method is None:
                break
            n += (props.headers or {}).get(DRILL_HEADER) == tag
        return n
    finally:
        with contextlib.suppress(Exception):
            conn.close()  # closing the channel puts every unacked message back


# -- pods ------------------------------------------------------------------------------------------
@dataclass
class Deleted:
    namespace: str
    deployment: str
    pods: list[str] = field(default_factory=list)


def pod_names(kube: Kubernetes, namespace: str, deployment: str) -> list[str]:
    dep = kube.deployment(deployment, namespace)
    return sorted(str(p["metadata"]["name"]) for p in kube.pods(dep))


def delete_pods(kube: Kubernetes, namespace: str, deployment: str) -> Deleted:
    """Delete every pod of ``deployment`` in ``namespace`` through the API (DELETE on each pod)."""
    out = Deleted(namespace, deployment)
    for name in pod_names(kube, namespace, deployment):
        kube.delete_object({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}})
        out.pods.append(name)
    return out


# -- JSON-RPC nodes ---------------------------------------------------------------------------------
def rpc(url: str, method: str, params: list[Any] | None = None, timeout_s: float = 10.0) -> Any:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params or [])}
    try:
        answer = httpx.post(url, json=body, timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SourceError("Blockchain RPC", f"{method} at {url}: {type(exc).__name__}") from None
    if not isinstance(answer, dict) or "error" in answer:
        err = answer.get("error") if isinstance(answer, dict) else answer
        raise SourceError("Blockchain RPC", f"{method} at {url}: {err}")
    return answer["result"]


def block_number(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


def evm_mine(url: str, blocks: int) -> int:
    """Mine ``blocks`` empty blocks on a development node; the new head."""
    rpc(url, "evm_mine", [{"blocks": int(blocks)}], timeout_s=60.0)
    return block_number(url)


def conninfo(dsn: str) -> dict[str, Any]:
    """A DSN's parts (host, port, dbname, user, ...)."""
    from psycopg.conninfo import conninfo_to_dict

    return conninfo_to_dict(dsn)


def with_address(dsn: str, host: str, port: int) -> str:
    """The same DSN pointed at another host and port (the drill's proxy)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(dsn)
    parts.pop("hostaddr", None)
    parts.update({"host": host, "port": str(port)})
    return make_conninfo(**parts)
