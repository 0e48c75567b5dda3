"""Telling an environmental failure (the disk is full, an I/O error, a read-only file system, a
locked journal, an archive in S3 that cannot be reached) from a failure of the work itself.

An environmental failure is never a final state for a job: the worker keeps the job and retries
it with backoff until the environment recovers (see :mod:`.worker`). Only the runbook itself can
fail a job.
"""

from __future__ import annotations

import errno
import sqlite3

from runbook_lib.core.errors import ArchiveUnavailable

ENVIRONMENTAL_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "I/O error",
    errno.EROFS: "read-only file system",
    errno.EMFILE: "too many open files",
    errno.ENFILE: "too many open files in the system",
    errno.ENOMEM: "out of memory",
}
# sqlite3.OperationalError messages that describe the journal's environment, not a statement
SQLITE_ENVIRONMENTAL = (
    "database or disk is full",
    "disk i/o error",
    "database is locked",
    "database table is locked",
    "unable to open database file",
    "attempt to write a readonly database",
)


# Failures of the process itself (what it leaked: descriptors, memory), that a fresh process cures.
PROCESS_ERRNOS = {errno.EMFILE, errno.ENOMEM}


def process_bound(exc: BaseException | None) -> bool:
    """``exc`` (or its cause/context) is this process running out of descriptors or memory."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in PROCESS_ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def environmental(exc: BaseException | None) -> str | None:
    """A short reason when ``exc`` (or anything in its cause/context chain) is environmental."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENTAL_ERRNOS:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            return f"{ENVIRONMENTAL_ERRNOS[exc.errno]}{where}"
        if isinstance(exc, ArchiveUnavailable):
            return f"archive unavailable: {exc.reason}"
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            for known in SQLITE_ENVIRONMENTAL:
                if known in text:
                    return f"journal: {known}"
        exc = exc.__cause__ or exc.__context__
    return None
