"""Is the database there, and can it take writes: why a connection fails (refused, DNS,
authentication, timeout, no slots left, starting up), whether it is in recovery or read-only,
its replication and its uptime, and what the exporter behind DatabaseDown sees."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from runbook_lib.core.present import duration, iso
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import ConnectFailed, activity

RECENT_RESTART_S = 3600


@dataclass
class Reachability(Result):
    accepting: bool | None = None
    writable: bool | None = None
    failure: str | None = None  # refused, dns, auth, timeout, too_many_connections, in_recovery, read_only, ...
    state: dict[str, Any] = field(default_factory=dict)


@dataclass
class Replication(Result):
    role: str | None = None
    standbys: int = 0
    lagging: list[str] = field(default_factory=list)


@check("PostgreSQL connection", Reachability, essential=True)
def reachability(rb: RunbookLike) -> Reachability:
    """Connect as the application would and say why it fails, or whether the server takes writes."""
    title = "PostgreSQL connection"
    pg = rb.postgres
    try:
        state = pg.server_state()
    except ConnectFailed as exc:
        kind = exc.failure.kind
        rb.finding(
            title,
            "critical",
            f"{_LABEL.get(kind, 'Cannot connect')} at {pg.where}: {exc.failure.meaning} (server said: {exc.first_line}).",
            role="cause",
            failure=kind,
            where=pg.where,
            error=exc.first_line,
        )
        return Reachability(accepting=False, writable=False, failure=kind)
    rb.table(pd.DataFrame([{"field": k, "value": v} for k, v in state.items()]), title="Server state")
    where = f"{pg.where} (PostgreSQL {state['version']}, answered in {state['latency_ms']:.0f} ms)"
    details = {"where": pg.where, "latency_ms": state["latency_ms"], "version": state["version"]}
    if state["in_recovery"]:
        rb.finding(
            title,
            "critical",
            f"Accepting connections but in recovery at {where}: this server is a standby (or still restoring), so "
            "every write fails. If the primary is gone, promote a standby (Option 2).",
            role="cause",
            failure="in_recovery",
            **details,
        )
        return Reachability(accepting=True, writable=False, failure="in_recovery", state=state)
    if state["default_read_only"]:
        rb.finding(
            title,
            "critical",
            f"Accepting connections but read-only at {where}: default_transaction_read_only is on (set on the "
            "server, the database or the role), so the application's writes fail.",
            role="cause",
            failure="read_only",
            **details,
        )
        return Reachability(accepting=True, writable=False, failure="read_only", state=state)
    slow = state["latency_ms"] > rb.thresholds.postgres_latency_warn_ms
    rb.finding(
        title,
        "warning" if slow else "ok",
        f"Accepting connections and writable at {where}" + (": slow to answer." if slow else "."),
        failure=None,
        **details,
    )
    return Reachability(accepting=True, writable=True, state=state)


@check("Uptime", Result)
def uptime(rb: RunbookLike, reach: Reachability) -> Result:
    """Since when the server runs: a restart minutes ago points at a crash (or a deploy)."""
    if not reach.state:
        return Result.unchecked("no connection")
    up = float(reach.state["uptime_s"])
    started = iso(reach.state["started_at"])
    details = {
        "started_at": reach.state["started_at"],
        "uptime_s": up,
        "config_loaded_at": reach.state["config_loaded_at"],
    }
    if up < RECENT_RESTART_S:
        rb.finding(
            "Uptime",
            "warning",
            f"Restarted {duration(up)} ago ({started}): a crash, an OOM kill or a restart; the server log says which.",
            role="cause",
            **details,
        )
    else:
        rb.finding("Uptime", "info", f"Up for {duration(up)}, since {started}; no recent restart.", **details)
    return Result()


@check("Replication", Replication)
def replication(rb: RunbookLike, reach: Reachability) -> Replication:
    """On a primary: its standbys and their lag. On a standby: whether it still receives WAL."""
    if not reach.state:
        return Replication.unchecked("no connection")
    info = activity.replication(rb.postgres, bool(reach.state["in_recovery"]))
    limit = rb.thresholds.postgres_replication_lag_s
    if info["role"] == "standby":
        receiving = info.get("receiver_status") == "streaming"
        delay = info.get("replay_delay_s")
        text = (
            f"This server is a standby of {info.get('upstream') or 'an unknown primary'}; WAL receiver: "
            f"{info.get('receiver_status') or 'not running'}; last replayed transaction {duration(delay)} ago"
            + ("; replay is paused" if info.get("replay_paused") else "")
        )
        verdict = "info" if receiving and not info.get("replay_paused") else "warning"
        rb.finding(
            "Replication", verdict, text + ".", server_role="standby", **{k: v for k, v in info.items() if k != "role"}
        )
        return Replication(role="standby")
    standbys: pd.DataFrame = info["standbys"]
    rb.table(standbys, title="Standbys (pg_stat_replication)")
    lagging = [
        str(r["standby"]) for _, r in standbys.iterrows() if r["replay_lag_s"] is not None and r["replay_lag_s"] > limit
    ]
    if standbys.empty:
        rb.finding(
            "Replication",
            "warning",
            "Primary with no standby attached: there is no failover target; recovery means a restore from backup "
            "(see the DR drill).",
            server_role="primary",
            standbys=0,
        )
    else:
        rb.finding(
            "Replication",
            "warning" if lagging else "ok",
            f"Primary with {len(standbys)} standby(s)"
            + (f"; lagging more than {duration(limit)}: {', '.join(lagging)}." if lagging else ", none lagging."),
            server_role="primary",
            standbys=len(standbys),
            lagging=lagging,
        )
    return Replication(role="primary", standbys=len(standbys), lagging=lagging)


@check("Exporter's view (pg_up)", Result)
def exporter_view(rb: RunbookLike, reach: Reachability) -> Result:
    """DatabaseDown fires on the exporter's pg_up; when the runbook connects but pg_up is 0, the
    exporter's own connection is what fails."""
    frame = rb.prometheus.query("pg_up")
    rb.query_link("pg_up", "pg_up, the exporter's view")
    title = "Exporter's view (pg_up)"
    if frame.empty:
        rb.finding(title, "warning", "No pg_up series: the PostgreSQL exporter is not being scraped.", role="cause")
        return Result()
    down = frame[frame["value"] == 0]
    instances = [str(i) for i in down.get("instance", pd.Series(dtype=str))]
    if down.empty:
        rb.finding(title, "ok", f"pg_up is 1 on {len(frame)} exporter(s): the alert has cleared or was brief.")
    elif reach.accepting:
        rb.finding(
            title,
            "warning",
            f"pg_up is 0 on {', '.join(instances) or len(down)} while the runbook connects: the exporter's own "
            "connection fails (its credentials, its network path), not the database.",
            role="cause",
            instances=instances,
        )
    else:
        rb.finding(title, "info", f"pg_up is 0 on {', '.join(instances) or len(down)}: the exporter agrees.")
    return Result()


_LABEL = {
    "refused": "Connection refused",
    "dns": "Host name does not resolve",
    "unreachable": "Host unreachable",
    "timeout": "Connection timed out",
    "auth": "Authentication failed",
    "too_many_connections": "Too many connections",
    "starting_up": "Server starting up (recovering)",
    "shutting_down": "Server shutting down",
    "no_database": "Database does not exist",
}
