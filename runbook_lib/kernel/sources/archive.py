"""The record archive, read from a runbook (the shift checklists): the chained index
(``index.jsonl``: one JSON object a line, records and later events) and each record's
``record.json``. Read only; the archive's writer and verifier live on the host side."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runbook_lib.core.errors import SourceError, SourceNotConfigured
from runbook_lib.core.layout import INDEX, RECORD_JSON, is_record_id, record_relpath
from runbook_lib.core.settings import Settings

NAME = "Archive"


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
        if not (root / INDEX).is_file():
            raise SourceNotConfigured(NAME, f"no archive index at {root}/{INDEX} (set RUNBOOK_ARCHIVE)")
        return cls(root)

    def entries(self) -> list[Entry]:
        """Every indexed record, oldest first, with its events."""
        try:
            lines = (self.root / INDEX).read_text(encoding="utf-8").splitlines()
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
        if not is_record_id(record_id):
            raise SourceError(NAME, "not a record id")
        path = self.root / record_relpath(record_id) / RECORD_JSON
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SourceError(NAME, f"cannot read {record_id}/record.json ({type(exc).__name__})") from None
