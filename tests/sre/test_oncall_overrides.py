"""On-call overrides and the roster's extensions (runbook_lib.sre.oncall), pure: effective(),
check_override(), check_cancel(), effective_schedule(), Slack ids, escalation targets, approvers,
and the iCalendar export parsed back with icalendar.

The hand-checked cases use four people from Monday 2026-01-05 09:00 UTC (T0). Primary of week k is
person k mod 4; secondary of shift j (from T0 + 7j days + 3.5 days) is person (j - 1) mod 4:

  week 1  [01-12 09:00, 01-19 09:00)  primary Blake
  shift 0 [01-08 21:00, 01-15 21:00)  secondary Devon
  shift 1 [01-15 21:00, 01-22 21:00)  secondary Avery
  week 2  [01-19 09:00, 01-26 09:00)  primary Casey

so on 2026-01-12 and 01-13 Avery and Casey are free (neither primary nor secondary).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from icalendar import Calendar

from runbook_lib.core.errors import ConfigError
from runbook_lib.sre.oncall import (
    ROSTER_KEYS,
    Override,
    Person,
    Roster,
    calendar_ics,
    check_cancel,
    check_override,
    effective,
    effective_schedule,
    find_person,
    on_call_at,
    person_by_slack,
    roster_path,
    schedule,
    who,
)
from tests.helpers import HOME

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
US = timedelta(microseconds=1)
AVERY, BLAKE, CASEY, DEVON = (
    Person("Avery", "@U0FAKE0001", "U0FAKE0001"),
    Person("Blake", "@U0FAKE0002", "U0FAKE0002"),
    Person("Casey", "casey@example.invalid", "U0FAKE0003"),
    Person("Devon", "@U0FAKE0004"),
)
MANAGER = Person("Morgan", "@U0FAKE0099", "U0FAKE0099")
SENIOR = Person("Jordan", "@U0FAKE0050", "U0FAKE0050")
COMMANDER = Person("Riley", "@U0FAKE0060", "W0FAKE0060")
FOUR = Roster(
    people=(AVERY, BLAKE, CASEY, DEVON),
    rotation_start=T0,
    manager=MANAGER,
    senior_sre=SENIOR,
    incident_commander=COMMANDER,
)
CREATED = datetime(2026, 1, 1, tzinfo=UTC)


def at(text: str) -> datetime:
    """'01-13 09:00' (2026, UTC) or a full ISO timestamp."""
    if len(text) == 11:
        return datetime.fromisoformat(f"2026-{text}:00+00:00")
    return datetime.fromisoformat(text)


def ov(
    person: Person, role: str, since: str, until: str, id: int | None = None, created: int = 0, by: str = "alice"
) -> Override:
    return Override(person, role, at(since), at(until), by, CREATED + timedelta(minutes=created), id)


# -- effective() ----------------------------------------------------------------------------------


def test_the_week_by_hand_holds_without_overrides() -> None:
    for t, primary, secondary in (
        ("01-12 09:00", BLAKE, DEVON),
        ("01-15 20:59", BLAKE, DEVON),
        ("01-15 21:00", BLAKE, AVERY),
        ("01-19 09:00", CASEY, AVERY),
    ):
        now = effective(FOUR, at(t), [])
        assert (now.primary, now.secondary) == (primary, secondary)
        assert now == who(FOUR, at(t))  # no override: who() itself


def test_an_override_names_the_person_for_its_half_open_window_only() -> None:
    o = ov(CASEY, "primary", "01-13 09:00", "01-14 09:00", id=1)
    inside = effective(FOUR, at("01-13 12:00"), [o])
    assert (inside.primary, inside.primary_override) == (CASEY, o)
    assert (inside.primary_since, inside.primary_until) == (at("01-13 09:00"), at("01-14 09:00"))
    # the secondary is untouched: the rotation's, over its whole shift
    assert (inside.secondary, inside.secondary_override) == (DEVON, None)
    assert (inside.secondary_since, inside.secondary_until) == (at("01-08 21:00"), at("01-15 21:00"))
    assert effective(FOUR, at("01-13 09:00"), [o]).primary == CASEY  # since: included
    before = effective(FOUR, at("01-13 09:00") - US, [o])
    assert (before.primary, before.primary_override) == (BLAKE, None)
    # the rotation's stretch is cut where the override starts, and resumes where it ends
    assert (before.primary_since, before.primary_until) == (at("01-12 09:00"), at("01-13 09:00"))
    after = effective(FOUR, at("01-14 09:00"), [o])  # until: excluded
    assert (after.primary, after.primary_override) == (BLAKE, None)
    assert (after.primary_since, after.primary_until) == (at("01-14 09:00"), at("01-19 09:00"))
    assert after.to_dict()["primary"]["override_id"] is None and inside.to_dict()["primary"]["override_id"] == 1


def test_an_override_across_a_handover_is_clipped_to_each_shift() -> None:
    o = ov(CASEY, "primary", "01-18 09:00", "01-20 09:00", id=2)
    first, second = effective(FOUR, at("01-18 12:00"), [o]), effective(FOUR, at("01-19 12:00"), [o])
    assert first.primary == second.primary == CASEY and first.primary_override is second.primary_override is o
    assert (first.primary_since, first.primary_until) == (at("01-18 09:00"), at("01-19 09:00"))
    assert (second.primary_since, second.primary_until) == (at("01-19 09:00"), at("01-20 09:00"))


def test_where_overrides_overlap_the_one_created_last_wins() -> None:
    casey = ov(CASEY, "primary", "01-13 09:00", "01-14 09:00", id=1, created=0)
    avery = ov(AVERY, "primary", "01-13 00:00", "01-13 18:00", id=2, created=5)
    both = [casey, avery]
    noon = effective(FOUR, at("01-13 12:00"), both)
    assert (noon.primary, noon.primary_override) == (AVERY, avery)
    assert (noon.primary_since, noon.primary_until) == (at("01-13 00:00"), at("01-13 18:00"))
    evening = effective(FOUR, at("01-13 18:00"), both)
    assert (evening.primary, evening.primary_since, evening.primary_until) == (
        CASEY,
        at("01-13 18:00"),
        at("01-14 09:00"),
    )
    # created the other way round, Casey's covers the overlap
    older_avery = replace(avery, created_at=CREATED - timedelta(minutes=1))
    noon = effective(FOUR, at("01-13 12:00"), [casey, older_avery])
    assert (noon.primary, noon.primary_since, noon.primary_until) == (CASEY, at("01-13 09:00"), at("01-14 09:00"))
    assert effective(FOUR, at("01-13 08:00"), [casey, older_avery]).primary == AVERY  # only Avery's covers 08:00
    # the same instant of creation: the higher id was stored last
    tie = replace(avery, created_at=casey.created_at)
    assert effective(FOUR, at("01-13 12:00"), [casey, tie]).primary == AVERY


def test_a_cancelled_override_applies_until_its_cancellation_and_never_if_cancelled_before_it_began() -> None:
    o = ov(CASEY, "primary", "01-13 09:00", "01-14 09:00", id=1)
    cut = replace(o, cancelled_at=at("01-13 15:00"), cancelled_by="bob")
    assert cut.in_force and cut.ends == at("01-13 15:00")
    assert effective(FOUR, at("01-13 14:59"), [cut]).primary == CASEY
    back = effective(FOUR, at("01-13 15:00"), [cut])
    assert (back.primary, back.primary_since, back.primary_until) == (BLAKE, at("01-13 15:00"), at("01-19 09:00"))
    never = replace(o, cancelled_at=at("01-12 10:00"))
    assert not never.in_force
    assert effective(FOUR, at("01-13 12:00"), [never]) == who(FOUR, at("01-13 12:00"))


def test_effective_keeps_an_override_that_doubles_someone() -> None:
    """Refusing is check_override's job; effective shows what is stored."""
    o = ov(DEVON, "primary", "01-13 09:00", "01-14 09:00", id=1)
    now = effective(FOUR, at("01-13 12:00"), [o])
    assert now.primary == now.secondary == DEVON


