"""What every archive does, wherever its bytes live: the hash-chained index format, and the
reading that works on any :mod:`.storage` tree. :class:`~.local.LocalArchive` (a directory) and
:class:`~.s3.S3Archive` (an ``s3://`` prefix) add how to lock, append and upload.

Records are never modified after they are indexed. Later facts about a record (the alert
resolved, say) are appended to the index as ``event`` lines, so the chain stays valid. The
layout is :mod:`runbook_lib.core.layout`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

from runbook_lib.core.errors import ArchiveError, Refused
from runbook_lib.core.layout import (
    HEAD,
    INDEX,
    RECORD_FILES,
    RECORD_JSON,
    RUNNING,
    STAGING,
    is_record_id,
    record_relpath,
)

GENESIS = "0" * 64
FIND_LISTED = 10  # records an ambiguous id prefix lists


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


def parse_last_line(raw: bytes, where: str) -> dict[str, Any] | None:
    """The index's last line (None when empty); a line that is not JSON is an error naming ``where``."""
    last = raw.strip()
    if not last:
        return None
    try:
        return json.loads(last)
    except ValueError:
        raise ArchiveError(f"{where}: last line is not JSON; run `runbook verify`") from None


def parse_lines(lines: Iterator[bytes], where: str) -> Iterator[dict[str, Any]]:
    """The index's entries, one JSON object a line; anything else is an error naming the line."""
    for n, raw in enumerate(lines, start=1):
        if raw.strip():
            try:
                entry = json.loads(raw)
            except ValueError:
                entry = None
            if not isinstance(entry, dict):
                raise ArchiveError(f"{where} line {n} is not a JSON object; run `runbook verify`")
            yield entry


def report_event(record_id: str, rel: str, data: bytes, fmt: str) -> dict[str, Any]:
    """The index event that chains an attached incident report (its path, sha256 and format)."""
    return {
        "type": "event",
        "record": record_id,
        "event": "report",
        "data": {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "format": fmt},
    }


def record_entry(record_id: str, record: dict[str, Any], record_sha256: str) -> dict[str, Any]:
    """The index line that chains a record."""
    return {
        "type": "record",
        "id": record_id,
        "path": record_relpath(record_id),
        "record_sha256": record_sha256,
        "runbook": record.get("runbook"),
        "status": record.get("status"),
    }


