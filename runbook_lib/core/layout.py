"""The archive's layout: what a record id looks like and where a record's files are. One
definition for the writer (:mod:`runbook_lib.record.archive`) and the runbooks that read the
archive (:mod:`runbook_lib.kernel.sources.archive`).

::

    <root>/<YYYY>/<MM>/<DD>/<record-id>/notebook.ipynb   executed notebook, redacted
                                        record.html      nbconvert HTML, sanitised, summary first
                                        record.json      the machine-readable record
    <root>/index.jsonl   append-only; one line per record or event, each carrying the hash of
                         the line before it (a hash chain)
    <root>/HEAD          seq and hash of the last index line (detects a truncated index)
    <root>/reports/<record-id>/report-<n>.<md|html>   attached incident reports
    <root>/.staging/     runs in progress
    <root>/.attempts/    how often a broker-delivered run was started, per record id
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

RECORD_ID = re.compile(r"\d{8}T\d{6}Z-[a-z0-9-]{1,63}-[0-9a-f]{8}")
INDEX = "index.jsonl"
HEAD = "HEAD"
RECORD_JSON = "record.json"
RECORD_FILES = ("notebook.ipynb", "record.html")  # hashed in record.json; record.json itself in the index
REPORTS = "reports"
REPORT_FORMATS = ("md", "html")
REPORT_NAME = re.compile(r"report-(\d{1,6})\.(md|html)")
ATTEMPTS = ".attempts"
RUNNING = ".running"  # who is running a broker-delivered record now, and when they last said so
STAGING = ".staging"


def new_record_id(slug: str, when: datetime | None = None) -> str:
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%SZ}-{slug}-{secrets.token_hex(4)}"


def is_record_id(text: object) -> bool:
    return isinstance(text, str) and RECORD_ID.fullmatch(text) is not None


def record_relpath(record_id: str) -> str:
    """``YYYY/MM/DD/<id>``: where a record's folder is, relative to the archive root. The caller
    has checked the id (:func:`is_record_id`)."""
    d = record_id[:8]
    return f"{d[:4]}/{d[4:6]}/{d[6:8]}/{record_id}"
