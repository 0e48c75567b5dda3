"""The cause vocabulary: the codes a runbook's cause findings carry (``rb.finding(...,
role="cause", cause=CODE)``), what each means, and which runbook may name which.

A code is for machines (a test, a Slack button, the fault matrix, a dashboard of what paged us
and why); the finding's summary stays the sentence for people. The reference is generated into
docs/runbooks.md ("Causes") from this module, and a test checks they agree.
"""

from __future__ import annotations

CAUSES: dict[str, str] = {
    # releases and code
    "rollout": "a new revision rolled out shortly before the symptom began",
    "rollout_stuck": "a rollout that does not progress: new pods never become ready",
    "endpoint_bug": "one endpoint's failures dominate: a defect in that code path",
    "canary_worse": "the new version fails or slows down more than the stable one (canary analysis)",
    # pods and capacity
    "oom_killed": "containers killed for exceeding their memory limit",
    "crash_loop": "containers exiting repeatedly (CrashLoopBackOff)",
    "image_pull": "the image cannot be pulled (ErrImagePull / ImagePullBackOff)",
    "unschedulable": "pods that no node can take (insufficient CPU or memory, taints)",
    "probe_failing": "readiness or liveness probes failing on running containers",
    "saturation": "the service's pods are at their CPU or memory limits",
    "instances_down": "the service's instances do not answer their health checks",
    # dependencies
    "dependency_down": "a backend the service needs does not answer",
    "dependency_slow": "a backend the service needs answers slowly",
    # PostgreSQL
    "server_down": "PostgreSQL does not accept connections (not running or not reachable)",
    "auth_failed": "PostgreSQL refuses the login",
    "connections_exhausted": "every connection slot is taken: new sessions are refused",
    "pool_exhausted": "one application holds most connections (its pool is too large or leaking)",
    "idle_in_transaction_leak": "sessions left idle inside a transaction hold connections and locks",
    "lock_blocker": "one session holds a lock others queue behind",
    "slow_queries": "statements running far longer than usual",
    "migration_failed": "a schema migration failed or is half applied",
    "long_ddl": "a schema change running for a long time",
    "invalid_index": "an index left invalid (a failed CREATE INDEX CONCURRENTLY)",
    "orphan_rows": "rows whose parent rows are gone",
    "row_count_drop": "a table lost rows against its baseline",
    "replication_lag": "a standby replays far behind its primary",
    "read_only": "PostgreSQL answers but takes no writes (a standby in recovery, or read-only by default)",
    "corrupt_index": "an index disagrees with its table (amcheck): lookups miss or return wrong rows",
    "checksum_failure": "pages read back corrupt from disk (data checksums)",
    # queues and workflows
    "consumer_failing": "the consumer still fails: dead letters keep arriving",
    "consumer_recovered": "dead letters stopped arriving: the consumer works again",
    "messages_expired": "dead letters that expired (TTL) rather than failed",
    "no_consumer": "the source queue has no consumer",
    "expiry_stalled": "items past their expiry are not being expired",
    "approvers_absent": "items wait for approvers: nothing is being decided",
    "approvals_outpaced": "approvals arrive faster than reviewers decide them",
    "switch_audited": "the kill switch is on, and the audit row that turned it on says who and why",
    "switch_unaudited": "the kill switch is on, and no audit row explains its current state",
    # blockchain
    "rpc_down": "the RPC provider does not answer",
    "rpc_lagging": "the RPC provider's head block lags the others",
    "rpc_wrong_chain": "the RPC provider serves another chain",
    "rpc_errors": "the RPC provider answers with errors",
    # error budgets
    "budget_burn": "errors are spending the error budget faster than it refills",
    "budget_provisional": "too little of the SLO window has data to judge the budget",
}

# The codes each runbook may name (its causes section in the reference).
BY_RUNBOOK: dict[str, tuple[str, ...]] = {
    "high-error-rate": ("rollout", "endpoint_bug", "dependency_down", "saturation", "budget_burn"),
    "high-latency": ("slow_queries", "lock_blocker", "dependency_slow", "saturation", "dependency_down", "rollout"),
    "service-down": (
        "oom_killed",
        "crash_loop",
        "image_pull",
        "unschedulable",
        "probe_failing",
        "instances_down",
        "rollout",
        "dependency_down",
    ),
    "deployment-failure": (
        "rollout_stuck",
        "canary_worse",
        "image_pull",
        "crash_loop",
        "oom_killed",
        "unschedulable",
        "probe_failing",
    ),
    "low-error-budget": ("budget_burn", "budget_provisional", "rollout", "endpoint_bug"),
    "database-down": ("server_down", "auth_failed", "connections_exhausted", "read_only"),
    "high-database-connections": (
        "connections_exhausted",
        "pool_exhausted",
        "idle_in_transaction_leak",
        "lock_blocker",
    ),
    "database-migration-failure": ("migration_failed", "lock_blocker", "long_ddl", "invalid_index"),
    "data-corruption": (
        "orphan_rows",
        "row_count_drop",
        "invalid_index",
        "replication_lag",
        "corrupt_index",
        "checksum_failure",
    ),
    "approval-queue-backlog": (
        "expiry_stalled",
        "approvers_absent",
        "approvals_outpaced",
        "switch_audited",
        "switch_unaudited",
    ),
    "kill-switch-active": ("switch_audited", "switch_unaudited"),
    "dlq-backlog": ("consumer_failing", "consumer_recovered", "messages_expired", "no_consumer"),
    "blockchain-rpc-down": ("rpc_down", "rpc_lagging", "rpc_wrong_chain", "rpc_errors"),
    "triage": ("dependency_down", "rollout"),
}


def known(code: str) -> bool:
    return code in CAUSES


def reference_markdown() -> str:
    """The causes section of docs/runbooks.md."""
    lines = ["| runbook | cause codes |", "|---|---|"]
    for slug, codes in BY_RUNBOOK.items():
        lines.append(f"| {slug} | {', '.join(f'`{c}`' for c in codes)} |")
    lines += ["", "| code | meaning |", "|---|---|"]
    lines += [f"| `{code}` | {meaning} |" for code, meaning in CAUSES.items()]
    return "\n".join(lines)
