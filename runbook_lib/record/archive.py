"""The incident-record archive: layout and the hash-chained index (verification: :mod:`.verify`).

This module is the archive in a local directory; :mod:`.remote` is the same archive in S3 (same
layout, same index format), and :func:`.remote.archive_for` picks one from the settings. Reading
code (load, find, verify, the receiver's pages) asks :attr:`Archive.files` (a :mod:`.storage`
tree) or the methods here, never the file system, so it works on both.

Layout (root = settings.archive_url, ``executed/`` by default)::

    <root>/<YYYY>/<MM>/<DD>/<record-id>/notebook.ipynb   executed notebook, redacted
                                        record.html      nbconvert HTML, sanitised, summary first
                                        record.json      the machine-readable record
    <root>/index.jsonl   append-only; one line per record or event, each carrying the hash of
                         the line before it (a hash chain)
    <root>/HEAD          seq and hash of the last index line (detects a truncated index)
    <root>/.staging/     runs in progress (moved into place atomically when done; for an
                         archive in S3 they stage in a local directory instead)
    <root>/.attempts/    how often a broker-delivered run was started, per record id

Records are never modified after they are indexed. Later facts about a record (the alert
resolved, say) are appended to the index as ``event`` lines, so the chain stays valid.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ArchiveError
from .storage import RECORD_ID, LocalTree, sha256_file

RECORD_FILES = ("notebook.ipynb", "record.html")
GENESIS = "0" * 64
INDEX = "index.jsonl"
REPORTS = "reports"  # attached incident reports: reports/<record id>/report-<n>.<fmt>
REPORT_FORMATS = ("md", "html")
REPORT_NAME = re.compile(r"report-(\d{1,6})\.(md|html)")
HEAD = "HEAD"
ATTEMPTS = ".attempts"  # per-record start counts of broker-delivered runs


def new_record_id(slug: str, when: datetime | None = None) -> str:
    when = (when or datetime.now(UTC)).astimezone(UTC)
    return f"{when:%Y%m%dT%H%M%SZ}-{slug}-{secrets.token_hex(4)}"


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical(body)).hexdigest()


class Archive:
    """The archive in a local directory (fcntl lock, O_APPEND index, fsync, os.replace)."""

    remote = False

    def __init__(self, root: Path) -> None:
        if isinstance(root, str) and "://" in root:
            raise ArchiveError(
                f"{root.partition('://')[0]}:// is a URL, not a directory: open it with "
                "runbook_lib.record.remote.open_archive (or archive_for(settings))"
            )
        self.root = Path(root)
        self.files: Any = LocalTree(self.root)

    # -- paths ----------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """The archive as messages name it: its directory (a URL for a remote archive)."""
        return str(self.root)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    @property
    def work_root(self) -> Path:
        """The local directory whose ``.staging/`` holds runs in progress (the root here)."""
        return self.root

    def staging_dir(self, record_id: str) -> Path:
        """A fresh local directory for a run in progress (moved or uploaded by commit)."""
        self.check_id(record_id)
        path = self.work_root / ".staging" / record_id
        if path.exists():
            shutil.rmtree(path)  # left over from an interrupted attempt
        path.mkdir(parents=True)
        return path

    def relpath_for(self, record_id: str) -> str:
        self.check_id(record_id)
        d = record_id[:8]
        return f"{d[:4]}/{d[4:6]}/{d[6:8]}/{record_id}"

    def record_dir(self, record_id: str) -> Path:
        return self.root / self.relpath_for(record_id)

    def record_location(self, record_id: str) -> str:
        """Where a record's folder is, as people open it (a path here, a URL for S3)."""
        return str(self.record_dir(record_id))

    def has_record_dir(self, record_id: str) -> bool:
        """The record's folder is in place (it may still lack its index line: see adopt)."""
        return self.record_dir(record_id).is_dir()

    def read_record_file(self, record_id: str, name: str) -> bytes:
        """One of a record's files (notebook.ipynb, record.html, record.json), as archived."""
        if name not in (*RECORD_FILES, "record.json"):
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

    @staticmethod
    def check_id(record_id: str) -> None:
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

    def _record_entry(self, record_id: str, record: dict[str, Any], record_sha256: str | None = None) -> dict[str, Any]:
        return {
            "type": "record",
            "id": record_id,
            "path": self.relpath_for(record_id),
            "record_sha256": record_sha256 or sha256_file(self.record_dir(record_id) / "record.json"),
            "runbook": record.get("runbook"),
            "status": record.get("status"),
        }

    def append_event(self, record_id: str | None, event: str, data: dict[str, Any]) -> dict[str, Any]:
        """Chain a later fact about a record (or about no record: record_id None)."""
        with self._locked():
            return self._append({"type": "event", "record": record_id, "event": event, "data": data})

    def attach_report(self, record_id: str, text: str, fmt: str) -> tuple[Path, dict[str, Any]]:
        """Write an incident report to reports/<id>/report-<n>.<fmt> and chain a ``report`` event
        with its sha256, all under the archive lock: the number is taken once (O_EXCL), no
        symlink is followed, the file is on disk (fsync) before its event is chained, and a report
        whose event could not be chained is removed."""
        self.check_id(record_id)
        if fmt not in REPORT_FORMATS:
            raise ArchiveError(f"report format must be one of {REPORT_FORMATS}, not {fmt!r}")
        data = text.encode("utf-8")
        with self._locked():
            if not self.is_indexed(record_id):
                raise ArchiveError(f"record {record_id} is not in the index")
            folder = self.root / REPORTS / record_id
            for part in (self.root / REPORTS, folder):
                if part.is_symlink() or (part.exists() and not part.is_dir()):
                    raise ArchiveError(
                        f"{part.relative_to(self.root)} is not a plain directory: refusing to write there"
                    )
            folder.mkdir(parents=True, exist_ok=True)
            taken = [int(m.group(1)) for p in folder.iterdir() if (m := REPORT_NAME.fullmatch(p.name))]
            path = folder / f"report-{max(taken, default=0) + 1}.{fmt}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _fsync_dir(folder)
            rel = path.relative_to(self.root).as_posix()
            try:
                event = self._append(report_event(record_id, rel, data, fmt))
            except BaseException:
                path.unlink(missing_ok=True)
                raise
        return path, event

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

    def note_attempt(self, record_id: str) -> int:
        """Count one more start of the run that writes ``record_id`` and return the count (1 the
        first time). A broker redelivers the job of a worker that was lost mid-run but does not say
        how often; this counter, kept beside the records (``.attempts/<id>``), does."""
        self.check_id(record_id)
        with self._locked():
            folder = self.root / ATTEMPTS
            folder.mkdir(exist_ok=True)
            path = folder / record_id
            try:
                n = int(path.read_text().strip() or 0) + 1
            except FileNotFoundError:
                n = 1
            except ValueError:
                raise ArchiveError(f"{path} does not hold a count") from None
            tmp = folder / f".{record_id}.tmp"
            tmp.write_text(f"{n}\n")
            _fsync_file(tmp)
            os.replace(tmp, path)
            return n

    def _append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Append one line and move HEAD to it, or leave both as they were: a write that fails
        part-way (disk full, I/O error) is cut back off the index before the error is raised."""
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
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, f"short write to {self.index_path} ({written} of {len(data)} bytes)")
                os.fsync(fd)
                self._write_head(entry)
            except BaseException:
                os.ftruncate(fd, size)  # never leave half a line (or a line HEAD does not know)
                os.fsync(fd)
                raise
        finally:
            os.close(fd)
        return entry

    def _write_head(self, entry: dict[str, Any]) -> None:
        head_tmp = self.root / f".{HEAD}.tmp"
        try:
            head_tmp.write_text(json.dumps({"seq": entry["seq"], "hash": entry["hash"]}) + "\n")
            _fsync_file(head_tmp)
            os.replace(head_tmp, self.root / HEAD)
        except BaseException:
            head_tmp.unlink(missing_ok=True)
            raise

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
        return parse_last_line(lines[-1], str(self.index_path))

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
        """record.json of one record plus the events chained about it since; ``dir`` is where
        the record's folder is (:meth:`record_location`)."""
        self.check_id(record_id)
        try:
            raw = self.files.read_bytes(f"{self.relpath_for(record_id)}/record.json")
        except (FileNotFoundError, NotADirectoryError):
            raise ArchiveError(f"no record {record_id} in {self.location}") from None
        record = json.loads(raw)
        record["events"] = [e for e in self.entries() if e.get("type") == "event" and e.get("record") == record_id]
        record["dir"] = self.record_location(record_id)
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
            raise ArchiveError(f"no record matches {prefix[:80]!r} in {self.location}")
        raise ArchiveError(f"{prefix!r} matches {len(matches)} records; give more of the id")

    def read_head(self) -> dict[str, Any] | None:
        try:
            head = json.loads(self.files.read_bytes(HEAD))
        except (OSError, ValueError):
            return None
        return head if isinstance(head, dict) else None

    def record_dirs(self) -> Iterator[tuple[str, Path]]:
        """(record id, folder) of every folder at YYYY/MM/DD/<name>, indexed or not."""
        for name, rel in self.files.record_folders():
            yield name, self.root / rel

    def stray_files(self) -> Iterator[Path]:
        """Files and folders in the date directories that are no part of the layout."""
        for rel in self.files.strays():
            yield self.root / rel


def parse_last_line(raw: bytes, where: str) -> dict[str, Any] | None:
    """The index's last line (None when empty); a line that is not JSON is an error naming ``where``."""
    last = raw.strip()
    if not last:
        return None
    try:
        return json.loads(last)
    except ValueError:
        raise ArchiveError(f"{where}: last line is not JSON; run `runbook verify`") from None


def report_event(record_id: str, rel: str, data: bytes, fmt: str) -> dict[str, Any]:
    """The index event that chains an attached incident report (its path, sha256 and format)."""
    return {
        "type": "event",
        "record": record_id,
        "event": "report",
        "data": {"path": rel, "sha256": hashlib.sha256(data).hexdigest(), "format": fmt},
    }


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
