"""The dead-letter queue: its depth over AMQP, a sample of its messages (peeked and put back)
grouped by why and where they died (``x-death``), and its depth trend in Prometheus."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from runbook_lib.clients.rabbitmq import BAD_X_DEATH_QUEUE, EXPIRED, NO_X_DEATH, QueueNotFound, Sources, refusal
from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import duration
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.plots import timeseries
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.sre.promql import selector

GROUP_BY = ["reason", "original_queue", "routing_key"]
# What an x-death reason says about the consumer, for the finding.
MEANING = {
    "rejected": "its consumer rejected or nacked them without requeue (a failing handler or poison messages)",
    "expired": "their TTL ran out before a consumer took them (consumers down or too slow)",
    "maxlen": "the queue was over its length limit (consumers too slow)",
    "delivery_limit": "they were redelivered more often than the quorum queue's delivery-limit (poison messages)",
}


@dataclass
class Depth(Result):
    queue: str = ""
    messages: int = 0


@dataclass
class Letters(Result):
    queue: str = ""
    sampled: int = 0
    groups: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_queue: str | None = None
    top_reason: str | None = None
    top_count: int = 0
    replayable: int = 0  # expired ones excluded (a replay leaves them unless asked)
    expired: int = 0
    complete: bool = True  # every dead letter of the queue was sampled
    newest_death: datetime | None = None  # the newest x-death time among the sampled
    source: str | None = None  # the queue most failed (not expired) letters died in, else the top one
    sources_known: frozenset[str] = frozenset()


@dataclass
class Health(Result):
    """Whether the consumer of the dead letters' queue works again: replay only then."""

    cause: str | None = None  # consumer_failing, consumer_recovered, messages_expired, no_consumer
    replay: bool = False  # a replay is recommended
    why: str = ""
    source: str | None = None
    consumers: int | None = None


@dataclass
class Trend(Result):
    series: bool = False
    first: float | None = None
    last: float | None = None
    per_minute: float | None = None


def queue_name(rb: RunbookLike, queue: str = "") -> str:
    """The runbook's ``queue`` parameter, or the configured dead-letter queue when it is empty."""
    return queue or rb.settings.rabbitmq.dlq_queue


@check("Dead-letter queue depth", Depth, essential=True)
def depth(rb: RunbookLike, queue: str = "") -> Depth:
    """Messages ready in the dead-letter queue, read over AMQP (queue.declare, passive)."""
    q = queue_name(rb, queue)
    n = rb.rabbitmq.depth(q)
    warn = rb.settings.rabbitmq.depth_warn
    verdict = "critical" if n > warn else "warning" if n else "ok"
    rb.finding(
        "Dead-letter queue depth",
        verdict,
        f"{n} dead letters in {q} on {rb.rabbitmq.where} (DLQBacklog fires above {warn}).",
        role="symptom" if n else None,
        queue=q,
        messages=n,
        threshold=warn,
    )
    return Depth(queue=q, messages=n)


@check("Dead letters by reason", Letters, essential=True)
def reasons(rb: RunbookLike, queue: str = "", sample: int | None = None) -> Letters:
    """Peek up to ``sample`` (default: rabbitmq.sample_size) dead letters, every one put back,
    and group them by x-death reason, original queue and routing key."""
    q = queue_name(rb, queue)
    cfg = rb.settings.rabbitmq
    n = int(sample or cfg.sample_size)
    letters = rb.rabbitmq.peek(q, n)
    if not letters:
        rb.finding("Dead letters by reason", "ok", f"{q} is empty: no dead letter to look at.", queue=q, sampled=0)
        return Letters(queue=q)
    frame = pd.DataFrame(letters)
    groups = _groups(frame)
    rb.table(groups, title=f"Dead letters by x-death reason, original queue and routing key ({len(frame)} peeked)")
    top = groups.iloc[0]
    try:
        sources = rb.rabbitmq.sources(rb.settings, q)
    except SourceError as exc:  # the count of replayable letters is then unknown, not zero
        sources = Sources(frozenset(), f"unknown ({exc.reason})")
    replayable = sum(refusal(letter, cfg.max_replays, sources.queues) is None for letter in letters)
    expired = sum(letter["reason"] == EXPIRED for letter in letters)
    _finding(rb, q, frame, top, replayable, sources, expired)
    failed = Counter(
        str(x["original_queue"]) for x in letters if x["x_death"] == "ok" and x["reason"] != EXPIRED
    ).most_common(1)
    named = Counter(str(x["original_queue"]) for x in letters if x["x_death"] == "ok").most_common(1)
    deaths = [pd.Timestamp(x["dead_lettered_at"]) for x in letters if x["dead_lettered_at"]]
    deaths = [d if d.tzinfo else d.tz_localize("UTC") for d in deaths]
    return Letters(
        queue=q,
        sampled=len(frame),
        groups=groups,
        top_queue=str(top["original_queue"]),
        top_reason=str(top["reason"]),
        top_count=int(top["messages"]),
        replayable=replayable,
        expired=expired,
        complete=len(letters) < n,
        newest_death=max(deaths).to_pydatetime() if deaths else None,
        source=(failed or named or [(None, 0)])[0][0],
        sources_known=sources.queues,
    )


