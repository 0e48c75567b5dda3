"""The archive in S3 (``RUNBOOK_ARCHIVE=s3://bucket/prefix``): the same layout and index format as
a local archive, written by several workers on several hosts at once.

Runs stage in a local directory (``<home>/.runbook/.staging``); :meth:`S3Archive.commit`
uploads the record's three files (record.json last: its presence means "in place", what
:meth:`~S3Archive.has_record_dir` and adopt look for) and then chains the index line.

How the chain stays linear with many writers. S3 has no append and no rename, but it has
conditional writes, which this design uses twice (both checked against moto's server, which
answers 412 PreconditionFailed as S3 does):

1. A lease lock, ``<root>/.lock``, taken with ``PUT If-None-Match: *`` (only one create wins).
   It holds the owner (host:pid), a random token and an expiry (now + 30 s). A waiter retries
   with jittered exponential backoff (20 ms doubling to 0.5 s). A lock past its expiry is stale
   (its writer died) and is broken with ``DELETE If-Match: <its etag>``, so two waiters cannot
   both break it and delete each other's fresh lock. The holder releases with
   ``DELETE If-Match: <its own etag>``, so it never deletes a lock that is no longer its own.
   After 90 s without the lock the operation fails with ArchiveUnavailable naming the holder
   (environmental: a receiver worker keeps the job and retries). Expiry is judged by the
   waiter's clock against the holder's: hosts must agree on the time within the lease (NTP).
2. The index itself is replaced with ``PUT If-Match: <the etag it was read with>``. Under a
   valid lease this always succeeds; if a writer stalled past its lease (a GC pause, a
   partition) and another broke its lock and appended meanwhile, the stale writer's PUT fails
   instead of overwriting a line: it rereads the index and chains again. So the lock gives
   order and fairness, and the ETag check makes the chain safe even when a lease is lost.
   HEAD is then moved the same way, and only forwards (never to a lower seq).

The attempt counters (``.attempts/<id>``) are read-modify-written with ``If-Match`` too, and an
attached report is created with ``If-None-Match`` (its number is taken once).

Cost. Appending rewrites the whole index.jsonl: O(size of the index) per append, about 300
bytes per record or event (100 000 lines = 30 MB uploaded per append). An append is about six
requests (lock, GET index, PUT index, GET HEAD, PUT HEAD, unlock), a commit six more (the
files, created with If-None-Match, and a HEAD of each before its index line) plus one GET to
check the record is not indexed yet. Readers (``entries``, ``find``,
``load``) download the whole index. Past a few tens of thousands of records, shard the index by
month or keep a compacted copy; the line format would not change.

Why not one conditional PUT of the index and no lock: that alone keeps the chain linear, but a
commit also uploads files, numbers reports and counts attempts, and a broker may run one
record twice at once (redelivery); the lock keeps those steps together, the ETag check keeps the
index safe if the lock's lease is ever lost.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.core.errors import ArchiveError, ArchiveUnavailable, RecordTaken
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
from runbook_lib.core.present import visible
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
from runbook_lib.record.archive.storage import Conflict, S3Tree, Tagged

log = logging.getLogger("runbook.archive")

LOCK = ".lock"
LEASE_S = 30.0  # a lock older than this is stale: its writer died
LOCK_WAIT_S = 90.0  # longest a writer waits for the lock (more than a lease: a dead holder's lock expires first)
FIRST_PAUSE_S, LONGEST_PAUSE_S = 0.02, 0.5


class S3Archive(Archive):
    """The archive in S3: the reading methods of :class:`Archive` over an :class:`S3Tree`,
    and writes under the lease lock with conditional puts (see the module's docstring)."""

    remote = True

    def __init__(
        self,
        url: str,
        *,
        endpoint: str | None = None,
        work_dir: Path | None = None,
        lease_s: float = LEASE_S,
        lock_wait_s: float = LOCK_WAIT_S,
    ) -> None:
        self.files = S3Tree(url, endpoint)
        self.url = self.files.location
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "runbook-archive"
        self.lease_s, self.lock_wait_s = lease_s, lock_wait_s
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.lock_waits = 0  # times this writer found the lock held (contention, for benchmarks and tests)

    # -- paths ----------------------------------------------------------------------------
    @property
    def location(self) -> str:
        return self.url

    @property
    def work_root(self) -> Path:
        return self.work_dir

    def record_location(self, record_id: str) -> str:
        return self.files.url(self.relpath_for(record_id))

    def has_record_dir(self, record_id: str) -> bool:
        """The record's files are uploaded: its record.json (written last) is there."""
        return bool(self.files.is_file(f"{self.relpath_for(record_id)}/record.json"))

    # -- the lock ---------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        etag = self._acquire()
        try:
            yield
        finally:
            self._release(etag)

    def _acquire(self) -> str:
        deadline = time.monotonic() + self.lock_wait_s
        pause = FIRST_PAUSE_S
        while True:
            lock = {
                "owner": self.owner,
                "token": secrets.token_hex(8),
                "expires": time.time() + self.lease_s,
                "lease_s": self.lease_s,
            }
            try:
                return self.files.create(LOCK, json.dumps(lock).encode())
            except Conflict:
                self.lock_waits += 1
            held = self.files.read_tagged(LOCK)
            if held is not None:
                holder, expires = _holder(held, self.lease_s)
                if expires < time.time():
                    if self.files.delete(LOCK, held.etag):
                        log.warning(
                            "%s: broke a stale archive lock held by %s (expired %s)", self.url, holder, _at(expires)
                        )
                    continue
                if time.monotonic() >= deadline:
                    raise ArchiveUnavailable(
                        f"{self.url}: the archive lock ({LOCK}) is held by {holder} until {_at(expires)}; waited "
                        f"{self.lock_wait_s:.0f} s and wrote nothing. A lock whose writer died expires by itself "
                        f"after its lease ({self.lease_s:.0f} s)",
                        "archive lock busy",
                    )
            time.sleep(pause * (0.5 + secrets.randbelow(1000) / 1000))  # jitter: waiters do not march in step
            pause = min(pause * 2, LONGEST_PAUSE_S)

    def _release(self, etag: str) -> None:
        try:
            if not self.files.delete(LOCK, etag):
                log.warning(
                    "%s: the archive lock was no longer this writer's at release (its lease ran out and another "
                    "writer took it); the index was protected by its ETag check",
                    self.url,
                )
        except ArchiveError as exc:  # the lock expires by itself; the work under it is done
            log.warning("%s: could not release the archive lock (%s); it expires after its lease", self.url, exc)

    # -- writing ----------------------------------------------------------------------------
    def commit(self, staging: Path, record: dict[str, Any]) -> str:
        """Upload a finished staging directory (record.json last) and chain it into the index;
        the record's URL. The staging directory is removed once the record is indexed.

        Every file is created with ``If-None-Match: *``, never put over another: a writer whose
        lease ran out cannot overwrite files another delivery of the same record uploaded (and
        perhaps indexed) meanwhile. What it finds instead (see :meth:`_place`): the record
        indexed ("already in the archive"), another delivery's complete upload
        (:class:`RecordTaken`: adopt indexes it), or the partial upload of a try that died (no
        record.json): replaced, version by version. Before the index line, each file is checked
        to still be the version this commit wrote."""
        record_id = record["id"]
        rel = self.relpath_for(record_id)
        blobs = {name: (staging / name).read_bytes() for name in (*RECORD_FILES, RECORD_JSON)}
        with self._locked():
            if self.is_indexed(record_id):
                raise ArchiveError(f"record {record_id} is already in the archive")
            placed = {name: self._place(record_id, f"{rel}/{name}", data) for name, data in blobs.items()}
            for name, etag in placed.items():
                now = self.files.version(f"{rel}/{name}")
                if now is None or now[1] != etag:
                    raise RecordTaken(
                        f"{self.url}: {rel}/{name} changed while record {record_id} was committed (a writer whose "
                        "lease ran out); not indexed by this delivery"
                    )
            digest = hashlib.sha256(blobs["record.json"]).hexdigest()
            self._append(record_entry(record_id, record, digest), unless_indexed=record_id)
        shutil.rmtree(staging, ignore_errors=True)
        return self.record_location(record_id)

    def _place(self, record_id: str, rel: str, data: bytes) -> str:
        """Create one file of a record; its ETag. An object already there is kept when it is
        these very bytes (this commit's own earlier try), refused when the record is indexed or
        another delivery's upload is complete, and replaced (If-Match its version) only when it
        is left over from a try that never got as far as record.json."""
        folder = rel.rsplit("/", 1)[0]
        while True:
            try:
                return self.files.create(rel, data)
            except Conflict:
                pass
            if self.is_indexed(record_id):
                raise ArchiveError(f"record {record_id} is already in the archive")
            there = self.files.read_tagged(rel)
            if there is None:
                continue  # deleted meanwhile: create again
            if there.data == data:
                return there.etag
            if self.files.is_file(f"{folder}/{RECORD_JSON}"):
                raise RecordTaken(
                    f"{self.url}: another delivery uploaded record {record_id} (its record.json is there); "
                    "this delivery overwrites nothing"
                )
            log.warning("%s: replacing %s, left by a try of record %s that never finished", self.url, rel, record_id)
            try:
                return self.files.replace(rel, data, there.etag)
            except Conflict:
                continue

    def attach_report(self, record_id: str, text: str, fmt: str) -> tuple[str, dict[str, Any]]:
        """As :meth:`Archive.attach_report`; the report is created with If-None-Match (its number
        is taken once) and deleted again if its event cannot be chained. Returns its URL."""
        self.check_id(record_id)
        if fmt not in REPORT_FORMATS:
            raise ArchiveError(f"report format must be one of {REPORT_FORMATS}, not {fmt!r}")
        data = text.encode("utf-8")
        folder = f"{REPORTS}/{record_id}"
        with self._locked():
            if not self.is_indexed(record_id):
                raise ArchiveError(f"record {record_id} is not in the index")
            while True:
                taken = [int(m.group(1)) for name in self.files.iterdir(folder) if (m := REPORT_NAME.fullmatch(name))]
                rel = f"{folder}/report-{max(taken, default=0) + 1}.{fmt}"
                try:
                    etag = self.files.create(rel, data)
                    break
                except Conflict:  # numbered meanwhile by a writer whose lease ran out: take the next
                    continue
            try:
                event = self._append(report_event(record_id, rel, data, fmt))
            except BaseException:
                self.files.delete(rel, etag)
                raise
        return self.files.url(rel), event

    def adopt(self, record_id: str) -> bool:
        """Index a record whose files were uploaded but not indexed (a crash in between). Only a
        record whose record.json is there and matches its files is adopted."""
        rel = self.relpath_for(record_id)
        with self._locked():
            if self.is_indexed(record_id):
                return False
            try:
                raw = self.files.read_bytes(f"{rel}/record.json")
            except FileNotFoundError:
                return False
            record = json.loads(raw)
            for name, digest in record.get("files", {}).items():
                try:
                    actual = self.files.sha256(f"{rel}/{name}")
                except FileNotFoundError:
                    actual = None
                if actual != digest:
                    raise ArchiveError(f"record {record_id}: {name} does not match its record.json; not adopted")
            entry = record_entry(record_id, record, hashlib.sha256(raw).hexdigest())
            self._append(entry, unless_indexed=record_id)
            return True

    def note_attempt(self, record_id: str) -> int:
        """As :meth:`Archive.note_attempt`: ``.attempts/<id>`` read and rewritten with If-Match
        (created with If-None-Match), again on a conflict. No archive lock: the conditional put
        alone keeps the count, and each run would otherwise queue for the lock twice."""
        self.check_id(record_id)
        rel = f"{ATTEMPTS}/{record_id}"
        while True:
            current = self.files.read_tagged(rel)
            try:
                n = int(current.data.decode().strip() or 0) + 1 if current else 1
            except ValueError:
                raise ArchiveError(f"{self.files.url(rel)} does not hold a count") from None
            try:
                self.files.replace(rel, f"{n}\n".encode(), current.etag if current else None)
                return n
            except Conflict:
                continue

    def _write_mark(self, rel: str, data: bytes | None) -> None:
        if data is None:
            self.files.delete(rel)
        else:
            self.files.put(rel, data)

    def _append(self, entry: dict[str, Any], *, unless_indexed: str | None = None) -> dict[str, Any]:
        """Chain one line: read the index with its ETag, put it back one line longer only if it
        is still that version (else read again), then move HEAD forwards. If HEAD cannot be
        written the line is taken back (when no one chained after it), as a local archive does."""
        deadline = time.monotonic() + self.lock_wait_s
        while True:
            current = self.files.read_tagged(INDEX)
            data = current.data if current else b""
            if unless_indexed is not None and _indexed(data, unless_indexed):
                raise ArchiveError(f"record {unless_indexed} is already in the archive")
            last = self._last_of(data)
            line = {
                "seq": (last["seq"] + 1) if last else 1,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                **entry,
                "prev": last["hash"] if last else GENESIS,
            }
            line["hash"] = line_hash(line)
            try:
                etag = self.files.replace(INDEX, data + canonical(line) + b"\n", current.etag if current else None)
                break
            except Conflict:
                if time.monotonic() >= deadline:
                    raise ArchiveUnavailable(
                        f"{self.url}: index.jsonl kept changing under this writer for {self.lock_wait_s:.0f} s; "
                        f"nothing was chained",
                        "index contended",
                    ) from None
                log.warning(
                    "%s: index.jsonl changed while this writer held the lock (lease lost?); chaining again", self.url
                )
        try:
            self._move_head(line)
        except BaseException:
            try:
                self.files.replace(INDEX, data, etag)
            except (Conflict, ArchiveError) as exc:
                log.error("%s: line %s stays in the index without HEAD: %s", self.url, line["seq"], exc)
            raise
        return line

    def _move_head(self, line: dict[str, Any]) -> None:
        body = (json.dumps({"seq": line["seq"], "hash": line["hash"]}) + "\n").encode()
        while True:
            current = self.files.read_tagged(HEAD)
            if current is not None and _seq_of(current) >= line["seq"]:
                return  # a later line's writer moved it already
            try:
                self.files.replace(HEAD, body, current.etag if current else None)
                return
            except Conflict:
                continue

    def _last_of(self, data: bytes) -> dict[str, Any] | None:
        return parse_last_line(data.rstrip(b"\n").rpartition(b"\n")[2], self.files.url(INDEX))

    # -- reading --------------------------------------------------------------------------
    def entries(self) -> Iterator[dict[str, Any]]:
        try:
            data = self.files.read_bytes(INDEX)
        except FileNotFoundError:
            return
        yield from parse_lines(iter(data.split(b"\n")), self.files.url(INDEX))


def _indexed(index: bytes, record_id: str) -> bool:
    needle = json.dumps(record_id).encode()
    if needle not in index:  # the cheap test first: most appends are of records not yet there
        return False
    for raw in index.split(b"\n"):
        if needle in raw:
            try:
                entry = json.loads(raw)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("type") == "record" and entry.get("id") == record_id:
                return True
    return False


def _holder(held: Tagged, lease_s: float) -> tuple[str, float]:
    """Who holds a lock, and when it expires (from its body; else its write time plus a lease)."""
    try:
        lock = json.loads(held.data)
        return visible(str(lock.get("owner")))[:100], float(lock["expires"])
    except (ValueError, TypeError, KeyError, AttributeError):
        written = held.modified.timestamp() if held.modified else time.time()
        return "an unreadable lock", written + lease_s


def _seq_of(head: Tagged) -> int:
    try:
        seq = json.loads(head.data).get("seq")
    except (ValueError, AttributeError):
        return 0
    return seq if isinstance(seq, int) else 0


def _at(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
