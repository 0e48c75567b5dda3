"""Connection use: how full max_connections is, who holds the connections (application, user,
client, state), and the sessions idle in transaction that hold them and their locks."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from runbook_lib.core.present import duration
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import activity


@dataclass
class Usage(Result):
    used: int = 0
    max_connections: int = 0
    share: float = 0.0


@dataclass
class Holders(Result):
    sessions: pd.DataFrame = field(default_factory=pd.DataFrame)
    top_application: str | None = None
    top_count: int = 0


@dataclass
class IdleInTransaction(Result):
    count: int = 0
    over_threshold: int = 0
    oldest_s: float | None = None
    top_application: str | None = None


@check("Connections in use", Usage, essential=True)
def usage(rb: RunbookLike) -> Usage:
    """Client connections against max_connections (the HighDatabaseConnections ratio)."""
    cap = activity.capacity(rb.postgres)
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
    rb.finding(
        "Connections in use",
        verdict,
        f"{used} of {limit} connections in use ({share:.0%}); {left} left for non-superusers "
        f"({cap['reserved']} reserved for superusers).",
        role="symptom",
        used=used,
        max_connections=limit,
        share=share,
        reserved=cap["reserved"],
    )
    return Usage(used=used, max_connections=limit, share=share)


@check("Connections by application", Holders, essential=True)
def holders(rb: RunbookLike, usage: Usage | None = None) -> Holders:
    """Who holds the connections: by application, and within it by state, user and client."""
    sessions = activity.sessions(rb.postgres)
    if sessions.empty:
        rb.finding("Connections by application", "info", "No client sessions besides this runbook's.")
        return Holders(sessions=sessions)
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
    top = by_app.iloc[0]
    total = int(by_app["total"].sum())
    share = int(top["total"]) / total
    states = ", ".join(f"{int(top[c])} {c}" for c in by_app.columns if c not in ("application", "total") and top[c])
    heavy = usage is not None and usage.share >= rb.thresholds.postgres_connections_warn and share >= 0.5
    rb.finding(
        "Connections by application",
        "warning" if heavy else "info",
        f"{top['application']} holds the most connections: {int(top['total'])} of {total} client sessions "
        f"({share:.0%}; {states}).",
        role="cause" if heavy else None,
        application=top["application"],
        connections=int(top["total"]),
        share=share,
        by_application={str(r["application"]): int(r["total"]) for _, r in by_app.iterrows()},
    )
    return Holders(sessions=sessions, top_application=str(top["application"]), top_count=int(top["total"]))


@check("Idle in transaction", IdleInTransaction)
def idle_in_transaction(rb: RunbookLike, held: Holders, older_than_s: float | None = None) -> IdleInTransaction:
    """Sessions idle inside an open transaction: each holds a connection, its locks and an old
    snapshot (vacuum cannot clean behind it). Usually a pool or code path that never commits.
    Flagged when idle longer than ``older_than_s`` (default: the threshold setting)."""
    if not held.checked:
        return IdleInTransaction.unchecked(held.reason)
    s = held.sessions
    idle = s[s["state"].isin(activity.IDLE_IN_TRANSACTION)] if not s.empty else s
    limit = float(older_than_s if older_than_s is not None else rb.thresholds.postgres_idle_in_transaction_s)
    if idle.empty:
        rb.finding("Idle in transaction", "ok", "No session is idle in transaction.", count=0)
        return IdleInTransaction()
    idle = idle.sort_values("in_state_s", ascending=False)
    rb.table(
        idle[["pid", "application", "user", "client", "in_state_s", "xact_age_s", "query"]], title="Idle in transaction"
    )
    over = idle[idle["in_state_s"] > limit]
    per_app = idle.groupby("application")["pid"].count().sort_values(ascending=False)
    top_app = str(per_app.index[0])
    oldest = float(idle["in_state_s"].iloc[0])
    rb.finding(
        "Idle in transaction",
        "warning" if len(over) else "info",
        f"{len(idle)} session(s) idle in transaction, {len(over)} longer than {duration(limit)}; the oldest for "
        f"{duration(oldest)} (pid {int(idle['pid'].iloc[0])}); most from {top_app} ({int(per_app.iloc[0])}). "
        + (
            "A transaction left open by the application: ending them frees the connections (Option 1)."
            if len(over)
            else ""
        ),
        role="cause" if len(over) else None,
        count=len(idle),
        over_threshold=len(over),
        threshold_s=limit,
        oldest_s=oldest,
        application=top_app,
        by_application={str(k): int(v) for k, v in per_app.items()},
    )
    return IdleInTransaction(count=len(idle), over_threshold=len(over), oldest_s=oldest, top_application=top_app)


def _count(sessions: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return sessions.groupby(by)["pid"].count().rename("connections").sort_values(ascending=False).reset_index()
