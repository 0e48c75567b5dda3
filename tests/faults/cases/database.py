"""Fault cases of the data-layer runbooks: high-database-connections, database-down,
database-migration-failure and data-corruption, each made for real on PostgreSQL: sessions held
open (a pool, a leak idle in transaction, every slot taken) on a small cluster of the module's
own, a server that refuses or a password that is wrong, a lock that blocks a migration, a dirty
migration version, a failed concurrent index build, rows written around their foreign keys and
rows deleted after a baseline was recorded (on scratch databases of the machine's PostgreSQL)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import psycopg

from runbook_lib.sandbox import database
from tests.faults.matrix import Bench, Case, Setup
from tests.support import dbfaults

MAX_CONNECTIONS = 20  # the module's cluster; 2 of them reserved for superusers
APP_ROLE, APP_PASSWORD = "omnihub_app", "app-pw-faults"
_clusters: dict[int, tuple[Any, str, str]] = {}  # id(bench) -> (cluster, app DSN, superuser DSN)


def small_cluster(bench: Bench) -> tuple[Any, str, str]:
    """The module's cluster (max_connections 20): a seeded database, and DSNs for the
    application's role (no superuser: the reserve is not for it) and for the superuser."""
    if id(bench) not in _clusters:
        cluster = bench.cluster(max_connections=MAX_CONNECTIONS)
        admin = database.create_database("omnihub", admin_dsn=cluster.dsn())
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{APP_PASSWORD}'")
            conn.execute(f"GRANT pg_read_all_stats, pg_signal_backend TO {APP_ROLE}")
        app = admin.replace(f"postgres:{cluster.password}@", f"{APP_ROLE}:{APP_PASSWORD}@")
        _clusters[id(bench)] = (cluster, app, admin)
    return _clusters[id(bench)]


@contextlib.contextmanager
def held(dsn: str, apps: dict[str, tuple[int, int]]) -> Iterator[dict[str, dbfaults.Held]]:
    """Sessions per application: ``{app: (sessions, of them idle in transaction)}``."""
    with contextlib.ExitStack() as stack:
        yield {
            app: stack.enter_context(dbfaults.hold_connections(dsn, n, app, idle)) for app, (n, idle) in apps.items()
        }


def record_html(record: dict[str, Any], case: str) -> str:
    """The archived record.html of the run (run_case keeps its folder in ``_path``)."""
    path = Path(record.get("_path") or "") / "record.html"
    return path.read_text() if record.get("_path") and path.is_file() else ""


# -- high-database-connections ---------------------------------------------------------------------
@contextlib.contextmanager
def slots_exhausted(bench: Bench, work: Path) -> Iterator[Setup]:
    """Every slot but the superusers' taken by three applications, none holding most: the
    runbook (the application's role) is refused like everyone else."""
    _, app, _ = small_cluster(bench)
    with held(app, {"api-gateway": (6, 0), "workflow-worker": (6, 0), "reporting": (6, 0)}):
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": app})


@contextlib.contextmanager
def slots_exhausted_superuser(bench: Bench, work: Path) -> Iterator[Setup]:
    """Every slot but the superusers' taken by three applications; the runbook's DSN is a
    superuser's, so it gets in through the reserve and sees who holds them."""
    _, app, admin = small_cluster(bench)
    with held(app, {"api-gateway": (6, 0), "workflow-worker": (6, 0), "reporting": (6, 0)}):
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": admin})