def _groups(frame: pd.DataFrame) -> pd.DataFrame:
    return (
        frame.groupby(GROUP_BY, dropna=False)
        .agg(
            messages=("bytes", "size"),
            replays_max=("replays", "max"),
            last_dead_lettered=("dead_lettered_at", "max"),
        )
        .sort_values("messages", ascending=False)
        .reset_index()
    )


def _finding(
    rb: RunbookLike, q: str, frame: pd.DataFrame, top: pd.Series, replayable: int, sources: Sources, expired: int
) -> None:
    reason, origin, count = str(top["reason"]), str(top["original_queue"]), int(top["messages"])
    at_max = int((frame["replays"] >= rb.settings.rabbitmq.max_replays).sum())
    named = frame[frame["x_death"] == "ok"]["original_queue"]
    foreign = int((~named.isin(sorted(sources.queues))).sum())
    why = MEANING.get(reason, "see the x-death reason in RabbitMQ's documentation")
    if reason == NO_X_DEATH:
        where = "without an x-death header"
    elif origin == BAD_X_DEATH_QUEUE:
        where = "with a malformed x-death header (not the broker's shape: they are never replayed)"
    else:
        where = f"from {origin} ({reason}): {why}"
    rb.finding(
        "Dead letters by reason",
        "warning",
        f"{count} of {len(frame)} peeked dead letters came {where}; routing key {top['routing_key']!r}. "
        f"{replayable} can be replayed"
        + (f", {expired} expired (TTL: not replayed unless asked)" if expired else "")
        + (f", {at_max} were replayed {rb.settings.rabbitmq.max_replays} times already" if at_max else "")
        + (f", {foreign} name a queue that is no dead-letter source of {q}" if foreign else "")
        + f" (sources: {', '.join(sorted(sources.queues)) or 'none known'}, from {sources.how}).",
        queue=q,
        original_queue=origin,
        reason=reason,
        routing_key=str(top["routing_key"]),
        count=count,
        sampled=len(frame),
        replayable=replayable,
        expired=expired,
        at_max_replays=at_max,
        not_a_source=foreign,
        sources=sorted(sources.queues),
        sources_from=sources.how,
        by_reason=_counts(frame, "reason"),
        by_original_queue=_counts(frame, "original_queue"),
    )


def _counts(frame: pd.DataFrame, column: str) -> dict[str, Any]:
    return {str(k): int(v) for k, v in frame[column].value_counts().items()}


@check("Dead-letter queue trend", Trend)
def trend(rb: RunbookLike, queue: str = "", range_s: float = 3600) -> Trend:
    """The DLQ's depth over the last ``range_s`` from the RabbitMQ exporter (metrics.queue_messages,
    label ``queue``): growing means messages are still failing now."""
    q = queue_name(rb, queue)
    metric = rb.metrics.queue_messages
    expr = f"sum({selector(metric, queue=q)})"
    frame = rb.prometheus.query_range(expr, rb.now - timedelta(seconds=range_s), rb.now, 60)
    rb.query_link(expr, f"{metric} of {q}", range_s)
    if frame.empty:
        rb.finding(
            "Dead-letter queue trend",
            "info",
            f"No {metric} series for queue {q} in Prometheus: the RabbitMQ exporter is not scraped here "
            "(or names the metric differently: metrics.queue_messages).",
            metric=metric,
            series=False,
        )
        return Trend()
    timeseries(rb, frame, f"{q}: messages", thresholds={"DLQBacklog": rb.settings.rabbitmq.depth_warn})
    return _trend_finding(rb, q, frame.sort_values("timestamp"))


def _trend_finding(rb: RunbookLike, q: str, frame: pd.DataFrame) -> Trend:
    first, last = float(frame["value"].iloc[0]), float(frame["value"].iloc[-1])
    minutes = max((frame["timestamp"].iloc[-1] - frame["timestamp"].iloc[0]).total_seconds() / 60, 1.0)
    rate = (last - first) / minutes
    growing = last > first
    rb.finding(
        "Dead-letter queue trend",
        "warning" if growing else "info",
        f"{q} went from {first:.0f} to {last:.0f} messages in {minutes:.0f} min ({rate:+.1f}/min): "
        + ("still growing, messages are failing now." if growing else "not growing."),
        role="symptom" if growing else None,
        first=first,
        last=last,
        per_minute=round(rate, 3),
        series=True,
    )
    return Trend(series=True, first=first, last=last, per_minute=rate)


