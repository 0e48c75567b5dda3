"""SEV levels and deadlines against the package's tables (SRE_PACKAGE.md, "Severity Levels" and
"Incident Timeline"), written out here by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from runbook_lib.sre import incident

SEV1 = {"ServiceDown", "DatabaseDown", "KillSwitchEnabled"}
FIRED = "2026-11-27T10:00:00+00:00"


def alert(name: str, severity: str) -> dict:
    return {"labels": {"alertname": name, "severity": severity}, "startsAt": FIRED}


def test_the_sev_rules() -> None:
    assert incident.for_alert(alert("DatabaseDown", "critical"), SEV1)["sev"] == "SEV-1"
    assert incident.for_alert(alert("DLQBacklog", "critical"), SEV1)["sev"] == "SEV-2"
    assert incident.for_alert(alert("HighLatency", "warning"), SEV1)["sev"] == "SEV-3"
    assert incident.for_alert(alert("SomethingNew", "critical"), SEV1)["sev"] == "SEV-2"
    assert incident.for_alert(alert("SomethingNew", "info"), SEV1)["sev"] == "SEV-3"
    assert incident.for_alert(None, SEV1) is None
    # one run for a group: the worst of the alerts it stands for
    members = [{"alertname": "ServiceDown", "severity": "critical"}]
    assert incident.for_alert(alert("HighLatency", "warning"), SEV1, members=members)["sev"] == "SEV-1"


def test_every_deadline_of_the_package_timeline() -> None:
    due = {d["name"]: d["due"] for d in incident.for_alert(alert("DatabaseDown", "critical"), SEV1)["deadlines"]}
    assert due == {
        "acknowledge": "2026-11-27T10:10:00Z",
        "incident commander": "2026-11-27T10:15:00Z",
        "status update": "2026-11-27T10:30:00Z",
        "resolve or escalate": "2026-11-27T11:00:00Z",
    }
    sev2 = {d["name"] for d in incident.for_alert(alert("DLQBacklog", "critical"), SEV1)["deadlines"]}
    assert "incident commander" not in sev2 and "acknowledge" in sev2
    assert incident.for_alert(alert("HighLatency", "warning"), SEV1)["deadlines"] == []
    resolved = "2026-11-27T10:40:00+00:00"
    inc = incident.for_alert(alert("DatabaseDown", "critical"), SEV1)
    rows = {r["name"]: r for r in incident.status(inc, datetime(2026, 11, 27, 12, 0, tzinfo=UTC), resolved)}
    assert rows["preliminary report"]["due"] == "2026-11-27T11:40:00Z" and rows["preliminary report"]["passed"]
    assert rows["full report"]["due"] == "2026-11-28T10:40:00Z" and not rows["full report"]["passed"]
    assert rows["postmortem"]["due"] == "2026-12-04T10:40:00Z"
    assert rows["resolve or escalate"]["met"] and not rows["incident commander"]["met"]  # IC was due at 10:15
    ahead = incident.next_deadline(rows.values())
    assert ahead["name"] == "full report"
