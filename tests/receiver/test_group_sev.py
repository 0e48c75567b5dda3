"""A run-cap group record's SEV is its worst member's: a storm that holds a DatabaseDown (SEV-1 in
the catalog) gives the group record SEV-1 and an incident-commander deadline, while its members
stay out of the record's linked alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runbook_lib.core.settings import load_settings
from runbook_lib.sre.alertmanager import parse_payload
from runbook_lib.workers.jobs import JobHandler, sev_members
from tests.helpers import alert_payload

SEV1 = {"ServiceDown", "DatabaseDown", "KillSwitchEnabled"}


def storm() -> dict[str, Any]:
    """One notification: three warnings, a critical alert outside sev1, and a DatabaseDown last
    (so it is one of those grouped, not one of those run)."""
    payload = alert_payload(alertname="Flood", severity="warning")
    template = payload["alerts"][0]
    alerts = [(f"fl{i:014x}", {"alertname": "Flood", "severity": "warning", "instance": f"host-{i}"}) for i in range(3)]
    alerts.append(("cr00000000000001", {"alertname": "HighErrorBudgetBurnRate", "severity": "critical"}))
    alerts.append(("db00000000000001", {"alertname": "DatabaseDown", "severity": "critical", "instance": "pg-0"}))
    payload["alerts"] = [{**template, "labels": labels, "fingerprint": fp} for fp, labels in alerts]
    return payload


def test_sev_members_keeps_the_worst_member_of_any_group() -> None:
    members = [{"labels": {"alertname": "Flood", "severity": "warning"}}] * 1000 + [
        {"labels": {"alertname": "HighErrorBudgetBurnRate", "severity": "critical"}},
        {"labels": {"alertname": "DatabaseDown", "severity": "critical"}},
        {"labels": {"alertname": "DatabaseDown", "severity": "critical"}},
    ]
    assert sev_members(members, SEV1) == [
        {"alertname": "DatabaseDown", "severity": "critical"},
        {"alertname": "HighErrorBudgetBurnRate", "severity": "critical"},
        {"alertname": "Flood", "severity": "warning"},
    ]
    assert sev_members([{"labels": {"alertname": "Flood", "severity": "warning"}}] * 3, SEV1) == [
        {"alertname": "Flood", "severity": "warning"}
    ]


def test_a_group_holding_a_sev1_alert_is_a_sev1_record(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "archive.path": str(tmp_path / "executed"),
            "prometheus.url": None,
            "receiver.max_runs_per_notification": 1,
        }
    )
    handler = JobHandler(settings)
    handler.intake.accept(parse_payload(storm()), "{}")
    group_job = None
    while (job := handler.intake.claim("t")) is not None:
        if job.kind == "group":
            group_job = job
            break
        handler.process(job)
    assert group_job is not None

    plan = handler.plan(group_job)
    assert plan is not None and plan["linked"] == []
    assert {"alertname": "DatabaseDown", "severity": "critical"} in plan["members"]
    record = handler.executor.execute(plan)
    assert record["alert"]["labels"]["runbook_group"] == "true"
    assert record["incident"]["sev"] == "SEV-1"
    assert "incident commander" in [d["name"] for d in record["incident"]["deadlines"]]
    assert record["linked_alerts"] == []  # the members are listed by the group's annotation, not as linked