def _match_line(entry: dict[str, Any]) -> str:
    """One record of an ambiguous :meth:`Archive.find`, from its index line: id, runbook, when it
    started (the id's timestamp) and status."""
    rid = str(entry.get("id"))
    try:
        started = datetime.strptime(rid[:16], "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        started = "?"
    return f"{rid}  {entry.get('runbook') or '?'}  started {started}  {entry.get('status') or '?'}"


class Archive(ABC):
    """An archive of incident records. Reading goes through :attr:`files` (a storage tree) and
    :meth:`entries`; writing is each subclass's own (its lock, its append)."""

    remote: bool
    files: Any  # a storage.LocalTree or storage.S3Tree

    # -- where --------------------------------------------------------------------------
    @property
    @abstractmethod
    def location(self) -> str:
        """The archive as messages name it: its directory, or its URL."""

    @property
    @abstractmethod
    def work_root(self) -> Path:
        """The local directory whose ``.staging/`` holds runs in progress."""

    @abstractmethod
    def record_location(self, record_id: str) -> str:
        """Where a record's folder is, as people open it (a path, or a URL)."""

    @abstractmethod
    def has_record_dir(self, record_id: str) -> bool:
        """The record's files are in place (it may still lack its index line: see adopt)."""

    def staging_dir(self, record_id: str) -> Path:
        """A fresh local directory for a run in progress (moved or uploaded by commit)."""
        self.check_id(record_id)
        path = self.work_root / STAGING / record_id
        if path.exists():
            shutil.rmtree(path)  # left over from an interrupted attempt
        path.mkdir(parents=True)
        return path

    def relpath_for(self, record_id: str) -> str:
        self.check_id(record_id)
        return record_relpath(record_id)

    @staticmethod
    def check_id(record_id: str) -> None:
        if not is_record_id(record_id):
            raise ArchiveError(f"not a record id: {record_id[:80]!r}")

    # -- writing ------------------------------------------------------------------------
    @abstractmethod
    def _locked(self) -> AbstractContextManager[None]:
        """Held while one writer changes the archive."""

    @abstractmethod
    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Chain one line (under the lock) and return it."""

    @abstractmethod
    def commit(self, staging: Path, record: dict[str, Any]) -> Path | str:
        """Put a finished staging directory in place and chain it; the record's folder."""

    @abstractmethod
    def attach_report(self, record_id: str, text: str, fmt: str) -> tuple[Path | str, dict[str, Any]]:
        """Store an incident report under reports/<id>/ and chain a ``report`` event."""

    @abstractmethod
    def adopt(self, record_id: str) -> bool:
        """Index a record that was put in place but not indexed (a crash in between)."""

    @abstractmethod
    def note_attempt(self, record_id: str) -> int:
        """Count one more start of the run that writes ``record_id``; the count (1 the first time)."""

    # -- who runs a record now (two deliveries of one broker job) --------------------------------
    @abstractmethod
    def _write_mark(self, rel: str, data: bytes | None) -> None:
        """Write (None: remove) a small file beside the records, whole or not at all."""

    def mark_running(self, record_id: str, owner: str, done: bool = False) -> None:
        """Say that ``owner`` is running ``record_id`` now (``.running/<id>``, with the time), or
        that it stopped (``done``). A delivery repeats it while it runs; another delivery of the
        same job reads it with :meth:`running_mark` and waits instead of running it twice."""
        self.check_id(record_id)
        data = None if done else json.dumps({"owner": owner, "at": time.time()}).encode()
        self._write_mark(f"{RUNNING}/{record_id}", data)

    def running_mark(self, record_id: str) -> dict[str, Any] | None:
        """The last :meth:`mark_running` of ``record_id`` ({"owner", "at"}), or None."""
        self.check_id(record_id)
        try:
            mark = json.loads(self.files.read_bytes(f"{RUNNING}/{record_id}"))
        except (FileNotFoundError, ValueError):
            return None
        ok = isinstance(mark, dict) and isinstance(mark.get("at"), int | float) and isinstance(mark.get("owner"), str)
        return mark if ok else None

    def append_event(
        self,
        record_id: str | None,
        event: str,
        data: dict[str, Any],
        check: Callable[[list[dict[str, Any]]], str | None] | None = None,
    ) -> dict[str, Any]:
        """Chain a later fact about a record (or about no record: record_id None). With
        ``check``: it is given the record's events under the archive's lock and returns why the
        fact cannot be chained (Refused with that reason) or None, so two people clicking at once
        cannot both acknowledge."""
        with self._locked():
            if check is not None:
                events = [e for e in self.entries() if e.get("type") == "event" and e.get("record") == record_id]
                if (why := check(events)) is not None:
                    raise Refused(why)
            return self._append({"type": "event", "record": record_id, "event": event, "data": data})

    # -- reading ------------------------------------------------------------------------
    @abstractmethod
    def entries(self) -> Iterator[dict[str, Any]]:
        """Every index line, oldest first."""

    def read_record_file(self, record_id: str, name: str) -> bytes:
        """One of a record's files (notebook.ipynb, record.html, record.json), as archived."""
        if name not in (*RECORD_FILES, RECORD_JSON):
            raise ArchiveError(f"a record has no file {name[:80]!r}")
        try:
            return self.files.read_bytes(f"{self.relpath_for(record_id)}/{name}")
        except FileNotFoundError:
            raise ArchiveError(f"record {record_id} has no {name} in {self.location}") from None

    def has_index(self) -> bool:
        return bool(self.files.is_file(INDEX))

    def index_version(self) -> tuple[Any, ...] | None:
        """Changes whenever the index does (a cache key); None while there is no index."""
        return self.files.version(INDEX)

    def is_indexed(self, record_id: str) -> bool:
        return any(e.get("type") == "record" and e.get("id") == record_id for e in self.entries())

    def load(self, record_id: str) -> dict[str, Any]:
        """record.json of one record plus the events chained about it since; ``dir`` is where
        the record's folder is (:meth:`record_location`)."""
        self.check_id(record_id)
        try:
            raw = self.files.read_bytes(f"{self.relpath_for(record_id)}/{RECORD_JSON}")
        except (FileNotFoundError, NotADirectoryError):
            raise ArchiveError(f"no record {record_id} in {self.location}") from None
        record = json.loads(raw)
        record["events"] = [e for e in self.entries() if e.get("type") == "event" and e.get("record") == record_id]
        record["dir"] = self.record_location(record_id)
        return record

    def find(self, prefix: str) -> str:
        """The full record id for an id or a unique prefix/suffix of one. When several match, the
        error lists them (newest first, at most :data:`FIND_LISTED`) with what the index says of
        each: runbook, start (from the id) and status; no record file is read."""
        records = [e for e in self.entries() if e.get("type") == "record"]
        ids = [e["id"] for e in records]
        if prefix in ids:
            return prefix
        matches = [e for e in records if e["id"].startswith(prefix) or e["id"].endswith(prefix)]
        if len(matches) == 1:
            return str(matches[0]["id"])
        if not matches:
            raise ArchiveError(f"no record matches {prefix[:80]!r} in {self.location}")
        listed = [f"  {_match_line(e)}" for e in matches[::-1][:FIND_LISTED]]
        if len(matches) > FIND_LISTED:
            listed.append(f"  and {len(matches) - FIND_LISTED} more")
        raise ArchiveError(
            f"{prefix[:80]!r} matches {len(matches)} records; give more of the id:\n" + "\n".join(listed)
        )

    def read_head(self) -> dict[str, Any] | None:
        try:
            head = json.loads(self.files.read_bytes(HEAD))
        except (OSError, ValueError):
            return None
        return head if isinstance(head, dict) else None