def exporter_series(out: TextIO) -> None:
    """postgres_exporter's last scrapes: 18 client sessions, 12 of them billing-worker's idle in
    transaction, max_connections 20."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    series = {
        ("billing-worker", "idle in transaction"): 12,
        ("billing-worker", "active"): 2,
        ("api-gateway", "idle"): 4,
    }
    out.write("# HELP pg_stat_activity_count postgres_exporter sessions.\n# TYPE pg_stat_activity_count gauge\n")
    for (app, state), n in series.items():
        for m in range(30, -1, -1):
            t = (now - timedelta(minutes=m)).timestamp()
            labels = f'application_name="{app}",backend_type="client backend",datname="omnihub",state="{state}"'
            out.write(f"pg_stat_activity_count{{{labels}}} {n} {t:.0f}\n")
    out.write("# HELP pg_settings_max_connections max_connections.\n# TYPE pg_settings_max_connections gauge\n")
    for m in range(30, -1, -1):
        t = (now - timedelta(minutes=m)).timestamp()
        out.write(f'pg_settings_max_connections{{server="db:5432"}} {MAX_CONNECTIONS} {t:.0f}\n')


@contextlib.contextmanager
def slots_exhausted_exporter(bench: Bench, work: Path) -> Iterator[Setup]:
    """Every slot taken, mostly by billing-worker idle in transaction; Prometheus has the exporter."""
    _, app, _ = small_cluster(bench)
    url = bench.prometheus("pg-exporter", exporter_series)
    with held(app, {"billing-worker": (14, 12), "api-gateway": (4, 0)}):
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": app, "RUNBOOK_PROMETHEUS_URL": url})


@contextlib.contextmanager
def idle_leak_one_app(bench: Bench, work: Path) -> Iterator[Setup]:
    """workflow-worker leaves 9 sessions idle in transaction; api-gateway has 2 idle in
    transaction too, as old: ending api-gateway's is not this record's to propose."""
    _, app, admin = small_cluster(bench)
    with held(admin, {"workflow-worker": (12, 9), "api-gateway": (3, 2)}) as leak:
        _PIDS["idle-in-transaction-leak"] = {name: h.idle_pids for name, h in leak.items()}
        time.sleep(2.5)
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": app}, extra={"idle_older_than_s": 2})


_PIDS: dict[str, dict[str, list[int]]] = {}


def terminate_names_only_the_leaking_app(record: dict[str, Any]) -> list[str]:
    problems = []
    act = next((a for a in record["actions"] if a["name"] == "terminate_idle"), None)
    if act is None:
        return ["no terminate_idle option"]
    if "application_name = 'workflow-worker'" not in (act.get("command") or ""):
        problems.append(f"the terminate SQL is not scoped to workflow-worker: {act.get('command')}")
    pids = set((act.get("plan") or {}).get("pids") or [])
    want = _PIDS["idle-in-transaction-leak"]
    if not pids or not pids <= set(want["workflow-worker"]):
        problems.append(f"the plan ends sessions other than workflow-worker's: {sorted(pids)}")
    if pids & set(want["api-gateway"]):
        problems.append("the plan ends api-gateway's sessions")
    html = record_html(record, "idle-in-transaction-leak")
    if "Client sessions (pg_stat_activity)" not in html or "workflow-worker" not in html:
        problems.append("record.html does not show the session table")
    return problems


def exhaustion_said_once(record: dict[str, Any]) -> list[str]:
    """Exhaustion is the finding (never incomplete) and the server's refusal is printed once."""
    problems = []
    if record["diagnosis"].get("incomplete"):
        problems.append("incomplete on the very condition the runbook is about")
    texts = [f["summary"] for f in record["findings"]] + [str(a.get("reason", "")) for a in record["actions"]]
    said = sum(("too many clients" in t or "connection slots are reserved" in t) for t in texts)
    if said != 1:
        problems.append(f"the server's refusal is said {said} times, not once")
    first = record["findings"][0] if record["findings"] else {}
    if first.get("cause") != "connections_exhausted" or first.get("role") != "cause":
        problems.append("the exhaustion is not the finding (role cause, connections_exhausted)")
    return problems


