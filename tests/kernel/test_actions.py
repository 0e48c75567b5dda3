"""Guarded actions: nothing changes unless mode=resolve, dry_run=False, an operator, approval,
and an audit row; every real change leaves audit_logs rows and shows in the record."""

from __future__ import annotations

import pytest

from runbook_lib.core.settings import load_settings
from runbook_lib.kernel.notebook import Runbook
from runbook_lib.kernel.sources.postgres import Postgres
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import NAMESPACE, REDIS_URL, alert_payload, cli, load_record, write_json


def make_rb(kubeconfig, dsn, **kw) -> Runbook:
    settings = load_settings(
        overrides={"kubernetes.kubeconfig": str(kubeconfig), "kubernetes.namespace": NAMESPACE, "postgres.dsn": dsn}
        if dsn
        else {"kubernetes.kubeconfig": str(kubeconfig), "kubernetes.namespace": NAMESPACE}
    )
    return Runbook(settings, parse_alert(alert_payload()["alerts"][0]), **kw)


def writes(fake) -> list[dict]:
    return [r for r in fake.requests if r["method"] != "GET"]


def audit_rows(dsn: str) -> list[tuple]:
    df = Postgres(dsn).query("SELECT actor, action, outcome FROM audit_logs WHERE source = 'runbook' ORDER BY id")
    return list(df.itertuples(index=False, name=None))


@pytest.mark.parametrize(
    ("kw", "status", "reason"),
    [
        (
            {"mode": "diagnose", "dry_run": False, "operator": "alice", "approve": ["rollback"]},
            "proposed",
            "diagnose mode",
        ),
        ({"mode": "resolve", "dry_run": True, "operator": "alice", "approve": ["rollback"]}, "dry_run", "dry_run=True"),
        ({"mode": "resolve", "dry_run": False, "operator": "", "approve": ["rollback"]}, "refused", "no operator"),
        ({"mode": "resolve", "dry_run": False, "operator": "alice", "approve": ["scale"]}, "refused", "not approved"),
    ],
)
def test_each_missing_condition_blocks_the_change(fake_kube, fresh_db, kw, status, reason) -> None:
    fake, kubeconfig = fake_kube
    rb = make_rb(kubeconfig, fresh_db, **kw)
    action = rb.actions.rollback()
    assert action["status"] == status and reason in action["reason"]
    assert action["plan"]["to_revision"] == 6  # the exact change is still shown
    assert writes(fake) == []
    assert audit_rows(fresh_db) == []


def test_no_audit_trail_no_change(fake_kube) -> None:
    fake, kubeconfig = fake_kube
    rb = make_rb(kubeconfig, None, mode="resolve", dry_run=False, operator="alice", approve=["rollback"])
    action = rb.actions.rollback()
    assert action["status"] == "refused" and "no audit trail available" in action["reason"]
    assert writes(fake) == []


def test_approved_rollback_patches_and_audits(fake_kube, fresh_db) -> None:
    fake, kubeconfig = fake_kube
    rb = make_rb(kubeconfig, fresh_db, mode="resolve", dry_run=False, operator="alice", approve=["rollback"])
    action = rb.actions.rollback()
    assert action["status"] == "done"
    assert action["result"] == {"rolled_back_to": 6, "from_revision": 7, "images": ["omnihub/api-gateway:1.42.0"]}
    [patch] = writes(fake)
    assert patch["method"] == "PATCH" and patch["content_type"] == "application/json-patch+json"
    assert patch["body"][0]["value"]["spec"]["containers"][0]["image"] == "omnihub/api-gateway:1.42.0"
    assert audit_rows(fresh_db) == [
        ("alice", "runbook.rollback", "started"),
        ("alice", "runbook.rollback", "succeeded"),
    ]
    assert len(action["audit_ids"]) == 2
    # unapproved options in the same run stay untouched
    assert rb.actions.scale(10)["status"] == "refused"
    assert rb.actions.enable_safe_mode()["status"] == "refused"
    assert len(writes(fake)) == 1
    assert Postgres(fresh_db).emergency_controls()["execution_safe_mode"] is False


def test_approved_safe_mode_and_scale(fake_kube, fresh_db) -> None:
    fake, kubeconfig = fake_kube
    rb = make_rb(kubeconfig, fresh_db, mode="resolve", dry_run=False, operator="bob", approve=["safe_mode", "scale"])
    assert rb.actions.enable_safe_mode(reason="incident 42")["status"] == "done"
    controls = Postgres(fresh_db).emergency_controls()
    assert controls["execution_safe_mode"] is True
    assert (controls["reason"], controls["updated_by"]) == ("incident 42", "bob")
    assert rb.actions.enable_safe_mode()["status"] == "skipped"  # already on: no second change
    scale = rb.actions.scale(9)
    assert scale["status"] == "done" and scale["result"] == {"replicas": 9, "was": 3}
    assert fake.deployments[(NAMESPACE, "api-gateway")]["spec"]["replicas"] == 9
    assert writes(fake)[0]["content_type"] == "application/merge-patch+json"
    assert [r[1:] for r in audit_rows(fresh_db)] == [
        ("runbook.safe_mode", "started"),
        ("runbook.safe_mode", "succeeded"),
        ("runbook.scale", "started"),
        ("runbook.scale", "succeeded"),
    ]


