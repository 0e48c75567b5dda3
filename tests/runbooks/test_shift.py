"""The on-call shift checklists, executed through the runner against the real test services
(PostgreSQL, Prometheus, RabbitMQ, the fake Kubernetes API) and a real archive holding an
incident record made by a real run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook_lib.clients import toil
from runbook_lib.core.settings import load_settings
from runbook_lib.record.archive import LocalArchive
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sre import oncall
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import HOME, alert_payload, cli

pytestmark = pytest.mark.services


def run(slug: str | None = None, alertname: str | None = None) -> dict[str, Any]:
    alert = parse_alert(alert_payload(alertname)["alerts"][0]) if alertname else None
    result = Runner(load_settings()).run(RunRequest(alert=alert, slug=slug))
    assert result.status == "succeeded", result.record.get("failed_cell")
    return result.record


def finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    found = [f for f in record["findings"] if f["check"] == check]
    assert found, f"no {check!r} in {[f['check'] for f in record['findings']]}"
    return found[0]


def test_shift_start_and_end_on_real_services(
    full_env: dict[str, str], archive_dir: Path, fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", fresh_db)
    monkeypatch.setenv("RUNBOOK_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
    incident = run(alertname="HighErrorBudgetBurnRate")  # a real incident record, still firing
    assert incident["incident"]["sev"] == "SEV-2"
    fired = datetime.fromisoformat(incident["alert"]["startsAt"].replace("Z", "+00:00"))
    at_firing = oncall.who(oncall.Roster.load(HOME / "parameters" / "oncall.yaml"), fired)
    assert incident["incident"]["on_call"] == {
        "primary": at_firing.primary.name,
        "secondary": at_firing.secondary.name,
        "manager": at_firing.manager.name,
        "senior_sre": at_firing.senior_sre.name,
        "incident_commander": at_firing.incident_commander.name,
    }

    start = run("oncall-shift-start")
    expected = oncall.who(oncall.Roster.load(HOME / "parameters" / "oncall.yaml"), datetime.now(UTC))
    who = finding(start, "On call now")["details"]
    assert (who["primary"], who["secondary"]) == (expected.primary.name, expected.secondary.name)
    opened = finding(start, "Open incidents")
    assert opened["details"]["records"] == [incident["id"]] and "SEV-2 HighErrorBudgetBurnRate" in opened["summary"]
    assert finding(start, "Access with the configured credentials")["details"]["reachable"] == {
        "Kubernetes": "ok",
        "PostgreSQL": "ok",
        "Prometheus": "ok",
        "RabbitMQ": "ok",
    }
    assert any(f["check"].startswith("Error budget:") for f in start["findings"])
    # no drill has run in this archive: every drill of an ended quarter is flagged overdue
    quarter = (datetime.now(UTC).month - 1) // 3 + 1
    ended = ["database-restore", "regional-failover", "environment-restore", "chaos"][: quarter - 1]
    assert finding(start, "DR drills")["details"]["overdue"] == ended

    # the alert resolves; its report is owed until `runbook report` attaches one
    LocalArchive(archive_dir).append_event(
        incident["id"], "resolved", {"ends_at": datetime.now(UTC).isoformat(), "duration_s": 600}
    )
    cfg = toil.ToilConfig.load(HOME / "parameters" / "oncall.yaml")
    # logged in the shift the checklist reports (just after a handover: the one that just ended)
    at = oncall.ending_shift(oncall.Roster.load(HOME / "parameters" / "oncall.yaml"), datetime.now(UTC)).since
    for minutes, text in ((90, "restarted the exporter by hand"), (30, "copied a runbook link into a ticket")):
        toil.add(fresh_db, "alice", minutes, cfg.categories[0], text, categories=cfg.categories, at=at)
    end = run("oncall-shift-end")
    assert finding(end, "Open incidents")["details"]["open"] == 0
    owed = finding(end, "Reports owed")
    assert owed["details"]["owed"] == 1 and "preliminary report" in owed["summary"]
    spent = finding(end, "Toil this shift")["details"]
    assert spent["minutes"] == 120 and spent["share"] == pytest.approx(120 / (cfg.hours_per_week * 60))

    res = cli("report", incident["id"], env={"RUNBOOK_ARCHIVE": str(archive_dir), "RUNBOOK_POSTGRES_DSN": fresh_db})
    assert res.returncode == 0, res.stderr
    after = run("oncall-shift-end")
    assert finding(after, "Reports owed")["details"]["owed"] == 0
    with psycopg.connect(fresh_db) as conn:  # the checklists only read: no row was written by them
        assert conn.execute("SELECT count(*) FROM toil_entries").fetchone()[0] == 2
