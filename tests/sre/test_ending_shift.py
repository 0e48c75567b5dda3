"""The shift an end-of-shift checklist is about (oncall.ending_shift): the primary shift in
progress, except within 12 hours after a handover, when it is the shift that just ended."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from runbook_lib.core.errors import ConfigError
from runbook_lib.sre.oncall import Person, Roster, ending_shift, who

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
WEEK = timedelta(days=7)
ROSTER = Roster(
    people=tuple(Person(name, f"@{name.lower()}") for name in ("Ann", "Bo", "Cy")),
    rotation_start=T0,
    manager=Person("Max", "@max"),
)


@pytest.mark.parametrize(
    ("now", "primary", "since"),
    [
        # by hand: Ann has week 0 from T0, Bo week 1, Cy week 2, Ann week 3 from 2026-01-26T09:00Z
        (T0 + 3 * WEEK, "Cy", T0 + 2 * WEEK),  # Monday 09:00, the handover itself: the week that just ended
        (T0 + 3 * WEEK + timedelta(hours=1), "Cy", T0 + 2 * WEEK),  # Monday 10:00
        (T0 + 3 * WEEK + timedelta(hours=12) - timedelta(seconds=1), "Cy", T0 + 2 * WEEK),
        (T0 + 3 * WEEK + timedelta(hours=12), "Ann", T0 + 3 * WEEK),  # 12 h on: the new shift is the one ending
        (T0 + 3 * WEEK + timedelta(days=3), "Ann", T0 + 3 * WEEK),  # Thursday: the shift in progress
        (T0 + 4 * WEEK - timedelta(minutes=5), "Ann", T0 + 3 * WEEK),  # run just before its handover
        (T0 + timedelta(hours=1), "Ann", T0),  # the first hours of the rotation: there is no shift before
    ],
)
def test_the_shift_ending_is_the_one_that_just_ended_for_12_hours_after_a_handover(
    now: datetime, primary: str, since: datetime
) -> None:
    shift = ending_shift(ROSTER, now)
    assert (shift.role, shift.person.name, shift.since, shift.until) == ("primary", primary, since, since + WEEK)
    assert shift.since < now and now - timedelta(hours=12) < shift.until
    assert (shift.person, shift.until) == (who(ROSTER, shift.since).primary, who(ROSTER, shift.since).primary_until)


def test_before_the_rotation_there_is_no_shift_to_end() -> None:
    with pytest.raises(ConfigError, match="before the roster's rotation_start"):
        ending_shift(ROSTER, T0 - timedelta(seconds=1))
