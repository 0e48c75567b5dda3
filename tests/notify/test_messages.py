"""Slack and PagerDuty get escaped text: a hostile alert can neither ping a channel, nor show a
disguised link, nor smuggle control or bidi characters. Real HTTP to loopback receivers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from runbook_lib.core.settings import load_settings
from runbook_lib.notify.messages import Notifier
from tests.helpers import posts_received

HOSTILE = "<!channel> <https://evil.example|Open record>"


@pytest.fixture
def capture() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """Slack and PagerDuty stand-ins on loopback, keeping what they are sent."""
    with posts_received() as stand_in:
        yield stand_in


def record(alertname: str, summary: str) -> dict[str, Any]:
    return {
        "id": "20261127T000000Z-triage-0000abcd",
        "runbook": "triage",
        "status": "succeeded",
        "alert": {"labels": {"alertname": alertname, "severity": "critical"}, "fingerprint": "f00d"},
        "findings": [{"check": "Routing", "verdict": "warning", "summary": summary}],
        "intake": {"group_key": '{}:{alertname="x"}'},
    }


def test_a_hostile_alertname_reaches_slack_and_pagerduty_escaped(capture) -> None:
    base, received = capture
    settings = load_settings(
        environ={
            "RUNBOOK_SLACK_WEBHOOK_URL": f"{base}/services/T000/B000/slacksecret",
            "RUNBOOK_PAGERDUTY_ROUTING_KEY": "pd-routing-key-abcdef",
            "RUNBOOK_PAGERDUTY_URL": f"{base}/v2/enqueue",
            "RUNBOOK_RECORD_BASE_URL": "http://runbooks.test:9095",
        }
    )
    summary = "No dedicated runbook for <@U024BE7LH> \u202eevil\u202c & \x1b[31mred"
    assert Notifier(settings).record_done(record(HOSTILE, summary)) == []
    message = next(body for path, body in received if path.startswith("/services/"))
    slack = json.dumps(message, ensure_ascii=False)  # the fallback text and every Block Kit block
    assert "<!channel>" not in slack and "<https://" not in slack and "<@U024BE7LH>" not in slack
    assert "&lt;!channel&gt; &lt;https://evil.example|Open record&gt;" in message["text"]
    assert "\u202e" not in slack and "\x1b" not in slack and "\\u202e" in slack and "\\x1b[31m" in slack
    assert "&amp;" in slack
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert buttons[0]["url"] == "http://runbooks.test:9095/records/20261127T000000Z-triage-0000abcd"
    assert message["blocks"][0]["type"] == "header" and "WARNING" in message["blocks"][0]["text"]["text"]
    page = next(body for path, body in received if path == "/v2/enqueue")
    text = json.dumps(page, ensure_ascii=False)
    assert "\u202e" not in text and "\x1b" not in text
    assert page["payload"]["summary"].startswith("WARNING " + HOSTILE)  # plain text: PagerDuty renders no markup
    assert "\\u202eevil" in page["payload"]["custom_details"]["findings"][0]
    assert page["dedup_key"] == hashlib.sha256(b'{}:{alertname="x"}').hexdigest(), "Alertmanager's key"


def test_no_page_for_an_incomplete_diagnosis_unless_configured(capture) -> None:
    base, received = capture
    env = {
        "RUNBOOK_PAGERDUTY_ROUTING_KEY": "pd-routing-key-abcdef",
        "RUNBOOK_PAGERDUTY_URL": f"{base}/v2/enqueue",
    }
    nothing = record("Blind", "Prometheus: unreachable")
    nothing["findings"][0]["verdict"] = "unchecked"
    assert Notifier(load_settings(environ=env)).record_done(nothing) == []
    assert received == []
    configured = load_settings(environ=env, overrides={"notify.page_incomplete": True})
    assert Notifier(configured).record_done(nothing) == [] and len(received) == 1
    assert received[0][1]["payload"]["summary"].startswith("INCOMPLETE Blind")


def test_messages_name_the_sev_level_and_who_was_on_call(capture) -> None:
    base, received = capture
    settings = load_settings(environ={"RUNBOOK_SLACK_WEBHOOK_URL": f"{base}/services/T000/B000/slacksecret"})
    rec = record("DatabaseDown", "PostgreSQL refuses connections")
    rec["incident"] = {
        "sev": "SEV-1",
        "deadlines": [],
        "on_call": {"primary": "Avery Example", "secondary": "Devon Dummy", "manager": "Morgan Fictional"},
    }
    assert Notifier(settings).record_done(rec) == []
    slack = json.dumps(next(body for path, body in received if path.startswith("/services/")))
    assert "SEV-1; on call: Avery Example (secondary Devon Dummy, manager Morgan Fictional)" in slack


def test_a_newline_in_an_alert_label_cannot_start_a_bullet_of_its_own(capture) -> None:
    """A finding that repeats a label holding "\\n• forged" stays on its own bullet line."""
    base, received = capture
    settings = load_settings(environ={"RUNBOOK_SLACK_WEBHOOK_URL": f"{base}/services/T000/B000/slacksecret"})
    forged = "Routine\n• OK: Everything: all clear, nothing to do"
    rec = record(forged, f"No dedicated runbook for {forged}")
    assert Notifier(settings).record_done(rec) == []
    message = next(body for path, body in received if path.startswith("/services/"))
    [bullets] = [
        b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and b["text"]["text"].startswith("• ")
    ]
    assert bullets.splitlines() == [
        "• WARNING: Routing: No dedicated runbook for Routine • OK: Everything: all clear, nothing to do"
    ]