def test_an_override_must_be_a_role_and_a_window() -> None:
    with pytest.raises(ConfigError, match="role must be primary or secondary, got 'manager'"):
        ov(CASEY, "manager", "01-13 09:00", "01-14 09:00")
    with pytest.raises(ConfigError, match="end 2026-01-13T09:00:00Z is not after its start 2026-01-13T09:00:00Z"):
        ov(CASEY, "primary", "01-13 09:00", "01-13 09:00")
    with pytest.raises(ValueError, match="no timezone"):
        Override(CASEY, "primary", datetime(2026, 1, 13), datetime(2026, 1, 14), "alice", CREATED)


# -- check_override() / check_cancel() ------------------------------------------------------------


def test_a_free_person_may_take_either_role() -> None:
    check_override(FOUR, ov(CASEY, "primary", "01-12 12:00", "01-13 00:00"))
    check_override(FOUR, ov(AVERY, "secondary", "01-12 12:00", "01-13 00:00"))
    check_override(FOUR, ov(BLAKE, "primary", "01-12 12:00", "01-13 00:00"))  # the rotation's own choice
    check_override(FOUR, ov(SENIOR, "primary", "01-12 12:00", "01-13 00:00"))  # not in the rotation


def test_an_override_making_the_rotations_secondary_primary_is_refused_with_the_instant() -> None:
    with pytest.raises(ConfigError) as exc:
        check_override(FOUR, ov(DEVON, "primary", "01-12 12:00", "01-13 00:00"))
    assert "Devon cannot be primary from 2026-01-12T12:00:00Z to 2026-01-13T00:00:00Z" in str(exc.value)
    assert "at 2026-01-12T12:00:00Z they are secondary by the rotation" in str(exc.value)
    # free when the window starts, secondary from 01-15 21:00 (shift 1): that instant is named
    with pytest.raises(ConfigError, match="at 2026-01-15T21:00:00Z they are secondary by the rotation"):
        check_override(FOUR, ov(AVERY, "primary", "01-15 09:00", "01-16 09:00"))
    # and the other way round: Blake is primary all week
    with pytest.raises(ConfigError, match="at 2026-01-13T00:00:00Z they are primary by the rotation"):
        check_override(FOUR, ov(BLAKE, "secondary", "01-13 00:00", "01-13 06:00"))


