"""The human half of an incident, chained on its record: acknowledge, assign, update, resolve,
reopen from the CLI; the deadlines worked out from what people did (met, missed), refusals with
a reason, and `runbook verify` covering the events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runbook_lib.record import report
from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import verify
from runbook_lib.record.events import with_events
from runbook_lib.sre import incident, lifecycle
from tests.helpers import cli
from tests.web.test_records_page import make_record


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalArchive:
    monkeypatch.setenv("RUNBOOK_ARCHIVE", str(tmp_path))
    monkeypatch.delenv("RUNBOOK_OPERATOR", raising=False)
    return LocalArchive(tmp_path)


def chain_problems(archive: LocalArchive) -> list[str]:
    """verify's findings about the index (hand-made records hash none of their files)."""
    return [p.what for p in verify(archive)[1] if "no hash" not in p.what and "unexpected files" not in p.what]


def rows(rec: dict, now: datetime) -> dict[str, dict]:
    fp = rec["alert"]["fingerprint"]
    return {r["name"]: r for r in incident.record_status(rec["incident"], now, rec["events"], fp)}


def test_an_acknowledgement_before_its_deadline_is_met_and_one_after_is_missed(archive: LocalArchive) -> None:
    now = datetime.now(UTC)
    on_time = make_record(
        archive.root, 1, runbook="service-down", alertname="ServiceDown", fired_ago=timedelta(minutes=20)
    )
    late = make_record(
        archive.root, 2, runbook="service-down", alertname="ServiceDown", fired_ago=timedelta(minutes=20)
    )
    fired = now - timedelta(minutes=20)
    from runbook_lib.record.incidents import act

    act(archive, on_time, "acknowledged", "Avery Example", now=fired + timedelta(minutes=7))
    act(archive, late, "acknowledged", "Blake Sample", now=fired + timedelta(minutes=12))
    met = rows(archive.load(on_time), now)["acknowledge"]
    missed = rows(archive.load(late), now)["acknowledge"]
    assert met["met"] and not met["passed"] and met["done_at"]
    assert not missed["met"] and missed["missed"] and missed["done_at"] > missed["due"]
    assert "met at" in incident.describe(met) and "missed" in incident.describe(missed)
    # the status update was not posted: 20 minutes in, it is still ahead, not met
    assert not rows(archive.load(on_time), now)["status update"]["met"]
    assert not rows(archive.load(on_time), now)["status update"]["passed"]


def test_the_cli_moves_an_incident_and_refuses_what_does_not_fit(archive: LocalArchive) -> None:
    rid = make_record(archive.root, 3, runbook="service-down", alertname="ServiceDown", fired_ago=timedelta(minutes=3))
    ran = cli("ack", rid[:20])
    assert ran.returncode == 2 and "--operator" in ran.stderr  # no identity, nothing chained
    assert archive.load(rid)["events"] == []

    ok = cli("ack", rid, "--operator", "Avery Example")
    assert ok.returncode == 0 and "acknowledged by Avery Example" in ok.stdout
    again = cli("ack", rid, "--operator", "Blake Sample")
    assert again.returncode == 2 and "already acknowledged by Avery Example" in again.stderr

    assert (
        cli("assign", rid, "--role", "ic", "--person", "Casey Placeholder", "--operator", "Avery Example").returncode
        == 0
    )
    assert cli("update", rid, "rolled back; errors falling", "--operator", "Avery Example").returncode == 0
    done = cli("resolve", rid, "--note", "errors under 0.1 %", "--operator", "Avery Example")
    assert done.returncode == 0 and "resolved by Avery Example" in done.stdout
    after = cli("update", rid, "one more", "--operator", "Avery Example")
    assert after.returncode == 2 and "resolved by Avery Example" in after.stderr and "reopen" in after.stderr
    assert cli("reopen", rid, "--why", "errors are back", "--operator", "Blake Sample").returncode == 0
    assert cli("reopen", rid, "--operator", "Blake Sample").returncode == 2  # not resolved now

    unknown = cli("ack", "20991231T000000Z-nothing", "--operator", "Avery Example")
    assert unknown.returncode == 2 and "no record matches" in unknown.stderr

    rec = archive.load(rid)
    story = lifecycle.summarize(rec["events"], rec["alert"]["fingerprint"])
    assert story["state"] == "firing" and story["reopened"][0]["by"] == "Blake Sample"
    assert story["roles"]["ic"]["person"] == "Casey Placeholder"
    kinds = [e["event"] for e in rec["events"]]
    assert kinds == ["acknowledged", "assigned", "update", "resolved", "reopened"]
    assert chain_problems(archive) == []
    index = (archive.root / "index.jsonl").read_text().replace("Casey Placeholder", "Mallory")
    (archive.root / "index.jsonl").write_text(index)  # an event rewritten after the fact
    assert chain_problems(archive)
    (archive.root / "index.jsonl").write_text(index.replace("Mallory", "Casey Placeholder"))


