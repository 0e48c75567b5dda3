"""The environment-restore DR drill (SRE_PACKAGE.md Q3): from nothing, in one timed run,
restore the latest backup into a scratch database and check its schema and rows, create the
project's own deploy manifests through the Kubernetes API and read each back, smoke-check
every configured backend and run one runbook (``triage`` by default) in diagnose mode against
the restored environment; PASS when every step succeeded within ``rto_target_s``.

The database part is :mod:`.database`'s, shared with the Q1 drill (the source is only read; the
scratch database ``rb_drill_<time>_<hex>`` is always dropped). The Kubernetes objects it creates
are deleted again at the end (best effort; the cleanup finding names any left behind). The smoke
runbook runs through :mod:`.subrun` against the restored database, into a throwaway archive.

It runs only with ``mode="resolve"``, ``dry_run=False``, an operator and ``dr_env_restore`` in
``approve``; otherwise only the pre-checks run (backup tools, API reachable, manifests parse).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from runbook_lib.core.errors import SourceError, SourceNotConfigured
from runbook_lib.core.present import duration
from runbook_lib.kernel.drills import database, subrun
from runbook_lib.kernel.drills.base import Drill, Judgement, Ready, StepFailed, drill_step
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.kubernetes import CLUSTER_SCOPED, Kubernetes, object_namespace
from runbook_lib.kernel.sources.postgres import Postgres, integrity

SCHEMA_TABLES = ("profiles", "workflows", "approval_queue", "audit_logs", "emergency_controls")
STEPS = ("database", "manifests", "smoke")


@dataclass
class EnvRestore(Drill):
    source_database: str = ""
    given_backup: Path | None = None
    folder: Path | None = None
    rto_target_s: float = 3600
    smoke_runbook: str = "triage"
    servers: database.Servers | None = None
    kube: Kubernetes | None = None
    manifests: list[dict[str, Any]] = field(default_factory=list)
    steps: dict[str, float] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    taken: database.Backup | None = None
    scratch: str | None = None
    created: list[dict[str, Any]] = field(default_factory=list)

    NAME = "DR drill environment-restore"
    ACTION = "dr_env_restore"
    TITLE = "DR drill: restore the environment from scratch"
    VERDICT = "DR environment-restore verdict"

    # -- 0 ----------------------------------------------------------------------------------
    def readiness(self) -> Ready:
        """The source and the scratch server (:func:`database.check_servers`), the Kubernetes
        API answers, every manifest parses."""
        assert self.folder is not None
        servers = self.servers = database.check_servers(self.rb, self.source_database, self.given_backup)
        problems = list(servers.problems)
        try:
            self.kube = self.rb.kubernetes
            versions = self.kube.api_versions()
            kube_where = f"{self.kube.where} (API {', '.join(versions.get('versions') or [])})"
        except SourceError as exc:
            problems.append(f"Kubernetes API: {exc.reason}")
            kube_where = "unreachable"
        rows = self._read_manifests(problems)
        given = self.given_backup
        plan = {
            "source": servers.source.where,
            "target": f"a scratch database on {servers.server.where} and the Kubernetes API at {kube_where}",
            "backup_file": str(given) if given else None,
            "tools": servers.tools,
            "manifests_dir": str(self.folder),
            "objects": [f"{r['kind']}/{r['name']}" for r in rows],
            "rto_target_s": self.rto_target_s,
            "smoke_runbook": self.smoke_runbook,
            "command": (
                f"{'pg_dump -Fc (from a snapshot)' if given is None else f'pg_restore {given}'} into rb_drill_<time>_<hex>; "
                f"create and read back {len(rows)} object(s) from {self.folder}; health checks; runbook run "
                f"{self.smoke_runbook}; drop the scratch database and delete the objects"
            ),
        }
        if rows:
            self.rb.table(pd.DataFrame(rows), title=f"Manifests in {self.folder}")
        summary = f"{servers.describe()}; Kubernetes API {kube_where}; {len(rows)} manifest object(s) parse"
        return Ready(summary, plan, problems=problems, details={k: v for k, v in plan.items() if k != "command"})

    def _read_manifests(self, problems: list[str]) -> list[dict[str, Any]]:
        assert self.folder is not None
        rows = []
        files = sorted(self.folder.glob("*.yaml")) + sorted(self.folder.glob("*.yml"))
        if not files:
            problems.append(f"no manifests in {self.folder}")
        for path in files:
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
            except (OSError, yaml.YAMLError) as exc:
                problems.append(f"{path.name} does not parse: {str(exc).splitlines()[0]}")
                continue
            for doc in docs:
                meta = doc.get("metadata") if isinstance(doc, dict) else None
                if (
                    not isinstance(meta, dict)
                    or not doc.get("apiVersion")
                    or not doc.get("kind")
                    or not meta.get("name")
                ):
                    problems.append(f"{path.name}: a document without apiVersion, kind and metadata.name")
                    continue
                self.manifests.append(doc)
                rows.append(
                    {"file": path.name, "kind": doc["kind"], "name": meta["name"], "namespace": meta.get("namespace")}
                )
        return rows

    def step_timed(self, key: str, started: float, ended: float) -> None:
        self.started = self.started or started
        self.steps[key] = round(ended - started, 3)
        self.ended = ended

    # -- 1 ----------------------------------------------------------------------------------
    @drill_step("Database restore", "database")
    def restore_database(self) -> None:
        """A fresh pg_dump (rows counted in its snapshot) or the given backup (rows estimated
        at its time), restored into a new scratch database; the schema's tables must exist and
        hold the backup's rows."""
        assert self.servers is not None
        tables = list(SCHEMA_TABLES)
        taken = self.taken = database.take_backup(
            self.rb, self.servers, tables, self.given_backup, prefix="rb-envrestore-"
        )
        name = self.scratch = database.restore_scratch(self.rb, self.servers, taken.file)
        restored = integrity.row_counts(self.servers.server.on_database(name), tables)
        cmp = taken.expected[["table", "rows"]].merge(
            restored[["table", "exists", "rows"]], on="table", suffixes=("_backup", "_restored")
        )
        self.rb.table(cmp, title="Schema and rows: the backup against the restore")
        missing = [r["table"] for _, r in cmp.iterrows() if not r["exists"]]
        differ = [
            f"{r['table']} ({database.count(r['rows_restored'])} rows restored, {database.count(r['rows_backup'])} "
            "in the backup)"
            for _, r in cmp.iterrows()
            if r["exists"] and database.count(r["rows_restored"]) != database.count(r["rows_backup"])
        ]
        self.result["tables"] = {
            r["table"]: {"backup": database.count(r["rows_backup"]), "restored": database.count(r["rows_restored"])}
            for _, r in cmp.iterrows()
        }
        self.result["scratch"] = name
        problems = [f"table(s) missing after the restore: {', '.join(missing)}"] if missing else []
        problems += [f"row counts differ: {'; '.join(differ)}"] if differ else []
        if problems:
            raise StepFailed("; ".join(problems))
        self.rb.finding(
            "Database restore",
            "ok",
            f"Restored {'a fresh pg_dump' if self.given_backup is None else self.given_backup.name} into {name}: "
            f"{', '.join(SCHEMA_TABLES)} exist and hold the backup's rows"
            + ("" if taken.exact else " (estimated from created_at at the backup's time)")
            + ".",
            drill_step="database",
            scratch=name,
            tables=self.result["tables"],
        )

    # -- 2 ----------------------------------------------------------------------------------
    @drill_step("Kubernetes manifests", "manifests")
    def apply_manifests(self) -> None:
        """Create every object of the deploy manifests, then read each back: same kind, name
        and namespace. One failure does not stop the others (all are cleaned up)."""
        assert self.kube is not None
        rows, problems = [], []
        for doc in self.manifests:
            meta = doc.get("metadata") or {}
            want_ns = None if doc.get("kind") in CLUSTER_SCOPED else object_namespace(doc, self.kube.namespace)
            row = {"kind": doc.get("kind"), "name": meta.get("name"), "namespace": want_ns, "created": False}
            try:
                self.kube.create_object(doc)
                self.created.append(doc)
                row["created"] = True
                got = self.kube.read_object(doc)
                gmeta = got.get("metadata") or {}
                same = (got.get("kind"), gmeta.get("name"), gmeta.get("namespace")) == (
                    doc.get("kind"),
                    meta.get("name"),
                    want_ns,
                )
                row["read_back"] = "same" if same else f"{got.get('kind')}/{gmeta.get('namespace')}/{gmeta.get('name')}"
                if not same:
                    problems.append(f"{doc.get('kind')}/{meta.get('name')} read back as {row['read_back']}")
            except SourceError as exc:
                row["read_back"] = exc.reason
                problems.append(f"{doc.get('kind')}/{meta.get('name')}: {exc.reason}")
            rows.append(row)
        self.rb.table(pd.DataFrame(rows), title=f"Deploy manifests against {self.kube.where}")
        self.result["objects"] = [f"{r['kind']}/{r['namespace'] or ''}/{r['name']}" for r in rows]
        if problems:
            raise StepFailed("; ".join(problems))
        self.rb.finding(
            "Kubernetes manifests",
            "ok",
            f"Created and read back {len(rows)} object(s) from {self.plan['manifests_dir']} on {self.kube.where}.",
            drill_step="manifests",
            objects=self.result["objects"],
        )

    # -- 3 ----------------------------------------------------------------------------------
    @drill_step("Smoke checks", "smoke")
    def smoke(self) -> None:
        """Each configured backend answers (PostgreSQL on the restored database), then one
        runbook runs in diagnose mode against the restored database (:mod:`.subrun`)."""
        assert self.servers is not None and self.scratch is not None and self.kube is not None
        restored = self.servers.server.on_database(self.scratch)
        checks: dict[str, str] = {}
        problems = []

        def probe(name: str, fn: Callable[[], str]) -> None:
            try:
                checks[name] = fn()
            except SourceNotConfigured:
                checks[name] = "not configured"
            except Exception as exc:
                checks[name] = f"FAILED: {getattr(exc, 'reason', exc)}"
                problems.append(f"{name}: {getattr(exc, 'reason', exc)}")

        kube = self.kube
        probe("PostgreSQL (restored)", lambda: f"up, {restored.health()['latency_ms']:.0f} ms")
        probe("Prometheus", lambda: f"up, vector(1) = {self.rb.prometheus.scalar('vector(1)')}")
        probe("Kubernetes", lambda: f"up, versions {kube.api_versions().get('versions')}")
        probe("Redis", lambda: f"PONG in {self.rb.redis.ping():.1f} ms")
        ok, detail = self._run_runbook(restored)
        checks[f"runbook {self.smoke_runbook}"] = detail
        if not ok:
            problems.append(f"runbook {self.smoke_runbook}: {detail}")
        self.rb.table(pd.DataFrame([{"check": k, "answer": v} for k, v in checks.items()]), title="Smoke checks")
        self.result["smoke"] = checks
        if problems:
            raise StepFailed("; ".join(problems))
        unconfigured = [k for k, v in checks.items() if v == "not configured"]
        self.rb.finding(
            "Smoke checks",
            "ok",
            "Every configured backend answers and "
            f"`runbook run {self.smoke_runbook}` succeeded against the restored database"
            + (f" ({', '.join(unconfigured)} not configured)" if unconfigured else "")
            + ".",
            drill_step="smoke",
            checks=checks,
        )

    def _run_runbook(self, restored: Postgres) -> tuple[bool, str]:
        """The smoke runbook in diagnose mode, RUNBOOK_POSTGRES_DSN on the restored database, its
        record in a temporary archive: (it succeeded, what happened)."""
        conninfo, pg_env = restored.libpq_environment()
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        alert: dict[str, Any] = {
            "status": "firing",
            "labels": {"alertname": "DREnvRestoreSmoke", "severity": "info"},
            "annotations": {"summary": "DR environment-restore drill: smoke run"},
            "startsAt": now,
        }
        prom = self.rb.settings.prometheus.url
        if prom:  # an expression on our own Prometheus, for triage to re-evaluate
            alert["generatorURL"] = f"{prom.rstrip('/')}/graph?g0.expr=vector%281%29%20%3D%3D%200&g0.tab=1"
        archive = Path(tempfile.mkdtemp(prefix="rb-envrestore-archive-"))
        environ = {k: v for k, v in os.environ.items() if k not in ("RUNBOOK_POSTGRES_DSN_FILE", "PGPASSWORD")}
        environ |= {"RUNBOOK_POSTGRES_DSN": conninfo, "RUNBOOK_ARCHIVE": str(archive), **pg_env}
        try:
            done = subrun.run_runbook(self.smoke_runbook, environ, env=self.rb.settings.env, alert=alert)
        except Exception as exc:
            return False, f"did not run ({type(exc).__name__}: {str(exc)[:300]})"
        finally:
            shutil.rmtree(archive, ignore_errors=True)
        return done.succeeded, f"{done.outcome} in {duration(done.seconds)}"

    # -- 4 ----------------------------------------------------------------------------------
    def judge(self) -> Judgement:
        total = round((self.ended or 0.0) - (self.started or 0.0), 3)
        reasons = []
        if total > self.rto_target_s:
            reasons.append(f"total {duration(total)} is over the RTO target {duration(self.rto_target_s)}")
        self.result.update({"total_s": total, "steps": dict(self.steps), "rto_target_s": self.rto_target_s})
        numbers = f"the environment was restored in {duration(total)} (target {duration(self.rto_target_s)})"
        return Judgement(numbers, reasons, complete=set(self.steps) == set(STEPS))

    # -- 5 ----------------------------------------------------------------------------------
    def undo(self) -> tuple[bool, str]:
        """Drop the scratch database, delete the created Kubernetes objects, remove the drill's
        backup file."""
        ok, notes = database.drop(self.servers, self.scratch, self.taken)
        left = []
        for doc in reversed(self.created):
            try:
                assert self.kube is not None
                self.kube.delete_object(doc)
            except Exception as exc:
                left.append(
                    f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')} ({getattr(exc, 'reason', exc)})"
                )
        if self.created:
            notes.append(f"{len(self.created) - len(left)} of {len(self.created)} Kubernetes object(s) deleted")
        if left:
            notes.append(f"left behind, delete by hand: {', '.join(left)}")
        self.result |= {"scratch_dropped": ok and bool(self.scratch), "objects_left": left}
        self.rb.finding(
            "Cleanup",
            "ok" if ok and not left else "critical",
            ("; ".join(notes) or "nothing was created") + ".",
            drill_step="cleanup",
            scratch=self.scratch,
            dropped=bool(self.scratch) and ok,
            objects_left=left,
        )
        return ok and not left, ""


def prepare(
    rb: RunbookLike,
    source_database: str = "",
    backup_file: str = "",
    manifests_dir: str = "deploy/kubernetes",
    rto_target_s: float = 3600,
    smoke_runbook: str = "triage",
) -> EnvRestore:
    """Step 0, changing nothing: the source answers, pg_dump/pg_restore exist and are new
    enough, the role may create databases, no other drill is running, the Kubernetes API
    answers, every manifest parses; then the guard's decision."""
    folder = Path(manifests_dir)
    return EnvRestore(
        rb,
        source_database=source_database,
        given_backup=Path(backup_file).expanduser() if backup_file else None,
        folder=folder if folder.is_absolute() else rb.settings.home / folder,
        rto_target_s=float(rto_target_s),
        smoke_runbook=str(smoke_runbook or "triage"),
    ).ready()