def test_another_override_counts_both_ways() -> None:
    cover = ov(CASEY, "secondary", "01-15 21:00", "01-16 09:00", id=4, by="bob")
    # with Casey covering Avery's first secondary hours, Avery may be primary until 01-16 09:00
    check_override(FOUR, ov(AVERY, "primary", "01-15 09:00", "01-16 09:00"), [cover])
    with pytest.raises(ConfigError, match="at 2026-01-16T09:00:00Z they are secondary by the rotation"):
        check_override(FOUR, ov(AVERY, "primary", "01-15 09:00", "01-16 10:00"), [cover])
    with pytest.raises(
        ConfigError,
        match=r"Casey cannot be primary .* at 2026-01-15T21:00:00Z they are secondary by override 4 \(set by bob\)",
    ):
        check_override(FOUR, ov(CASEY, "primary", "01-15 12:00", "01-16 00:00"), [cover])
    # a cancelled override protects nobody after its cancellation
    gone = replace(cover, cancelled_at=at("01-15 23:00"))
    with pytest.raises(ConfigError, match="at 2026-01-15T23:00:00Z they are secondary by the rotation"):
        check_override(FOUR, ov(AVERY, "primary", "01-15 09:00", "01-16 09:00"), [gone])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (ov(Person("Nobody", "@nobody"), "primary", "01-12 12:00", "01-13 00:00"), "unknown person 'Nobody'"),
        (ov(CASEY, "primary", "2026-01-05T08:00:00+00:00", "01-05 12:00"), "before the roster's rotation_start"),
        (ov(SENIOR, "primary", "01-12 09:00", "2026-02-11T09:00:01+00:00"), "lasts 30.0 days; at most 30 days"),
        (ov(CASEY, "primary", "01-12 12:00", "01-13 00:00", by="  "), "needs who sets it"),
        (ov(CASEY, "primary", "01-12 12:00", "01-13 00:00", by="a\nb"), "needs who sets it"),
    ],
)
def test_check_override_refuses_bad_overrides(override: Override, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check_override(FOUR, override)


def test_thirty_days_exactly_is_allowed() -> None:
    check_override(FOUR, ov(SENIOR, "primary", "01-12 09:00", "2026-02-11T09:00:00+00:00"))


def test_a_cancellation_that_brings_back_a_double_is_refused() -> None:
    cover = ov(CASEY, "secondary", "01-15 21:00", "01-16 09:00", id=1)
    swap = ov(AVERY, "primary", "01-15 09:00", "01-16 09:00", id=2, created=1)
    check_override(FOUR, swap, [cover])
    with pytest.raises(ConfigError) as exc:
        check_cancel(FOUR, cover, [cover, swap], at("01-15 10:00"))
    assert "cancelling override 1 would make Avery primary and secondary at once at 2026-01-15T21:00:00Z" in str(
        exc.value
    )
    assert "by override 2" in str(exc.value)
    with pytest.raises(ConfigError, match="at once at 2026-01-15T22:00:00Z"):  # in force: from the cancellation on
        check_cancel(FOUR, cover, [cover, swap], at("01-15 22:00"))
    check_cancel(FOUR, swap, [cover, swap], at("01-15 10:00"))  # Blake comes back as primary: fine
    check_cancel(FOUR, cover, [cover, replace(swap, cancelled_at=at("01-15 10:00"))], at("01-15 10:00"))


# -- a property: overrides that pass the checks never double anyone ------------------------------

# Short windows over two weeks, so that overrides often meet: a cover for the rotation's secondary
# followed by a swap making that secondary primary, then the cover cancelled, is common.
operations = st.lists(
    st.tuples(
        st.booleans(),  # add (True) or cancel
        st.integers(0, 5),  # person (index into the rotation's people and the senior SRE)
        st.sampled_from(["primary", "secondary"]),
        st.integers(0, 24 * 14),  # start, hours after T0
        st.integers(1, 36),  # duration in hours
        st.integers(0, 24 * 14),  # cancellation, hours after T0
    ),
    max_size=24,
)


@settings(max_examples=300, deadline=None)
@given(n=st.integers(3, 4), ops=operations)
def test_overrides_accepted_by_the_checks_never_make_anyone_primary_and_secondary(n: int, ops: list) -> None:
    roster = Roster(
        people=(AVERY, BLAKE, CASEY, DEVON, *[Person(f"P{i}", f"@p{i}") for i in range(5)])[:n],
        rotation_start=T0,
        manager=MANAGER,
        senior_sre=SENIOR,
    )
    pool = [*roster.people, SENIOR]
    stored: list[Override] = []
    for i, (add, who_, role, start_h, hours, cancel_h) in enumerate(ops):
        if add:
            o = Override(
                pool[who_ % len(pool)],
                role,
                T0 + timedelta(hours=start_h),
                T0 + timedelta(hours=start_h + hours),
                "alice",
                CREATED + timedelta(seconds=i),
                id=i,
            )
            try:
                check_override(roster, o, stored)
            except ConfigError:
                continue
            stored.append(o)
        elif stored:
            target = stored[who_ % len(stored)]
            when_ = T0 + timedelta(hours=cancel_h)
            if target.cancelled_at is not None or when_ >= target.until:
                continue
            try:
                check_cancel(roster, target, stored, when_)
            except ConfigError:
                continue
            stored[stored.index(target)] = replace(target, cancelled_at=when_, cancelled_by="bob")
    shifts = effective_schedule(roster, T0, 3, stored)
    primaries = [s for s in shifts if s.role == "primary"]
    secondaries = [s for s in shifts if s.role == "secondary"]
    for p in primaries:
        for q in secondaries:
            if p.since < q.until and q.since < p.until:
                assert p.person != q.person, (p, q)
    # effective() agrees with the schedule on every stretch, and each role is covered without gaps
    for group in (primaries, secondaries):
        assert all(a.until == b.since for a, b in pairwise(group))
        for s in group:
            now = effective(roster, s.since, stored)
            assert getattr(now, s.role) == s.person
            assert (getattr(now, f"{s.role}_since"), getattr(now, f"{s.role}_until")) == (s.since, s.until)
            assert getattr(now, f"{s.role}_override") is s.override


def _doubled_by_brute_force(roster: Roster, overrides: list[Override], start: datetime, hours: int) -> bool:
    """Someone primary and secondary at some whole hour of [start, start + hours): the rotation from
    who(), each role's covering override created last applied by hand (every boundary in these
    tests is a whole hour from T0, so whole hours see every stretch)."""
    for h in range(hours):
        t = start + timedelta(hours=h)
        base = who(roster, t)
        names = []
        for role in ("primary", "secondary"):
            covering = [o for o in overrides if o.role == role and o.since <= t < o.ends]
            names.append(max(covering, key=lambda o: o.created_at).person if covering else getattr(base, role))
        if names[0] == names[1]:
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(3, 4),
    start=st.integers(0, 24 * 14),
    cover_hours=st.integers(1, 60),
    swap_offset=st.integers(0, 48),
    swap_hours=st.integers(1, 48),
    cancel=st.integers(-24, 24 * 17),
)
def test_cancelling_a_cover_is_refused_exactly_when_it_would_double_someone(
    n: int, start: int, cover_hours: int, swap_offset: int, swap_hours: int, cancel: int
) -> None:
    """A cover (someone free takes the rotation's secondary S), a swap (S then takes primary, which
    only the cover allows), then the cover cancelled at ``cancel``: refused if and only if S would
    be primary and secondary at once from then on (checked hour by hour)."""
    roster = Roster(people=(AVERY, BLAKE, CASEY, DEVON)[:n], rotation_start=T0, manager=MANAGER)
    t = T0 + timedelta(hours=start)
    base = who(roster, t)
    free = next(p for p in roster.people if p not in (base.primary, base.secondary))
    cover = Override(free, "secondary", t, t + timedelta(hours=cover_hours), "alice", CREATED, id=1)
    swap_start = t + timedelta(hours=swap_offset)
    swap = Override(
        base.secondary, "primary", swap_start, swap_start + timedelta(hours=swap_hours), "bob", CREATED + US, id=2
    )
    try:
        check_override(roster, cover)
        check_override(roster, swap, [cover])
    except ConfigError:
        return  # not a pair the checks let in
    when_ = T0 + timedelta(hours=cancel)
    if when_ >= cover.until:
        return  # over: nothing to cancel
    horizon = 24 * 20
    assert not _doubled_by_brute_force(roster, [cover, swap], T0, horizon)
    doubled = _doubled_by_brute_force(roster, [replace(cover, cancelled_at=when_), swap], T0, horizon)
    try:
        check_cancel(roster, cover, [cover, swap], when_)
        refused = False
    except ConfigError:
        refused = True
    assert refused == doubled


