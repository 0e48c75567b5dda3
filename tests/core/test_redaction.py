"""Redaction: passwords with URL-special characters, escaped forms, structure kept, and
secrets too short to redact refused."""

from __future__ import annotations

import json

import pytest

from runbook_lib.core.credentials import safe_endpoint, secret_parts
from runbook_lib.core.errors import ConfigError
from runbook_lib.core.redact import Redactor
from runbook_lib.core.settings import load_settings


@pytest.mark.parametrize(
    ("dsn", "password"),
    [
        ("postgresql://app:pa#ss?w/rd@db:5432/omnihub", "pa#ss?w/rd"),
        ("postgresql://app:p@ss@db/omnihub", "p@ss"),
        ("postgresql://app:s%23cret@db/omnihub", "s#cret"),
    ],
)
def test_passwords_with_url_special_characters_are_redacted(dsn: str, password: str) -> None:
    parts = secret_parts(dsn, url_like=True)
    assert password in parts
    assert "db" in safe_endpoint(dsn) and password not in safe_endpoint(dsn)
    red = Redactor(parts)
    for shown in (password, json.dumps(password)[1:-1], password.replace("&", "&amp;")):
        assert password not in red.text(f"x {shown} y")


def test_redaction_keeps_structure_and_escaped_forms() -> None:
    secret = 'Tok&en<"42>'
    red = Redactor(secret_parts(secret))
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "source": "x",
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": f"token={secret}"},
                    {"output_type": "display_data", "data": {"text/html": "<b>Tok&amp;en&lt;&quot;42&gt;</b>"}},
                ],
            }
        ]
    }
    out = red.data(nb, keep=frozenset({"cell_type", "output_type", "name"}))
    dumped = json.dumps(out)
    assert "Tok&" not in dumped and "42" not in dumped
    assert out["cells"][0]["outputs"][0]["output_type"] == "stream"

    code = Redactor(["code"])  # a secret that is also a cell type
    kept = code.data({"cell_type": "code", "source": "code here"}, keep=frozenset({"cell_type"}))
    assert kept == {"cell_type": "code", "source": "[REDACTED] here"}


def test_secrets_too_short_to_redact_are_refused() -> None:
    with pytest.raises(ConfigError, match="RUNBOOK_POSTGRES_DSN: its secret is shorter than 4"):
        load_settings(environ={"RUNBOOK_POSTGRES_DSN": "postgresql://app:pw@db/omnihub"})
    with pytest.raises(ConfigError, match="RUNBOOK_WEBHOOK_TOKEN"):
        load_settings(environ={"RUNBOOK_WEBHOOK_TOKEN": "abc"})
    assert load_settings(environ={"SOME_TOKEN": "1"}).env == "local"  # unrelated short variables: ignored
