"""The on-call rotation (runbook_lib.sre.oncall): properties over random rosters and instants, a
3-person roster checked by hand, why 2 people cannot work, and `runbook oncall` itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook_lib.core.errors import ConfigError
from runbook_lib.sre.oncall import (
    HALF_WEEK,
    WEEK,
    Person,
    Roster,
    on_call_at,
    primary_index,
    roster_path,
    schedule,
    secondary_index,
    who,
)
from tests.helpers import HOME, cli

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
US = timedelta(microseconds=1)


def roster_of(n: int, start: datetime = T0) -> Roster:
    people = tuple(Person(f"Person {i}", f"@U0FAKE{i:04d}") for i in range(n))
    return Roster(people=people, rotation_start=start, manager=Person("Manager Fake", "@U0FAKE9999"))


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- properties (hypothesis) ----------------------------------------------------------------------

starts = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)  # any instant, not only a Monday 09:00: the rule must not depend on it
offsets = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5 * 365))
sizes = st.integers(min_value=3, max_value=8)


@settings(max_examples=300)
@given(n=sizes, start=starts, offset=offsets)
def test_the_primary_changes_exactly_every_7_days_from_rotation_start(
    n: int, start: datetime, offset: timedelta
) -> None:
    roster, t = roster_of(n, start), start + offset
    now = who(roster, t)
    assert now.primary_since <= t < now.primary_until
    assert now.primary_until - now.primary_since == WEEK
    assert (now.primary_since - start) % WEEK == timedelta(0)
    assert who(roster, now.primary_since).primary == now.primary
    assert who(roster, now.primary_until - US).primary == now.primary
    assert who(roster, now.primary_until).primary != now.primary  # it changes at the boundary
    if now.primary_since > start:
        assert who(roster, now.primary_since - US).primary != now.primary


@settings(max_examples=300)
@given(n=sizes, start=starts, offset=offsets)
def test_the_secondary_changes_every_7_days_offset_by_3_5_days(n: int, start: datetime, offset: timedelta) -> None:
    roster, t = roster_of(n, start), start + offset
    now = who(roster, t)
    assert now.secondary_since <= t < now.secondary_until
    assert (now.secondary_until - start - HALF_WEEK) % WEEK == timedelta(0)  # ends 3.5 days into a primary week
    if now.secondary_since == start:  # the shift in progress at rotation_start is reported from there
        assert now.secondary_until == start + HALF_WEEK
    else:
        assert now.secondary_until - now.secondary_since == WEEK
        assert now.secondary_since - now.primary_since in (HALF_WEEK, HALF_WEEK - WEEK)
        assert who(roster, now.secondary_since - US).secondary != now.secondary
    assert who(roster, now.secondary_until - US).secondary == now.secondary
    assert who(roster, now.secondary_until).secondary != now.secondary


@settings(max_examples=300)
@given(n=sizes, start=starts, offset=offsets)
def test_nobody_is_primary_and_secondary_at_once(n: int, start: datetime, offset: timedelta) -> None:
    roster = roster_of(n, start)
    now = who(roster, start + offset)
    assert now.primary != now.secondary
    assert now.primary.name != now.secondary.name
    # and on both sides of every change around it
    for edge in (now.primary_since, now.primary_until, now.secondary_since, now.secondary_until):
        for t in (edge - US, edge):
            if t >= start:
                there = who(roster, t)
                assert there.primary != there.secondary


@settings(max_examples=200)
@given(n=sizes, start=starts, offset=offsets)
def test_everyone_is_primary_and_secondary_once_every_n_weeks(n: int, start: datetime, offset: timedelta) -> None:
    roster, t = roster_of(n, start), start + offset
    primaries = [who(roster, t + k * WEEK).primary for k in range(n)]
    secondaries = [who(roster, t + HALF_WEEK + k * WEEK).secondary for k in range(n)]
    assert sorted(p.name for p in primaries) == sorted(p.name for p in roster.people)
    assert sorted(p.name for p in secondaries) == sorted(p.name for p in roster.people)
    assert who(roster, t + n * WEEK).primary == primaries[0]  # and the cycle repeats


@settings(max_examples=150)
@given(n=sizes, start=starts, offset=offsets, weeks=st.integers(min_value=1, max_value=10))
def test_a_schedule_is_contiguous_offset_and_never_doubles_anyone(
    n: int, start: datetime, offset: timedelta, weeks: int
) -> None:
    roster, t = roster_of(n, start), start + offset
    shifts = schedule(roster, t, weeks)
    assert [s.since for s in shifts] == sorted(s.since for s in shifts)
    for role, phase in (("primary", timedelta(0)), ("secondary", HALF_WEEK)):
        mine = [s for s in shifts if s.role == role]
        assert mine[0].since <= t and mine[-1].until >= t + weeks * WEEK  # covers the window
        assert all(a.until == b.since for a, b in pairwise(mine))  # no gap, no overlap
        assert all(a.person != b.person for a, b in pairwise(mine))
        for s in mine:
            assert s.since == start or (s.since - start - phase) % WEEK == timedelta(0)
            assert s.since == start or s.until - s.since == WEEK
            assert getattr(who(roster, s.since), role) == s.person
    for p in (s for s in shifts if s.role == "primary"):
        for q in (s for s in shifts if s.role == "secondary"):
            if p.since < q.until and q.since < p.until:  # they overlap
                assert p.person != q.person


@given(n=sizes, start=starts, before=st.timedeltas(min_value=US, max_value=timedelta(days=3650)))
def test_an_instant_before_rotation_start_is_refused(n: int, start: datetime, before: timedelta) -> None:
    roster = roster_of(n, start)
    with pytest.raises(ConfigError, match="before the roster's rotation_start"):
        who(roster, start - before)
    with pytest.raises(ConfigError, match="before the roster's rotation_start"):
        schedule(roster, start - before, 1)


# -- by hand --------------------------------------------------------------------------------------

# Avery (0), Blake (1), Casey (2) from Monday 2026-01-05 09:00 UTC. Primary of week k: k mod 3;
# secondary of shift j (starting 3.5 days into week j): (j - 1) mod 3, the previous week's primary.
HAND = [
    # instant                    primary  secondary  secondary since / until
    ("2026-01-05T09:00:00+00:00", "Avery", "Blake", "2026-01-05T09:00:00+00:00", "2026-01-08T21:00:00+00:00"),  # j=-1
    ("2026-01-08T20:59:59+00:00", "Avery", "Blake", "2026-01-05T09:00:00+00:00", "2026-01-08T21:00:00+00:00"),
    ("2026-01-08T21:00:00+00:00", "Avery", "Casey", "2026-01-08T21:00:00+00:00", "2026-01-15T21:00:00+00:00"),  # j=0
    ("2026-01-12T08:59:59+00:00", "Avery", "Casey", "2026-01-08T21:00:00+00:00", "2026-01-15T21:00:00+00:00"),
    ("2026-01-12T09:00:00+00:00", "Blake", "Casey", "2026-01-08T21:00:00+00:00", "2026-01-15T21:00:00+00:00"),  # k=1
    ("2026-01-15T21:00:00+00:00", "Blake", "Avery", "2026-01-15T21:00:00+00:00", "2026-01-22T21:00:00+00:00"),  # j=1
    ("2026-01-19T09:00:00+00:00", "Casey", "Avery", "2026-01-15T21:00:00+00:00", "2026-01-22T21:00:00+00:00"),  # k=2
    ("2026-01-22T21:00:00+00:00", "Casey", "Blake", "2026-01-22T21:00:00+00:00", "2026-01-29T21:00:00+00:00"),  # j=2
    ("2026-01-26T09:00:00+00:00", "Avery", "Blake", "2026-01-22T21:00:00+00:00", "2026-01-29T21:00:00+00:00"),  # k=3
    ("2026-01-29T21:00:00+00:00", "Avery", "Casey", "2026-01-29T21:00:00+00:00", "2026-02-05T21:00:00+00:00"),  # j=3
    ("2026-01-29T22:00:00+01:00", "Avery", "Casey", "2026-01-29T21:00:00+00:00", "2026-02-05T21:00:00+00:00"),  # same
]
THREE = Roster(
    people=(Person("Avery", "@U0FAKE0001"), Person("Blake", "@U0FAKE0002"), Person("Casey", "@U0FAKE0003")),
    rotation_start=T0,
    manager=Person("Morgan", "@U0FAKE0099"),
)


@pytest.mark.parametrize(("instant", "primary", "secondary", "since", "until"), HAND)
def test_a_three_person_rotation_by_hand(instant: str, primary: str, secondary: str, since: str, until: str) -> None:
    now = who(THREE, at(instant))
    assert (now.primary.name, now.secondary.name, now.manager.name) == (primary, secondary, "Morgan")
    assert (now.secondary_since, now.secondary_until) == (at(since), at(until))
    week = (at(instant) - T0) // WEEK
    assert (now.primary_since, now.primary_until) == (T0 + week * WEEK, T0 + (week + 1) * WEEK)


def test_a_three_person_schedule_by_hand() -> None:
    shifts = [(s.role, s.person.name, s.since.isoformat()) for s in schedule(THREE, at("2026-01-12T10:00:00+00:00"), 2)]
    assert shifts == [
        ("secondary", "Casey", "2026-01-08T21:00:00+00:00"),
        ("primary", "Blake", "2026-01-12T09:00:00+00:00"),
        ("secondary", "Avery", "2026-01-15T21:00:00+00:00"),
        ("primary", "Casey", "2026-01-19T09:00:00+00:00"),
        ("secondary", "Blake", "2026-01-22T21:00:00+00:00"),
        ("primary", "Avery", "2026-01-26T09:00:00+00:00"),  # starts before 01-26T10:00, the window's end
    ]


def test_handovers_are_in_utc_across_daylight_saving_time() -> None:
    berlin = ZoneInfo("Europe/Berlin")  # CET (+01) until 2026-03-29, then CEST (+02)
    start = datetime(2026, 3, 23, 10, 0, tzinfo=berlin)  # 09:00 UTC, a week before the change
    roster = roster_of(3, start)
    wall = datetime(2026, 3, 30, 10, 0, tzinfo=berlin)  # 08:00 UTC: the week has not turned yet
    assert who(roster, wall).primary.name == "Person 0"
    assert who(roster, wall).primary_until == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    assert who(roster, datetime(2026, 3, 30, 11, 0, tzinfo=berlin)).primary.name == "Person 1"


def test_two_people_cannot_satisfy_the_rule_so_a_roster_needs_three() -> None:
    """With 2 people the primaries of consecutive weeks are both of them: whoever is secondary for
    a shift (3.5 days into one week until 3.5 days into the next) is primary for half of it,
    whatever the secondary order. So a roster of 2 is refused, with the reason."""
    for j in range(-2, 6):  # secondary shift j: [T0 + jW + H, T0 + (j+1)W + H)
        shift = [T0 + j * WEEK + HALF_WEEK + h * timedelta(hours=1) for h in range(7 * 24)]
        weeks = {(t - T0) // WEEK for t in shift}
        assert {primary_index(k, 2) for k in weeks} == {0, 1}  # any choice of secondary is primary in it
        assert {primary_index(k, 3) for k in weeks} | {secondary_index(j, 3)} == {0, 1, 2}  # 3 is enough
    with pytest.raises(ConfigError, match=r"people: 2 listed; the rotation needs at least 3 \(with 2, every"):
        Roster.from_mapping(_mapping(2))
    with pytest.raises(ConfigError, match="at least 3"):
        Roster(people=roster_of(3).people[:2], rotation_start=T0, manager=Person("M", "@m"))


def test_who_needs_an_aware_instant_and_not_past_year_9999() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        who(THREE, datetime(2026, 1, 6, 9, 0))
    with pytest.raises(ConfigError, match="too far in the future"):
        who(THREE, datetime(9999, 12, 30, tzinfo=UTC))
    with pytest.raises(ConfigError, match="too far in the future"):
        schedule(THREE, datetime(9999, 6, 1, tzinfo=UTC), 52)


# -- the roster file ------------------------------------------------------------------------------


def _mapping(n: int = 3, **extra: object) -> dict[str, object]:
    data: dict[str, object] = {
        "rotation_start": "2026-01-05T09:00:00Z",
        "people": [{"name": f"Person {i}", "handle": f"@U0FAKE{i:04d}"} for i in range(n)],
        "manager": {"name": "Manager Fake", "handle": "@U0FAKE9999"},
    }
    data.update(extra)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_mapping(people=None), "no people"),
        (_mapping(people="Avery"), "people must be a list"),
        (_mapping(0), "people: 0 listed; the rotation needs at least 3"),
        (_mapping(1), "people: 1 listed; the rotation needs at least 3"),
        (
            _mapping(
                people=[{"name": "A", "handle": "@a"}, {"name": "B", "handle": "@b"}, {"name": "a ", "handle": "@c"}]
            ),
            "people\\[0\\] and people\\[2\\] have the same name 'a'",
        ),
        (
            _mapping(
                people=[{"name": "A", "handle": "@a"}, {"name": "B", "handle": "@a"}, {"name": "C", "handle": "@c"}]
            ),
            "same handle",
        ),
        (
            _mapping(people=[{"name": "A", "handle": "@a"}, {"name": "B"}, {"name": "C", "handle": "@c"}]),
            "people\\[1\\]: handle must be a non-empty string",
        ),
        (
            _mapping(
                people=[
                    {"name": "A", "handle": "@a", "phone": "1"},
                    {"name": "B", "handle": "@b"},
                    {"name": "C", "handle": "@c"},
                ]
            ),
            "people\\[0\\]: unknown key\\(s\\) phone",
        ),
        (_mapping(people=["A", "B", "C"]), "people\\[0\\]: expected \\{name: ..., handle: ...\\}"),
        (_mapping(manager=None), "no manager"),
        (_mapping(rotation_start=None), "rotation_start: missing"),
        (_mapping(rotation_start="next monday"), "rotation_start: 'next monday' is not an ISO 8601 timestamp"),
        (_mapping(rotation_start="2026-01-05T09:00:00"), "rotation_start: 2026-01-05T09:00:00 has no zone"),
        (_mapping(rotation_start=datetime(2026, 1, 5).date()), "rotation_start: 2026-01-05 is a date"),
        (_mapping(rotation_start=20260105), "rotation_start: expected an ISO 8601 timestamp, got int"),
    ],
)
def test_a_broken_roster_says_what_is_wrong(tmp_path: Path, data: dict[str, object], message: str) -> None:
    path = tmp_path / "oncall.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message):
        Roster.load(path)


def test_roster_files_missing_not_yaml_not_a_mapping_or_with_a_typo(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no on-call roster: .*does not exist"):
        Roster.load(tmp_path / "nope.yaml")
    (tmp_path / "a.yaml").write_text("people: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        Roster.load(tmp_path / "a.yaml")
    (tmp_path / "b.yaml").write_text("- just a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        Roster.load(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_mapping(rotation_begin="2026-01-05T09:00:00Z")))
    with pytest.raises(ConfigError, match="unknown key\\(s\\) rotation_begin"):
        Roster.load(tmp_path / "c.yaml")


def test_an_unquoted_yaml_timestamp_is_read_as_the_same_instant(tmp_path: Path) -> None:
    path = tmp_path / "oncall.yaml"
    path.write_text(yaml.safe_dump(_mapping()).replace("'2026-01-05T09:00:00Z'", "2026-01-05T10:00:00+01:00"))
    assert "'" not in path.read_text().split("rotation_start:")[1].splitlines()[0]
    assert Roster.load(path).rotation_start == T0


def test_the_shipped_roster_loads_and_is_fake() -> None:
    roster = Roster.load(roster_path(HOME))
    assert len(roster.people) >= 3 and roster.rotation_start.weekday() == 0 and roster.rotation_start.hour == 9
    assert all("FAKE" in p.handle or p.handle.endswith(".invalid") for p in (*roster.people, roster.manager))


def test_on_call_at_names_who_is_on_call(tmp_path: Path) -> None:
    assert on_call_at(tmp_path, at("2026-02-01T00:00:00+00:00")) is None  # no roster: nobody named
    (tmp_path / "parameters").mkdir()
    roster_path(tmp_path).write_text(yaml.safe_dump(_mapping()))
    assert on_call_at(tmp_path, at("2026-01-12T09:00:00+00:00")) == {
        "primary": "Person 1",
        "secondary": "Person 2",
        "manager": "Manager Fake",
    }
    assert on_call_at(tmp_path, at("2026-01-05T08:59:59+00:00")) is None  # before the rotation started
    assert on_call_at(tmp_path, datetime(2026, 1, 12, 9, 0)) == on_call_at(
        tmp_path, at("2026-01-12T09:00:00Z")
    )  # naive: UTC
    roster_path(tmp_path).write_text(yaml.safe_dump(_mapping(1)))
    with pytest.raises(ConfigError, match="at least 3"):
        on_call_at(tmp_path, at("2026-01-12T09:00:00+00:00"))


# -- the command ----------------------------------------------------------------------------------


def test_runbook_oncall_weeks_4_prints_a_schedule_that_keeps_the_rule() -> None:
    res = cli("oncall", "--weeks", "4", "--at", "2026-03-04T12:00:00Z")
    assert res.returncode == 0, res.stderr
    roster = Roster.load(roster_path(HOME))
    names = {p.name for p in roster.people}
    header = next(i for i, line in enumerate(res.stdout.splitlines()) if line.startswith("FROM"))
    rows = [line.split("  ") for line in res.stdout.splitlines()[header + 1 :] if line.strip()]
    rows = [[c.strip() for c in r if c.strip()] for r in rows]
    assert len(rows) in (8, 9)  # one row per half week
    prev = None
    for since, until, primary, secondary, change in rows:
        a, b = at(since.replace("Z", "+00:00")), at(until.replace("Z", "+00:00"))
        assert b - a == HALF_WEEK and primary in names and secondary in names and primary != secondary
        phase = (a - roster.rotation_start) % WEEK
        # primaries change at the start of a week, secondaries 3.5 days later
        expected = {timedelta(0): "primary", HALF_WEEK: "secondary"}[phase]
        assert change == ("now" if prev is None else expected)
        if prev is not None:
            assert a == prev[1]
            assert (primary != prev[2]) == (expected == "primary") and (secondary != prev[3]) == (
                expected == "secondary"
            )
        prev = (a, b, primary, secondary)
    assert (
        at(rows[0][0].replace("Z", "+00:00")) <= at("2026-03-04T12:00:00+00:00") < at(rows[0][1].replace("Z", "+00:00"))
    )

    data = json.loads(cli("oncall", "--weeks", "4", "--at", "2026-03-04T12:00:00Z", "--json").stdout)
    now = who(roster, at("2026-03-04T12:00:00+00:00"))
    assert data["primary"]["name"] == now.primary.name and data["secondary"]["name"] == now.secondary.name
    assert data["manager"] == roster.manager.to_dict()
    assert [s["role"] for s in data["shifts"]].count("primary") == 5  # weeks 2026-03-02 .. 03-30 overlap
    assert len(data["half_weeks"]) == len(rows)


def test_runbook_oncall_now_names_the_three_roles() -> None:
    res = cli("oncall")
    assert res.returncode == 0, res.stderr
    roles = [line.split()[0] for line in res.stdout.splitlines()[2:5]]
    assert roles == ["primary", "secondary", "manager"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "yesterday"], "--at: 'yesterday' is not an ISO 8601 timestamp"),
        (["--at", "2025-12-31T00:00:00Z"], "before the roster's rotation_start"),
        (["--weeks", "0"], "argument --weeks: must be from 1 to 520, got 0"),
        (["--weeks", "-3"], "argument --weeks: must be from 1 to 520"),
        (["--weeks", "two"], "argument --weeks: expected a whole number of weeks, got 'two'"),
        (["--roster", "/nonexistent/oncall.yaml"], "no on-call roster: /nonexistent/oncall.yaml does not exist"),
    ],
)
def test_runbook_oncall_bad_input_exits_2(args: list[str], message: str) -> None:
    res = cli("oncall", *args)
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_runbook_oncall_with_a_broken_roster_under_runbook_home_exits_2(tmp_path: Path) -> None:
    import shutil

    home = tmp_path / "home"
    shutil.copytree(HOME / "parameters", home / "parameters")
    env = {"RUNBOOK_HOME": str(home), "RUNBOOK_RUNBOOKS_DIR": str(HOME / "runbooks")}
    roster_path(home).write_text(yaml.safe_dump(_mapping(2)))
    res = cli("oncall", env=env)
    assert res.returncode == 2 and "people: 2 listed; the rotation needs at least 3" in res.stderr
    roster_path(home).write_text("people: [oops\n")
    res = cli("oncall", env=env)
    assert res.returncode == 2 and "not valid YAML" in res.stderr
    roster_path(home).unlink()
    res = cli("oncall", env=env)
    assert res.returncode == 2 and "no on-call roster" in res.stderr


def test_the_help_pages_render() -> None:
    top = cli("--help")
    assert top.returncode == 0, top.stderr
    assert "oncall" in top.stdout and "toil" in top.stdout and "runbook oncall --weeks 4" in top.stdout
    res = cli("oncall", "--help")
    assert res.returncode == 0 and "offset by 3.5 days" in res.stdout, res.stderr
