"""Reusable diagnosis checks: one function per job, shared by every runbook. Checks only look.

Each check takes the running runbook ``rb`` (:class:`~runbook_lib.kernel.protocol.RunbookLike`),
reads through ``rb.<source>``, shows its evidence, records findings and returns a small result
object. A backend that is not configured or not reachable never raises out of a check: the
check records an "unchecked" finding and returns a result with ``checked=False``, so the next
cell still runs. Shared pieces live in :mod:`.base`. What changes a system lives elsewhere:
guarded options in :mod:`runbook_lib.kernel.actions`, the DR drills in :mod:`runbook_lib.kernel.drills`.

By subject:

- the API: :mod:`.http` (errors, SLO burn), :mod:`.latency` (percentiles by endpoint, what latency
  follows, slow queries), :mod:`.budget` (every SLO's error budget, burn and policy band),
  :mod:`.alerts` (triage: the alert's own expression, what else fires);
- the platform: :mod:`.kube` (rollouts, logs, pod pressure), :mod:`.service` (up history, pods,
  events, health probes), :mod:`.rollout` (stuck rollouts, ReplicaSet diff, canary against
  stable), :mod:`.deps` (upstream health);
- the database: :mod:`.database` (reachability, recovery, replication, uptime),
  :mod:`.connections` (max_connections, holders, idle in transaction), :mod:`.migrations`
  (migration state, lock waits, DDL, invalid indexes), :mod:`.integrity` (orphans, row counts,
  checksums, amcheck);
- the application: :mod:`.approvals` (the approval queue), :mod:`.controls` (emergency controls
  and the work they hold), :mod:`.dlq` (the dead-letter queue), :mod:`.blockchain` (JSON-RPC
  providers: dead, lagging, wrong chain);
- reports and checklists: :mod:`.report` (the SLO dashboard as graphs), :mod:`.capacity` (growth,
  scaling-trigger dates, HPA headroom), :mod:`.shift` (who is on call, open incidents, reports
  owed, access, toil).
"""

from __future__ import annotations

from runbook_lib.kernel.checks import (
    alerts,
    approvals,
    blockchain,
    budget,
    capacity,
    connections,
    controls,
    database,
    deps,
    dlq,
    http,
    integrity,
    kube,
    latency,
    migrations,
    report,
    rollout,
    service,
    shift,
)
from runbook_lib.kernel.checks.base import Result, check

__all__ = [
    "Result",
    "alerts",
    "approvals",
    "blockchain",
    "budget",
    "capacity",
    "check",
    "connections",
    "controls",
    "database",
    "deps",
    "dlq",
    "http",
    "integrity",
    "kube",
    "latency",
    "migrations",
    "report",
    "rollout",
    "service",
    "shift",
]
