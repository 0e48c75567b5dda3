"""Verifying the archive: the index hash chain, HEAD, every record's files, and that no record
directory, index line or file is missing, added or reordered.

Everything is read through the archive's tree (:mod:`.storage`), so a local directory and an
archive in S3 are verified alike. The index is read first and the tree listed after it: every
record the index names had its files written before its line was chained."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from runbook_lib.core.errors import ArchiveError
from runbook_lib.core.layout import HEAD, INDEX, RECORD_FILES, RECORD_ID, REPORT_NAME, REPORTS
from runbook_lib.record.archive.base import GENESIS, Archive, canonical, line_hash


@dataclass
class Problem:
    where: str  # a record id, "index.jsonl line N", "HEAD", or a path
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


@dataclass
class _Chain:
    """What walking the index found."""

    lines: int = 0
    record_lines: int = 0
    seq: int = 0
    last_hash: str = GENESIS
    records: dict[str, str] = field(default_factory=dict)  # id -> record_sha256
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> line hash
    events: list[tuple[str, Any]] = field(default_factory=list)  # (label, record id)
    reports: list[tuple[str, str, Any]] = field(default_factory=list)  # (path, sha256, record) per report event
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True)
class Anchor:
    """An index entry known from somewhere else (a ticket, a daily mail): ``SEQ:HASH``."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq, sep, digest = text.strip().partition(":")
        if not sep or not seq.isdigit() or int(seq) < 1 or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not an anchor: {text[:80]!r} (expected SEQ:HASH, e.g. 42:<64 hex digits>)")
        return cls(int(seq), digest)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def verify(
    archive: Archive, expect_head: str | None = None, anchors: Sequence[Anchor] = ()
) -> tuple[int, list[Problem]]:
    """Check the chain, every record's files, that no record is missing or extra, and that the
    chain still passes through every anchor (an entry's seq and hash kept outside the archive:
    rewriting that entry, or anything before it, changes its hash).

    Returns (records checked, problems)."""
    files = archive.files
    if not files.is_file(INDEX):
        problems = _without_index(archive, files.snapshot(), expect_head)
        problems += [Problem(f"anchor {a}", "the index is missing") for a in anchors]
        return 0, problems
    index = files.read_bytes(INDEX)
    tree = files.snapshot()  # listed after the index was read (see the module's docstring)
    chain = _walk_index(archive, tree, index)
    problems = chain.problems
    problems += _check_head(archive, chain, expect_head)
    problems += _check_anchors(chain, anchors)
    for label, record_id in chain.events:
        if record_id is not None and record_id not in chain.records:
            problems.append(Problem(label, f"refers to record {str(record_id)[:60]}, which is not in the index"))
    for rid, rel in tree.record_folders():
        if rid not in chain.records:
            problems.append(Problem(rid, f"record directory {rel} is not in the index"))
    for link in tree.date_links():
        problems.append(
            Problem(link, f"a symbolic link in the archive's date directories (to {tree.link_target(link)})")
        )
    for stray in tree.strays():
        problems.append(Problem(stray, "unexpected file in the archive's date directories"))
    problems += _check_root(tree) + _check_staging(tree, chain.records) + _check_reports(tree, chain)
    return chain.record_lines, problems


def _check_reports(tree: Any, chain: _Chain) -> list[Problem]:
    """Every attached incident report is where its event says (reports/<record>/report-<n>.<fmt>,
    for an indexed record), byte for byte, chained once; nothing else is under reports/, and no
    symlink is."""
    problems, seen = [], set()
    for rel, sha, record in chain.reports:
        parts = rel.split("/")
        shaped = (
            len(parts) == 3
            and parts[0] == REPORTS
            and parts[1] == record
            and record in chain.records
            and REPORT_NAME.fullmatch(parts[2])
        )
        if not shaped:
            problems.append(
                Problem(rel[:200], "a report event that does not name reports/<its record>/report-<n>.<fmt>")
            )
            continue
        if rel in seen:
            problems.append(Problem(rel, "chained twice: an attached report was replaced"))
        seen.add(rel)
        if tree.is_symlink(rel) or tree.is_symlink(rel.rpartition("/")[0]) or tree.is_symlink(REPORTS):
            problems.append(Problem(rel, "attached report is a symlink"))
        elif not tree.is_file(rel):
            problems.append(Problem(rel, "attached report is missing"))
        elif tree.sha256(rel) != sha:
            problems.append(Problem(rel, "attached report changed since it was written (sha256 differs)"))
    if tree.kind(REPORTS) == "dir":
        for rel, kind in tree.walk(REPORTS):
            if kind == "link":
                problems.append(Problem(rel, "symlink under reports/"))
            elif kind == "file" and rel not in seen:
                problems.append(Problem(rel, "report file not chained in the index"))
    return problems


