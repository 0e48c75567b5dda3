"""`runbook oncall override` / `overrides` / `--ics` and the runner's on-call names, with the
overrides in a real PostgreSQL (a scratch database per test): set one through the command, see it
in the list, in `runbook oncall --at`, the schedule, the iCalendar and a run's incident, cancel it;
and every refusal (exit 2, with the reason). Without a database, and with one that refuses
connections, nothing needs a service.

The roster: four people from a Monday 09:00 UTC two weeks ago. Each test works in the primary week
starting at the first handover more than a day from now (K), so that every window is in the
future and inside one primary week and one secondary shift (K + 1 h .. K + 13 h)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from icalendar import Calendar

from runbook_lib.sre.oncall import WEEK, Person, Roster, who
from tests.helpers import HOME, cli

PEOPLE = [
    {"name": "Avery Example", "handle": "@U0FAKE0001", "slack": "U0FAKE0001"},
    {"name": "Blake Sample", "handle": "@U0FAKE0002", "slack": "U0FAKE0002"},
    {"name": "Casey Placeholder", "handle": "casey.placeholder@example.invalid", "slack": "U0FAKE0003"},
    {"name": "Devon Dummy", "handle": "@U0FAKE0004", "slack": "U0FAKE0004"},
]
PASSWORD = "sekrit-pass-4711"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rotation_start() -> datetime:
    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(hour=9, minute=0, second=0, microsecond=0)
    return monday - 2 * WEEK


class Team:
    """The project home with the test roster, and the week K the test works in."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dsn: str | None) -> None:
        home = tmp_path / "home"
        shutil.copytree(HOME / "parameters", home / "parameters")
        self.t0 = rotation_start()
        data = yaml.safe_load((HOME / "parameters" / "oncall.yaml").read_text())
        data.update(
            rotation_start=iso(self.t0),
            people=PEOPLE,
            manager={"name": "Morgan Fictional", "handle": "@U0FAKE0099", "slack": "U0FAKE0099"},
            senior_sre={"name": "Jordan Standin", "handle": "@U0FAKE0050", "slack": "U0FAKE0050"},
            incident_commander={"name": "Riley Mockname", "handle": "@U0FAKE0060"},
            approvers=["Jordan Standin"],
        )
        (home / "parameters" / "oncall.yaml").write_text(yaml.safe_dump(data))
        monkeypatch.setenv("RUNBOOK_HOME", str(home))
        monkeypatch.setenv("RUNBOOK_RUNBOOKS_DIR", str(HOME / "runbooks"))
        monkeypatch.setenv("RUNBOOK_ARCHIVE", str(tmp_path / "executed"))
        if dsn:
            monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", dsn)
        self.roster = Roster.load(home / "parameters" / "oncall.yaml")
        k = (datetime.now(UTC) + timedelta(days=1) - self.t0) // WEEK + 1
        self.k = self.t0 + k * WEEK  # a primary handover, more than a day from now
        self.start, self.end = self.k + timedelta(hours=1), self.k + timedelta(hours=13)
        base = who(self.roster, self.start)
        assert who(self.roster, self.end) == base  # one primary week, one secondary shift
        self.primary, self.secondary = base.primary, base.secondary
        self.free = [p for p in self.roster.people if p not in (base.primary, base.secondary)]

    def at(self, hours: float) -> datetime:
        return self.k + timedelta(hours=hours)


def rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT id, person, role, since, until, created_by, cancelled_at, cancelled_by"
            " FROM runbook_oncall_overrides ORDER BY id"
        ).fetchall()


def stored_id(stdout: str) -> int:
    assert stdout.startswith("override "), stdout
    return int(stdout.split()[1])


