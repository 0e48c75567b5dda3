"""One PostgreSQL transaction for the host's own small stores (the toil log, the on-call
overrides): committed at the end, a statement timeout set, and psycopg's failures turned into
RunbookErrors that name the database safely (never its password) and say what was not done."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from runbook_lib.core.credentials import password_of, safe_endpoint
from runbook_lib.core.errors import SourceError, SourceUnavailable

STATEMENT_TIMEOUT_MS = 10000


@contextmanager
def connected(dsn: str, timeout_s: float, done: str, read_only: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A connection in one transaction on ``dsn``; ``done`` ends the error message ("the toil
    entry was not recorded"). Unreachable: SourceUnavailable; refused or failed: SourceError."""
    try:
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))) as conn:
            conn.read_only = read_only
            conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
            yield conn
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in password_of(dsn):
            first = first.replace(secret, "[REDACTED]")
        message = f"{safe_endpoint(dsn)}: {first}; {done}"
        if isinstance(exc, psycopg.OperationalError):
            raise SourceUnavailable("PostgreSQL", message) from None
        raise SourceError("PostgreSQL", message) from None