def exporter_names_the_holder(record: dict[str, Any]) -> list[str]:
    problems = exhaustion_said_once(record)
    by_app = [f for f in record["findings"] if f["check"] == "Connections by application"]
    if not by_app or by_app[0]["details"].get("application") != "billing-worker":
        problems.append("the exporter's series do not name billing-worker")
    act = next((a for a in record["actions"] if a["name"] == "terminate_idle"), {})
    if "application_name = 'billing-worker'" not in (act.get("command") or ""):
        problems.append(f"Option 1's command is not scoped to billing-worker: {act.get('command')}")
    return problems


@contextlib.contextmanager
def pool_one_app(bench: Bench, work: Path) -> Iterator[Setup]:
    """reporting's pool holds 15 sessions (idle, committed) of 20."""
    _, app, admin = small_cluster(bench)
    with held(admin, {"reporting": (15, 0), "api-gateway": (2, 0)}):
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": app})


@contextlib.contextmanager
def sessions_queue_behind_a_lock(bench: Bench, work: Path) -> Iterator[Setup]:
    """A psql session holds ACCESS EXCLUSIVE on workflows, idle in its transaction (just now,
    below the idle line); the application's 12 sessions queue behind it."""
    _, app, admin = small_cluster(bench)
    blocker = psycopg.connect(admin, application_name="psql")
    blocker.execute("LOCK TABLE approval_queue IN ACCESS EXCLUSIVE MODE")
    readers = []
    try:
        for _ in range(12):
            conn = psycopg.connect(admin, application_name="api-gateway", autocommit=True)
            readers.append(conn)
            conn.execute("SET statement_timeout = '60s'")
            import threading

            threading.Thread(target=_quiet, args=(conn, "SELECT count(*) FROM approval_queue"), daemon=True).start()
        dbfaults._wait_until_waiting(admin, readers[-1].info.backend_pid)
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": app})
    finally:
        blocker.close()
        for conn in readers:
            with contextlib.suppress(Exception):
                conn.close()


def _quiet(conn: psycopg.Connection[Any], statement: str) -> None:
    with contextlib.suppress(Exception):
        conn.execute(statement)


# -- database-down ------------------------------------------------------------------------------------
@contextlib.contextmanager
def refused(bench: Bench, work: Path) -> Iterator[Setup]:
    yield Setup(env={"RUNBOOK_POSTGRES_DSN": f"postgresql://omnihub:pw-faults@{bench.refused()}/omnihub"})


@contextlib.contextmanager
def wrong_password(bench: Bench, work: Path) -> Iterator[Setup]:
    _, app, _ = small_cluster(bench)
    yield Setup(env={"RUNBOOK_POSTGRES_DSN": app.replace(APP_PASSWORD, "rotated-on-one-side")})


@contextlib.contextmanager
def down_slots_exhausted(bench: Bench, work: Path) -> Iterator[Setup]:
    _, app, _ = small_cluster(bench)
    with held(app, {"api-gateway": (18, 0)}):
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": app})


# -- database-migration-failure -----------------------------------------------------------------------
@contextlib.contextmanager
def blocked_migration(bench: Bench, work: Path) -> Iterator[Setup]:
    dsn = bench.database()
    with dbfaults.blocked_migration(dsn):
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": dsn})


@contextlib.contextmanager
def dirty_migration(bench: Bench, work: Path) -> Iterator[Setup]:
    """golang-migrate stopped midway through version 20261201: schema_migrations says dirty
    (a service migrated by golang-migrate: no alembic_version)."""
    dsn = bench.database()
    with psycopg.connect(dsn) as conn:
        conn.execute("DROP TABLE alembic_version")
        conn.execute("CREATE TABLE schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL)")
        conn.execute("INSERT INTO schema_migrations VALUES (20261201, true)")
        conn.execute("ALTER TABLE workflows ADD COLUMN half_applied text")  # the first half of it
    yield Setup(env={"RUNBOOK_POSTGRES_DSN": dsn})


