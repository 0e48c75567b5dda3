"""One Alertmanager group, one story: alerts of a group routed to the same runbook within the
link window are diagnosed by one run and linked to its record; a group's records of other
runbooks cross-link each other."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from runbook_lib.core.settings import load_settings
from runbook_lib.sre.alertmanager import parse_payload
from runbook_lib.workers.jobs import JobHandler
from runbook_lib.workers.local import claim_next
from tests.helpers import alert_payload

GROUP = '{}/{}:{service="api-gateway"}'


def grouped(*alertnames: str) -> dict[str, Any]:
    payload = alert_payload(alertname=alertnames[0])
    payload["groupKey"] = GROUP
    template = payload["alerts"][0]
    payload["alerts"] = [
        {**template, "labels": {**template["labels"], "alertname": name}, "fingerprint": f"g{i:015x}{name[:3]}"}
        for i, name in enumerate(alertnames)
    ]
    return payload


def drain(handler: JobHandler) -> list[tuple[str, str]]:
    out = []
    while (job := claim_next(handler, "w", lambda _r: None)) is not None:
        out.append((job.alertname, handler.process(job)))
    return out


def test_two_alerts_of_one_group_on_one_runbook_run_once(tmp_path: Path) -> None:
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    handler = JobHandler(settings)
    handler.intake.accept(parse_payload(grouped("HighErrorBudgetBurnRate", "ElevatedErrorRate")), "{}")
    assert drain(handler) == [("HighErrorBudgetBurnRate", "succeeded")]
    rows = handler.intake.jobs()
    assert [r["state"] for r in rows] == ["done", "done"]
    assert rows[1]["outcome"] == "linked" and rows[1]["record_id"] == rows[0]["record_id"]
    records = [e for e in handler.runner.archive.entries() if e["type"] == "record"]
    assert len(records) == 1 and records[0]["runbook"] == "high-error-rate", "high-error-rate ran once"
    record = handler.runner.archive.load(rows[0]["record_id"])
    assert [a["alertname"] for a in record["linked_alerts"]] == ["ElevatedErrorRate"]
    html = (Path(record["dir"]) / "record.html").read_text()
    assert "Also firing in this group, diagnosed by this run (not run again): ElevatedErrorRate" in html

    # later in the same group: another alert on the same runbook is linked to the finished run;
    # one on another runbook gets its own record, and the two records point at each other
    handler.intake.accept(parse_payload(grouped("LowErrorBudget")), "{}")  # routed to triage
    later = json.loads(json.dumps(grouped("ElevatedErrorRate")))
    later["alerts"][0]["fingerprint"] = "later-elevated"
    handler.intake.accept(parse_payload(later), "{}")
    outcomes = dict(drain(handler))
    assert outcomes["ElevatedErrorRate"] == "linked"
    assert outcomes["LowErrorBudget"] == "succeeded"
    first = handler.runner.archive.load(rows[0]["record_id"])
    assert sorted(e["event"] for e in first["events"]) == ["linked", "related"]
    low = next(r for r in handler.intake.jobs() if r["alertname"] == "LowErrorBudget")
    related = handler.runner.archive.load(low["record_id"])["related_records"]
    assert related[0] == {"alertname": "HighErrorBudgetBurnRate", "record_id": rows[0]["record_id"]}


def test_a_zero_link_window_runs_each_alert(tmp_path: Path) -> None:
    settings = load_settings(
        overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None, "receiver.link_window_s": 0}
    )
    handler = JobHandler(settings)
    handler.intake.accept(parse_payload(grouped("HighErrorBudgetBurnRate", "ElevatedErrorRate")), "{}")
    assert [o for _, o in drain(handler)] == ["succeeded", "succeeded"]


def test_an_alert_routed_by_its_runbook_annotation_links_like_its_run_routes(tmp_path: Path) -> None:
    """EndpointErrorBudgetBurn is not in the catalog: its run goes to the runbook its annotation
    names (high-error-rate). Linking must decide the same way, or one problem runs twice (it
    once routed by alertname alone: triage, so never the same story)."""
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    handler = JobHandler(settings)
    payload = grouped("HighErrorBudgetBurnRate", "EndpointErrorBudgetBurn")
    payload["alerts"][1]["annotations"] = {**payload["alerts"][1]["annotations"], "runbook": "high-error-rate"}
    handler.intake.accept(parse_payload(payload), "{}")
    assert drain(handler) == [("HighErrorBudgetBurnRate", "succeeded")]
    rows = handler.intake.jobs()
    assert rows[1]["outcome"] == "linked" and rows[1]["record_id"] == rows[0]["record_id"]
