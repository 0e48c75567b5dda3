"""A migration that fails or hangs: which revision is applied, who blocks whom on which relation
and for how long, schema changes running now, and indexes a failed build left invalid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from runbook_lib.core.present import duration
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import activity, schema


@dataclass
class Migration(Result):
    tool: str | None = None
    versions: list[str] = field(default_factory=list)
    dirty: bool | None = None


@dataclass
class Schema(Result):
    problem: str | None = None  # what a person must do: "dirty", "long_ddl", "invalid_index"
    detail: str = ""


@dataclass
class Locks(Result):
    waiting: int = 0
    root_blocker: int | None = None
    blocker_idle: bool = False  # idle in transaction: only terminating it frees the lock
    blocker: dict[str, Any] = field(default_factory=dict)


@check("Migration state", Migration)
def state(rb: RunbookLike) -> Migration:
    """The applied revision from alembic_version or schema_migrations, whichever exists."""
    m = schema.migrations(rb.postgres)
    title = "Migration state"
    if m["tool"] is None:
        rb.finding(
            title, "info", "Neither alembic_version nor schema_migrations exists: the migration tool is unknown."
        )
        return Migration()
    shown = ", ".join(m["versions"]) or "(none)"
    if m["dirty"]:
        rb.finding(
            title,
            "critical",
            f"{m['table']} marks version {m['versions'][0]} dirty: that migration failed midway; fix the schema by "
            "hand, then force the version (migrate force) before migrating again.",
            role="cause",
            cause="migration_failed",
            **m,
        )
    elif len(m["versions"]) > 1 and m["tool"] == "alembic":
        rb.finding(title, "warning", f"alembic_version holds several heads ({shown}): a branched history.", **m)
    else:
        rb.finding(
            title, "info", f"{m['tool']}: applied revision {m['versions'][0] if m['versions'] else '(none)'}.", **m
        )
    return Migration(tool=m["tool"], versions=m["versions"], dirty=m["dirty"])


@check("Lock waits", Locks, essential=True)
def locks(rb: RunbookLike) -> Locks:
    """The blocking tree: sessions waiting on a lock, the ones blocking them, and the root blocker
    (blocking others while waiting on nobody)."""
    pg = rb.postgres
    waiting = activity.waiting(pg)
    title = "Lock waits"
    if waiting.empty:
        rb.finding(title, "ok", "No session is waiting on a lock.", waiting=0)
        return Locks()
    blocker_pids = sorted({int(p) for ps in waiting["blocked_by"] for p in ps})
    blockers = activity.blockers(pg, blocker_pids)
    rb.table(waiting.drop(columns=["user"]), title="Waiting on a lock (longest first)")
    rb.table(blockers, title="Blocking sessions")
    roots = blockers[~blockers["also_waiting"].astype(bool)] if not blockers.empty else blockers
    if roots.empty:
        rb.finding(title, "critical", f"{len(waiting)} session(s) wait on each other (a cycle PostgreSQL will break).")
        return Locks(waiting=len(waiting))
    # The root blocker behind the most waiting sessions, directly or through others.
    reach = {int(r["pid"]): _blocked_through(int(r["pid"]), waiting) for _, r in roots.iterrows()}
    root_pid = max(reach, key=lambda p: len(reach[p]))
    root = roots[roots["pid"] == root_pid].iloc[0].to_dict()
    victims = waiting[waiting["pid"].isin(reach[root_pid])]
    longest = victims.iloc[0]
    idle = str(root["state"]).startswith("idle in transaction")
    how = (
        f"idle in transaction for {duration(root['in_state_s'])}"
        if idle
        else f"{root['state']} (transaction open {duration(root['xact_age_s'])})"
    )
    ddl = victims[victims["query"].str.contains(schema.DDL, case=False, regex=True)]
    what = f"the schema change `{ddl.iloc[0]['query'][:80]}`" if not ddl.empty else f"`{longest['query'][:80]}`"
    over = float(longest["waiting_s"]) > rb.thresholds.postgres_lock_wait_s
    rb.finding(
        title,
        "critical" if over or not ddl.empty else "warning",
        f"Session {root_pid} ({root['application']}, {how}) holds {root['holds'] or 'locks'} and blocks "
        f"{len(victims)} session(s), including {what}, waiting {duration(longest['waiting_s'])} for "
        f"{longest['wants']} on {longest['target']}. "
        + (
            "Terminating it (Option 2) frees the lock; cancelling does nothing to an idle session."
            if idle
            else "Cancel its statement (Option 1) or terminate it (Option 2)."
        ),
        role="cause",
        cause="lock_blocker",
        root_blocker=root_pid,
        blocker_application=root["application"],
        blocker_state=root["state"],
        holds=root["holds"],
        relation=longest["target"],
        wants=longest["wants"],
        blocked=[int(p) for p in victims["pid"]],
        longest_wait_s=float(longest["waiting_s"]),
    )
    return Locks(waiting=len(waiting), root_blocker=root_pid, blocker_idle=idle, blocker=root)


@check("Schema changes running", Schema)
def ddl(rb: RunbookLike) -> Schema:
    """ALTER / CREATE INDEX / ... statements running or waiting now, and for how long."""
    running = schema.ddl_running(rb.postgres)
    title = "Schema changes running"
    if running.empty:
        rb.finding(title, "ok", "No schema change is running.")
        return Schema()
    rb.table(running, title="Schema changes running or waiting")
    limit = rb.thresholds.postgres_ddl_s
    top = running.iloc[0]
    long = running[running["running_s"] > limit]
    waiting = int(running["waiting_on_lock"].sum())
    # Running long and not waiting: the change itself is slow (a rewrite, an index build); one
    # waiting on a lock is the blocker's doing (Lock waits names it).
    slow = running[(running["running_s"] > limit) & ~running["waiting_on_lock"].astype(bool)]
    rb.finding(
        title,
        "warning" if len(long) or waiting else "info",
        f"{len(running)} schema change(s) running, {waiting} waiting on a lock; the longest for "
        f"{duration(top['running_s'])}: `{str(top['query'])[:100]}`."
        + (
            f" {len(slow)} running longer than {duration(limit)} without waiting: the change itself is slow (a table "
            "rewrite or an index build) and holds its lock all along."
            if len(slow)
            else ""
        ),
        role="cause" if len(slow) else None,
        cause="long_ddl" if len(slow) else None,
        statements=len(running),
        waiting_on_lock=waiting,
        longest_s=float(top["running_s"]),
        pid=int(top["pid"]),
    )
    if len(slow):
        return Schema(problem="long_ddl", detail=f"pid {int(slow.iloc[0]['pid'])}: `{str(slow.iloc[0]['query'])[:80]}`")
    return Schema()


@check("Invalid indexes", Schema)
def invalid_indexes(rb: RunbookLike) -> Schema:
    """Indexes a failed CREATE INDEX CONCURRENTLY left behind: still written, never used."""
    bad = schema.invalid_indexes(rb.postgres)
    title = "Invalid indexes"
    if bad.empty:
        rb.finding(title, "ok", "No invalid index.")
        return Schema()
    rb.table(bad, title="Invalid indexes")
    names = [f"{r['index']} on {r['table']}" for _, r in bad.iterrows()]
    rb.finding(
        title,
        "warning",
        f"{len(bad)} invalid index(es): {', '.join(names[:5])}. A concurrent build failed: DROP INDEX CONCURRENTLY, "
        "fix the cause (duplicates for a unique index), then build it again.",
        role="cause",
        cause="invalid_index",
        indexes=names,
    )
    return Schema(problem="invalid_index", detail=", ".join(names[:5]))


def decision(rb: RunbookLike, migration: Migration, lock: Locks, *found: Schema) -> None:
    """What the record recommends when neither blocker option is it: escalate to the migration's
    owners with the by-hand fix (a dirty version, a slow change, an invalid index), or no action
    when nothing is wrong."""
    if lock.root_blocker is not None:
        return  # Option 1 or 2 ends the blocker
    todo = []
    if lock.waiting:
        todo.append("sessions wait on each other in a cycle: find the code paths that lock in different orders")
    if migration.dirty:
        todo.append(f"version {migration.versions[0]} is dirty: fix the schema by hand, then migrate force")
    for f in found:
        if f.problem == "long_ddl":
            todo.append(f"a slow schema change ({f.detail}): let it finish off-peak or cancel it and rework it")
        elif f.problem == "invalid_index":
            todo.append(f"invalid index(es) {f.detail}: DROP INDEX CONCURRENTLY, fix the duplicates, build again")
    if todo:
        rb.escalate("; ".join(todo), to="the team that owns the migration")
    elif migration.checked and lock.checked:
        rb.no_action("no failed migration, no lock wait, no slow schema change, no invalid index")


def _blocked_through(pid: int, waiting: pd.DataFrame) -> set[int]:
    """Every waiting session ``pid`` blocks, directly or through a chain of waits."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        step = {int(w["pid"]) for _, w in waiting.iterrows() if frontier & {int(p) for p in w["blocked_by"]}}
        frontier = step - found
        found |= step
    return found
