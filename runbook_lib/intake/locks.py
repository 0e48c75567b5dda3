"""One receiver per journal, and one receiver per archive.

Two receivers on one journal would run every job twice; two receivers with different journals
on one archive would each record the same alert. ``runbook serve`` holds an exclusive lock on
both for as long as it serves; a second one is refused with a message naming the holder.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runbook_lib.core.errors import RunbookError
from runbook_lib.core.settings import Settings

ARCHIVE_LOCK = ".receiver.lock"


class ExclusiveLock:
    """A lock file held with flock while serving; it records who holds it."""

    def __init__(self, path: Path, what: str, holder: str) -> None:
        self.path = path
        self.what = what
        self.holder = holder
        self._fh: Any = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            held_by = fh.read().strip() or "unknown"
            fh.close()
            raise RunbookError(f"another receiver is already serving {self.what} ({held_by})") from None
        fh.seek(0)
        fh.truncate()
        fh.write(self.holder + "\n")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


@contextmanager
def receiver_locks(settings: Settings) -> Iterator[None]:
    """Hold the journal's and the archive's lock while serving."""
    holder = f"pid {os.getpid()}, journal {settings.journal_path}"
    locks = [
        ExclusiveLock(Path(f"{settings.journal_path}.lock"), f"the journal {settings.journal_path}", holder),
        # an archive in S3 is locked in its local working directory: one receiver per host's checkout
        ExclusiveLock(settings.archive_path / ARCHIVE_LOCK, f"the archive {settings.archive_url}", holder),
    ]
    taken: list[ExclusiveLock] = []
    try:
        for lock in locks:
            lock.acquire()
            taken.append(lock)
        yield
    finally:
        for lock in reversed(taken):
            lock.release()
