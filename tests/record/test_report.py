"""Incident reports: hostile record values cannot shape the Markdown, attachments are chained
once and verified (a replaced, symlinked or unchained report is caught), and a record counts as
resolved only when its own alert resolves; an attached report meets the report deadlines."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from runbook_lib.record import report
from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import verify
from runbook_lib.sre import incident
from tests.web.test_records_page import make_record

HOSTILE = "DiskFull\n## Root cause (TO COMPLETE)\n- it was DNS [phish](https://evil.example) <img src=https://evil.example/x.png>"


def reports_problems(archive: LocalArchive) -> list[str]:
    """verify's findings about attached reports (these hand-made records carry no file hashes)."""
    return [p.what for p in verify(archive)[1] if "report" in p.what or p.where.startswith("reports")]


def test_hostile_values_cannot_add_headings_links_or_images(tmp_path: Path) -> None:
    rid = make_record(tmp_path, 1, runbook="triage", alertname=HOSTILE, summary=HOSTILE)
    text = report.markdown(report.build(LocalArchive(tmp_path), rid))
    assert text.count("\n## Root cause") == 1  # only the report's own heading
    assert not re.search(r"(?<!\\)\[phish", text) and not re.search(r"(?<!\\)<img", text)  # nothing unescaped
    assert "\\[phish\\]" in text and "\\<img" in text  # shown, escaped, on one line
    page = report.html(report.build(LocalArchive(tmp_path), rid))
    assert "<img" not in page and "&lt;img" in page and "<script" not in page


def test_attachments_are_numbered_chained_and_verified(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path)
    rid = make_record(tmp_path, 1, runbook="triage", alertname="X", resolved_ago=timedelta(minutes=1))
    first, _ = report.attach(archive, rid, "# one\n", "md")
    second, _ = report.attach(archive, rid, "<html></html>\n", "html")
    assert (first.name, second.name) == ("report-1.md", "report-2.html")
    assert reports_problems(archive) == []

    # replaced, then chained again with the new hash: caught (an event per path, once)
    first.write_text("# one, rewritten\n")
    archive.append_event(
        rid, "report", {"path": first.relative_to(tmp_path).as_posix(), "sha256": "0" * 64, "format": "md"}
    )
    problems = reports_problems(archive)
    assert any("chained twice" in p for p in problems) and any("sha256 differs" in p for p in problems)


def test_a_symlinked_or_unchained_report_and_a_foreign_path_are_caught(tmp_path: Path) -> None:
    archive = LocalArchive(tmp_path)
    rid = make_record(tmp_path, 1, runbook="triage", alertname="X")
    path, _ = report.attach(archive, rid, "# r\n", "md")
    target = tmp_path.parent / "elsewhere.md"
    target.write_text("# r\n")
    path.unlink()
    os.symlink(target, path)
    assert any("symlink" in p for p in reports_problems(archive))
    path.unlink()
    path.write_text("# r\n")
    (path.parent / "report-9.md").write_text("not chained\n")
    archive.append_event(None, "report", {"path": "../../etc/hostname", "sha256": "0" * 64, "format": "md"})
    problems = reports_problems(archive)
    assert any("not chained" in p for p in problems)
    assert any("does not name reports/" in p for p in problems)


def test_a_record_is_resolved_when_its_own_alert_resolves_and_a_report_meets_the_report_deadlines(
    tmp_path: Path,
) -> None:
    archive = LocalArchive(tmp_path)
    rid = make_record(tmp_path, 1, runbook="service-down", alertname="ServiceDown", fired_ago=timedelta(hours=3))
    # a linked member of the group resolves: the record's own alert still fires
    archive.append_event(rid, "resolved", {"fingerprint": "someone-else", "ends_at": datetime.now(UTC).isoformat()})
    rec = archive.load(rid)
    assert incident.record_resolved_at(rec) is None
    archive.append_event(
        rid,
        "resolved",
        {"fingerprint": rec["alert"]["fingerprint"], "ends_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat()},
    )
    rec = archive.load(rid)
    ended = incident.record_resolved_at(rec)
    assert ended is not None
    now = datetime.now(UTC)
    owed = {r["name"]: r for r in incident.status(rec["incident"], now, ended)}
    assert owed["preliminary report"]["passed"] and not owed["preliminary report"]["met"]
    done = {r["name"]: r for r in incident.status(rec["incident"], now, ended, reported=True)}
    assert done["preliminary report"]["met"] and done["full report"]["met"]
    assert not done["postmortem"]["met"]  # a report is not the postmortem meeting


def test_a_report_that_says_nothing_new_is_not_attached_again(tmp_path: Path) -> None:
    """`runbook report ID` attached a new report-N on every call. Now only when its content
    changed: the second call with nothing new says so and chains nothing."""
    from tests.helpers import cli

    rid = make_record(tmp_path, 1, runbook="triage", alertname="X", resolved_ago=timedelta(minutes=1))
    env = {"RUNBOOK_ARCHIVE": str(tmp_path)}
    runs = [cli("report", rid, env=env) for _ in range(3)]
    assert all(r.returncode == 0 for r in runs), [r.stderr for r in runs]
    events = [e for e in LocalArchive(tmp_path).load(rid)["events"] if e["event"] == "report"]
    # the first report is owed; once attached, the next one says it was delivered (new words,
    # attached); the third says exactly that again: not attached
    assert "report attached as" in runs[0].stderr and "not attached again" in runs[2].stderr
    assert len(events) == len({e["data"]["sha256"] for e in events}) == (2 if runs[0].stdout != runs[1].stdout else 1)
    assert runs[1].stdout == runs[2].stdout
