"""The end-of-shift checklist's toil is the toil of the primary shift that is ending, not of the
ISO week: at a Monday handover (09:00 UTC in parameters/oncall.yaml) it is the week that just
ended, against a real PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from runbook_lib.clients import toil
from runbook_lib.core.present import iso
from runbook_lib.core.settings import load_settings
from runbook_lib.kernel.checks import shift
from runbook_lib.kernel.notebook import Runbook
from runbook_lib.sre import oncall
from tests.helpers import HOME

pytestmark = pytest.mark.services


def test_at_a_monday_handover_the_toil_is_the_week_that_just_ended(fresh_db: str) -> None:
    roster = oncall.Roster.load(HOME / "parameters" / "oncall.yaml")
    cfg = toil.ToilConfig.load(HOME / "parameters" / "oncall.yaml")
    handover = roster.rotation_start + 10 * oncall.WEEK  # a Monday, 09:00 UTC
    assert handover.weekday() == 0 and handover.hour == 9
    logged = [
        (handover - oncall.WEEK - timedelta(minutes=1), 15),  # the shift before: not counted
        (handover - oncall.WEEK, 60),  # the first minute of the ending shift
        (handover - timedelta(hours=13), 120),  # Sunday 20:00: the ending shift and the old ISO week
        (handover - timedelta(hours=1), 45),  # Monday 08:00: the ending shift, but the new ISO week
        (handover + timedelta(minutes=30), 30),  # Monday 09:30: the next primary's shift
    ]
    for at, minutes in logged:
        toil.add(fresh_db, "alice", minutes, cfg.categories[0], f"{minutes} min by hand", at=at)
    rb = Runbook(load_settings(overrides={"postgres.dsn": fresh_db}), None, mode="diagnose")
    rb.now = handover + timedelta(hours=1)  # the checklist, an hour after the handover

    shift.toil_this_shift(rb)
    found = next(f for f in rb.findings if f["check"] == "Toil this shift")
    assert found["details"]["minutes"] == 60 + 120 + 45  # the ISO week so far would be 45 + 30
    assert found["details"]["share"] == pytest.approx(225 / (cfg.hours_per_week * 60))
    assert (found["details"]["since"], found["details"]["until"]) == (
        iso(handover - oncall.WEEK),
        iso(handover),
    )
    assert "(ended; 3 entries)" in found["summary"]

    shift.on_call(rb, next_shift=True)  # who takes over: whoever took the pager an hour ago
    taking = next(f for f in rb.findings if f["check"] == "On call now")
    assert taking["details"]["primary"] == oncall.who(roster, handover).primary.name
    assert taking["details"]["at"] == iso(handover)


def test_the_shift_checklist_names_who_an_override_put_on_call(fresh_db: str) -> None:
    """The checklists use the effective schedule, as records and escalation do."""
    from runbook_lib.clients import oncall_overrides

    roster = oncall.Roster.load(HOME / "parameters" / "oncall.yaml")
    at = roster.rotation_start + 20 * oncall.WEEK + timedelta(days=1)  # a Tuesday mid-shift
    rotation = oncall.who(roster, at)
    stand_in = next(p for p in roster.people if p.name not in (rotation.primary.name, rotation.secondary.name))
    oncall_overrides.add(
        fresh_db,
        roster=roster,
        person=stand_in.name,
        role="primary",
        since=at - timedelta(hours=2),
        until=at + timedelta(hours=2),
        by="Morgan Fictional",
    )
    rb = Runbook(load_settings(overrides={"postgres.dsn": fresh_db}), None, mode="diagnose")
    rb.now = at
    shift.on_call(rb)
    now = next(f for f in rb.findings if f["check"] == "On call now")
    assert now["details"]["primary"] == stand_in.name != rotation.primary.name
    unreadable = Runbook(load_settings(overrides={"postgres.dsn": "postgresql://nobody@127.0.0.1:9/x"}), None)
    unreadable.now = at
    shift.on_call(unreadable)
    plain = next(f for f in unreadable.findings if f["check"] == "On call now")
    assert plain["details"]["primary"] == rotation.primary.name and "overrides not read" in plain["summary"]