@contextlib.contextmanager
def long_ddl(bench: Bench, work: Path) -> Iterator[Setup]:
    """A migration builds an index (not concurrently) whose expression is slow: 300 rows at 50 ms,
    15 s, holding its lock on workflows all along; the DDL line is 1 s for this case."""
    dsn = bench.database()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION slow_key(uuid) RETURNS text IMMUTABLE LANGUAGE sql"
            " AS 'SELECT pg_sleep(0.05)::text || $1::text'"
        )
    ddl = psycopg.connect(dsn, application_name="alembic", autocommit=True)
    import threading

    thread = threading.Thread(
        target=_quiet, args=(ddl, "CREATE INDEX workflows_slow_key ON workflows ((slow_key(id)))"), daemon=True
    )
    thread.start()
    time.sleep(1.5)
    try:
        yield Setup(env={"RUNBOOK_POSTGRES_DSN": dsn}, parameters="thresholds:\n  postgres_ddl_s: 1\n")
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_cancel_backend(%s)", (ddl.info.backend_pid,))
        thread.join(10)
        ddl.close()


@contextlib.contextmanager
def invalid_index(bench: Bench, work: Path) -> Iterator[Setup]:
    dsn = bench.database()
    dbfaults.invalid_index(dsn)
    yield Setup(env={"RUNBOOK_POSTGRES_DSN": dsn})


# -- data-corruption ----------------------------------------------------------------------------------
@contextlib.contextmanager
def orphans(bench: Bench, work: Path) -> Iterator[Setup]:
    dsn = bench.database()
    dbfaults.orphan_rows(dsn, workflows=3, approvals=2)
    yield Setup(env={"RUNBOOK_POSTGRES_DSN": dsn})


@contextlib.contextmanager
def rows_deleted(bench: Bench, work: Path) -> Iterator[Setup]:
    """A baseline recorded while the data was good, then 40 % of approval_queue deleted."""
    from runbook_lib.kernel.sources.postgres import Postgres, integrity

    dsn = bench.database()
    pg = Postgres(dsn)
    with pg.connect(read_only=False) as conn:
        counts = integrity.count_rows(conn, integrity.tables(pg, ["profiles", "workflows", "approval_queue"]))
        for statement in integrity.record_baseline_statements(counts, "faults@omnihub.test"):
            conn.execute(statement)
    with psycopg.connect(dsn) as conn:
        conn.execute("DELETE FROM approval_queue WHERE ctid IN (SELECT ctid FROM approval_queue LIMIT 3)")
    yield Setup(env={"RUNBOOK_POSTGRES_DSN": dsn})


def no_orphans_claimed(record: dict[str, Any]) -> list[str]:
    bad = [f for f in record["findings"] if f["check"] == "Orphaned rows" and f["verdict"] != "ok"]
    return [f"orphans reported on a clean database: {f['summary']}" for f in bad]


