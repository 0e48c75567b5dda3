"""Failure paths found in review: a corrupt index, repeated resolved processing, actions whose
outcome is unknown, secrets with special characters, structure-safe redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import NAMESPACE, alert_payload

from runbook_lib.archive import Archive
from runbook_lib.context import parse_alert, parse_payload
from runbook_lib.errors import ArchiveError, ConfigError
from runbook_lib.notebook import Runbook
from runbook_lib.redact import Redactor
from runbook_lib.settings import _secret_parts, load_settings, safe_endpoint
from runbook_lib.worker import JobRunner


@pytest.fixture
def runner(tmp_path: Path) -> JobRunner:
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    return JobRunner(settings)


def test_a_corrupt_index_line_fails_jobs_cleanly_instead_of_killing_workers(runner: JobRunner) -> None:
    archive = runner.engine.archive
    archive.root.mkdir(parents=True, exist_ok=True)
    archive.index_path.write_text('{"seq": 1, "half a line\n')
    runner.intake.accept(parse_payload(alert_payload(alertname="Whatever")), "{}")
    job = runner.intake.claim("test")
    assert job is not None
    assert runner.process(job) == "error"
    [row] = runner.intake.jobs()
    assert row["state"] == "done" and row["outcome"] == "error"
    assert "line 1 is not a JSON object" in json.loads(row["notes"])[0]
    with pytest.raises(ArchiveError, match="line 1 is not a JSON object"):
        archive.is_indexed("x")


def test_resolved_processed_twice_chains_one_event(runner: JobRunner) -> None:
    firing = alert_payload(alertname="SomeAlert", fingerprint="feed01")
    runner.intake.accept(parse_payload(firing), "{}")
    assert runner.process(runner.intake.claim("t")) == "succeeded"  # triage, nothing configured
    resolved = json.loads(json.dumps(firing))
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2099-01-01T00:00:00Z"
    runner.intake.accept(parse_payload(resolved), "{}")
    job = runner.intake.claim("t")
    assert runner.process(job) == "resolved"
    runner.process(job)  # as after a crash between chaining the event and finishing the job
    events = [e for e in runner.engine.archive.entries() if e["type"] == "event"]
    assert len(events) == 1 and events[0]["event"] == "resolved" and events[0]["data"]["job"] == job.id
    assert runner.engine.archive.verify()[1] == []


def test_a_job_that_keeps_dying_is_given_up(runner: JobRunner) -> None:
    runner.intake.accept(parse_payload(alert_payload()), "{}")
    for _ in range(4):  # claimed, and its worker "died" each time
        job = runner.intake.claim("w")
        runner.intake.requeue(job.id, "worker died")
    job = runner.intake.claim("w")
    assert job.attempts == 5 and runner.process(job) == "error"
    assert runner.intake.jobs()[0]["outcome"] == "error"


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


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        ("postgresql://app:pa#ss?w/rd@db:5432/omnihub", "pa#ss?w/rd"),
        ("postgresql://app:p@ss@db/omnihub", "p@ss"),
        ("postgresql://app:s%23cret@db/omnihub", "s#cret"),
    ],
)
def test_passwords_with_url_special_characters_are_redacted(dsn: str, password: str) -> None:
    parts = _secret_parts(dsn, url_like=True)
    assert password in parts
    assert "db" in safe_endpoint(dsn) and password not in safe_endpoint(dsn)
    red = Redactor(parts)
    for shown in (password, json.dumps(password)[1:-1], password.replace("&", "&amp;")):
        assert password not in red.text(f"x {shown} y")


def test_redaction_keeps_structure_and_escaped_forms() -> None:
    secret = 'Tok&en<"42>'
    red = Redactor(_secret_parts(secret))
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "x",
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": f"token={secret}"},
                    {"output_type": "display_data", "data": {"text/html": "<b>Tok&amp;en&lt;&quot;42&gt;</b>"}},
                ],
            }
        ]
    }
    out = red.data(nb, keep=frozenset({"cell_type", "output_type", "name"}))
    dumped = json.dumps(out)
    assert "Tok&" not in dumped and "42" not in dumped
    assert out["cells"][0]["outputs"][0]["output_type"] == "stream"

    code = Redactor(["code"])  # a secret that is also a cell type
    kept = code.data({"cell_type": "code", "source": "code here"}, keep=frozenset({"cell_type"}))
    assert kept == {"cell_type": "code", "source": "[REDACTED] here"}


def test_secrets_too_short_to_redact_are_refused() -> None:
    with pytest.raises(ConfigError, match="RUNBOOK_POSTGRES_DSN: its secret is shorter than 4"):
        load_settings(environ={"RUNBOOK_POSTGRES_DSN": "postgresql://app:pw@db/omnihub"})
    with pytest.raises(ConfigError, match="RUNBOOK_WEBHOOK_TOKEN"):
        load_settings(environ={"RUNBOOK_WEBHOOK_TOKEN": "abc"})
    assert load_settings(environ={"SOME_TOKEN": "1"}).env == "local"  # unrelated short variables: ignored


def test_verify_without_index_still_checks_head(tmp_path: Path) -> None:
    arc = Archive(tmp_path)
    arc.append_event(None, "note", {"x": 1})
    head = arc.head()["hash"]
    arc.index_path.unlink()
    assert any("HEAD says" in str(p) for p in arc.verify()[1])
    (tmp_path / "HEAD").unlink()
    assert arc.verify()[1] == []
    assert arc.verify(expect_head=head)[1] != []


def test_verify_reports_orphan_events_and_stray_files(tmp_path: Path) -> None:
    arc = Archive(tmp_path)
    arc.append_event("20261126T000000Z-x-00000000", "resolved", {})
    (tmp_path / "2026" / "11" / "26").mkdir(parents=True)
    (tmp_path / "2026" / "11" / "26" / "planted.html").write_text("x")
    problems = [str(p) for p in arc.verify()[1]]
    assert any("which is not in the index" in p for p in problems)
    assert any("planted.html" in p for p in problems)