@check("Consumer of the dead letters' queue", Health)
def consumer(rb: RunbookLike, letters: Letters, trend: Trend | None = None) -> Health:
    """Whether replaying now would help: the dead letters' queue has consumers and no dead letter
    has arrived for rabbitmq.quiet_s (the newest x-death time sampled; a DLQ still growing in
    Prometheus says otherwise). Expired (TTL) letters are counted apart: they are not replayed
    by default."""
    if not letters.checked:
        return Health.unchecked(letters.reason)
    title = "Consumer of the dead letters' queue"
    if not letters.sampled:
        rb.finding(title, "ok", f"{letters.queue} is empty: nothing to replay.", role=None)
        return Health()
    cfg = rb.settings.rabbitmq
    source = letters.source
    consumers: int | None = None
    gone = False
    if source:
        try:
            consumers = rb.rabbitmq.consumers(source)
        except QueueNotFound:
            gone = True
    age = (rb.now - letters.newest_death).total_seconds() if letters.newest_death else None
    growing = bool(trend and trend.series and (trend.per_minute or 0) > 0)
    flat = bool(trend and trend.series and not growing)
    if (age is not None and age < cfg.quiet_s) or growing:
        arriving: bool | None = True
    elif (age is not None and letters.complete) or flat:
        arriving = False
    else:
        arriving = None
    when = "never" if age is None else f"{duration(age)} ago"
    details: dict[str, Any] = {
        "queue": letters.queue,
        "source": source,
        "consumers": consumers,
        "newest_dead_letter_s": None if age is None else round(age, 1),
        "quiet_s": cfg.quiet_s,
        "still_arriving": arriving,
        "dlq_growing": growing,
        "expired": letters.expired,
        "sampled": letters.sampled,
        "sample_complete": letters.complete,
    }
    if letters.expired * 2 >= letters.sampled:
        why = (
            f"{letters.expired} of {letters.sampled} sampled dead letters expired (TTL) in {source} before any consumer "
            f"took them (consumers there now: {consumers if consumers is not None else 'unknown'}): they are likely "
            "stale and are not replayed by default (Option 2 with include_expired=True, once the owners say they are "
            "still wanted). Bring the consumers back or give them more time."
        )
        rb.finding(title, "warning", why, role="cause", cause="messages_expired", **details)
        return Health(cause="messages_expired", why=why, source=source, consumers=consumers)
    if consumers == 0 or gone:
        why = (
            f"{source} has no consumer{' (the queue is gone)' if gone else ''}: nothing takes its messages, so a "
            f"replay would only park the dead letters there (the newest died {when}). Bring its consumers back first."
        )
        rb.finding(title, "critical", why, role="cause", cause="no_consumer", **details)
        return Health(cause="no_consumer", why=why, source=source, consumers=consumers)
    if arriving:
        said = (
            f"the newest dead letter died {when} (less than {duration(cfg.quiet_s)})"
            if age is not None and age < cfg.quiet_s
            else f"{letters.queue} is still growing ({(trend.per_minute if trend else 0) or 0:+.1f}/min)"
        )
        why = (
            f"The consumer of {source} still fails: {said}, with {consumers} consumer(s) attached. Replaying now only "
            "sends the messages back here: fix the consumer first (Option 1)."
        )
        rb.finding(title, "critical", why, role="cause", cause="consumer_failing", **details)
        return Health(cause="consumer_failing", why=why, source=source, consumers=consumers)
    if arriving is False:
        why = (
            f"No dead letter from {source} for {duration(age) if age is not None else 'the trend window'} (at least "
            f"{duration(cfg.quiet_s)}) and it has {consumers} consumer(s): the consumer works again; the "
            f"{letters.replayable} replayable dead letters can go back."
        )
        rb.finding(title, "warning", why, role="cause", cause="consumer_recovered", **details)
        return Health(
            cause="consumer_recovered", replay=letters.replayable > 0, why=why, source=source, consumers=consumers
        )
    why = (
        f"Whether dead letters still arrive cannot be told: the {letters.sampled} sampled are the oldest (the newest "
        f"died {when}) and Prometheus has no trend of {letters.queue}. Not replayed until that is known."
    )
    rb.finding(title, "info", why, **details)
    return Health(why=why, source=source, consumers=consumers)


def decision(rb: RunbookLike, health: Health) -> None:
    """Unless a replay is recommended: escalate to the team that owns the failing queue (the
    diagnosis escalates by default when nothing was measured)."""
    if not health.checked or health.replay or health.cause is None:
        return
    rb.escalate(health.why, to=f"the team owning {health.source}" if health.source else "")