CASES = [
    Case(
        name="connection-slots-exhausted",
        alertname="HighDatabaseConnections",
        runbook="high-database-connections",
        cause="connections_exhausted",
        action="escalate",
        verdicts=("critical",),
        inject=slots_exhausted,
        what="every non-superuser slot taken by 3 apps; no exporter",
        expect=exhaustion_said_once,
    ),
    Case(
        name="connection-slots-exhausted-superuser",
        alertname="HighDatabaseConnections",
        runbook="high-database-connections",
        cause="connections_exhausted",
        action="escalate",
        verdicts=("critical",),
        inject=slots_exhausted_superuser,
        what="every non-superuser slot taken; the runbook's role is a superuser",
    ),
    Case(
        name="connection-slots-exhausted-exporter",
        alertname="HighDatabaseConnections",
        runbook="high-database-connections",
        cause="connections_exhausted",
        action="escalate",
        verdicts=("critical",),
        inject=slots_exhausted_exporter,
        what="every slot taken, billing-worker idle in tx; exporter in Prometheus",
        expect=exporter_names_the_holder,
    ),
    Case(
        name="idle-in-transaction-leak",
        alertname="HighDatabaseConnections",
        runbook="high-database-connections",
        cause="idle_in_transaction_leak",
        action="terminate_idle",
        verdicts=("critical", "warning"),
        inject=idle_leak_one_app,
        what="workflow-worker leaves 9 sessions idle in tx; api-gateway 2, as old",
        expect=terminate_names_only_the_leaking_app,
    ),
    Case(
        name="pool-exhausted-one-app",
        alertname="HighDatabaseConnections",
        runbook="high-database-connections",
        cause="pool_exhausted",
        action="escalate",
        verdicts=("critical", "warning"),
        inject=pool_one_app,
        what="reporting's pool holds 15 of 20 slots",
    ),
    Case(
        name="sessions-behind-a-lock",
        alertname="HighDatabaseConnections",
        runbook="high-database-connections",
        cause="lock_blocker",
        action="escalate",
        verdicts=("critical", "warning"),
        inject=sessions_queue_behind_a_lock,
        what="12 api-gateway sessions queue behind a psql lock",
    ),
    Case(
        name="database-refused",
        alertname="DatabaseDown",
        runbook="database-down",
        cause="server_down",
        action="escalate",
        verdicts=("critical",),
        inject=refused,
        what="nothing listens at the DSN's address",
        severity="critical",
    ),
    Case(
        name="database-auth-failed",
        alertname="DatabaseDown",
        runbook="database-down",
        cause="auth_failed",
        action="escalate",
        verdicts=("critical",),
        inject=wrong_password,
        what="the application's password rotated on one side",
        severity="critical",
    ),
    Case(
        name="database-slots-exhausted",
        alertname="DatabaseDown",
        runbook="database-down",
        cause="connections_exhausted",
        action="escalate",
        verdicts=("critical",),
        inject=down_slots_exhausted,
        what="every non-superuser slot taken",
        severity="critical",
    ),
    Case(
        name="migration-blocked-by-lock",
        alertname="DatabaseMigrationFailed",
        runbook="database-migration-failure",
        cause="lock_blocker",
        action="terminate_blocker",
        verdicts=("critical",),
        inject=blocked_migration,
        what="ALTER TABLE waits behind an idle psql transaction",
    ),
    Case(
        name="migration-dirty",
        alertname="DatabaseMigrationFailed",
        runbook="database-migration-failure",
        cause="migration_failed",
        action="escalate",
        verdicts=("critical",),
        inject=dirty_migration,
        what="golang-migrate version 20261201 dirty, half applied",
    ),
    Case(
        name="migration-long-ddl",
        alertname="DatabaseMigrationFailed",
        runbook="database-migration-failure",
        cause="long_ddl",
        action="escalate",
        verdicts=("warning",),
        inject=long_ddl,
        what="CREATE INDEX on a slow expression runs 15 s (DDL line 1 s)",
    ),
    Case(
        name="migration-invalid-index",
        alertname="DatabaseMigrationFailed",
        runbook="database-migration-failure",
        cause="invalid_index",
        action="escalate",
        verdicts=("warning",),
        inject=invalid_index,
        what="CREATE UNIQUE INDEX CONCURRENTLY failed on duplicates",
    ),
    Case(
        name="orphan-rows",
        alertname="DataIntegrityCheckFailed",
        runbook="data-corruption",
        cause="orphan_rows",
        action="safe_mode",
        verdicts=("critical",),
        inject=orphans,
        what="3 workflows and 2 approvals written around their foreign keys",
        severity="critical",
    ),
    Case(
        name="row-count-drop",
        alertname="DataIntegrityCheckFailed",
        runbook="data-corruption",
        cause="row_count_drop",
        action="safe_mode",
        verdicts=("critical", "warning"),
        inject=rows_deleted,
        what="3 approval_queue rows deleted after the baseline",
        severity="critical",
        expect=no_orphans_claimed,
    ),
]
