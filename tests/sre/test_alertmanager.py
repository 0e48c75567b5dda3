"""Alert input: whole webhook payloads or one alert, with one-line errors naming the field."""

from __future__ import annotations

import json

import pytest

from runbook_lib.core.errors import AlertError
from runbook_lib.sre.alertmanager import label_fingerprint, load_alert_text
from tests.helpers import alert_payload


def test_payload_picks_first_firing_alert_or_the_fingerprint() -> None:
    p = alert_payload()
    resolved = dict(p["alerts"][0], status="resolved", fingerprint="aaaa")
    firing2 = dict(p["alerts"][0], fingerprint="bbbb", labels={"alertname": "Other"})
    p["alerts"] = [resolved, firing2]
    alert, payload = load_alert_text(json.dumps(p))
    assert payload is not None and alert.fingerprint == "bbbb" and alert.name == "Other"
    alert, _ = load_alert_text(json.dumps(p), fingerprint="aaaa")
    assert alert.status == "resolved"
    with pytest.raises(AlertError, match="no such alert in the payload"):
        load_alert_text(json.dumps(p), fingerprint="cccc")


def test_single_alert_object_and_defaults() -> None:
    one = alert_payload()["alerts"][0]
    del one["fingerprint"]
    alert, payload = load_alert_text(json.dumps(one))
    assert payload is None
    assert alert.endsAt is None  # Alertmanager's zero time means "not ended"
    assert alert.fingerprint == label_fingerprint(one["labels"])  # stable, computed from labels


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda p: p.pop("version"), "version: field required"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p["alerts"][0]["labels"].pop("alertname"), "alerts[0].labels: labels.alertname is required"),
        (lambda p: p["alerts"][0].pop("startsAt"), "alerts[0].startsAt: field required"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt"),
        (lambda p: p["alerts"][0].update(status="burning"), "alerts[0].status"),
        (lambda p: p["alerts"][0]["labels"].update(x=["not", "a", "string"]), "alerts[0].labels.x"),
        (lambda p: p.update(alerts=[]), "alerts"),
    ],
)
def test_validation_error_is_one_line_naming_the_field(mutate, expected: str) -> None:
    p = alert_payload()
    mutate(p)
    with pytest.raises(AlertError) as exc:
        load_alert_text(json.dumps(p))
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(expected)


def test_unknown_fields_are_ignored_and_garbage_is_refused() -> None:
    p = alert_payload()
    p["newFieldFromAFutureAlertmanager"] = {"x": 1}
    p["alerts"][0]["silencedBy"] = []
    alert, _ = load_alert_text(json.dumps(p))
    assert alert.name == "HighErrorBudgetBurnRate"
    with pytest.raises(AlertError, match="not valid JSON"):
        load_alert_text('{"version": "4",')
    with pytest.raises(AlertError, match="neither an Alertmanager webhook payload"):
        load_alert_text("[1, 2]")
    with pytest.raises(AlertError, match="not valid JSON: input is not UTF-8"):
        load_alert_text(b"\xff\xfe{}")


def test_oversized_label_value_is_refused() -> None:
    p = alert_payload(labels={"huge": "x" * 20_000})
    with pytest.raises(AlertError, match="alerts\\[0\\].labels: labels 'huge' is longer than allowed"):
        load_alert_text(json.dumps(p))
