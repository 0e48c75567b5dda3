"""Slack's buttons and PagerDuty's v3 webhooks reach the receiver's app: a valid signature is
acted on once, a forged, stale or replayed one answers 401 and changes nothing; a PagerDuty
webhook acknowledges and resolves the record paged with the same dedup key; an approval of a
fix that is not destructive queues its run at once, one that is not the recommended fix is
refused; without their secrets both endpoints are 404."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runbook_lib.core.contract import pin
from runbook_lib.core.settings import load_settings
from runbook_lib.receiver.app import create_app
from runbook_lib.receiver.interact import pagerduty_signature_problem, slack_signature_problem
from runbook_lib.record import diagnosis
from runbook_lib.record.archive import LocalArchive
from runbook_lib.sre import lifecycle, oncall
from tests.helpers import HOME
from tests.web.test_records_page import make_record

PD_SECRET = "pagerduty-webhook-secret-0123456789"
SLACK_SECRET = "slack-signing-secret-0123456789abcdef"


def pd_headers(body: bytes, secret: str = PD_SECRET) -> dict[str, str]:
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-PagerDuty-Signature": f"v1=deadbeef,v1={sig}", "Content-Type": "application/json"}


def pd_event(kind: str, key: str, agent: str, at: datetime) -> bytes:
    return json.dumps(
        {
            "event": {
                "id": f"E{kind[-6:]}",
                "event_type": kind,
                "resource_type": "incident",
                "occurred_at": at.isoformat(),
                "agent": {"summary": agent, "type": "user_reference"},
                "data": {"id": "Q1ABC", "type": "incident", "incident_key": key, "status": kind.split(".")[1]},
            }
        }
    ).encode()


@pytest.fixture
def app(tmp_path: Path) -> tuple[TestClient, LocalArchive]:
    environ = {
        "RUNBOOK_HOME": str(HOME),
        "RUNBOOK_ARCHIVE": str(tmp_path / "executed"),
        "RUNBOOK_PAGERDUTY_WEBHOOK_SECRET": PD_SECRET,
        "RUNBOOK_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "RUNBOOK_ESCALATION": "pagerduty",
    }
    settings = load_settings(environ=environ)
    with TestClient(create_app(settings, require_auth=False)) as client:
        yield client, LocalArchive(tmp_path / "executed")


def test_slack_signatures_follow_the_v0_scheme_and_its_window() -> None:
    body, ts = b"payload=%7B%7D", 1_700_000_000
    good = "v0=" + hmac.new(b"s3cret", f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    assert slack_signature_problem("s3cret", str(ts), good, body, ts + 299, 300) is None
    assert (
        slack_signature_problem("s3cret", str(ts), good, body, ts + 301, 300)
        == "stale timestamp (outside the replay window)"
    )
    assert slack_signature_problem("s3cret", str(ts), good, body + b"x", ts, 300) == "bad signature"
    assert slack_signature_problem("other", str(ts), good, body, ts, 300) == "bad signature"
    assert slack_signature_problem("s3cret", "12ab", good, body, ts, 300) == "malformed timestamp"
    assert pagerduty_signature_problem(PD_SECRET, pd_headers(body)["X-PagerDuty-Signature"], body) is None
    assert pagerduty_signature_problem(PD_SECRET, "v1=00", body) == "bad signature"


def test_a_pagerduty_webhook_acknowledges_and_resolves_the_record_a_forged_one_is_refused(app) -> None:
    client, archive = app
    rid = make_record(
        archive.root, 7, runbook="database-down", alertname="DatabaseDown", fired_ago=timedelta(minutes=9)
    )
    key = f"runbook-{7:016x}"  # the dedup key the receiver paged with (no Alertmanager group)
    now = datetime.now(UTC)
    forged = pd_event("incident.acknowledged", key, "Mallory", now)
    assert (
        client.post("/pagerduty/webhook", content=forged, headers=pd_headers(forged, "wrong-secret")).status_code == 401
    )
    assert client.post("/pagerduty/webhook", content=forged, headers={"X-PagerDuty-Signature": ""}).status_code == 401
    assert archive.load(rid)["events"] == []

    ack = pd_event("incident.acknowledged", key, "Avery Example", now - timedelta(minutes=2))
    answer = client.post("/pagerduty/webhook", content=ack, headers=pd_headers(ack))
    assert answer.status_code == 200 and answer.json() == {"recorded": "acknowledged", "records": [rid]}
    again = client.post("/pagerduty/webhook", content=ack, headers=pd_headers(ack))  # PagerDuty retries
    assert again.status_code == 200 and "ignored" in again.json()
    done = pd_event("incident.resolved", key, "Avery Example", now)
    assert client.post("/pagerduty/webhook", content=done, headers=pd_headers(done)).json()["recorded"] == "resolved"
    other = pd_event("incident.acknowledged", "some-other-key", "Avery Example", now)
    assert "ignored" in client.post("/pagerduty/webhook", content=other, headers=pd_headers(other)).json()

    # a Slack click (any other source of signed requests) does not make PagerDuty's deliveries replayable
    slack_click(client, "U0NOBODY", "ack", rid)
    assert "ignored" in client.post("/pagerduty/webhook", content=ack, headers=pd_headers(ack)).json()
    # not a v3 webhook: 400; fields of the wrong type are ignored, never a 500
    junk = json.dumps({"event": {"event_type": "incident.acknowledged", "data": ["x"], "agent": 7}}).encode()
    assert client.post("/pagerduty/webhook", content=junk, headers=pd_headers(junk)).status_code == 200
    assert client.post("/pagerduty/webhook", content=b"[1]", headers=pd_headers(b"[1]")).status_code == 400

    rec = archive.load(rid)
    assert [(e["event"], e["data"]["via"]) for e in rec["events"]] == [
        ("acknowledged", "pagerduty"),
        ("resolved", "pagerduty"),
    ]
    story = lifecycle.summarize(rec["events"], rec["alert"]["fingerprint"])
    assert story["state"] == "resolved" and story["acknowledged"]["by"] == "Avery Example"
    assert story["first_ack"]["at"] == (now - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")  # PagerDuty's time


def slack_click(client: TestClient, user: str, action_id: str, value: str) -> Any:
    body = urllib.parse.urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "user": {"id": user},
                    "actions": [{"action_id": action_id, "value": value, "action_ts": str(time.time_ns())}],
                }
            )
        }
    ).encode()
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SLACK_SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return client.post("/slack/actions", content=body, headers=headers)


def recommend(archive: LocalArchive, rid: str, name: str) -> None:
    """Give a hand-made record a recommended fix (as the diagnosis writes it)."""
    path = archive.root / archive.relpath_for(rid) / "record.json"
    rec = json.loads(path.read_text())
    rec["diagnosis"] = {
        **diagnosis.of(rec),
        "recommended_action": {"name": name, "title": "Scale out", "params": {}, "command": "", "reason": ""},
    }
    path.write_text(json.dumps(rec))


def test_a_single_approval_queues_a_fix_that_is_not_destructive_and_only_the_recommended_one(app) -> None:
    client, archive = app
    rid = make_record(
        archive.root, 8, runbook="high-error-rate", alertname="HighErrorRate", fired_ago=timedelta(minutes=5)
    )
    recommend(archive, rid, "scale")
    roster = oncall.Roster.load(oncall.roster_path(HOME))
    primary = oncall.who(roster, datetime.now(UTC)).primary
    wrong = slack_click(client, primary.slack, "approve", f"{rid} dr_failover").json()["text"]
    assert "is not the fix" in wrong
    ok = slack_click(client, primary.slack, "approve", f"{rid} scale").json()["text"]
    assert "running it now on a worker" in ok
    jobs = [j for j in client.app.state.intake.jobs() if j["kind"] == "action"]
    assert len(jobs) == 1 and json.loads(jobs[0]["alert"])["operator"] == primary.name
    approval = next(e for e in archive.load(rid)["events"] if e["event"] == "approval")
    assert approval["data"]["approvals"] == approval["data"]["needed"] == 1
    request = json.loads(jobs[0]["alert"])
    assert request["approval"] == approval["hash"]  # the worker checks this line
    assert request["approve"] == [pin("scale", {})]  # bound to the parameters approved
    # a second click (a double tap, or a colleague) while its run is queued runs nothing twice
    again = slack_click(client, primary.slack, "approve", f"{rid} scale").json()["text"]
    assert "its run is under way" in again
    assert len([j for j in client.app.state.intake.jobs() if j["kind"] == "action"]) == 1
    assert len([e for e in archive.load(rid)["events"] if e["event"] == "approval"]) == 1


def test_without_their_secrets_both_endpoints_are_404(tmp_path: Path) -> None:
    settings = load_settings(environ={"RUNBOOK_HOME": str(HOME), "RUNBOOK_ARCHIVE": str(tmp_path)})
    with TestClient(create_app(settings, require_auth=False)) as client:
        assert client.post("/slack/actions", content=b"payload=%7B%7D").status_code == 404
        assert client.post("/pagerduty/webhook", content=b"{}").status_code == 404


def test_signed_requests_of_one_source_never_expire_another_sources_replay_guard(tmp_path: Path) -> None:
    from runbook_lib.intake.journal import Intake

    intake = Intake(tmp_path / "journal.sqlite3")
    assert intake.first_sight("pd:abc", 1000, 7 * 86400)
    assert intake.first_sight("slack:x", 1700, 600)  # drops Slack's old digests only
    assert not intake.first_sight("pd:abc", 1800, 7 * 86400)
    assert intake.first_sight("slack:x", 1700 + 601, 600)  # past Slack's window its own is dropped
