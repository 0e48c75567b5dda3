"""Escalation run by the receiver, on an injected clock: an unacknowledged SEV-1 escalates once at
15 minutes (secondary and senior SRE) and once at 30 (incident commander and manager), to the
people the roster names with a schedule override stored in PostgreSQL, across a restart of the
receiver at minute 20; an acknowledgement at minute 12 stops both."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from runbook_lib.clients import oncall_overrides
from runbook_lib.core.settings import load_settings
from runbook_lib.intake.journal import Intake
from runbook_lib.receiver.escalation import MAX_TRIES, Escalator
from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.incidents import act
from runbook_lib.sre import incident, oncall
from runbook_lib.sre.alertmanager import parse_payload
from tests.helpers import HOME, alert_payload, posts_received, temp_database
from tests.web.test_records_page import make_record

pytestmark = pytest.mark.services


@pytest.fixture
def slack() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with posts_received() as (base, got):
        yield f"{base}/services/T0/B0/escalation", got


@pytest.fixture
def setup(tmp_path: Path, slack: tuple[str, list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    with temp_database("escalate") as dsn:
        environ = {
            "RUNBOOK_HOME": str(HOME),
            "RUNBOOK_ARCHIVE": str(tmp_path / "executed"),
            "RUNBOOK_POSTGRES_DSN": dsn,
            "RUNBOOK_SLACK_WEBHOOK_URL": slack[0],
        }
        yield {"settings": load_settings(environ=environ), "dsn": dsn, "root": tmp_path / "executed"}


def paging_incident(settings: Any, root: Path, n: int, fired: datetime) -> tuple[Intake, str]:
    """A DatabaseDown (SEV-1) journaled as Alertmanager sends it, and the record its run wrote."""
    intake = Intake.from_settings(settings)
    payload = alert_payload("DatabaseDown", starts_at=fired)
    payload["alerts"][0]["labels"]["severity"] = "critical"
    payload["alerts"][0]["fingerprint"] = f"{n:016x}"
    intake.accept(parse_payload(payload), json.dumps(payload))
    job = next(j for j in intake.jobs() if j["fingerprint"] == f"{n:016x}")
    now = fired + timedelta(minutes=1)
    rid = make_record(
        root, n, runbook="database-down", alertname="DatabaseDown", fired_ago=timedelta(minutes=1), now=now
    )
    intake.set_record_id(job["id"], rid)
    return intake, rid


def test_an_unacknowledged_sev1_escalates_once_at_15_and_once_at_30_minutes_across_a_restart(setup, slack) -> None:
    settings, root = setup["settings"], setup["root"]
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    roster = oncall.Roster.load(oncall.roster_path(HOME))
    rotation = oncall.who(roster, fired)
    stand_in = next(p for p in roster.people if p.name not in (rotation.primary.name, rotation.secondary.name))
    oncall_overrides.add(
        setup["dsn"],
        roster=roster,
        person=stand_in.name,
        role="secondary",
        since=fired - timedelta(hours=1),
        until=fired + timedelta(hours=2),
        by="Morgan Fictional",
    )
    intake, rid = paging_incident(settings, root, 1, fired)
    archive = LocalArchive(root)
    at = lambda minutes: (fired + timedelta(minutes=minutes)).timestamp()  # noqa: E731

    escalator = Escalator(settings, intake, archive)
    assert escalator.tick(at(14.9)) == []
    first = escalator.tick(at(15))
    assert [(e["step"], e["state"]) for e in first] == [(1, "fired")]
    assert first[0]["to"] == [stand_in.name, roster.senior_sre.name]  # the override's secondary, not the rotation's
    assert escalator.tick(at(16)) == []

    # the receiver restarts at minute 20: a new journal connection, a new escalator
    intake = Intake.from_settings(settings)
    escalator = Escalator(settings, intake, archive)
    assert escalator.tick(at(20)) == []
    second = escalator.tick(at(30))
    assert [(e["step"], e["state"], e["to"]) for e in second] == [
        (2, "fired", [roster.incident_commander.name, roster.manager.name])
    ]
    assert escalator.tick(at(45)) == []
    events = [e for e in archive.load(rid)["events"] if e["event"] == "escalated"]
    assert [e["data"]["step"] for e in events] == [1, 2]
    messages = [body["text"] for _path, body in slack[1]]
    assert len(messages) == 2 and all("ESCALATED DatabaseDown (SEV-1)" in m for m in messages)
    assert f"<@{stand_in.slack}>" in messages[0] and f"<@{roster.senior_sre.slack}>" in messages[0]
    assert f"<@{rotation.secondary.slack}>" not in messages[0]
    assert f"<@{roster.incident_commander.slack}>" in messages[1] and f"<@{roster.manager.slack}>" in messages[1]


def test_an_acknowledgement_at_minute_12_stops_both_escalations(setup, slack) -> None:
    settings, root = setup["settings"], setup["root"]
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    intake, rid = paging_incident(settings, root, 2, fired)
    archive = LocalArchive(root)
    act(archive, rid, "acknowledged", "Avery Example", now=fired + timedelta(minutes=12))
    escalator = Escalator(settings, intake, archive)
    done = escalator.tick((fired + timedelta(minutes=31)).timestamp())
    assert [(e["step"], e["state"]) for e in done] == [(1, "stopped"), (2, "stopped")]
    assert all("acknowledged by Avery Example" in e["why"] for e in done)
    assert not [e for e in archive.load(rid)["events"] if e["event"] == "escalated"]
    assert slack[1] == []
    assert {r["state"] for r in intake.escalations()} == {"stopped"}


def test_a_warning_arms_no_timer_and_pagerduty_mode_arms_none(setup) -> None:
    settings = setup["settings"]
    fired = datetime.now(UTC) - timedelta(hours=1)
    intake = Intake.from_settings(settings)
    warning = alert_payload("HighLatency", starts_at=fired)
    warning["alerts"][0]["labels"]["severity"] = "warning"
    intake.accept(parse_payload(warning), json.dumps(warning))
    assert intake.escalations() == []
    pd_mode = settings.model_copy(update={"incident": settings.incident.model_copy(update={"escalation": "pagerduty"})})
    critical = alert_payload("DatabaseDown", starts_at=fired)
    critical["alerts"][0]["labels"]["severity"] = "critical"
    Intake.from_settings(pd_mode).accept(parse_payload(critical), json.dumps(critical))
    assert Intake.from_settings(settings).escalations() == []  # PagerDuty escalates: never both


def test_with_no_record_yet_it_escalates_from_the_journal_and_its_own_resolution_stops_it(setup, slack) -> None:
    """Workers down: the SEV-1 has no record at 15 minutes, and that is when escalation matters."""
    settings, root = setup["settings"], setup["root"]
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    intake = Intake.from_settings(settings)
    down = alert_payload("DatabaseDown", starts_at=fired, fingerprint="d" * 16)
    intake.accept(parse_payload(down), json.dumps(down))
    archive = LocalArchive(root)
    done = Escalator(settings, intake, archive).tick((fired + timedelta(minutes=15)).timestamp())
    assert [(e["step"], e["state"], e["record"]) for e in done] == [(1, "fired", None)]
    chained = [e for e in archive.entries() if e.get("event") == "escalated"]
    assert len(chained) == 1 and chained[0]["record"] is None
    assert chained[0]["data"]["fingerprint"] == "d" * 16 and "no record yet" in chained[0]["data"]["why"]
    assert chained[0]["data"]["notified"] == "Slack" and "no record yet" in slack[1][0][1]["text"]

    # the alert resolves before minute 30 (the journal has its resolution): step 2 stops
    resolved = alert_payload("DatabaseDown", starts_at=fired, fingerprint="d" * 16, status="resolved")
    intake.accept(parse_payload(resolved), json.dumps(resolved))
    later = Escalator(settings, intake, archive).tick((fired + timedelta(minutes=30)).timestamp())
    assert [(e["step"], e["state"], e["why"]) for e in later] == [(2, "stopped", "stopped: its alert resolved")]


def test_a_message_that_cannot_go_out_is_retried_and_the_receivers_own_escalation_answers_no_deadline(setup) -> None:
    settings, root = setup["settings"], setup["root"]
    dead = settings.model_copy(
        update={"notify": settings.notify.model_copy(update={"slack_webhook_url": SecretStr("http://127.0.0.1:9/x")})}
    )
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    intake, rid = paging_incident(dead, root, 3, fired)
    archive = LocalArchive(root)
    escalator = Escalator(dead, intake, archive)
    first = escalator.tick((fired + timedelta(minutes=15)).timestamp())
    assert [e["state"] for e in first] == ["retrying"]  # not chained as told while nobody was
    assert not [e for e in archive.load(rid)["events"] if e["event"] == "escalated"]
    for n in range(MAX_TRIES):
        escalator.tick((fired + timedelta(minutes=15, seconds=15 * (n + 1))).timestamp())
    events = [e for e in archive.load(rid)["events"] if e["event"] == "escalated"]
    assert len(events) == 1 and events[0]["data"]["notified"].startswith("failed: Slack")
    rec = archive.load(rid)
    rows = {
        r["name"]: r
        for r in incident.record_status(
            rec["incident"], fired + timedelta(hours=2), rec["events"], rec["alert"]["fingerprint"]
        )
    }
    assert rows["resolve or escalate"]["missed"] and not rows["resolve or escalate"]["met"]
