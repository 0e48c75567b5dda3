"""The human half of an incident, end to end on real services: a real Alertmanager pages, the
receiver (`runbook serve`) writes the record and posts Block Kit to a loopback Slack; signed
interaction payloads (signed the way Slack signs them) acknowledge it and approve its recommended
fix, which a worker runs in resolve mode against a real PostgreSQL with its audit rows; forged,
stale and replayed requests change nothing; `runbook show`, the records page and the incident
report tell the story with its deadlines."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import verify
from runbook_lib.sandbox.services import start_alertmanager, start_receiver, wait_for
from runbook_lib.sre import oncall
from tests.helpers import HOME, cli, posts_received, temp_database
from tests.support.minimal import make_runbook

pytestmark = pytest.mark.slow
TOKEN = "incident-e2e-token"
SIGNING = "slack-signing-secret-for-tests-0123456789"
# the start line every real runbook has (the minimal collection's only diagnoses)
START = (
    "rb = runbook_lib.start(alert=alert, environment=environment, mode=mode, dry_run=dry_run,"
    " operator=operator, approve=approve)"
)
FIX = (
    'rb.finding("Kill switch", "critical", "the kill switch is on: every write is refused", role="symptom")\n'
    'rb.actions.disable_control(reason="incident drill: the switch was left on", recommended=True,'
    ' why="the kill switch is on")'
)


def signed(body: bytes, ts: int, secret: str = SIGNING) -> dict[str, str]:
    """The headers Slack sends: X-Slack-Signature is v0= HMAC-SHA256 over v0:<timestamp>:<body>."""
    digest = hmac.new(secret.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click(base: str, user: str, action_id: str, value: str, n: int) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "actions": [{"action_id": action_id, "value": value, "type": "button", "action_ts": str(time.time_ns())}],
        "response_url": f"{base}/response/{n}",
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path / "home"
    (home / "parameters").mkdir(parents=True)
    for item in (HOME / "parameters").iterdir():
        target = home / "parameters" / item.name
        if item.is_dir():
            shutil.copytree(item, target)
        else:
            target.write_bytes(item.read_bytes())
    local = home / "parameters" / "environments" / "local.yaml"
    extra = {"incident": {"two_person": {"disable_kill_switch": True}, "slack_response_hosts": ["127.0.0.1"]}}
    local.write_text(local.read_text() + "\n" + yaml.safe_dump(extra))
    runbooks = tmp_path / "runbooks"
    make_runbook(runbooks, "kill-switch", START, FIX, title="# Kill switch on\n\nDisable it (guarded).")
    catalog = tmp_path / "catalog.yaml"
    alert = {"name": "KillSwitchStuck", "severity": "critical", "runbook": "kill-switch", "for": "0s"}
    catalog.write_text(yaml.safe_dump({"alerts": [{**alert, "expr": "vector(1)", "summary": "kill switch on"}]}))
    with temp_database("incident") as dsn, posts_received() as (slack, got):
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE emergency_controls SET omnihub_kill_switch = true")
        env = {
            "RUNBOOK_HOME": str(home),
            "RUNBOOK_RUNBOOKS_DIR": str(runbooks),
            "RUNBOOK_CATALOG": str(catalog),
            "RUNBOOK_ARCHIVE": str(tmp_path / "executed"),
            "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
            "RUNBOOK_POSTGRES_DSN": dsn,
            "RUNBOOK_SLACK_WEBHOOK_URL": f"{slack}/services/T0/B0/hook",
            "RUNBOOK_SLACK_SIGNING_SECRET": SIGNING,
            "RUNBOOK_RECORD_BASE_URL": "http://runbooks.test:9095",
            "RUNBOOK_WARM_KERNELS": "0",
        }
        receiver = start_receiver(tmp_path / "receiver", env, workers=1)
        am = start_alertmanager(tmp_path / "am", f"{receiver.url}/alerts", bearer_token=TOKEN)
        try:
            yield {"env": env, "receiver": receiver, "am": am, "slack": slack, "dsn": dsn, "home": home, "got": got}
        finally:
            am.stop()
            receiver.stop()


def test_page_acknowledge_and_approve_from_slack(stack: dict[str, Any]) -> None:
    def posts(prefix: str) -> list[dict[str, Any]]:
        return [body for path, body in stack["got"] if path.startswith(prefix)]

    env, receiver, slack = stack["env"], stack["receiver"], stack["slack"]
    archive = LocalArchive(Path(env["RUNBOOK_ARCHIVE"]))
    fired = datetime.now(UTC).replace(microsecond=0)
    alert = {"labels": {"alertname": "KillSwitchStuck", "severity": "critical"}, "startsAt": fired.isoformat()}
    httpx.post(f"{stack['am'].url}/api/v2/alerts", json=[alert], timeout=5).raise_for_status()
    card = wait_for("the Block Kit card", lambda: next(iter(posts("/services/")), None), 90, receiver)
    buttons = {b["action_id"]: b for blk in card["blocks"] if blk["type"] == "actions" for b in blk["elements"]}
    assert set(buttons) >= {"record", "ack", "ic", "approve", "resolve"}
    assert buttons["approve"]["text"]["text"].startswith("Approve: Disable")
    rid = buttons["ack"]["value"]
    assert buttons["approve"]["value"] == f"{rid} disable_kill_switch"

    roster = oncall.Roster.load(oncall.roster_path(stack["home"]))
    now = oncall.who(roster, datetime.now(UTC))
    url = f"{receiver.url}/slack/actions"
    body = click(slack, now.primary.slack, "ack", rid, 1)
    ts = int(time.time())
    forged = httpx.post(url, content=body, headers=signed(body, ts, secret="not-the-signing-secret-at-all"))
    stale = httpx.post(url, content=body, headers=signed(body, ts - 301))
    unsigned = httpx.post(url, content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (forged.status_code, stale.status_code, unsigned.status_code) == (401, 401, 401)
    assert "stale" in stale.json()["error"]
    assert [e for e in archive.load(rid)["events"] if e["event"] == "acknowledged"] == []

    ok = httpx.post(url, content=body, headers=signed(body, ts))
    assert ok.status_code == 200 and f"{now.primary.name} acknowledged" in ok.json()["text"]
    replay = httpx.post(url, content=body, headers=signed(body, ts))
    assert replay.status_code == 401 and "replayed" in replay.json()["error"]
    acks = [e for e in archive.load(rid)["events"] if e["event"] == "acknowledged"]
    assert len(acks) == 1 and acks[0]["data"]["by"] == now.primary.name and acks[0]["data"]["via"] == "slack"
    updated = wait_for(
        "the card updated in place", lambda: [b for b in posts("/response/1") if b.get("replace_original")], 30
    )
    assert f"acknowledged by {now.primary.name}" in json.dumps(updated[0])

    shown = cli("show", rid, env={"RUNBOOK_ARCHIVE": env["RUNBOOK_ARCHIVE"]})
    assert f"state     acknowledged by {now.primary.name} at" in shown.stdout
    assert "met    acknowledge" in shown.stdout
    page = httpx.get(f"{receiver.url}/records/{rid}", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert f"Incident acknowledged by {now.primary.name}" in page and "acknowledge met at" in page
    index = httpx.get(f"{receiver.url}/records", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "acknowledged</span>" in index and f"by {now.primary.name} at" in index

    # an unmapped Slack user, and a roster person not on call, are refused with the reason
    def press(user: str, action: str, value: str, n: int) -> dict[str, Any]:
        b = click(slack, user, action, value, n)
        r = httpx.post(url, content=b, headers=signed(b, int(time.time())))
        assert r.status_code == 200
        return r.json()

    assert "not in the on-call roster" in press("U0NOBODY", "approve", f"{rid} disable_kill_switch", 2)["text"]
    bystander = next(
        p for p in roster.people if p.name not in (now.primary.name, now.secondary.name, *roster.approvers)
    )
    assert "is not on call now" in press(bystander.slack, "approve", f"{rid} disable_kill_switch", 3)["text"]
    assert not [e for e in archive.load(rid)["events"] if e["event"] == "approval"]

    # two-person rule: the first approval records a pending approval and runs nothing
    first = press(now.primary.slack, "approve", f"{rid} disable_kill_switch", 4)["text"]
    assert "a second, different person" in first
    assert "second, different person" in press(now.primary.slack, "approve", f"{rid} disable_kill_switch", 5)["text"]
    time.sleep(2)
    with psycopg.connect(stack["dsn"]) as conn:
        assert conn.execute("SELECT omnihub_kill_switch FROM emergency_controls").fetchone()[0] is True
        changed = "SELECT count(*) FROM audit_logs WHERE source = 'runbook' AND outcome IN ('started', 'succeeded')"
        assert conn.execute(changed).fetchone()[0] == 0
    second = press(now.secondary.slack, "approve", f"{rid} disable_kill_switch", 6)["text"]
    assert "running it now on a worker" in second

    executed = wait_for(
        "the approved fix to run",
        lambda: [e for e in archive.load(rid)["events"] if e["event"] == "executed"],
        120,
        receiver,
    )
    fix = archive.load(executed[0]["data"]["record"])
    assert executed[0]["data"]["outcome"] == "done" and executed[0]["data"]["by"] == now.secondary.name
    assert fix["mode"] == "resolve" and fix["origin"] == "approval"
    ran = next(a for a in fix["actions"] if a["name"] == "disable_kill_switch")
    assert ran["status"] == "done" and ran["operator"] == now.secondary.name and not ran["dry_run"]
    assert any(r.get("record_id") == rid for r in fix.get("related_records") or [])
    with psycopg.connect(stack["dsn"]) as conn:
        assert conn.execute("SELECT omnihub_kill_switch FROM emergency_controls").fetchone()[0] is False
        actors = "SELECT actor, outcome FROM audit_logs WHERE id = ANY(%s)"
        rows = conn.execute(actors, (ran["audit_ids"],)).fetchall()
    assert {r[0] for r in rows} == {now.secondary.name} and len(rows) >= 2  # before and after the change
    outcome = wait_for(
        "the outcome where it was approved",
        lambda: [
            b for b in posts("/response/6") if ": done" in b.get("text", "") and b["response_type"] == "in_channel"
        ],
        30,
    )
    assert now.primary.name in outcome[0]["text"] and now.secondary.name in outcome[0]["text"]

    # the fix's own record is evidence on the incident's timeline, not a second incident
    assert fix["incident"] is None
    not_one = cli("ack", fix["id"], "--operator", now.primary.name, env={"RUNBOOK_ARCHIVE": env["RUNBOOK_ARCHIVE"]})
    assert not_one.returncode == 2 and "run of an approved fix" in not_one.stderr
    index = httpx.get(f"{receiver.url}/records", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert "not an incident" in index and "mitigating" in index

    report = cli("report", rid, env={"RUNBOOK_ARCHIVE": env["RUNBOOK_ARCHIVE"]})
    assert report.returncode == 0, report.stderr
    assert f"Acknowledged by {now.primary.name}" in report.stdout
    assert "disable\\_kill\\_switch approved by" in report.stdout and "(2 of 2 approvals)" in report.stdout
    assert f"disable\\_kill\\_switch: done, run by {now.secondary.name}" in report.stdout  # under Actions taken
    assert "- acknowledge: due" in report.stdout and "— met" in report.stdout
    problems = [p for p in verify(archive)[1]]
    assert problems == []
