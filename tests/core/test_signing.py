"""Signed broker messages (the celery executor's tasks and reports)."""

from __future__ import annotations

import pytest

from runbook_lib.core import signing

KEY = "broker-signing-key-0123456789abcdef01234567"


def test_a_signed_message_verifies_and_any_change_breaks_it() -> None:
    plan = {"job": 7, "record_id": "20261207T000000Z-noop-0000abcd", "skip": None, "notes": ["é"], "at": 1.5}
    body = {"id": "7", "plan": plan}
    sig = signing.sign_message(KEY, "task", body)
    assert signing.message_problem(KEY, "task", body, sig) is None
    reordered = {"plan": dict(reversed(list(plan.items()))), "id": "7"}  # key order does not matter
    assert signing.message_problem(KEY, "task", reordered, sig) is None
    for changed in (
        {"id": "8", "plan": plan},  # the same plan under another task id
        {"id": "7", "plan": {**plan, "skip": "forged"}},
        {"id": "7", "plan": {**plan, "job": "7"}},
        {"id": "7", "plan": {**plan, "extra": 1}},
    ):
        assert signing.message_problem(KEY, "task", changed, sig) == "bad signature", changed
    assert signing.message_problem(KEY, "done", body, sig) == "bad signature"  # a task's signature is no report's
    assert signing.message_problem("another-" + KEY, "task", body, sig) == "bad signature"
    assert signing.message_problem(KEY, "task", body, None) == "unsigned"
    assert signing.message_problem(KEY, "task", body, "") == "unsigned"
    assert signing.message_problem(KEY, "task", body, sig.upper()) == "malformed"
    assert signing.message_problem(KEY, "task", ["not", "a", "mapping"], sig) == "malformed"
    assert signing.message_problem(KEY, "task", {"x": float("nan")}, sig) == "malformed"
    with pytest.raises(ValueError):
        signing.sign_message(KEY, "other", body)


def test_the_broker_signing_key_is_a_secret_setting_of_32_characters_or_more() -> None:
    from runbook_lib.core.credentials import SECRET_ENV_MAP
    from runbook_lib.core.errors import ConfigError
    from runbook_lib.core.settings import load_settings

    assert SECRET_ENV_MAP["RUNBOOK_BROKER_SIGNING_KEY"] == ("receiver", "broker_signing_key")
    settings = load_settings(environ={"RUNBOOK_BROKER_SIGNING_KEY": KEY})
    assert KEY in settings.secret_values()
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_settings(environ={"RUNBOOK_BROKER_SIGNING_KEY": "short-key-0123"})
