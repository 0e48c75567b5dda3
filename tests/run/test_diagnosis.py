"""What a record says first: the diagnosis. With every backend unreachable it is incomplete,
in the record, in `runbook records`, and in `runbook run`'s exit code (3); never a green
success."""

from __future__ import annotations

from pathlib import Path

import yaml

from runbook_lib.record.diagnosis import diagnose
from tests.helpers import alert_payload, cli, load_record, write_json

REFUSED = "127.0.0.1:9"  # nothing listens on the discard port


def unreachable_kubeconfig(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://{REFUSED}"}}],
                "users": [{"name": "u", "user": {"token": "unreachable-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": "omnihub-prod"}}],
                "current-context": "x",
            }
        )
    )
    return path


def test_every_backend_unreachable_is_incomplete_never_succeeded(tmp_path: Path, archive_dir: Path) -> None:
    env = {
        "RUNBOOK_PROMETHEUS_URL": f"http://{REFUSED}",
        "RUNBOOK_POSTGRES_DSN": f"postgresql://runbook@{REFUSED}/omnihub",
        "RUNBOOK_REDIS_URL": f"redis://{REFUSED}/0",
        "KUBECONFIG": str(unreachable_kubeconfig(tmp_path / "kubeconfig")),
    }
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "--alert", str(payload), env=env)
    assert res.returncode == 3, res.stderr
    assert "INCOMPLETE — the diagnosis could not be made" in res.stderr
    record = load_record(res.stdout)
    assert record["status"] == "succeeded"  # the notebook ran to the end ...
    assert record["diagnosis"]["incomplete"] is True and record["diagnosis"]["verdict"] == "incomplete"
    html = Path(res.stdout.strip()).read_text()
    headline = html[html.index('class="rb-headline') : html.index('class="rb-when"')]
    assert "INCOMPLETE" in headline and "rb-unchecked" in headline and "SUCCEEDED" not in headline
    listed = cli("records")
    row = next(line for line in listed.stdout.splitlines() if record["id"] in line)
    assert "INCOMPLETE" in row


def test_the_headline_names_symptom_cause_and_option() -> None:
    findings = [
        {"check": "Redis health", "verdict": "ok", "summary": "PONG"},
        {"check": "Recent rollouts", "verdict": "critical", "summary": "Revision 7 5m before", "role": "cause"},
        {"check": "5xx", "verdict": "critical", "summary": "/x fails 25%", "role": "symptom", "essential": True},
        {"check": "PostgreSQL health", "verdict": "unchecked", "summary": "PostgreSQL: not configured"},
    ]
    actions = [
        {"title": "Scale up", "step": "Option 2", "step_title": "Scale up", "recommended": False},
        {"title": "Rollback", "step": "Option 1", "step_title": "Rollback (if recent deployment)", "recommended": True},
    ]
    d = diagnose(findings, actions)
    assert d["headline"] == (
        "CRITICAL — /x fails 25%; likely cause: Revision 7 5m before; recommended: Option 1 — Rollback (if recent deployment)"
    )
    assert not d["incomplete"] and (d["checked"], d["unchecked"]) == (3, 1)
    essential_unchecked = [{**findings[2], "verdict": "unchecked"}, findings[0]]
    assert diagnose(essential_unchecked, [])["incomplete"], "every essential check unchecked"
    assert diagnose([findings[0]], [])["verdict"] == "ok"
