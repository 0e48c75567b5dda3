"""Redaction of secret values from everything we write: notebooks, records, HTML, logs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

MASK = "[REDACTED]"


class Redactor:
    """Replaces every known secret value (longest first) in strings and nested JSON data."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value

    def data(self, value: Any, keep: frozenset[str] = frozenset()) -> Any:
        """Redact every string value of a JSON-like structure, in a new structure. Keys, and the
        values of the keys in ``keep`` (structure such as a cell's type), are left alone."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: (v if k in keep and isinstance(v, str | int) else self.data(v, keep)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v, keep) for v in value]
        return value

    def found_in(self, value: str) -> bool:
        return any(secret in value for secret in self.secrets)


class RedactingFilter(logging.Filter):
    """A logging filter that renders the message and redacts it before any handler sees it."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        if self.redactor:
            message = record.getMessage()
            record.msg = self.redactor.text(message)
            record.args = None
            if record.exc_text:
                record.exc_text = self.redactor.text(record.exc_text)
        return True