# -- effective_schedule() -------------------------------------------------------------------------


def test_the_effective_schedule_splits_overridden_stretches_out() -> None:
    o = ov(CASEY, "primary", "01-13 09:00", "01-14 09:00", id=7)
    rows = [
        (s.role, s.person.name, s.since, s.until, s.override_id)
        for s in effective_schedule(FOUR, at("01-12 09:00"), 1, [o])
    ]
    assert rows == [
        ("secondary", "Devon", at("01-08 21:00"), at("01-15 21:00"), None),
        ("primary", "Blake", at("01-12 09:00"), at("01-13 09:00"), None),
        ("primary", "Casey", at("01-13 09:00"), at("01-14 09:00"), 7),
        ("primary", "Blake", at("01-14 09:00"), at("01-19 09:00"), None),
        ("secondary", "Avery", at("01-15 21:00"), at("01-22 21:00"), None),
    ]
    # without overrides it is the plain schedule; stretches wholly before the start are left out
    assert effective_schedule(FOUR, at("01-12 09:00"), 1) == schedule(FOUR, at("01-12 09:00"), 1)
    later = effective_schedule(FOUR, at("01-13 12:00"), 1, [o])
    assert [(s.person.name, s.since) for s in later if s.role == "primary"] == [
        ("Casey", at("01-13 09:00")),
        ("Blake", at("01-14 09:00")),
        ("Casey", at("01-19 09:00")),
    ]
    dumped = [s.to_dict() for s in later if s.role == "primary"]
    assert [(d["overridden"], d["override_id"]) for d in dumped] == [(True, 7), (False, None), (False, None)]