def on_call(at: datetime) -> dict[str, Any]:
    res = cli("oncall", "--at", iso(at), "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_an_override_round_trip(fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    team = Team(tmp_path, monkeypatch, fresh_db)
    monkeypatch.setenv("RUNBOOK_OPERATOR", "alice")
    cover: Person = team.free[0]

    res = cli("oncall", "overrides")  # nothing stored, and no table yet: reading creates none
    assert res.returncode == 0 and res.stdout.splitlines()[-1] == "none", res.stderr
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('runbook_oncall_overrides')").fetchone() == (None,)

    # by a handle, in any case; the name is stored
    res = cli("oncall", "override", "--person", cover.handle.upper(), "--from", iso(team.start), "--to", iso(team.end))
    assert res.returncode == 0, res.stderr
    oid = stored_id(res.stdout)
    assert (
        f"{cover.name} is primary from {iso(team.start)} until {iso(team.end)} instead of {team.primary.name} "
        "(the rotation); set by alice" in res.stdout
    )
    assert fresh_db.rsplit("/", 1)[1] in res.stdout
    assert rows(fresh_db) == [(oid, cover.name, "primary", team.start, team.end, "alice", None, None)]

    listed = cli("oncall", "overrides")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith(str(oid)))
    for cell in ("primary", cover.name, iso(team.start), iso(team.end), "alice", "upcoming"):
        assert cell in line
    data = json.loads(cli("oncall", "overrides", "--json").stdout)
    assert [(o["id"], o["name"], o["role"], o["state"]) for o in data["overrides"]] == [
        (oid, cover.name, "primary", "upcoming")
    ]

    # `runbook oncall --at` inside the window: the override's person, for the override's window
    now = on_call(team.at(2))
    assert (now["primary"]["name"], now["primary"]["override_id"]) == (cover.name, oid)
    assert (now["primary"]["since"], now["primary"]["until"]) == (iso(team.start), iso(team.end))
    assert (now["secondary"]["name"], now["secondary"]["override_id"]) == (team.secondary.name, None)
    assert now["overrides_read"] is True and [o["id"] for o in now["overrides"]] == [oid]
    assert (now["senior_sre"]["name"], now["incident_commander"]["name"]) == ("Jordan Standin", "Riley Mockname")
    # half-open: the rotation's primary until it starts and from its end on
    assert on_call(team.start - timedelta(seconds=1))["primary"]["name"] == team.primary.name
    after = on_call(team.end)
    assert (after["primary"]["name"], after["primary"]["since"]) == (team.primary.name, iso(team.end))
    text = cli("oncall", "--at", iso(team.at(2)))
    assert text.returncode == 0 and text.stderr == "", text.stderr
    primary_row = next(ln for ln in text.stdout.splitlines() if ln.startswith("primary"))
    assert cover.name in primary_row and f"#{oid} by alice" in primary_row

    # the schedule: the override's stretch is its own row, marked
    sched = cli("oncall", "--at", iso(team.k), "--weeks", "1")
    assert sched.returncode == 0, sched.stderr
    lines = sched.stdout.splitlines()
    table = lines[next(i for i, ln in enumerate(lines) if ln.startswith("FROM")) + 1 :]
    marked = [ln for ln in table if f"primary #{oid}" in ln]
    assert len(marked) == 1 and marked[0].startswith(f"{iso(team.start)}  {iso(team.end)}  {cover.name}")
    assert any(ln.startswith(f"{iso(team.end)}  ") and team.primary.name in ln for ln in table)
    shifts = json.loads(cli("oncall", "--at", iso(team.k), "--weeks", "1", "--json").stdout)["shifts"]
    assert [(s["name"], s["since"], s["until"]) for s in shifts if s["override_id"] == oid] == [
        (cover.name, iso(team.start), iso(team.end))
    ]

    # the iCalendar: the override's stretch is an event of its own, between two of the rotation's
    ics = cli("oncall", "--ics", "--at", iso(team.k), "--weeks", "1")
    assert ics.returncode == 0, ics.stderr
    events = Calendar.from_ical(ics.stdout).walk("VEVENT")
    primaries = [
        (str(e["SUMMARY"]), e.decoded("DTSTART"), e.decoded("DTEND"))
        for e in events
        if str(e["SUMMARY"]).startswith("On call (primary)")
    ]
    assert primaries[:3] == [
        (f"On call (primary): {team.primary.name}", team.k, team.start),
        (f"On call (primary): {cover.name}", team.start, team.end),
        (f"On call (primary): {team.primary.name}", team.end, team.k + WEEK),
    ]
    out = tmp_path / "oncall.ics"
    written = cli("oncall", "--ics", str(out), "--at", iso(team.k), "--weeks", "1")
    assert written.returncode == 0 and f"written to {out}" in written.stdout, written.stderr
    assert len(Calendar.from_ical(out.read_bytes()).walk("VEVENT")) == len(events)

    # a run's incident names who was on call when the alert fired, with the override applied
    from runbook_lib.core.settings import load_settings
    from runbook_lib.run.runner import Runner

    alert = {
        "labels": {"alertname": "HighErrorBudgetBurnRate", "severity": "critical"},
        "startsAt": iso(team.at(2)),
    }
    found = Runner(load_settings())._incident(alert, [])
    assert found is not None and "on_call_error" not in found
    assert found["on_call"] == {
        "primary": cover.name,
        "secondary": team.secondary.name,
        "manager": "Morgan Fictional",
        "senior_sre": "Jordan Standin",
        "incident_commander": "Riley Mockname",
    }

    # cancelled before it started: it never applies, and is listed only with --all
    res = cli("oncall", "override", "--cancel", str(oid), "--operator", "bob")
    assert res.returncode == 0, res.stderr
    assert f"override {oid} cancelled by bob" in res.stdout and "never applies" in res.stdout
    (row,) = rows(fresh_db)
    assert row[6] is not None and row[7] == "bob"
    assert on_call(team.at(2))["primary"]["name"] == team.primary.name
    assert cli("oncall", "overrides").stdout.splitlines()[-1] == "none"
    every = cli("oncall", "overrides", "--all")
    assert "cancelled by bob (never applied)" in every.stdout and cover.name in every.stdout
    again = cli("oncall", "override", "--cancel", str(oid))
    assert (
        again.returncode == 2 and f"override {oid} was cancelled already" in again.stderr and "by bob" in again.stderr
    )
    assert Runner(load_settings())._incident(alert, [])["on_call"]["primary"] == team.primary.name  # type: ignore[index]


