"""The archive in a local directory: an fcntl lock, the index appended with O_APPEND and fsync,
record folders moved into place with os.replace. Runs stage in ``<root>/.staging/``.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.core.errors import ArchiveError
from runbook_lib.core.layout import (
    ATTEMPTS,
    HEAD,
    INDEX,
    RECORD_FILES,
    RECORD_JSON,
    REPORT_FORMATS,
    REPORT_NAME,
    REPORTS,
)
from runbook_lib.record.archive.base import (
    GENESIS,
    Archive,
    canonical,
    line_hash,
    parse_last_line,
    parse_lines,
    record_entry,
    report_event,
)
from runbook_lib.record.archive.storage import LocalTree, sha256_file


class LocalArchive(Archive):
    """The archive in a local directory (fcntl lock, O_APPEND index, fsync, os.replace)."""

    remote = False

    def __init__(self, root: Path) -> None:
        if isinstance(root, str) and "://" in root:
            raise ArchiveError(
                f"{root.partition('://')[0]}:// is a URL, not a directory: open it with "
                "runbook_lib.record.archive.open_archive (or archive_for(settings))"
            )
        self.root = Path(root)
        self.files = LocalTree(self.root)

    # -- paths ----------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return str(self.root)

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    @property
    def work_root(self) -> Path:
        """The local directory whose ``.staging/`` holds runs in progress (the root here)."""
        return self.root

    def record_dir(self, record_id: str) -> Path:
        return self.root / self.relpath_for(record_id)

    def record_location(self, record_id: str) -> str:
        """Where a record's folder is, as people open it (a path here, a URL for S3)."""
        return str(self.record_dir(record_id))

    def has_record_dir(self, record_id: str) -> bool:
        """The record's folder is in place (it may still lack its index line: see adopt)."""
        return self.record_dir(record_id).is_dir()

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
            for name in (*RECORD_FILES, RECORD_JSON):
                _fsync_file(staging / name)
            os.replace(staging, final)
            _fsync_dir(final.parent)
            self._append(record_entry(record_id, record, sha256_file(final / RECORD_JSON)))
        return final

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
            self._append(record_entry(record_id, record, sha256_file(final / RECORD_JSON)))
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

    def _write_mark(self, rel: str, data: bytes | None) -> None:
        path = self.root / rel
        if data is None:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(exist_ok=True)
        tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, path)

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
            yield from parse_lines(fh, str(self.index_path))


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
