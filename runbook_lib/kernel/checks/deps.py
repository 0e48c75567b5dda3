"""Upstream dependency health: PostgreSQL (pg_isready and more) and Redis (PING, INFO).

Here "cannot connect" is the diagnosis itself, so an unreachable configured backend is a
critical finding; only a backend that is not configured is "not checked"."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runbook_lib.core.errors import SourceNotConfigured, SourceUnavailable
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike


@dataclass
class Health(Result):
    up: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


@check("PostgreSQL health", Health)
def postgres_health(rb: RunbookLike) -> Health:
    title = "PostgreSQL health"
    try:
        pg = rb.postgres
        info = pg.health()
    except SourceNotConfigured:
        raise
    except SourceUnavailable as exc:
        rb.finding(
            title,
            "critical",
            f"Not accepting connections: {exc.reason}",
            role="cause",
            cause="dependency_down",
            up=False,
        )
        return Health(up=False)
    th = rb.thresholds
    use = info["connections"] / info["max_connections"] if info.get("max_connections") else None
    problems = []
    if info["latency_ms"] > th.postgres_latency_warn_ms:
        problems.append(f"slow to answer ({info['latency_ms']:.0f} ms)")
    if use is not None and use >= th.postgres_connections_warn:
        problems.append(f"{use:.0%} of max_connections in use")
    if info.get("in_recovery"):
        problems.append("server is in recovery (a replica or restoring): writes will fail")
    summary = (
        f"Accepting connections at {pg.where} (PostgreSQL {info['version']}, {info['latency_ms']:.0f} ms, "
        f"{info['connections']}/{info['max_connections']} connections)"
    )
    rb.table(_frame(info), title="PostgreSQL")
    rb.finding(
        title,
        "warning" if problems else "ok",
        summary + (": " + "; ".join(problems) if problems else "."),
        **info,
    )
    return Health(up=True, details=info)


@check("Redis health", Health)
def redis_health(rb: RunbookLike) -> Health:
    title = "Redis health"
    try:
        r = rb.redis
        latency = r.ping()
        info = r.info()
    except SourceNotConfigured:
        raise
    except SourceUnavailable as exc:
        rb.finding(
            title, "critical", f"Not answering PING: {exc.reason}", role="cause", cause="dependency_down", up=False
        )
        return Health(up=False)
    th = rb.thresholds
    info = {"ping_ms": latency, **info}
    problems = []
    if latency > th.redis_latency_warn_ms:
        problems.append(f"PING took {latency:.0f} ms")
    if info.get("memory_ratio") and info["memory_ratio"] > 0.9:
        problems.append(f"memory at {info['memory_ratio']:.0%} of maxmemory")
    if info.get("rejected_connections"):
        problems.append(f"{info['rejected_connections']} rejected connections")
    rb.table(_frame(info), title="Redis")
    summary = f"PONG from {r.where} in {latency:.1f} ms (Redis {info.get('redis_version')}, role {info.get('role')})"
    rb.finding(
        title,
        "warning" if problems else "ok",
        summary + (": " + "; ".join(problems) if problems else "."),
        **info,
    )
    return Health(up=True, details=info)


def _frame(info: dict[str, Any]) -> Any:
    import pandas as pd

    return pd.DataFrame([{"field": k, "value": v} for k, v in info.items()])


def escalate_if_down(rb: RunbookLike, **dependencies: Health) -> bool:
    """When a dependency the service needs is down, that outage is the incident: recommend
    escalating to its runbook (unless a guarded option here was already recommended). Safe mode
    is no answer then: its switch lives in PostgreSQL. True when one is down."""
    down = [name for name, health in dependencies.items() if health.up is False]
    if down:
        names = " and ".join(down)
        rb.escalate(
            f"{names} {'is' if len(down) == 1 else 'are'} down: the errors follow from it; run its runbook "
            f"({', '.join('database-down' if n == 'PostgreSQL' else n.lower() for n in down)}) and page its owner",
            to="the database on-call" if "PostgreSQL" in down else "the platform on-call",
        )
    return bool(down)