def test_a_failed_change_is_audited_as_failed(fake_kube, fresh_db) -> None:
    fake, kubeconfig = fake_kube
    rb = make_rb(kubeconfig, fresh_db, mode="resolve", dry_run=False, operator="alice", approve=["rollback"])
    rollback = rb.actions.rollback  # prepare against a live server, then lose it before the change
    fake.deployments[(NAMESPACE, "api-gateway")]["spec"]["template"]["spec"]["containers"][0]["image"] = "x"
    original = fake.handle

    def refuse_patch(method, *args):
        if method == "PATCH":
            return (
                409,
                {"kind": "Status", "code": 409, "reason": "Conflict", "message": "the object has been modified"},
                "application/json",
            )
        return original(method, *args)

    fake.handle = refuse_patch
    action = rollback()
    assert action["status"] == "failed" and "Conflict" in action["reason"]
    assert [r[2] for r in audit_rows(fresh_db)] == ["started", "failed"]


def test_resolve_run_through_the_cli_records_the_action(
    tmp_path, archive_dir, prometheus, fake_kube, fresh_db, monkeypatch
) -> None:
    fake, kubeconfig = fake_kube
    env = {
        "RUNBOOK_PROMETHEUS_URL": prometheus.url,
        "RUNBOOK_POSTGRES_DSN": fresh_db,
        "RUNBOOK_REDIS_URL": REDIS_URL,
        "KUBECONFIG": str(kubeconfig),
        "RUNBOOK_KUBE_NAMESPACE": NAMESPACE,
    }
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli(
        "run",
        "--alert",
        str(payload),
        "--mode",
        "resolve",
        "--execute",
        "--operator",
        "carol",
        "--approve",
        "rollback",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    record = load_record(res.stdout)
    actions = {a["name"]: a for a in record["actions"]}
    assert actions["rollback"]["status"] == "done" and actions["rollback"]["operator"] == "carol"
    assert actions["scale"]["status"] == "refused" and actions["safe_mode"]["status"] == "refused"
    assert record["parameters"] == {
        "environment": "local",
        "mode": "resolve",
        "dry_run": False,
        "operator": "carol",
        "approve": ["rollback"],
    }
    assert [r[2] for r in audit_rows(fresh_db)] == ["started", "succeeded"]
    assert len(writes(fake)) == 1
    assert "Actions (1 taken" in (tmp_path.parent / res.stdout.strip()).read_text()


def test_an_action_with_an_unknown_outcome_is_audited_and_shown(fake_kube, fresh_db, monkeypatch) -> None:
    _, kubeconfig = fake_kube
    settings = load_settings(
        overrides={
            "kubernetes.kubeconfig": str(kubeconfig),
            "kubernetes.namespace": NAMESPACE,
            "postgres.dsn": fresh_db,
        }
    )
    rb = Runbook(
        settings,
        parse_alert(alert_payload()["alerts"][0]),
        mode="resolve",
        dry_run=False,
        operator="al",
        approve=["rollback"],
    )

    def boom(*_a, **_k):
        raise RuntimeError("connection reset after the request was sent")

    monkeypatch.setattr(rb.kubernetes, "patch_deployment", boom)
    action = rb.actions.rollback()
    assert action["status"] == "failed" and "may or may not have happened" in action["reason"]
    outcomes = rb.postgres.query("SELECT outcome FROM audit_logs WHERE source = 'runbook' ORDER BY id")[
        "outcome"
    ].tolist()
    assert outcomes == ["started", "failed"]
    assert rb.actions_taken[-1]["name"] == "rollback"


def test_a_record_recommends_one_option_and_a_decision_never_overrides_it(fake_kube) -> None:
    """high-error-rate once marked Rollback and Scale both recommended: the first the runbook
    recommends stands, a later one says which did, and an escalation after it records nothing."""
    _fake, kubeconfig = fake_kube
    rb = make_rb(kubeconfig, None)
    first = rb.actions.rollback(recommended=True, why="a rollout started shortly before the spike")
    second = rb.actions.scale(5, recommended=True, why="pods are at their CPU/memory limits")
    assert first["recommended"] is True and second["recommended"] is False
    assert "rollback is" in second["why"]
    assert rb.escalate("PostgreSQL is down") == {}
    assert [a["name"] for a in rb.actions_taken if a["recommended"]] == ["rollback"]
