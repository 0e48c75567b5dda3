"""DLQ replay throughput on the local RabbitMQ (127.0.0.1:5672, guest/guest), in a virtual host
of its own that is deleted afterwards.

    .venv/bin/python benchmarks/dlq_replay.py [--messages 2000] [--runs 3] [--body-bytes 512]

Each run fills ``dead_letter_queue`` with MESSAGES dead letters (published to a work queue and
rejected into it), then times, with the tool's own code (runbook_lib.clients.rabbitmq.RabbitMQ): a peek
of rabbitmq.sample_size (200) messages, a dry run over all of them (both put every message back),
and the real replay (publisher confirms, one message in flight). Prints messages/s; asserts only
that every message came back once.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import pika

from runbook_lib.clients.rabbitmq import RabbitMQ, Sources
from tests.support.services import rabbitmq_vhost

DLQ, WORK, WORK_QUEUE, KEY = "dead_letter_queue", "work", "work_q", "task.run"


def declare(ch: Any) -> None:
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare(DLQ)
    ch.queue_bind(DLQ, "dlx")
    ch.exchange_declare(WORK, "direct")
    ch.queue_declare(WORK_QUEUE, arguments={"x-dead-letter-exchange": "dlx"})
    ch.queue_bind(WORK_QUEUE, WORK, KEY)


def fill(url: str, n: int, body_bytes: int) -> None:
    """n messages into the work queue, all rejected into the DLQ (consumed 500 at a time)."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    body = b"x" * body_bytes
    for i in range(n):
        ch.basic_publish(WORK, KEY, body, pika.BasicProperties(message_id=f"m{i}", delivery_mode=2))
    ch.basic_qos(prefetch_count=500)
    seen = 0
    for method, _props, _body in ch.consume(WORK_QUEUE, inactivity_timeout=5):
        if method is None:
            break
        seen += 1
        if seen % 500 == 0 or seen == n:
            ch.basic_nack(method.delivery_tag, multiple=True, requeue=False)
        if seen == n:
            break
    ch.cancel()
    ch.queue_purge(WORK_QUEUE)
    conn.close()
    mq = RabbitMQ(url)
    while mq.depth(DLQ) < n:
        time.sleep(0.05)


def one_run(url: str, n: int, body_bytes: int) -> dict[str, float]:
    fill(url, n, body_bytes)
    mq = RabbitMQ(url)
    t0 = time.perf_counter()
    peeked = len(mq.peek(DLQ, 200))
    peek_s = time.perf_counter() - t0
    sources = Sources(frozenset({WORK_QUEUE}), "the benchmark's work queue")
    dry = mq.replay(DLQ, sources, dry_run=True)
    result = mq.replay(DLQ, sources)
    assert result.replayed == n and mq.depth(DLQ) == 0 and mq.depth(WORK_QUEUE) == n, result.summary()
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_purge(WORK_QUEUE)
    conn.close()
    return {
        "peek": peeked / peek_s,
        "dry_run": dry.considered / dry.seconds,
        "replay": result.replayed / result.seconds,
        "replay_s": result.seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--body-bytes", type=int, default=512)
    args = parser.parse_args()
    with rabbitmq_vhost("rbbench") as vhost:
        url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
        conn = pika.BlockingConnection(pika.URLParameters(url))
        declare(conn.channel())
        conn.close()
        runs = []
        for i in range(args.runs):
            r = one_run(url, args.messages, args.body_bytes)
            runs.append(r)
            print(
                f"run {i + 1}: replay {r['replay']:.0f} msg/s ({args.messages} in {r['replay_s']:.2f} s), "
                f"dry run {r['dry_run']:.0f} msg/s, peek of 200 {r['peek']:.0f} msg/s"
            )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in runs)

    print(f"\n== dlq replay, {args.messages} dead letters of {args.body_bytes} bytes, {args.runs} runs (median) ==")
    print(f"replay (confirm per message, ack after confirm)  {med('replay'):.0f} msg/s")
    print(f"dry run (peek all, put back)                     {med('dry_run'):.0f} msg/s")
    print(f"peek of 200 (runbook step 2)                     {med('peek'):.0f} msg/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