def test_overrides_that_would_double_someone_and_bad_input_are_refused(
    fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(tmp_path, monkeypatch, fresh_db)
    monkeypatch.setenv("RUNBOOK_OPERATOR", "alice")
    window = ["--from", iso(team.start), "--to", iso(team.end)]

    def refused(*args: str, message: str, env: dict[str, str] | None = None) -> None:
        before = rows(fresh_db) if _table(fresh_db) else []
        res = cli("oncall", "override", *args, env=env)
        assert res.returncode == 2, (res.stdout, res.stderr)
        assert message in res.stderr, res.stderr
        assert "Traceback" not in res.stderr
        assert (rows(fresh_db) if _table(fresh_db) else []) == before  # nothing stored or changed

    # the rotation's secondary cannot be made primary, nor its primary secondary
    refused(
        "--person",
        team.secondary.name,
        *window,
        message=f"{team.secondary.name} cannot be primary from {iso(team.start)} to {iso(team.end)}: at "
        f"{iso(team.start)} they are secondary by the rotation",
    )
    refused(
        "--person",
        team.primary.name,
        "--role",
        "secondary",
        *window,
        message=f"at {iso(team.start)} they are primary by the rotation",
    )
    refused("--person", "Nobody Known", *window, message="unknown person 'Nobody Known'")
    refused("--person", team.free[0].name, *window, env={"RUNBOOK_OPERATOR": ""}, message="give --operator NAME")
    refused(
        "--person",
        team.free[0].name,
        "--from",
        iso(team.start),
        "--to",
        iso(team.start + timedelta(days=30, seconds=1)),
        message="at most 30 days",
    )
    refused(
        "--person", team.free[0].name, "--from", iso(team.end), "--to", iso(team.start), message="is not after --from"
    )
    refused(
        "--person",
        team.free[0].name,
        "--from",
        "2026-01-01T00:00:00Z",
        "--to",
        iso(datetime.now(UTC) - timedelta(minutes=1)),
        message="is in the past",
    )
    refused("--person", team.free[0].name, "--from", "tomorrow", "--to", iso(team.end), message="--from: 'tomorrow'")
    refused("--person", team.free[0].name, *window[:2], message="an override needs --to")
    refused("--cancel", "1", "--person", team.free[0].name, message="--cancel ID takes no --person")
    refused("--cancel", "424242", message="no override 424242")

    # with the rotation's secondary covered, they may swap into primary; then the cover cannot
    # be cancelled (they would be both again), the swap can
    cover, swap_to = team.free[0], team.secondary
    res = cli("oncall", "override", "--person", cover.name, "--role", "secondary", *window)
    assert res.returncode == 0, res.stderr
    cover_id = stored_id(res.stdout)
    res = cli("oncall", "override", "--person", swap_to.name, *window, "--operator", "bob")
    assert res.returncode == 0, res.stderr
    swap_id = stored_id(res.stdout)
    now = on_call(team.at(2))
    assert (now["primary"]["name"], now["secondary"]["name"]) == (swap_to.name, cover.name)
    # the covering person cannot now also be primary (by override, not the rotation)
    refused(
        "--person",
        cover.name,
        *window,
        message=f"at {iso(team.start)} they are secondary by override {cover_id} (set by alice)",
    )
    refused(
        "--cancel",
        str(cover_id),
        message=f"cancelling override {cover_id} would make {swap_to.name} primary and secondary at once at "
        f"{iso(team.start)}",
    )
    res = cli("oncall", "override", "--cancel", str(swap_id))
    assert res.returncode == 0, res.stderr
    res = cli("oncall", "override", "--cancel", str(cover_id))
    assert res.returncode == 0, res.stderr
    assert [r[0] for r in rows(fresh_db) if r[6] is None] == []


def test_cancelling_an_override_in_force_ends_it_now_and_keeps_its_past(
    fresh_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The senior SRE (never in the rotation, so never doubled) covers the primary from two hours
    ago: cancelled now, the last two hours stay theirs and the rotation is back from now on."""
    team = Team(tmp_path, monkeypatch, fresh_db)
    monkeypatch.setenv("RUNBOOK_OPERATOR", "alice")
    now = datetime.now(UTC).replace(microsecond=0)
    since, until = now - timedelta(hours=2), now + timedelta(hours=2)
    res = cli("oncall", "override", "--person", "jordan standin", "--from", iso(since), "--to", iso(until))
    assert res.returncode == 0, res.stderr
    oid = stored_id(res.stdout)
    assert on_call(now - timedelta(hours=1))["primary"]["name"] == "Jordan Standin"
    assert "current" in next(ln for ln in cli("oncall", "overrides").stdout.splitlines() if ln.startswith(str(oid)))

    res = cli("oncall", "override", "--cancel", str(oid), "--operator", "bob")
    assert res.returncode == 0, res.stderr
    assert f"it applied from {iso(since)} until now" in res.stdout and "the rotation is back" in res.stdout
    ((_, _, _, _, _, _, cancelled_at, by),) = rows(fresh_db)
    assert by == "bob" and since < cancelled_at < until
    past = on_call(now - timedelta(hours=1))
    assert (past["primary"]["name"], past["primary"]["override_id"]) == ("Jordan Standin", oid)
    shift_end = who(team.roster, now - timedelta(hours=1)).primary_until
    assert past["primary"]["until"] == iso(min(cancelled_at, shift_end))  # it ended at its cancellation
    rotation = who(team.roster, now + timedelta(hours=1)).primary.name
    assert on_call(now + timedelta(hours=1))["primary"]["name"] == rotation
    assert cli("oncall", "overrides").stdout.splitlines()[-1] == "none"  # over now
    every = next(ln for ln in cli("oncall", "overrides", "--all").stdout.splitlines() if ln.startswith(str(oid)))
    assert f"over, cancelled by bob at {iso(cancelled_at)}" in every
    again = cli("oncall", "override", "--cancel", str(oid))
    assert again.returncode == 2 and "was cancelled already" in again.stderr


def _table(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass('runbook_oncall_overrides') IS NOT NULL").fetchone() == (True,)


def test_without_a_database_the_plain_rotation_is_shown_and_overrides_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(tmp_path, monkeypatch, None)
    res = cli("oncall", "--at", iso(team.at(2)))
    assert res.returncode == 0
    assert res.stderr.splitlines() == [
        "runbook: note: overrides are not read: PostgreSQL is not configured (RUNBOOK_POSTGRES_DSN); this is "
        "the plain rotation"
    ]
    assert team.primary.name in next(ln for ln in res.stdout.splitlines() if ln.startswith("primary"))
    data = json.loads(cli("oncall", "--at", iso(team.at(2)), "--json").stdout)
    assert data["overrides_read"] is False and data["overrides"] == []
    for args in (
        ["override", "--person", team.free[0].name, "--from", iso(team.start), "--to", iso(team.end)],
        ["overrides"],
        ["override", "--cancel", "1"],
    ):
        res = cli("oncall", *args, env={"RUNBOOK_OPERATOR": "alice"})
        assert res.returncode == 2, res.stderr
        assert (
            "on-call overrides are kept in PostgreSQL, which is not configured: set RUNBOOK_POSTGRES_DSN" in res.stderr
        )


def test_a_database_that_refuses_names_its_endpoint_never_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = Team(tmp_path, monkeypatch, f"postgresql://runbook:{PASSWORD}@127.0.0.1:9/omnihub")
    monkeypatch.setenv("RUNBOOK_OPERATOR", "alice")
    listed = cli("oncall", "overrides")
    assert listed.returncode == 1
    assert "postgresql://127.0.0.1:9/omnihub" in listed.stderr and "overrides not read" in listed.stderr
    added = cli("oncall", "override", "--person", team.free[0].name, "--from", iso(team.start), "--to", iso(team.end))
    assert added.returncode == 1 and "the override was not stored" in added.stderr
    # `runbook oncall` still answers, from the rotation, and says why (exit 1: overrides unknown)
    shown = cli("oncall", "--at", iso(team.at(2)))
    assert shown.returncode == 1
    assert team.primary.name in next(ln for ln in shown.stdout.splitlines() if ln.startswith("primary"))
    assert "this is the plain rotation, an override may change it" in shown.stderr
    # and a run's incident is recorded with the rotation and the reason
    from runbook_lib.core.settings import load_settings
    from runbook_lib.run.runner import Runner

    alert = {"labels": {"alertname": "HighErrorBudgetBurnRate", "severity": "critical"}, "startsAt": iso(team.at(2))}
    found = Runner(load_settings())._incident(alert, [])
    assert found is not None and found["on_call"]["primary"] == team.primary.name
    assert found["on_call_error"].startswith("on-call overrides not read, the plain rotation is shown: PostgreSQL:")
    assert "127.0.0.1:9" in found["on_call_error"]
    for res in (listed, added, shown):
        assert PASSWORD not in res.stdout + res.stderr
    assert PASSWORD not in json.dumps(found)