# -- the iCalendar --------------------------------------------------------------------------------


def test_the_ics_has_one_event_per_shift_in_utc_with_stable_uids() -> None:
    o = ov(CASEY, "primary", "01-13 09:00", "01-14 09:00", id=7, by="bob")
    shifts = effective_schedule(FOUR, at("01-12 09:00"), 2, [o])
    first = calendar_ics(shifts, at("01-10 08:00"))
    assert b"\r\n" in first and b"DTSTART:20260113T090000Z" in first  # UTC, in the basic format
    cal = Calendar.from_ical(first)
    events = cal.walk("VEVENT")
    assert len(events) == len(shifts) == 7
    for event, shift in zip(events, shifts, strict=True):
        assert str(event["SUMMARY"]) == f"On call ({shift.role}): {shift.person.name}"
        assert event.decoded("DTSTART") == shift.since and event.decoded("DTEND") == shift.until
        assert event.decoded("DTSTART").utcoffset() == timedelta(0)
        assert str(event["UID"]) == f"oncall-{shift.role}-{shift.since:%Y%m%dT%H%M%SZ}@runbook"
        assert event.decoded("DTSTAMP") == at("01-10 08:00")
    assert len({str(e["UID"]) for e in events}) == len(events)
    overridden = next(e for e in events if str(e["SUMMARY"]) == "On call (primary): Casey")
    assert "Override 7, set by bob" in str(overridden["DESCRIPTION"])
    assert "Slack: U0FAKE0003" in str(overridden["DESCRIPTION"])
    # made again later: the same events under the same UIDs, only DTSTAMP moves
    again = Calendar.from_ical(calendar_ics(shifts, at("01-11 08:00"))).walk("VEVENT")
    assert [(str(e["UID"]), str(e["SUMMARY"]), e.decoded("DTSTART")) for e in again] == [
        (str(e["UID"]), str(e["SUMMARY"]), e.decoded("DTSTART")) for e in events
    ]
    assert {e.decoded("DTSTAMP") for e in again} == {at("01-11 08:00")}


