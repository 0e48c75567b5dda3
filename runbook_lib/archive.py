"""The incident-record archive: layout, hash-chained index, verification.

Layout (root = settings.archive_path, ``executed/`` by default)::

    <root>/<YYYY>/<MM>/<DD>/<record-id>/notebook.ipynb   executed notebook, redacted
                                        record.html      nbconvert HTML, sanitised, summary first
                                        record.json      the machine-readable record
    <root>/index.jsonl   append-only; one line per record or event, each carrying the hash of
                         the line before it (a hash chain)
    <root>/HEAD          seq and hash of the last index line (detects a truncated index)
    <root>/.staging/     runs in progress (moved into place atomically when done)

Records are never modified after they are indexed. Later facts about a record (the alert
resolved, say) are appended to the index as ``event`` lines, so the chain stays valid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ArchiveError

RECORD_FILES = ("notebook.ipynb", "record.html")
RECORD_ID = re.compile(r"\d{8}T\d{6}Z-[a-z0-9-]{1,63}-[0-9a-f]{8}")
GENESIS = "0" * 64
INDEX = "index.jsonl"
HEAD = "HEAD"
# Things in the archive root that are not records.
_NOT_RECORDS = {INDEX, HEAD, ".staging", ".lock", "interactive", ".gitkeep"}


def new_record_id(slug: str, when: datetime | None = None) -> str:
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%SZ}-{slug}-{secrets.token_hex(4)}"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


@dataclass
class Problem:
    where: str  # a record id, "index.jsonl line N", "HEAD", or a path
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


class Archive:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- paths ----------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    def staging_dir(self, record_id: str) -> Path:
        self._check_id(record_id)
        path = self.root / ".staging" / record_id
        if path.exists():
            shutil.rmtree(path)  # left over from an interrupted attempt
        path.mkdir(parents=True)
        return path

    def relpath_for(self, record_id: str) -> str:
        self._check_id(record_id)
        d = record_id[:8]
        return f"{d[:4]}/{d[4:6]}/{d[6:8]}/{record_id}"

    def record_dir(self, record_id: str) -> Path:
        return self.root / self.relpath_for(record_id)

    @staticmethod
    def _check_id(record_id: str) -> None:
        if not RECORD_ID.fullmatch(record_id):
            raise ArchiveError(f"not a record id: {record_id[:80]!r}")

    # -- writing --------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def commit(self, staging: Path, record: dict[str, Any]) -> Path:
        """Move a finished staging directory into place and chain it into the index."""
        record_id = record["id"]
        final = self.record_dir(record_id)
        with self._locked():
            if self.is_indexed(record_id):
                raise ArchiveError(f"record {record_id} is already in the archive")
            final.parent.mkdir(parents=True, exist_ok=True)
            for name in (*RECORD_FILES, "record.json"):
                _fsync_file(staging / name)
            os.replace(staging, final)
            _fsync_dir(final.parent)
            self._append(self._record_entry(record_id, record))
        return final

    def _record_entry(self, record_id: str, record: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "record",
            "id": record_id,
            "path": self.relpath_for(record_id),
            "record_sha256": sha256_file(self.record_dir(record_id) / "record.json"),
            "runbook": record.get("runbook"),
            "status": record.get("status"),
        }

    def append_event(self, record_id: str | None, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Chain a later fact about a record (or about no record: record_id None)."""
        with self._locked():
            return self._append({"type": "event", "record": record_id, "event": event, "data": data})

    def adopt(self, record_id: str) -> bool:
        """Index a record directory that was moved into place but not indexed (a crash in
        between). Only a directory whose record.json matches its files is adopted."""
        final = self.record_dir(record_id)
        with self._locked():
            if self.is_indexed(record_id) or not final.is_dir():
                return False
            record = json.loads((final / "record.json").read_text())
            for name, digest in record.get("files", {}).items():
                if sha256_file(final / name) != digest:
                    raise ArchiveError(f"record {record_id}: {name} does not match its record.json; not adopted")
            self._append(self._record_entry(record_id, record))
            return True

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        last = self._last_line()
        entry = {
            "seq": (last["seq"] + 1) if last else 1,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            **entry,
            "prev": last["hash"] if last else GENESIS,
        }
        entry["hash"] = line_hash(entry)
        data = canonical(entry) + b"\n"
        fd = os.open(self.index_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        head_tmp = self.root / f".{HEAD}.tmp"
        head_tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}) + "\n")
        _fsync_file(head_tmp)
        os.replace(head_tmp, self.root / HEAD)
        return entry

    def _last_line(self) -> dict[str, Any] | None:
        if not self.index_path.exists():
            return None
        with self.index_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            block = min(size, 65536)
            while True:
                fh.seek(size - block)
                tail = fh.read(block)
                lines = tail.rstrip(b"\n").split(b"\n")
                if len(lines) > 1 or block == size:
                    break
                block = min(size, block * 2)
        last = lines[-1].strip()
        if not last:
            return None
        try:
            return json.loads(last)
        except ValueError:
            raise ArchiveError(f"{self.index_path}: last line is not JSON; run `runbook verify`") from None

    # -- reading --------------------------------------------------------------------------
    def entries(self) -> Iterator[dict[str, Any]]:
        if not self.index_path.exists():
            return
        with self.index_path.open("rb") as fh:
            for n, raw in enumerate(fh, start=1):
                if raw.strip():
                    try:
                        entry = json.loads(raw)
                    except ValueError:
                        entry = None
                    if not isinstance(entry, dict):
                        raise ArchiveError(f"{self.index_path} line {n} is not a JSON object; run `runbook verify`")
                    yield entry

    def is_indexed(self, record_id: str) -> bool:
        return any(e.get("type") == "record" and e.get("id") == record_id for e in self.entries())

    def load(self, record_id: str) -> dict[str, Any]:
        """record.json of one record plus the events chained about it since."""
        self._check_id(record_id)
        path = self.record_dir(record_id) / "record.json"
        if not path.exists():
            raise ArchiveError(f"no record {record_id} in {self.root}")
        record = json.loads(path.read_text())
        record["events"] = [e for e in self.entries() if e.get("type") == "event" and e.get("record") == record_id]
        record["dir"] = str(path.parent)
        return record

    def find(self, prefix: str) -> str:
        """The full record id for an id or a unique prefix/suffix of one."""
        ids = [e["id"] for e in self.entries() if e.get("type") == "record"]
        if prefix in ids:
            return prefix
        matches = [i for i in ids if i.startswith(prefix) or i.endswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise ArchiveError(f"no record matches {prefix[:80]!r} in {self.root}")
        raise ArchiveError(f"{prefix!r} matches {len(matches)} records; give more of the id")

    # -- verification ---------------------------------------------------------------------
    def verify(self, expect_head: str | None = None) -> tuple[int, list[Problem]]:
        """Check the chain, every record's files, and that no record is missing or extra.

        Returns (records checked, problems)."""
        problems: list[Problem] = []
        prev, seq, count = GENESIS, 0, 0
        indexed: dict[str, str] = {}
        events: list[tuple[str, str, Any]] = []
        if not self.index_path.exists():
            if any(self._record_dirs()):
                problems.append(Problem(INDEX, "missing, but record directories exist"))
            if self._read_head() is not None:
                problems.append(Problem(INDEX, "missing, but HEAD says the archive has entries"))
            if expect_head:
                problems.append(Problem(INDEX, f"missing; expected it to end at hash {expect_head[:16]}..."))
            return 0, problems
        with self.index_path.open("rb") as fh:
            raw_lines = fh.read().split(b"\n")
        if raw_lines and raw_lines[-1] == b"":
            raw_lines.pop()
        else:
            problems.append(Problem(INDEX, "does not end with a newline (truncated or edited)"))
        last_hash = GENESIS
        for n, raw in enumerate(raw_lines, start=1):
            where = f"{INDEX} line {n}"
            try:
                entry = json.loads(raw)
                assert isinstance(entry, dict)
            except (ValueError, AssertionError):
                problems.append(Problem(where, "not a JSON object"))
                prev = None  # type: ignore[assignment]
                continue
            label = entry.get("id") or (f"event for {entry.get('record')}" if entry.get("type") == "event" else where)
            if canonical(entry) != raw:
                problems.append(Problem(f"{label} ({where})", "line is not in canonical form (edited)"))
            if line_hash(entry) != entry.get("hash"):
                problems.append(Problem(f"{label} ({where})", "line hash does not match its content (edited)"))
            if prev is not None and entry.get("prev") != prev:
                problems.append(
                    Problem(
                        f"{label} ({where})",
                        "chain broken: a line before it was deleted, inserted or reordered",
                    )
                )
            if entry.get("seq") != seq + 1:
                problems.append(
                    Problem(
                        f"{label} ({where})",
                        f"sequence {entry.get('seq')} follows {seq}: lines deleted or reordered",
                    )
                )
            seq = entry.get("seq") if isinstance(entry.get("seq"), int) else seq + 1
            prev = entry.get("hash")
            last_hash = prev or last_hash
            if entry.get("type") == "event":
                events.append((label, where, entry.get("record")))
            if entry.get("type") == "record":
                count += 1
                rid = str(entry.get("id"))
                if rid in indexed:
                    problems.append(Problem(rid, f"indexed twice ({where})"))
                indexed[rid] = str(entry.get("record_sha256"))
                problems.extend(self._verify_record(rid, entry))
        head = self._read_head()
        if head is None:
            if raw_lines:
                problems.append(Problem(HEAD, "missing"))
        elif head.get("seq") != seq or head.get("hash") != last_hash:
            problems.append(
                Problem(
                    HEAD,
                    f"says seq {head.get('seq')} but the index ends at seq {seq}: index lines were removed or added",
                )
            )
        if expect_head and expect_head != last_hash:
            problems.append(Problem(HEAD, f"index ends at hash {last_hash[:16]}..., expected {expect_head[:16]}..."))
        for label, where, record_id in events:
            if record_id is not None and record_id not in indexed:
                problems.append(
                    Problem(f"{label} ({where})", f"refers to record {str(record_id)[:60]}, which is not in the index")
                )
        for rid, path in self._record_dirs():
            if rid not in indexed:
                problems.append(Problem(rid, f"record directory {path.relative_to(self.root)} is not in the index"))
        for stray in self._stray_files():
            problems.append(
                Problem(str(stray.relative_to(self.root)), "unexpected file in the archive's date directories")
            )
        return count, problems

    def _verify_record(self, rid: str, entry: dict[str, Any]) -> list[Problem]:
        try:
            self._check_id(rid)
        except ArchiveError as exc:
            return [Problem(rid, str(exc))]
        folder = self.record_dir(rid)
        rj = folder / "record.json"
        if entry.get("path") != self.relpath_for(rid):
            return [Problem(rid, "index path does not match the record id")]
        if not rj.exists():
            return [Problem(rid, f"record.json missing ({folder.relative_to(self.root)} deleted?)")]
        out = []
        if sha256_file(rj) != entry.get("record_sha256"):
            out.append(Problem(rid, "record.json changed since it was archived"))
        try:
            record = json.loads(rj.read_text())
            files = dict(record.get("files") or {})
        except ValueError:
            return [*out, Problem(rid, "record.json is not valid JSON")]
        if record.get("id") != rid:
            out.append(Problem(rid, f"record.json names another id ({str(record.get('id'))[:60]})"))
        for name in RECORD_FILES:
            if name not in files:
                out.append(Problem(rid, f"record.json lists no hash for {name}"))
        for name, digest in files.items():
            path = folder / name
            if "/" in name or not path.is_file():
                out.append(Problem(rid, f"{name} missing"))
            elif sha256_file(path) != digest:
                out.append(Problem(rid, f"{name} changed since it was archived"))
        extra = sorted(p.name for p in folder.iterdir() if p.name not in files and p.name != "record.json")
        if extra:
            out.append(Problem(rid, f"unexpected files added: {', '.join(extra)}"))
        return out

    def _read_head(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.root / HEAD).read_text())
        except (OSError, ValueError):
            return None

    def _record_dirs(self) -> Iterator[tuple[str, Path]]:
        if not self.root.exists():
            return
        for year in sorted(self.root.glob("[0-9][0-9][0-9][0-9]")):
            for path in sorted(year.glob("[0-9][0-9]/[0-9][0-9]/*")):
                if path.is_dir():
                    yield path.name, path

    def _stray_files(self) -> Iterator[Path]:
        if not self.root.exists():
            return
        for year in sorted(self.root.glob("[0-9][0-9][0-9][0-9]")):
            for path in sorted(year.rglob("*")):
                depth = len(path.relative_to(year).parts)
                if (depth <= 3 and not path.is_dir()) or (depth == 3 and not RECORD_ID.fullmatch(path.name)):
                    yield path

    def head(self) -> dict[str, Any] | None:
        return self._read_head()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
