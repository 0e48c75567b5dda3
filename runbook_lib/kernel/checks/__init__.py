"""Reusable diagnosis checks: one function per job, shared by every runbook.

Each check takes the running runbook ``rb`` (:class:`~runbook_lib.kernel.protocol.RunbookLike`),
reads through ``rb.<source>``, shows its evidence, records findings and returns a small result
object. A backend that is not configured or not reachable never raises out of a check: the
check records an "unchecked" finding and returns a result with ``checked=False``, so the next
cell still runs. Shared pieces live in :mod:`.base`.

By subject: :mod:`.alerts` (the alert's own expression), :mod:`.http` (errors, SLO burn),
:mod:`.kube` (rollouts, logs, pod pressure), :mod:`.deps` (upstream health), :mod:`.database`
(reachability, recovery, replication, uptime), :mod:`.connections` (max_connections, holders,
idle in transaction), :mod:`.migrations` (migration state, lock waits, DDL, invalid indexes),
:mod:`.integrity` (orphans, row counts, checksums, amcheck), :mod:`.operator` (approval queue,
emergency controls), :mod:`.drill` (the database-restore DR drill), :mod:`.failover` (the
regional-failover DR drill: promote the streaming standby), :mod:`.envrestore` (the
environment-restore DR drill: database, deploy manifests, smoke run), :mod:`.chaos` (the chaos DR
drill: real faults injected, each runbook run against its fault, cause named or not) and :mod:`.blockchain`
(JSON-RPC providers: dead, lagging, wrong chain; the primary's state); :mod:`.dlq` (the
dead-letter queue: depth, dead letters by x-death reason and original queue, depth trend);
:mod:`.service` (up history, pods, events, health probes), :mod:`.latency` (percentiles by
endpoint, what latency follows, slow queries), :mod:`.budget` (every SLO's error budget, burn
and policy band) :mod:`.rollout` (stuck rollouts, ReplicaSet diff, canary against stable), :mod:`.report` (the SLO
dashboard as graphs), :mod:`.capacity` (growth, scaling-trigger dates, HPA headroom) and
:mod:`.shift` (who is on call, open incidents, reports owed, access, toil).
"""

from __future__ import annotations

from . import (
    alerts,
    blockchain,
    budget,
    capacity,
    chaos,
    connections,
    database,
    deps,
    dlq,
    drill,
    envrestore,
    failover,
    http,
    integrity,
    kube,
    latency,
    migrations,
    operator,
    report,
    rollout,
    service,
    shift,
)
from .base import Result, check

__all__ = [
    "Result",
    "alerts",
    "blockchain",
    "budget",
    "capacity",
    "chaos",
    "check",
    "connections",
    "database",
    "deps",
    "dlq",
    "drill",
    "envrestore",
    "failover",
    "http",
    "integrity",
    "kube",
    "latency",
    "migrations",
    "operator",
    "report",
    "rollout",
    "service",
    "shift",
]