def test_a_manual_run_is_not_an_incident(archive: LocalArchive) -> None:
    rid = make_record(archive.root, 4, runbook="triage", alertname=None)
    ran = cli("ack", rid, "--operator", "Avery Example")
    assert ran.returncode == 2 and "not an incident" in ran.stderr


def test_the_served_page_and_the_report_tell_the_human_story(archive: LocalArchive) -> None:
    from runbook_lib.record.incidents import act

    now = datetime.now(UTC)
    rid = make_record(archive.root, 5, runbook="service-down", alertname="ServiceDown", fired_ago=timedelta(minutes=40))
    fired = now - timedelta(minutes=40)
    act(archive, rid, "acknowledged", "Avery Example", now=fired + timedelta(minutes=4), via="slack")
    act(
        archive,
        rid,
        "assigned",
        "Avery Example",
        role="ic",
        person="Casey Placeholder",
        now=fired + timedelta(minutes=9),
    )
    act(archive, rid, "resolved", "Avery Example", note="restarted the gateway", now=fired + timedelta(minutes=35))
    rec = archive.load(rid)
    page = with_events(archive.read_record_file(rid, "record.html").decode(), rec["events"], rec, now)
    assert "Incident resolved by Avery Example" in page
    assert "acknowledge met at" in page and "via slack" in page
    # the status update never came and the resolution was after its deadline: missed, not met
    assert "status update missed" in page
    text = report.markdown(report.build(archive, rid), now)
    assert "**Incident Commander (IC):** Casey Placeholder (assigned by Avery Example" in text
    assert "TO COMPLETE" in text.split("## Roles")[1].split("## Deadlines")[0]  # TL and CL were not assigned
    assert "Acknowledged by Avery Example" in text and "Resolved by Avery Example" in text
    assert "- acknowledge: due" in text and "— met" in text and "**missed**" in text


def test_a_fix_that_did_not_run_mitigates_nothing_and_an_approved_one_waits_for_its_run() -> None:
    def ev(kind: str, **data: object) -> dict:
        return {"event": kind, "data": {"at": "2026-12-07T03:00:00Z", **data}, "hash": f"h-{kind}-{len(data)}"}

    approval = ev("approval", by="Avery", action="rollback", approvals=1, needed=1)
    story = lifecycle.summarize([ev("acknowledged", by="Avery"), approval])
    assert lifecycle.awaiting_run(story, "rollback")["by"] == "Avery"
    refused = ev("executed", by="Avery", action="rollback", outcome="refused", approval=approval["hash"])
    story = lifecycle.summarize([ev("acknowledged", by="Avery"), approval, refused])
    assert story["state"] == "acknowledged"  # a refused or failed fix mitigates nothing
    assert lifecycle.awaiting_run(story, "rollback") is None  # that approval's run is over
    done = ev("executed", by="Avery", action="rollback", outcome="done", approval="other")
    assert lifecycle.summarize([approval, done])["state"] == "mitigating"
    # the receiver's own escalation answers no deadline; a person's does
    own = lifecycle.fulfilled(lifecycle.summarize([ev("escalated", step=1, via="receiver")]))
    theirs = lifecycle.fulfilled(lifecycle.summarize([ev("escalated", step=None, via="pagerduty")]))
    assert "resolve or escalate" not in own and "resolve or escalate" in theirs
