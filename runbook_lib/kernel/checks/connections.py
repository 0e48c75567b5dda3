"""Connection use: how full max_connections is, who holds the connections (application, user,
client, state), the sessions idle in transaction that hold them and their locks, and sessions
queued behind another's lock. When every slot is taken, the exhaustion is itself the finding
(the runbook's own session is refused too), and what postgres_exporter last saw in Prometheus
says who holds the slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import duration
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import ConnectFailed, activity

ONE_APP_SHARE = 0.5  # one application holding at least this share of the sessions "holds most"
EXPORTER = "pg_stat_activity_count"


@dataclass
class Usage(Result):
    used: int = 0
    max_connections: int = 0
    share: float = 0.0
    exhausted: bool = False  # no slot left: this runbook's own session was refused
    connected: bool = True  # the runbook has a session (False: what follows comes from the exporter)
    exporter: pd.DataFrame | None = None  # postgres_exporter's sessions by state (and application)


@dataclass
class Holders(Result):
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_application: str | None = None
    top_count: int = 0
    from_exporter: bool = False
    leaking: bool = False  # the top application's sessions are mostly idle in transaction


@dataclass
class IdleInTransaction(Result):
    count: int = 0
    over_threshold: int = 0
    oldest_s: float | None = None
    top_application: str | None = None
    one_application: bool = False  # one application holds most of the sessions over the threshold


@dataclass
class LockWaits(Result):
    waiting: int = 0
    root_blocker: int | None = None
    blocker_application: str | None = None


@check("Connections in use", Usage, essential=True)
def usage(rb: RunbookLike) -> Usage:
    """Client connections against max_connections (the HighDatabaseConnections ratio). When no
    slot is left for this runbook either, that is the finding, and the exporter's series say more."""
    try:
        cap = activity.capacity(rb.postgres)
    except ConnectFailed as exc:
        if exc.failure.kind != "too_many_connections":
            raise
        return _exhausted(rb, exc)
    used, limit = int(cap["used"]), int(cap["max_connections"])
    share = used / limit if limit else 0.0
    th = rb.thresholds
    verdict = (
        "critical"
        if share >= th.postgres_connections_critical
        else "warning"
        if share >= th.postgres_connections_warn
        else "ok"
    )
    left = max(0, limit - cap["reserved"] - used)
    full = limit > 0 and left == 0
    rb.finding(
        "Connections in use",
        verdict,
        f"{used} of {limit} connections in use ({share:.0%}); {left} left for non-superusers "
        f"({cap['reserved']} reserved for superusers)."
        + (" Every slot but the superusers' is taken: the application's new sessions are refused." if full else ""),
        role="symptom",
        cause="connections_exhausted" if full else None,
        used=used,
        max_connections=limit,
        share=share,
        reserved=cap["reserved"],
    )
    return Usage(used=used, max_connections=limit, share=share, exhausted=full)


def _exhausted(rb: RunbookLike, exc: ConnectFailed) -> Usage:
    """No slot for this runbook: report the exhaustion once, then ask the exporter."""
    pg = rb.postgres
    exporter, seen, why_not = _exporter_sessions(rb)
    used = int(exporter["value"].sum()) if exporter is not None and not exporter.empty else 0
    limit = int(seen.get("max_connections") or 0)
    share = used / limit if limit else 1.0
    also = (
        f" postgres_exporter last saw {used} of {limit} connections in use ({share:.0%})."
        if exporter is not None and limit
        else f" Who holds them cannot be seen from here: {why_not}."
    )
    rb.finding(
        "Connections in use",
        "critical",
        f"Every connection slot is taken at {pg.where}: the server refused this runbook's session too "
        f"(server said: {exc.first_line}).{also}",
        role="cause",
        cause="connections_exhausted",
        failure=exc.failure.kind,
        where=pg.where,
        error=exc.first_line,
        used=used or None,
        max_connections=limit or None,
        source="postgres_exporter" if exporter is not None else None,
    )
    return Usage(
        used=used,
        max_connections=limit,
        share=share,
        exhausted=True,
        connected=False,
        exporter=exporter,
        reason=f"no connection slot ({exc.first_line})",
    )


