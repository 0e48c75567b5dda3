"""The record archive, read from a runbook (the shift checklists): the chained index
(``index.jsonl``: one JSON object a line, records and later events) and each record's
``record.json``. Read only; the archive's writer and verifier live on the host side."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import SourceError, SourceNotConfigured
from ...settings import Settings

NAME = "Archive"
RECORD_ID = re.compile(r"\d{8}T\d{6}Z-[a-z0-9-]{1,63}-[0-9a-f]{8}")


@dataclass
class Entry:
    """One archived record with its later events."""

    record_id: str
    runbook: str
    status: str
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        return any(e.get("event") in ("resolved", "resolved-without-record") for e in self.events)

    @property
    def reports(self) -> list[dict[str, Any]]:
        return [e.get("data") or {} for e in self.events if e.get("event") == "report"]


class ArchiveReader:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveReader:
        if settings.archive_is_remote:  # read through runbook_lib.record on the host side only
            raise SourceNotConfigured(
                NAME, f"the archive is in S3 ({settings.archive_url}); the checklists read a local archive only"
            )
        root = settings.archive_path
        if not (root / "index.jsonl").is_file():
            raise SourceNotConfigured(NAME, f"no archive index at {root}/index.jsonl (set RUNBOOK_ARCHIVE)")
        return cls(root)

    def entries(self) -> list[Entry]:
        """Every indexed record, oldest first, with its events."""
        try:
            lines = (self.root / "index.jsonl").read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise SourceError(NAME, f"cannot read the index: {exc.strerror}") from None
        records: dict[str, Entry] = {}
        for line in lines:
            try:
                item = json.loads(line)
            except ValueError:
                continue  # `runbook verify` reports it; a checklist reads what it can
            if not isinstance(item, dict):
                continue
            if item.get("type") == "record" and isinstance(item.get("id"), str):
                records[item["id"]] = Entry(item["id"], str(item.get("runbook")), str(item.get("status")))
            elif item.get("type") == "event" and item.get("record") in records:
                records[item["record"]].events.append(item)
        return list(records.values())

    def record(self, record_id: str) -> dict[str, Any]:
        if not RECORD_ID.fullmatch(record_id):
            raise SourceError(NAME, "not a record id")
        d = record_id[:8]
        path = self.root / d[:4] / d[4:6] / d[6:8] / record_id / "record.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(NAME, f"cannot read {record_id}/record.json ({type(exc).__name__})") from None
