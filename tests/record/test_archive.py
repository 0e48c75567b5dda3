"""`runbook verify`: any single-byte edit, deleted or reordered record or index line is found
and the record is named."""

from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from runbook_lib.core.settings import load_settings
from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import Anchor, verify
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import alert_payload, cli


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """An archive with three real records (triage runs) and one appended event."""
    root = tmp_path_factory.mktemp("archive") / "executed"
    settings = load_settings(overrides={"archive.path": str(root), "prometheus.url": None})
    engine = Runner(settings)
    ids = []
    for name in ("FirstAlert", "SecondAlert", "ThirdAlert"):
        alert = parse_alert(alert_payload(alertname=name)["alerts"][0])
        ids.append(engine.run(RunRequest(alert=alert)).record_id)
    engine.archive.append_event(ids[0], "resolved", {"ends_at": "2026-11-26T15:00:00Z"})
    return root, ids


@pytest.fixture
def archive(
    pristine: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[LocalArchive, list[str]]:
    root, ids = pristine
    copy = tmp_path / "executed"
    shutil.copytree(root, copy)
    monkeypatch.setenv("RUNBOOK_ARCHIVE", str(copy))
    return LocalArchive(copy), ids


def verify_cli() -> tuple[int, str]:
    res = cli("verify")
    return res.returncode, res.stdout + res.stderr


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_archive_verifies(archive) -> None:
    arc, _ids = archive
    count, problems = verify(arc)
    assert (count, problems) == (3, [])
    code, out = verify_cli()
    assert code == 0 and "ok: 3 records verified" in out
    head = arc.read_head()
    assert head is not None
    assert cli("verify", "--expect-head", head["hash"]).returncode == 0
    assert cli("verify", "--expect-head", "0" * 64).returncode == 1


@pytest.mark.parametrize("name", ["notebook.ipynb", "record.html", "record.json"])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_any_single_byte_edit_names_the_record(archive, name: str, where: str) -> None:
    arc, ids = archive
    target = ids[1]
    path = arc.record_dir(target) / name
    size = path.stat().st_size
    flip_byte(path, {"start": 0, "middle": size // 2, "end": size - 2}[where])
    code, out = verify_cli()
    assert code == 1
    assert target in out and name in out
    assert ids[0] not in out and ids[2] not in out  # only the edited record is blamed


def test_edited_index_line_is_found(archive) -> None:
    arc, ids = archive
    lines = arc.index_path.read_text().splitlines(keepends=True)
    entry = json.loads(lines[1])
    entry["status"] = "succeeded-ish"
    lines[1] = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    arc.index_path.write_text("".join(lines))
    code, out = verify_cli()
    assert code == 1 and ids[1] in out and "line hash does not match" in out


def test_deleted_index_line_is_found(archive) -> None:
    arc, ids = archive
    lines = arc.index_path.read_text().splitlines(keepends=True)
    del lines[1]
    arc.index_path.write_text("".join(lines))
    code, out = verify_cli()
    assert code == 1
    assert f"{ids[1]}: record directory" in out and "not in the index" in out
    assert "chain broken" in out


def test_deleted_last_line_is_caught_by_head(archive) -> None:
    arc, _ids = archive
    lines = arc.index_path.read_text().splitlines(keepends=True)
    arc.index_path.write_text("".join(lines[:-1]))  # the resolved event
    code, out = verify_cli()
    assert code == 1 and "HEAD" in out


def test_reordered_lines_are_found(archive) -> None:
    arc, ids = archive
    lines = arc.index_path.read_text().splitlines(keepends=True)
    lines[0], lines[1] = lines[1], lines[0]
    arc.index_path.write_text("".join(lines))
    code, out = verify_cli()
    assert code == 1 and "chain broken" in out and (ids[0] in out or ids[1] in out)


def test_deleted_record_directory_is_named(archive) -> None:
    arc, ids = archive
    shutil.rmtree(arc.record_dir(ids[2]))
    code, out = verify_cli()
    assert code == 1 and f"{ids[2]}: record.json missing" in out


def test_added_file_and_replaced_record_are_found(archive) -> None:
    arc, ids = archive
    (arc.record_dir(ids[0]) / "extra.txt").write_text("planted")
    shutil.copy(arc.record_dir(ids[1]) / "record.html", arc.record_dir(ids[2]) / "record.html")
    code, out = verify_cli()
    assert code == 1
    assert f"{ids[0]}: unexpected files added: extra.txt" in out
    assert f"{ids[2]}: record.html changed" in out


def test_events_stay_outside_records_and_show_up(archive) -> None:
    arc, ids = archive
    record = arc.load(ids[0])
    assert [e["event"] for e in record["events"]] == ["resolved"]
    assert arc.load(ids[1])["events"] == []
    res = cli("show", ids[0])
    assert "Resolved at 2026-11-26T15:00:00Z" in res.stdout  # the one timestamp style, not a raw dict
    assert "{" not in res.stdout.split("events:", 1)[1]


def test_verify_without_index_still_checks_head(tmp_path: Path) -> None:
    arc = LocalArchive(tmp_path)
    arc.append_event(None, "note", {"x": 1})
    head = arc.read_head()["hash"]
    arc.index_path.unlink()
    assert any("HEAD says" in str(p) for p in verify(arc)[1])
    (tmp_path / "HEAD").unlink()
    assert verify(arc)[1] == []
    assert verify(arc, expect_head=head)[1] != []


def test_verify_reports_orphan_events_and_stray_files(tmp_path: Path) -> None:
    arc = LocalArchive(tmp_path)
    arc.append_event("20261126T000000Z-x-00000000", "resolved", {})
    (tmp_path / "2026" / "11" / "26").mkdir(parents=True)
    (tmp_path / "2026" / "11" / "26" / "planted.html").write_text("x")
    problems = [str(p) for p in verify(arc)[1]]
    assert any("which is not in the index" in p for p in problems)
    assert any("planted.html" in p for p in problems)


def test_a_write_that_fails_part_way_leaves_the_index_as_it_was(tmp_path: Path, monkeypatch) -> None:
    """Disk full in the middle of an index line: the half line is cut off again, HEAD is not
    moved, and the next append (space back) chains on as if nothing happened."""
    arc = LocalArchive(tmp_path)
    arc.append_event(None, "note", {"n": 1})
    before = arc.index_path.read_bytes(), (tmp_path / "HEAD").read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(OSError, match="No space"):
        arc.append_event(None, "note", {"n": 2})
    monkeypatch.setattr(os, "write", real_write)
    assert (arc.index_path.read_bytes(), (tmp_path / "HEAD").read_bytes()) == before
    arc.append_event(None, "note", {"n": 3})
    assert verify(arc) == (0, []) and arc.read_head()["seq"] == 2


def test_a_head_that_cannot_be_written_takes_its_line_back(tmp_path: Path, monkeypatch) -> None:
    arc = LocalArchive(tmp_path)
    arc.append_event(None, "note", {"n": 1})
    before = arc.index_path.read_bytes()
    monkeypatch.setattr(LocalArchive, "_write_head", lambda *_a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        arc.append_event(None, "note", {"n": 2})
    assert arc.index_path.read_bytes() == before
    monkeypatch.undo()
    assert verify(arc) == (0, [])


def relink_from(arc: LocalArchive, seq: int, change: dict) -> None:
    """Rewrite entry ``seq`` and re-link every later line and HEAD, as a careful forger would."""
    from runbook_lib.record.archive.base import canonical, line_hash

    entries = [json.loads(line) for line in arc.index_path.read_text().splitlines()]
    prev = entries[seq - 2]["hash"] if seq > 1 else "0" * 64
    for entry in entries[seq - 1 :]:
        if entry["seq"] == seq:
            entry.update(change)
        entry["prev"] = prev
        entry["hash"] = line_hash(entry)
        prev = entry["hash"]
    arc.index_path.write_bytes(b"".join(canonical(e) + b"\n" for e in entries))
    (arc.root / "HEAD").write_text(json.dumps({"seq": entries[-1]["seq"], "hash": prev}) + "\n")


def test_an_old_anchor_holds_on_a_grown_archive_and_catches_a_relinked_rewrite(tmp_path: Path) -> None:
    arc = LocalArchive(tmp_path / "executed")
    for n in range(3):
        arc.append_event(None, "note", {"n": n})
    printed = cli("anchor", env={"RUNBOOK_ARCHIVE": str(arc.root)})
    anchor = Anchor.parse(printed.stdout)
    assert printed.returncode == 0 and anchor.seq == 3
    for n in range(3, 10):  # the archive grows: --expect-head with the old head would now fail
        arc.append_event(None, "note", {"n": n})
    assert verify(arc, expect_head=anchor.hash)[1] != []
    assert verify(arc, anchors=[anchor]) == (0, [])
    ok = cli("verify", "--anchor", str(anchor), env={"RUNBOOK_ARCHIVE": str(arc.root)})
    assert ok.returncode == 0 and "passes through 1 anchor" in ok.stdout

    relink_from(arc, 2, {"data": {"n": "forged"}})
    assert verify(arc) == (0, []), "a consistent rewrite fools the chain alone"
    problems = [str(p) for p in verify(arc, anchors=[anchor])[1]]
    assert problems and "rewritten at or before entry 3" in problems[0]
    bad = cli("verify", "--anchor", str(anchor), env={"RUNBOOK_ARCHIVE": str(arc.root)})
    assert bad.returncode == 1 and "anchor 3" in bad.stderr
    assert verify(arc, anchors=[Anchor(42, "0" * 64)])[1][0].what.startswith("the index has no entry 42")


def test_strays_in_the_root_and_staging_are_reported(archive) -> None:
    arc, ids = archive
    (arc.root / "notes.txt").write_text("planted")
    (arc.root / ".staging").mkdir(exist_ok=True)
    (arc.root / ".staging" / "payload.sh").write_text("planted")
    (arc.root / ".staging" / ids[1]).mkdir()  # staging for a record that is already archived
    (arc.root / ".staging" / "20991231T000000Z-x-0000abcd").mkdir()  # a run in progress: fine
    problems = {p.where: p.what for p in verify(arc)[1]}
    assert problems == {
        "notes.txt": "unexpected file in the archive root",
        ".staging/payload.sh": "unexpected file in .staging (only runs in progress belong there)",
        f".staging/{ids[1]}": "left over: this record is already archived",
    }


def test_a_record_file_that_is_a_symlink_is_reported_even_with_the_right_hash(archive, tmp_path: Path) -> None:
    arc, ids = archive
    real = arc.record_dir(ids[2]) / "record.html"
    outside = tmp_path / "elsewhere.html"
    outside.write_bytes(real.read_bytes())  # same bytes: the hash still matches
    real.unlink()
    real.symlink_to(outside)
    [problem] = verify(arc)[1]
    assert problem.where == ids[2] and "record.html is a symbolic link" in problem.what and "OUTSIDE" in problem.what


@pytest.mark.parametrize("level", ["year", "month", "day"])
def test_a_date_directory_that_is_a_symlink_is_reported(archive, tmp_path: Path, level: str) -> None:
    """The same bytes reached through a symbolic link (to a directory outside the archive, where
    anyone may change them later) are not an archived record."""
    arc, ids = archive
    record_dir = arc.record_dir(ids[1])
    depth = {"year": 3, "month": 2, "day": 1}[level]
    target = record_dir
    for _ in range(depth):
        target = target.parent
    outside = tmp_path / "elsewhere" / target.name
    shutil.move(target, outside)
    target.symlink_to(outside, target_is_directory=True)
    rel = target.relative_to(arc.root).as_posix()
    problems = [(p.where, p.what) for p in verify(arc)[1]]
    assert problems == [(rel, f"a symbolic link in the archive's date directories (to {outside}, OUTSIDE the archive)")]
    code, out = verify_cli()
    assert code == 1 and rel in out


def test_anchor_refuses_an_archive_that_does_not_verify(archive) -> None:
    """A HEAD moved to match a shortened index, or an edited line: `runbook anchor` prints no
    anchor that would vouch for it."""
    arc, ids = archive
    index = arc.root / "index.jsonl"
    lines = index.read_bytes().splitlines(keepends=True)
    index.write_bytes(b"".join(lines[:-1]))  # the last line (an event) removed; HEAD still names it
    res = cli("anchor")
    assert res.returncode == 1 and res.stdout == ""
    assert "REFUSED" in res.stderr and "index lines were removed or added" in res.stderr
    index.write_bytes(b"".join(lines))
    flip_byte(arc.record_dir(ids[0]) / "record.html", 10)
    res = cli("anchor")
    assert res.returncode == 1 and res.stdout == "" and ids[0] in res.stderr