def _exporter_sessions(rb: RunbookLike) -> tuple[pd.DataFrame | None, dict[str, Any], str]:
    """postgres_exporter's client sessions by state (and application, when it labels them),
    max_connections, or None and why not."""
    try:
        frame = rb.prometheus.query(EXPORTER)
        limit = rb.prometheus.scalar("sum(pg_settings_max_connections)")
    except SourceError as exc:
        return None, {}, f"Prometheus: {exc}"
    rb.query_link(EXPORTER, "sessions by state, postgres_exporter's view")
    if frame.empty:
        return None, {}, f"Prometheus has no {EXPORTER} series (is postgres_exporter scraped?)"
    if "backend_type" in frame.columns:
        frame = frame[frame["backend_type"].fillna("client backend") == "client backend"]
    frame = frame.assign(
        state=frame["state"].fillna("(unknown)") if "state" in frame.columns else "(unknown)",
        application=(
            frame["application_name"].fillna("").replace("", "(none)")
            if "application_name" in frame.columns
            else "(not labelled)"
        ),
    )
    frame = frame[frame["value"] > 0]
    return frame, {"max_connections": limit}, ""


@check("Connections by application", Holders, essential=True)
def holders(rb: RunbookLike, usage: Usage | None = None) -> Holders:
    """Who holds the connections: by application, and within it by state, user and client."""
    title = "Connections by application"
    if usage is not None and not usage.connected:
        if usage.exporter is None:
            rb.unchecked(title, "not checked: no connection slot for this runbook, and no exporter series")
            return Holders.unchecked(usage.reason)
        return _holders_from_exporter(rb, usage)
    if usage is not None and not usage.checked:  # Connections in use said why, once
        return Holders.unchecked(usage.reason)
    sessions = activity.sessions(rb.postgres)
    if sessions.empty:
        rb.finding(title, "info", "No client sessions besides this runbook's.")
        return Holders(sessions=sessions)
    rb.table(
        sessions[["pid", "application", "user", "client", "state", "in_state_s", "xact_age_s", "query"]],
        title="Client sessions (pg_stat_activity)",
    )
    by_app = (
        sessions.assign(state=sessions["state"].fillna("(unknown)"))
        .pivot_table(index="application", columns="state", values="pid", aggfunc="count", fill_value=0)
        .assign(total=lambda f: f.sum(axis=1))
        .sort_values("total", ascending=False)
        .reset_index()
    )
    rb.table(by_app, title="Connections by application and state")
    rb.table(_count(sessions, ["user"]), title="By user")
    rb.table(_count(sessions, ["client"]), title="By client address")
    return _name_top(rb, usage, by_app, sessions, from_exporter=False)


def _holders_from_exporter(rb: RunbookLike, usage: Usage) -> Holders:
    frame = usage.exporter
    assert frame is not None
    by_app = (
        frame.pivot_table(index="application", columns="state", values="value", aggfunc="sum", fill_value=0)
        .astype(int)
        .assign(total=lambda f: f.sum(axis=1))
        .sort_values("total", ascending=False)
        .reset_index()
    )
    rb.table(by_app, title="Connections by application and state (postgres_exporter, last scrape)")
    return _name_top(rb, usage, by_app, pd.DataFrame(), from_exporter=True)