# What may stand in the archive root besides the year directories: the index, HEAD, locks, the
# staging and interactive folders, and the receiver's default journal with SQLite's side files.
ROOT_NAMES = {
    INDEX,
    HEAD,
    ".lock",
    ".receiver.lock",
    ".HEAD.tmp",  # HEAD being replaced: present for an instant during an append
    ".staging",
    "interactive",
    "reports",
    ".gitkeep",
    "intake.sqlite3",
    "intake.sqlite3-wal",
    "intake.sqlite3-shm",
    "intake.sqlite3-journal",
    "intake.sqlite3.lock",
    ".attempts",  # start counts of broker-delivered runs (Archive.note_attempt)
    ".running",  # who runs a broker-delivered record now (Archive.mark_running)
}


def _check_root(tree: Any) -> list[Problem]:
    problems = []
    for name in tree.iterdir(""):
        year_dir = re.fullmatch(r"\d{4}", name) and tree.kind(name) in ("dir", "link")  # a link: date_links
        if name not in ROOT_NAMES and not year_dir:
            problems.append(Problem(name, "unexpected file in the archive root"))
    return problems


def _check_staging(tree: Any, indexed: dict[str, str]) -> list[Problem]:
    """Runs in progress stage here; files, foreign names and staging of archived records do not.
    (An archive in S3 stages in a local directory: it has no .staging.)"""
    if not tree.is_dir(".staging"):
        return []
    problems = []
    for name in tree.iterdir(".staging"):
        where = f".staging/{name}"
        if tree.kind(where) != "dir" or not RECORD_ID.fullmatch(name):
            problems.append(Problem(where, "unexpected file in .staging (only runs in progress belong there)"))
        elif name in indexed:
            problems.append(Problem(where, "left over: this record is already archived"))
    return problems


def _without_index(archive: Archive, tree: Any, expect_head: str | None) -> list[Problem]:
    problems = []
    if any(tree.record_folders()):
        problems.append(Problem(INDEX, "missing, but record directories exist"))
    if archive.read_head() is not None:
        problems.append(Problem(INDEX, "missing, but HEAD says the archive has entries"))
    if expect_head:
        problems.append(Problem(INDEX, f"missing; expected it to end at hash {expect_head[:16]}..."))
    return problems


def _walk_index(archive: Archive, tree: Any, index: bytes) -> _Chain:
    chain = _Chain()
    raw_lines = index.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    else:
        chain.problems.append(Problem(INDEX, "does not end with a newline (truncated or edited)"))
    chain.lines = len(raw_lines)
    prev: str | None = GENESIS
    for n, raw in enumerate(raw_lines, start=1):
        where = f"{INDEX} line {n}"
        try:
            entry = json.loads(raw)
            if not isinstance(entry, dict):
                raise ValueError("not an object")
        except ValueError:
            chain.problems.append(Problem(where, "not a JSON object"))
            prev = None  # the next line's link cannot be checked
            continue
        _check_line(chain, entry, raw, where, prev)
        prev = entry.get("hash")
        chain.last_hash = prev or chain.last_hash
        if entry.get("type") == "record":
            _check_record_line(archive, tree, chain, entry, where)
    return chain


def _check_line(chain: _Chain, entry: dict[str, Any], raw: bytes, where: str, prev: str | None) -> None:
    label = entry.get("id") or (f"event for {entry.get('record')}" if entry.get("type") == "event" else where)
    at = f"{label} ({where})"
    if canonical(entry) != raw:
        chain.problems.append(Problem(at, "line is not in canonical form (edited)"))
    if line_hash(entry) != entry.get("hash"):
        chain.problems.append(Problem(at, "line hash does not match its content (edited)"))
    if prev is not None and entry.get("prev") != prev:
        chain.problems.append(Problem(at, "chain broken: a line before it was deleted, inserted or reordered"))
    if entry.get("seq") != chain.seq + 1:
        chain.problems.append(
            Problem(at, f"sequence {entry.get('seq')} follows {chain.seq}: lines deleted or reordered")
        )
    chain.seq = entry["seq"] if isinstance(entry.get("seq"), int) else chain.seq + 1
    if isinstance(entry.get("hash"), str) and chain.seq not in chain.hashes:
        chain.hashes[chain.seq] = entry["hash"]
    if entry.get("type") == "event":
        chain.events.append((at, entry.get("record")))
        data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
        if entry.get("event") == "report":
            chain.reports.append((str(data.get("path")), str(data.get("sha256")), entry.get("record")))


