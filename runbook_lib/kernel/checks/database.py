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
            cause=CAUSE.get(kind),
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
            cause="read_only",
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
            cause="read_only",
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


@dataclass
class ExporterView(Result):
    failing: bool = False  # pg_up is 0 while the runbook connects: the exporter's connection fails


@check("Exporter's view (pg_up)", ExporterView)
def exporter_view(rb: RunbookLike, reach: Reachability) -> ExporterView:
    """DatabaseDown fires on the exporter's pg_up; when the runbook connects but pg_up is 0, the
    exporter's own connection is what fails."""
    frame = rb.prometheus.query("pg_up")
    rb.query_link("pg_up", "pg_up, the exporter's view")
    title = "Exporter's view (pg_up)"
    if frame.empty:
        rb.finding(title, "warning", "No pg_up series: the PostgreSQL exporter is not being scraped.", role="cause")
        return ExporterView()
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
        return ExporterView(failing=True)
    else:
        rb.finding(title, "info", f"pg_up is 0 on {', '.join(instances) or len(down)}: the exporter agrees.")
    return ExporterView()


def decision(rb: RunbookLike, reach: Reachability, exporter: ExporterView | None = None) -> None:
    """What the record recommends: every fix here is by hand on infrastructure the runbook does
    not control, so escalate with what to do for the failure found, or no action when the
    server connects and takes writes."""
    if reach.writable and exporter is not None and exporter.failing:
        rb.escalate(
            "the database answers but postgres_exporter cannot reach it: check the exporter's credentials and "
            "network path",
            to="whoever runs postgres_exporter",
        )
        return
    if reach.writable:
        rb.no_action(
            "the runbook connects and the server takes writes: the alert has cleared, or the exporter is at fault"
        )
        return
    if not reach.checked:
        return  # nothing measured: the diagnosis escalates by default
    todo = _TODO.get(reach.failure or "", "read the server log and follow Step 1's failure")
    rb.escalate(
        f"{_LABEL.get(reach.failure or '', reach.failure or 'cannot connect')}: {todo}", to="the database owner"
    )


# failure kind -> cause code (runbook_lib.sre.causes)
CAUSE = {
    "refused": "server_down",
    "dns": "server_down",
    "unreachable": "server_down",
    "timeout": "server_down",
    "starting_up": "server_down",
    "shutting_down": "server_down",
    "auth": "auth_failed",
    "too_many_connections": "connections_exhausted",
}
# failure kind -> what on-call does (Resolution)
_TODO = {
    "refused": "bring the server back (Option 1) or fail over to a standby (Option 2)",
    "dns": "fix the host name in the DSN or DNS",
    "unreachable": "fix the network path (firewall, security group) to the server",
    "timeout": "check the host (load, hung server) and the network path; fail over if it stays hung (Option 2)",
    "starting_up": "wait for crash recovery to finish; the server log says how far it is",
    "shutting_down": "find who stops it; start it again (Option 1)",
    "auth": "compare the password in the application's secret with the role's (a rotation done on one side)",
    "too_many_connections": "run the high-database-connections runbook; a superuser's reserved slot can end sessions",
    "in_recovery": "promote a standby (Option 2) if the primary is lost, or point the DSN at the primary",
    "read_only": "find who set default_transaction_read_only (server, database or role) and reset it",
    "no_database": "the database is gone or the DSN names the wrong one: restore (Option 3) or fix the DSN",
}

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
    "in_recovery": "In recovery (a standby)",
    "read_only": "Read-only",
}