def _name_top(
    rb: RunbookLike, usage: Usage | None, by_app: pd.DataFrame, sessions: pd.DataFrame, from_exporter: bool
) -> Holders:
    title = "Connections by application"
    top = by_app.iloc[0]
    total = int(by_app["total"].sum())
    share = int(top["total"]) / total if total else 0.0
    states = ", ".join(f"{int(top[c])} {c}" for c in by_app.columns if c not in ("application", "total") and top[c])
    idle = sum(int(top[c]) for c in activity.IDLE_IN_TRANSACTION if c in by_app.columns)
    labelled = str(top["application"]) != "(not labelled)"
    heavy = (
        labelled
        and usage is not None
        and (usage.exhausted or usage.share >= rb.thresholds.postgres_connections_warn)
        and share >= ONE_APP_SHARE
    )
    # Mostly idle in transaction: the leak (Step 3) is the cause, the pool's size only lets it grow.
    leaking = heavy and idle * 2 >= int(top["total"])
    source = " (postgres_exporter's last scrape)" if from_exporter else ""
    rb.finding(
        title,
        "warning" if heavy else "info",
        f"{top['application']} holds the most connections{source}: {int(top['total'])} of {total} client sessions "
        f"({share:.0%}; {states})."
        + (
            " Its pool holds most of the slots: lower its pool size or put PgBouncer in front (Option 2)."
            if heavy and not leaking
            else f" {idle} of them idle in transaction: a transaction it leaves open (Step 3)."
            if leaking
            else ""
        ),
        role="cause" if heavy and not leaking else None,
        cause="pool_exhausted" if heavy else None,
        application=top["application"],
        connections=int(top["total"]),
        share=share,
        idle_in_transaction=idle,
        by_application={str(r["application"]): int(r["total"]) for _, r in by_app.iterrows()},
        source="postgres_exporter" if from_exporter else "pg_stat_activity",
    )
    return Holders(
        sessions=sessions,
        top_application=str(top["application"]) if labelled else None,
        top_count=int(top["total"]),
        from_exporter=from_exporter,
        leaking=leaking,
    )


@check("Idle in transaction", IdleInTransaction)
def idle_in_transaction(rb: RunbookLike, held: Holders, older_than_s: float | None = None) -> IdleInTransaction:
    """Sessions idle inside an open transaction: each holds a connection, its locks and an old
    snapshot (vacuum cannot clean behind it). Usually a pool or code path that never commits.
    Flagged when idle longer than ``older_than_s`` (default: the threshold setting)."""
    title = "Idle in transaction"
    if not held.checked:
        return IdleInTransaction.unchecked(held.reason)
    if held.from_exporter:  # no ages: the leak, if any, is the one Step 2 names
        return IdleInTransaction(
            checked=False,
            reason="the exporter gives no session ages (see Connections by application)",
            top_application=held.top_application if held.leaking else None,
        )
    s = held.sessions
    idle = s[s["state"].isin(activity.IDLE_IN_TRANSACTION)] if not s.empty else s
    limit = float(older_than_s if older_than_s is not None else rb.thresholds.postgres_idle_in_transaction_s)
    if idle.empty:
        rb.finding(title, "ok", "No session is idle in transaction.", count=0)
        return IdleInTransaction()
    idle = idle.sort_values("in_state_s", ascending=False)
    rb.table(
        idle[["pid", "application", "user", "client", "in_state_s", "xact_age_s", "query"]], title="Idle in transaction"
    )
    over = idle[idle["in_state_s"] > limit]
    per_app = (over if len(over) else idle).groupby("application")["pid"].count().sort_values(ascending=False)
    top_app = str(per_app.index[0])
    one = len(over) > 0 and int(per_app.iloc[0]) / len(over) >= ONE_APP_SHARE and top_app != "(none)"
    oldest = float(idle["in_state_s"].iloc[0])
    rb.finding(
        title,
        "warning" if len(over) else "info",
        f"{len(idle)} session(s) idle in transaction, {len(over)} longer than {duration(limit)}; the oldest for "
        f"{duration(oldest)} (pid {int(idle['pid'].iloc[0])}); "
        + (
            f"most of those from {top_app} ({int(per_app.iloc[0])}): it opens transactions and never ends them. "
            f"Ending {top_app}'s frees the connections (Option 1)."
            if one
            else f"most from {top_app} ({int(per_app.iloc[0])})."
            + (" Spread over several applications: no one to end them for." if len(over) else "")
        ),
        role="cause" if len(over) else None,
        cause="idle_in_transaction_leak" if len(over) else None,
        count=len(idle),
        over_threshold=len(over),
        threshold_s=limit,
        oldest_s=oldest,
        application=top_app,
        by_application={str(k): int(v) for k, v in per_app.items()},
    )
    return IdleInTransaction(
        count=len(idle), over_threshold=len(over), oldest_s=oldest, top_application=top_app, one_application=one
    )