# -- the roster's extensions ----------------------------------------------------------------------


def _mapping(**extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "rotation_start": "2026-01-05T09:00:00Z",
        "people": [
            {"name": "Avery", "handle": "@U0FAKE0001", "slack": "U0FAKE0001"},
            {"name": "Blake", "handle": "@U0FAKE0002", "slack": "U0FAKE0002"},
            {"name": "Casey", "handle": "casey@example.invalid"},
        ],
        "manager": {"name": "Morgan", "handle": "@U0FAKE0099", "slack": "U0FAKE0099"},
    }
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


def test_senior_sre_incident_commander_and_approvers_are_read(tmp_path: Path) -> None:
    path = tmp_path / "oncall.yaml"
    path.write_text(
        yaml.safe_dump(
            _mapping(
                senior_sre={"name": "Jordan", "handle": "@U0FAKE0050", "slack": "U0FAKE0050"},
                incident_commander={"name": "Riley", "handle": "@U0FAKE0060"},
                approvers=["jordan", "@U0FAKE0099", "Jordan"],
            )
        )
    )
    roster = Roster.load(path)
    assert roster.senior_sre == Person("Jordan", "@U0FAKE0050", "U0FAKE0050")
    assert roster.incident_commander == Person("Riley", "@U0FAKE0060")
    assert roster.approvers == ("Jordan", "Morgan")  # by name, each once
    assert {"senior_sre", "incident_commander", "approvers"} <= ROSTER_KEYS
    assert Roster.from_mapping(_mapping()).senior_sre is None and Roster.from_mapping(_mapping()).approvers == ()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            _mapping(manager={"name": "M", "handle": "@m", "slack": "u0fake0099"}),
            "manager: slack must be a Slack member id",
        ),
        (_mapping(manager={"name": "M", "handle": "@m", "slack": "X0FAKE0099"}), "slack must be a Slack member id"),
        (_mapping(manager={"name": "M", "handle": "@m", "slack": "U1"}), "slack must be a Slack member id"),
        (_mapping(manager={"name": "M", "handle": "@m", "slack": "U" + "1" * 21}), "slack must be a Slack member id"),
        (_mapping(manager={"name": "M", "handle": "@m", "slack": "U0 FAKE"}), "slack must be a Slack member id"),
        (_mapping(manager={"name": "M", "handle": "@m", "slack": 12345}), "slack must be a Slack member id"),
        (
            _mapping(manager={"name": "M", "handle": "@m", "slack": "U0FAKE0001"}),
            "manager: slack U0FAKE0001 is already Avery's; each Slack id names one person",
        ),
        (_mapping(senior_sre={"name": "J"}), "senior_sre: handle must be a non-empty string"),
        (_mapping(incident_commander="Riley"), "incident_commander: expected \\{name: ..., handle: ...\\}"),
        (
            _mapping(senior_sre={"name": "J", "handle": "@j", "phone": "1"}),
            "unknown key\\(s\\) phone \\(known: name, handle, slack\\)",
        ),
        (_mapping(approvers=["Nobody"]), "approvers: 'Nobody' is nobody in the roster"),
        (_mapping(approvers="Avery"), "approvers must be a list of names"),
        (_mapping(approvers=[""]), "approvers must be a list of names"),
    ],
)
def test_a_broken_extension_says_what_is_wrong(tmp_path: Path, data: dict[str, object], message: str) -> None:
    path = tmp_path / "oncall.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        Roster.load(path)


