"""The environment-restore DR drill (dr-drill-environment-restore), executed through the runner:
a real pg_dump of a seeded temporary database restored into a scratch database, the project's
own deploy manifests created through the real kubernetes client on the fake API server, the
smoke run of `runbook run triage` in a subprocess against the restored database and a real
Prometheus; PASS, a FAIL that still cleans up, and diagnose mode changing nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from runbook_lib.core.settings import load_settings
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox import services
from runbook_lib.sandbox.fake_kube import FakeKube
from tests.helpers import HOME, NAMESPACE, REDIS_URL, row_counts, scratch_databases

pytestmark = pytest.mark.services

SLUG = "dr-drill-environment-restore"
DRILL = {"mode": "resolve", "dry_run": False, "operator": "alice@omnihub.test", "approve": ["dr_env_restore"]}
MANIFESTS = [
    d for p in sorted((HOME / "deploy" / "kubernetes").glob("*.yaml")) for d in yaml.safe_load_all(p.read_text()) if d
]


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch, archive_dir: Path, tmp_path: Path, prometheus: services.Service, fresh_db: str
) -> Iterator[tuple[FakeKube, str]]:
    """Every backend configured: the seeded database, Prometheus, Redis, and an empty fake API."""
    fake = FakeKube()
    fake.start()
    for k, v in {
        "RUNBOOK_POSTGRES_DSN": fresh_db,
        "RUNBOOK_PROMETHEUS_URL": prometheus.url,
        "RUNBOOK_REDIS_URL": REDIS_URL,
        "KUBECONFIG": str(fake.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)),
        "RUNBOOK_KUBE_NAMESPACE": NAMESPACE,
    }.items():
        monkeypatch.setenv(k, v)
    yield fake, fresh_db
    fake.stop()


def run(**request: Any) -> dict[str, Any]:
    result = Runner(load_settings()).run(RunRequest(alert=None, slug=SLUG, **request))
    assert result.status == "succeeded", result.record.get("failed_cell")
    return result.record


def finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    found = [f for f in record["findings"] if f["check"] == check]
    assert found, f"no {check!r} finding in {[f['check'] for f in record['findings']]}"
    return found[0]


def action(record: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in record["actions"] if a["name"] == "dr_env_restore")


def test_the_environment_restore_passes_and_leaves_nothing_behind(env: tuple[FakeKube, str], drill_server: str) -> None:
    fake, dsn = env
    before, scratch_before = row_counts(dsn), scratch_databases(drill_server)
    record = run(**DRILL)
    verdict = finding(record, "DR environment-restore verdict")
    d = verdict["details"]
    assert d["drill_verdict"] == "PASS" and verdict["verdict"] == "ok", verdict["summary"]
    assert d["reasons"] == [] and set(d["steps"]) == {"database", "manifests", "smoke"}
    assert 0 < d["total_s"] <= d["rto_target_s"] == 3600 and d["total_s"] >= max(d["steps"].values())
    print(f"PASS total_s={d['total_s']} steps={d['steps']}")
    assert d["tables"]["workflows"] == {"backup": 300, "restored": 300}
    assert set(d["tables"]) == {"profiles", "workflows", "approval_queue", "audit_logs", "emergency_controls"}
    assert d["smoke"]["runbook triage"].startswith("succeeded in ") and d["smoke"]["Redis"].startswith("PONG")
    # every manifest object was created, then read back, then deleted by the cleanup
    assert MANIFESTS and len(d["objects"]) == len(MANIFESTS)
    paths = {(r["method"], r["path"]) for r in fake.requests}
    for m in MANIFESTS:  # each object was created, read back at its own path and deleted
        [created] = [
            r
            for r in fake.requests
            if r["method"] == "POST"
            and r["body"]["metadata"]["name"] == m["metadata"]["name"]
            and r["body"]["kind"] == m["kind"]
        ]
        own = f"{created['path']}/{m['metadata']['name']}"
        assert {("GET", own), ("DELETE", own)} <= paths, own
    assert len([r for r in fake.requests if r["method"] == "DELETE"]) == len(MANIFESTS)
    created = {(r["body"]["kind"], r["body"]["metadata"]["name"]) for r in fake.requests if r["method"] == "POST"}
    assert created == {(m["kind"], m["metadata"]["name"]) for m in MANIFESTS}
    assert fake.objects == {} and finding(record, "Cleanup")["details"]["objects_left"] == []
    restored = finding(record, "Database restore")["details"]["scratch"]
    assert restored.startswith("rb_drill_") and restored not in scratch_databases(drill_server)
    assert finding(record, "Cleanup")["details"]["dropped"] is True
    assert not (scratch_databases(drill_server) - scratch_before) and row_counts(dsn) == before, (
        "the source is untouched"
    )
    assert action(record)["status"] == "done"


def test_a_manifest_the_api_rejects_fails_the_drill_and_still_cleans_up(
    env: tuple[FakeKube, str], drill_server: str
) -> None:
    fake, dsn = env
    fake.reject_kinds = {"RoleBinding"}
    before, scratch_before = row_counts(dsn), scratch_databases(drill_server)
    record = run(**DRILL)
    verdict = finding(record, "DR environment-restore verdict")
    assert verdict["details"]["drill_verdict"] == "FAIL" and verdict["verdict"] == "critical"
    (reason,) = verdict["details"]["reasons"]
    assert (
        reason.startswith("Kubernetes manifests: RoleBinding/runbook-diagnose: create ") and "Invalid (422)" in reason
    )
    not_run = finding(record, "Steps not run")["details"]
    assert not_run["steps"] == ["Smoke checks"] and not_run["reasons"] == ["Kubernetes manifests failed"]
    assert record["diagnosis"]["headline"].startswith("CRITICAL — DR drill environment-restore: FAIL")
    assert fake.objects == {}, "the Roles created before the rejection were deleted"
    assert not (scratch_databases(drill_server) - scratch_before) and row_counts(dsn) == before
    assert finding(record, "Cleanup")["verdict"] == "ok" and record["diagnosis"]["verdict"] == "critical"


def test_diagnose_mode_only_runs_the_pre_checks(env: tuple[FakeKube, str], drill_server: str) -> None:
    fake, dsn = env
    before, scratch_before = row_counts(dsn), scratch_databases(drill_server)
    record = run()
    pre = finding(record, "Pre-drill checks")
    assert pre["verdict"] == "ok" and len(pre["details"]["objects"]) == len(MANIFESTS)
    assert action(record)["status"] == "proposed"
    not_run = finding(record, "Steps not run")
    assert not_run["details"]["steps"] == ["Database restore", "Kubernetes manifests", "Smoke checks"]
    assert not_run["summary"].startswith("Not run (proposed")
    assert [f["check"] for f in record["findings"]].count("Steps not run") == 1
    assert finding(record, "DR environment-restore verdict")["summary"].startswith(
        "DR drill environment-restore: not run (proposed"
    )
    assert [r["method"] for r in fake.requests] == ["GET"] and fake.objects == {}
    assert not (scratch_databases(drill_server) - scratch_before) and row_counts(dsn) == before