@check("Lock waits", LockWaits)
def lock_waits(rb: RunbookLike, held: Holders) -> LockWaits:
    """Sessions queued behind another's lock hold their connections while they wait: the root
    blocker (blocking others while waiting on nobody) and how many wait behind it."""
    title = "Lock waits"
    if not held.checked or held.from_exporter:
        return LockWaits.unchecked(held.reason or "no session of its own (see Connections in use)")
    waiting = activity.waiting(rb.postgres)
    if waiting.empty:
        rb.finding(title, "ok", "No session is waiting on a lock.", waiting=0)
        return LockWaits()
    pids = sorted({int(p) for ps in waiting["blocked_by"] for p in ps})
    blockers = activity.blockers(rb.postgres, pids)
    roots = blockers[~blockers["also_waiting"].astype(bool)] if not blockers.empty else blockers
    rb.table(blockers, title="Blocking sessions")
    if roots.empty:
        rb.finding(title, "warning", f"{len(waiting)} session(s) wait on each other.", waiting=len(waiting))
        return LockWaits(waiting=len(waiting))
    root = roots.iloc[0].to_dict()
    over = float(waiting["waiting_s"].max()) > rb.thresholds.postgres_lock_wait_s
    many = len(waiting) >= 3
    rb.finding(
        title,
        "warning" if over or many else "info",
        f"{len(waiting)} session(s) wait on a lock, behind session {int(root['pid'])} ({root['application']}, "
        f"{root['state']}, holding {root['holds'] or 'locks'}); the longest for {duration(waiting['waiting_s'].max())}. "
        "Each waiting session keeps its connection: the database-migration-failure runbook ends the blocker.",
        role="cause" if over or many else None,
        cause="lock_blocker" if over or many else None,
        waiting=len(waiting),
        root_blocker=int(root["pid"]),
        blocker_application=root["application"],
    )
    return LockWaits(waiting=len(waiting), root_blocker=int(root["pid"]), blocker_application=root["application"])


def decision(
    rb: RunbookLike, use: Usage, held: Holders, idle: IdleInTransaction, locks: LockWaits, option: dict[str, Any]
) -> None:
    """What the record recommends when Option 1 (``option``, its action) is not it: escalate to
    who owns what was found (with the reason), or no action when connection use is below the
    warning line."""
    if option.get("recommended"):
        return
    if not use.checked and not use.exhausted:
        rb.escalate(
            "no PostgreSQL session for this runbook (see Connections in use): if the server refuses connections, "
            "treat it as DatabaseDown and run the database-down runbook",
            to="the database owner",
        )
        return
    if use.exhausted:
        app = held.top_application
        rb.escalate(
            "every connection slot is taken"
            + (
                f" and {app} holds {held.top_count} of them, mostly idle in transaction: a superuser (its reserved "
                f"slot) runs Option 1's command, scoped to {app}; its team finds the transaction it never ends"
                if app and held.leaking
                else f" and {app} holds {held.top_count} of them: its team lowers its pool or restarts it; a "
                "superuser's reserved slot (psql as postgres) can end sessions meanwhile"
                if app
                else "; a superuser's reserved slot (psql as postgres) shows who holds them and can end sessions"
            ),
            to=f"the owners of {app}" if app else "the database owner",
        )
    elif locks.root_blocker is not None and locks.waiting >= 3:
        rb.escalate(
            f"{locks.waiting} sessions queue behind session {locks.root_blocker} ({locks.blocker_application}): run "
            "the database-migration-failure runbook to end the blocker",
            to=f"the owners of {locks.blocker_application}",
        )
    elif held.top_application and use.share >= rb.thresholds.postgres_connections_warn:
        rb.escalate(
            f"{held.top_application} holds {held.top_count} connections: its pool size is for its team to lower "
            "(or PgBouncer in front); nothing here ends live sessions safely",
            to=f"the owners of {held.top_application}",
        )
    elif idle.over_threshold:
        rb.escalate("sessions idle in transaction from several applications: each team finds its open transactions")
    elif use.checked and use.share < rb.thresholds.postgres_connections_warn:
        rb.no_action(f"{use.used} of {use.max_connections} connections in use: below the warning line")


def _count(sessions: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return sessions.groupby(by)["pid"].count().rename("connections").sort_values(ascending=False).reset_index()