def test_one_person_in_two_roles_may_keep_their_slack_id() -> None:
    roster = Roster.from_mapping(_mapping(senior_sre={"name": "Avery", "handle": "@U0FAKE0001", "slack": "U0FAKE0001"}))
    assert person_by_slack(roster, "U0FAKE0001") == roster.people[0]


def test_person_by_slack_and_find_person_cover_every_role() -> None:
    assert person_by_slack(FOUR, "U0FAKE0002") == BLAKE
    assert person_by_slack(FOUR, " U0FAKE0099 ") == MANAGER
    assert person_by_slack(FOUR, "U0FAKE0050") == SENIOR
    assert person_by_slack(FOUR, "W0FAKE0060") == COMMANDER
    assert person_by_slack(FOUR, "U0FAKE0004") is None  # Devon has no Slack id
    assert person_by_slack(FOUR, "U0FAKE9999") is None and person_by_slack(FOUR, "") is None
    assert find_person(FOUR, "  blake ") == BLAKE
    assert find_person(FOUR, "@u0fake0001") == AVERY and find_person(FOUR, "U0FAKE0001") == AVERY  # handle, @ optional
    assert find_person(FOUR, "CASEY@example.invalid") == CASEY
    assert find_person(FOUR, "riley") == COMMANDER and find_person(FOUR, "Morgan") == MANAGER
    assert find_person(FOUR, "jordan") == SENIOR
    assert find_person(FOUR, "Nobody") is None and find_person(FOUR, " ") is None


def test_the_shipped_roster_has_slack_ids_and_escalation_targets() -> None:
    roster = Roster.load(roster_path(HOME))
    everybody = (*roster.people, roster.manager, roster.senior_sre, roster.incident_commander)
    assert roster.senior_sre is not None and roster.incident_commander is not None
    assert all(p is not None and p.slack and "FAKE" in p.slack for p in everybody)
    assert all(p is not None and ("FAKE" in p.handle or p.handle.endswith(".invalid")) for p in everybody)
    assert all(person_by_slack(roster, p.slack or "") == p for p in everybody if p is not None)
    assert all(find_person(roster, name) is not None for name in roster.approvers)


def test_on_call_at_applies_overrides_and_names_the_escalation_targets(tmp_path: Path) -> None:
    (tmp_path / "parameters").mkdir()
    roster_path(tmp_path).write_text(yaml.safe_dump(_mapping()))
    o = Override(Person("Avery", "@U0FAKE0001"), "primary", at("01-12 12:00"), at("01-12 18:00"), "alice", CREATED, 1)
    # week 1: primary Blake, secondary (shift 0) Casey; Avery is free
    assert on_call_at(tmp_path, at("01-12 13:00")) == {"primary": "Blake", "secondary": "Casey", "manager": "Morgan"}
    assert on_call_at(tmp_path, at("01-12 13:00"), [o]) == {
        "primary": "Avery",
        "secondary": "Casey",
        "manager": "Morgan",
    }
    assert on_call_at(tmp_path, at("01-12 18:00"), [o])["primary"] == "Blake"  # type: ignore[index]
    roster_path(tmp_path).write_text(
        yaml.safe_dump(
            _mapping(
                senior_sre={"name": "Jordan", "handle": "@j"}, incident_commander={"name": "Riley", "handle": "@r"}
            )
        )
    )
    assert on_call_at(tmp_path, at("01-12 13:00"), [o]) == {
        "primary": "Avery",
        "secondary": "Casey",
        "manager": "Morgan",
        "senior_sre": "Jordan",
        "incident_commander": "Riley",
    }