def _check_anchors(chain: _Chain, anchors: Sequence[Anchor]) -> list[Problem]:
    problems = []
    for anchor in anchors:
        found = chain.hashes.get(anchor.seq)
        if found is None:
            problems.append(
                Problem(f"anchor {anchor.seq}", f"the index has no entry {anchor.seq} (it ends at seq {chain.seq})")
            )
        elif found != anchor.hash:
            problems.append(
                Problem(
                    f"anchor {anchor.seq}",
                    f"entry {anchor.seq} now has hash {found[:16]}..., the anchor says {anchor.hash[:16]}...: "
                    f"the index was rewritten at or before entry {anchor.seq}",
                )
            )
    return problems


def _check_record_line(archive: Archive, tree: Any, chain: _Chain, entry: dict[str, Any], where: str) -> None:
    rid = str(entry.get("id"))
    chain.record_lines += 1
    if rid in chain.records:
        chain.problems.append(Problem(rid, f"indexed twice ({where})"))
    chain.records[rid] = str(entry.get("record_sha256"))
    chain.problems.extend(_verify_record(archive, tree, rid, entry))


def _check_head(archive: Archive, chain: _Chain, expect_head: str | None) -> list[Problem]:
    problems = []
    head = archive.read_head()
    if head is None:
        if chain.lines:
            problems.append(Problem(HEAD, "missing"))
    elif head.get("seq") != chain.seq or head.get("hash") != chain.last_hash:
        problems.append(
            Problem(
                HEAD,
                f"says seq {head.get('seq')} but the index ends at seq {chain.seq}: index lines were removed or added",
            )
        )
    if expect_head and expect_head != chain.last_hash:
        problems.append(Problem(HEAD, f"index ends at hash {chain.last_hash[:16]}..., expected {expect_head[:16]}..."))
    return problems


def _verify_record(archive: Archive, tree: Any, rid: str, entry: dict[str, Any]) -> list[Problem]:
    try:
        archive.check_id(rid)
    except ArchiveError as exc:
        return [Problem(rid, str(exc))]
    folder = archive.relpath_for(rid)
    rj = f"{folder}/record.json"
    if tree.is_symlink(folder):
        return [Problem(rid, f"the record directory is a symbolic link (to {tree.link_target(folder)})")]
    if entry.get("path") != folder:
        return [Problem(rid, "index path does not match the record id")]
    if not tree.exists(rj):
        return [Problem(rid, f"record.json missing ({folder} deleted?)")]
    out = []
    raw = tree.read_bytes(rj)
    if hashlib.sha256(raw).hexdigest() != entry.get("record_sha256"):
        out.append(Problem(rid, "record.json changed since it was archived"))
    try:
        record = json.loads(raw)
        files = dict(record.get("files") or {})
    except ValueError:
        return [*out, Problem(rid, "record.json is not valid JSON")]
    if record.get("id") != rid:
        out.append(Problem(rid, f"record.json names another id ({str(record.get('id'))[:60]})"))
    for name in RECORD_FILES:
        if name not in files:
            out.append(Problem(rid, f"record.json lists no hash for {name}"))
    for name, digest in files.items():
        path = f"{folder}/{name}"
        if "/" in name or name in ("", ".", "..") or not tree.is_file(path):
            out.append(Problem(rid, f"{name} missing"))
        elif tree.sha256(path) != digest:
            out.append(Problem(rid, f"{name} changed since it was archived"))
    names = tree.iterdir(folder)
    out += [
        Problem(rid, f"{name} is a symbolic link (to {tree.link_target(f'{folder}/{name}')})")
        for name in names
        if tree.is_symlink(f"{folder}/{name}")
    ]
    extra = sorted(name for name in names if name not in files and name != "record.json")
    if extra:
        out.append(Problem(rid, f"unexpected files added: {', '.join(extra)}"))
    return out
