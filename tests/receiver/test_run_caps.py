"""One notification cannot queue thousands of runs: beyond the run caps, alerts are journaled and
grouped into one triage record that lists them, never dropped; /metrics reports the caps."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from runbook_lib.core.contract import GROUP_ALERTNAME
from runbook_lib.core.settings import load_settings
from runbook_lib.receiver.app import create_app
from runbook_lib.sre.alertmanager import parse_payload
from runbook_lib.workers.jobs import JobHandler
from tests.helpers import alert_payload

TOKEN = "caps-test-token-1234"


def many(n: int, alertname: str = "Flood") -> dict[str, Any]:
    payload = alert_payload(alertname=alertname, severity="warning")
    template = payload["alerts"][0]
    payload["alerts"] = [
        {**template, "labels": {**template["labels"], "instance": f"host-{i}"}, "fingerprint": f"fl{i:014x}"}
        for i in range(n)
    ]
    return payload


def test_a_flood_becomes_a_few_runs_and_one_group_record(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "archive.path": str(tmp_path / "executed"),
            "prometheus.url": None,
            "receiver.token": TOKEN,
            "receiver.max_body_bytes": 8 << 20,
            "receiver.max_runs_per_notification": 2,
            "receiver.max_runs_per_window": 4,
            "receiver.run_window_s": 3600,
        }
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        first = client.post("/alerts", json=many(5000), headers=headers).json()
        assert (first["accepted"], first["grouped"]) == (5000, 4998)
        second = client.post("/alerts", json=many(3, "Later"), headers=headers).json()
        assert (second["accepted"], second["grouped"]) == (3, 2), "the window (2 runs + the group run) allows one more"
        metrics = client.get("/metrics").text
    assert 'runbook_run_cap{kind="per_notification"} 2.0' in metrics
    assert 'runbook_run_cap{kind="per_3600s"} 4.0' in metrics
    assert "runbook_alerts_grouped_total 5000.0" in metrics

    handler = JobHandler(settings)
    outcomes = []
    while (job := handler.intake.claim("t")) is not None:
        outcomes.append((job.alertname, handler.process(job)))
    assert outcomes == [
        ("Flood", "succeeded"),
        ("Flood", "succeeded"),
        (GROUP_ALERTNAME, "succeeded"),
        ("Later", "succeeded"),
    ]
    rows = handler.intake.jobs()
    assert {r["state"] for r in rows} == {"done"} and len(rows) == 5000 + 3 + 1
    group = next(r for r in rows if r["kind"] == "group")
    members = [r for r in rows if r["grouped_into"] == group["id"]]
    assert len(members) == 5000 and {r["outcome"] for r in members} == {"grouped"}
    assert {r["record_id"] for r in members} == {group["record_id"]}

    record = handler.runner.archive.load(group["record_id"])
    assert record["runbook"] == "triage" and record["alert"]["labels"]["runbook_group"] == "true"
    routing = next(f for f in record["findings"] if f["check"] == "Routing")
    assert routing["verdict"] == "warning" and "5000 alerts over the run cap" in routing["summary"]
    assert "Flood x4998" in routing["summary"] and "Later x2" in routing["summary"]
    listed = json.loads(record["alert"]["annotations"]["grouped"])
    assert 50 < len(listed) < 5000 and listed[0].startswith("Flood [warning] fl")

    resolved = many(1)
    resolved["alerts"][0] = {**resolved["alerts"][0], "status": "resolved", "endsAt": "2099-01-01T00:00:00Z"}
    resolved["alerts"][0]["fingerprint"] = members[-1]["fingerprint"]
    resolved["alerts"][0]["startsAt"] = json.loads(members[-1]["alert"])["startsAt"]
    resolved["alerts"][0]["labels"] = json.loads(members[-1]["alert"])["labels"]
    handler.intake.accept(parse_payload(resolved), "{}")
    assert handler.process(handler.intake.claim("t")) == "resolved"
    events = handler.runner.archive.load(group["record_id"])["events"]
    assert [e["event"] for e in events] == ["resolved"], "a grouped alert's resolution lands on the group record"


def test_a_senders_alert_with_the_group_name_never_captures_members(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"archive.path": str(tmp_path / "executed"), "receiver.max_runs_per_notification": 1}
    )
    intake = JobHandler(settings).intake
    decoy = alert_payload(alertname=GROUP_ALERTNAME, status="resolved")
    decoy["alerts"][0]["endsAt"] = "2099-01-01T00:00:00Z"
    intake.accept(parse_payload(decoy), "{}")
    intake.accept(parse_payload(many(4)), "{}")
    rows = intake.jobs()
    decoy_row = next(r for r in rows if r["status"] == "resolved")
    group = next(r for r in rows if r["kind"] == "group")
    assert [r for r in rows if r["grouped_into"] == decoy_row["id"]] == []
    assert len([r for r in rows if r["grouped_into"] == group["id"]]) == 3


def test_the_window_budget_uses_its_partial_index(tmp_path: Path) -> None:
    """The budget is counted on every notification: it must not scan the journal's history."""
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed")})
    intake = JobHandler(settings).intake
    plan = " ".join(
        str(row[-1])
        for row in intake._conn().execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM jobs INDEXED BY jobs_runs"
            " WHERE status = 'firing' AND grouped_into IS NULL AND received_at > 0"
        )
    )
    assert "jobs_runs" in plan and "SCAN jobs" not in plan.replace("USING COVERING INDEX", "")


def test_a_group_of_alerts_with_huge_names_still_gets_its_record(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "archive.path": str(tmp_path / "executed"),
            "prometheus.url": None,
            "receiver.max_runs_per_notification": 1,
        }
    )
    handler = JobHandler(settings)
    payload = many(3)
    for i, alert in enumerate(payload["alerts"]):
        alert["labels"]["alertname"] = f"{i}" + "N" * 9000
    handler.intake.accept(parse_payload(payload), "{}")
    outcomes = []
    while (job := handler.intake.claim("t")) is not None:
        outcomes.append((job.kind, handler.process(job)))
    assert ("group", "succeeded") in outcomes
