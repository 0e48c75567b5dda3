"""Who is on call: the roster in parameters/oncall.yaml and the rotation rule. Pure: no clock, no
network; every function takes the instant it answers for.

The rule (SRE package, "ON-CALL ROTATION"), with T0 = rotation_start, W = 7 days, H = 3.5 days and
n people in the roster's order:

* primary: week k = floor((t - T0) / W) is [T0 + kW, T0 + (k+1)W); its primary is person k mod n.
* secondary: shift j = floor((t - T0 - H) / W) is [T0 + jW + H, T0 + (j+1)W + H), 3.5 days after
  the primary's; its secondary is person (j - 1) mod n, the primary of the week before week j:
  whoever handed over most recently backs up the next two primaries.
* manager: fixed, for escalation.

Why nobody is ever primary and secondary at once: secondary shift j covers the second half of
primary week j and the first half of week j + 1, whose primaries are persons j and j + 1 (mod n).
Its secondary, j - 1, differs from them by 1 and by 2, which are both non-zero mod n exactly when
n >= 3. With n = 2 no order can work: weeks j and j + 1 have different primaries, so both people
are primary during every secondary shift, and whoever is secondary is primary for half of it. A
roster needs at least 3 people. Over any n consecutive weeks everyone is primary once and starts
one secondary shift (k -> k mod n and j -> (j - 1) mod n are bijections).

Times before rotation_start are refused (ConfigError): the roster says nothing about them. The
secondary shift in progress at T0 (j = -1) is reported from T0. All arithmetic is in UTC, so
daylight saving time never moves a handover; shifts are half-open (a shift ending at 09:00 is over
at 09:00).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.errors import ConfigError

WEEK = timedelta(days=7)
HALF_WEEK = timedelta(days=3, hours=12)
MIN_PEOPLE = 3
MAX_NAME_CHARS = 100
ROSTER_FILE = Path("parameters") / "oncall.yaml"
ROSTER_KEYS = {"people", "rotation_start", "manager"}
TOIL_KEYS = {"toil_hours_per_week", "toil_target", "toil_categories"}


@dataclass(frozen=True)
class Person:
    name: str
    handle: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "handle": self.handle}


@dataclass(frozen=True)
class OnCall:
    """Who is on call at one instant, and since when until when (UTC)."""

    primary: Person
    secondary: Person
    manager: Person
    primary_since: datetime
    primary_until: datetime
    secondary_since: datetime
    secondary_until: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "primary": {**self.primary.to_dict(), "since": _iso(self.primary_since), "until": _iso(self.primary_until)},
            "secondary": {
                **self.secondary.to_dict(),
                "since": _iso(self.secondary_since),
                "until": _iso(self.secondary_until),
            },
            "manager": self.manager.to_dict(),
        }


@dataclass(frozen=True)
class Shift:
    """One primary week or one secondary shift: ``index`` is k (primary) or j (secondary)."""

    role: str  # "primary" | "secondary"
    index: int
    person: Person
    since: datetime
    until: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, **self.person.to_dict(), "since": _iso(self.since), "until": _iso(self.until)}


@dataclass(frozen=True)
class Roster:
    people: tuple[Person, ...]
    rotation_start: datetime  # UTC
    manager: Person
    source: str = "<roster>"

    def __post_init__(self) -> None:
        # In UTC whatever it was given in: arithmetic on a datetime in a zone with daylight saving
        # time is wall-clock arithmetic, which would move every handover after a change by an hour.
        object.__setattr__(self, "rotation_start", _utc(self.rotation_start))
        if len(self.people) < MIN_PEOPLE:
            why = (
                "with 2, every secondary shift (7 days, offset by 3.5) spans both people's primary weeks, so the"
                " secondary would be primary for half of it"
                if len(self.people) == 2
                else "a primary and a secondary who is never primary at the same time"
            )
            raise ConfigError(
                f"{self.source}: people: {len(self.people)} listed; the rotation needs at least {MIN_PEOPLE} ({why})"
            )
        _unique(self.people, lambda p: p.name.casefold(), "name", self.source)
        _unique(self.people, lambda p: p.handle.casefold(), "handle", self.source)

    @classmethod
    def load(cls, path: Path | str) -> Roster:
        """The roster in ``path``; ConfigError naming the file and key when it is missing or wrong."""
        return cls.from_mapping(read_config(path), str(path))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<roster>") -> Roster:
        people_raw = data.get("people")
        if people_raw is None:
            raise ConfigError(f"{source}: no people: list the rotation as people: [{{name: ..., handle: ...}}, ...]")
        if not isinstance(people_raw, list):
            raise ConfigError(f"{source}: people must be a list of {{name, handle}}, got {type(people_raw).__name__}")
        people = tuple(_person(p, f"{source}: people[{i}]") for i, p in enumerate(people_raw))
        if data.get("manager") is None:
            raise ConfigError(f"{source}: no manager: give the escalation as manager: {{name: ..., handle: ...}}")
        manager = _person(data["manager"], f"{source}: manager")
        start = parse_timestamp(data.get("rotation_start"), f"{source}: rotation_start")
        return cls(people=people, rotation_start=start, manager=manager, source=source)


def read_config(path: Path | str) -> dict[str, Any]:
    """parameters/oncall.yaml as a mapping (roster and toil keys); ConfigError when it is missing,
    not YAML, not a mapping, or has a key nobody reads (a typo would otherwise be ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no on-call roster: {path} does not exist (see parameters/oncall.yaml in the repository)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping (people, rotation_start, manager, toil_...)")
    unknown = sorted(str(k) for k in data if k not in ROSTER_KEYS | TOIL_KEYS)
    if unknown:
        known = ", ".join(sorted(ROSTER_KEYS | TOIL_KEYS))
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {known})")
    return data


def parse_timestamp(value: Any, where: str) -> datetime:
    """An ISO 8601 timestamp with a zone (YAML may already have parsed it), in UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        raise ConfigError(f"{where}: {value.isoformat()} is a date; give a time and a zone, e.g. {value}T09:00:00Z")
    elif isinstance(value, str) and value.strip():
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(f"{where}: {value!r} is not an ISO 8601 timestamp (e.g. 2026-01-05T09:00:00Z)") from None
    elif value is None:
        raise ConfigError(f"{where}: missing; give the first primary shift's start, e.g. 2026-01-05T09:00:00Z")
    else:
        raise ConfigError(f"{where}: expected an ISO 8601 timestamp, got {type(value).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ConfigError(f"{where}: {moment.isoformat()} has no zone; add Z (UTC) or an offset such as +01:00")
    return moment.astimezone(UTC)


def primary_index(week: int, n: int) -> int:
    """The person (index into the roster) who is primary in week ``week``."""
    return week % n


def secondary_index(shift: int, n: int) -> int:
    """The person who is secondary in secondary shift ``shift``: the primary of week shift - 1."""
    return (shift - 1) % n


def who(roster: Roster, at: datetime) -> OnCall:
    """Primary, secondary and manager at ``at`` (timezone-aware; ConfigError before rotation_start)."""
    t = _utc(at)
    start = roster.rotation_start
    if t < start:
        raise ConfigError(
            f"{_iso(t)} is before the roster's rotation_start {_iso(start)} ({roster.source}): "
            "the rotation is not defined then"
        )
    n = len(roster.people)
    k = (t - start) // WEEK
    j = (t - start - HALF_WEEK) // WEEK
    try:
        return OnCall(
            primary=roster.people[primary_index(k, n)],
            secondary=roster.people[secondary_index(j, n)],
            manager=roster.manager,
            primary_since=start + k * WEEK,
            primary_until=start + (k + 1) * WEEK,
            secondary_since=max(start, start + j * WEEK + HALF_WEEK),
            secondary_until=start + (j + 1) * WEEK + HALF_WEEK,
        )
    except OverflowError:  # a shift ending after year 9999
        raise ConfigError(f"{_iso(t)} is too far in the future for the rotation") from None


def schedule(roster: Roster, start: datetime, weeks: int) -> list[Shift]:
    """Every primary and secondary shift that overlaps [start, start + weeks * 7 days), ordered by
    start (a primary before a secondary starting at the same instant)."""
    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise ConfigError(f"weeks must be a whole number of at least 1, got {weeks!r}")
    first = who(roster, start)
    try:
        end = _utc(start) + weeks * WEEK
    except OverflowError:
        raise ConfigError(f"{weeks} weeks from {_iso(start)} is too far in the future for the rotation") from None
    who(roster, end)  # the shifts in progress at the end end last: refused here if that is past year 9999
    n = len(roster.people)
    t0 = roster.rotation_start
    shifts: list[Shift] = []
    k = (first.primary_since - t0) // WEEK
    while t0 + k * WEEK < end:
        shifts.append(Shift("primary", k, roster.people[primary_index(k, n)], t0 + k * WEEK, t0 + (k + 1) * WEEK))
        k += 1
    j = (_utc(start) - t0 - HALF_WEEK) // WEEK
    while t0 + j * WEEK + HALF_WEEK < end:
        since = max(t0, t0 + j * WEEK + HALF_WEEK)
        shifts.append(
            Shift("secondary", j, roster.people[secondary_index(j, n)], since, t0 + (j + 1) * WEEK + HALF_WEEK)
        )
        j += 1
    return sorted(shifts, key=lambda s: (s.since, s.role != "primary"))


def roster_path(home: Path | str) -> Path:
    """Where the roster lives under a project home (RUNBOOK_HOME)."""
    return Path(home) / ROSTER_FILE


def on_call_at(home: Path, at: datetime) -> dict[str, str] | None:
    """{"primary": name, "secondary": name, "manager": name} at ``at`` (e.g. an alert's startsAt),
    for records and notifications. None when ``home`` has no parameters/oncall.yaml or ``at``
    precedes its rotation_start; ConfigError when the file is broken. A naive ``at`` is taken as UTC."""
    path = roster_path(home)
    if not path.is_file():
        return None
    roster = Roster.load(path)
    if at.tzinfo is None or at.utcoffset() is None:
        at = at.replace(tzinfo=UTC)
    if _utc(at) < roster.rotation_start:
        return None
    now = who(roster, at)
    return {"primary": now.primary.name, "secondary": now.secondary.name, "manager": now.manager.name}


def _person(raw: Any, where: str) -> Person:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected {{name: ..., handle: ...}}, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in ("name", "handle"))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: name, handle)")
    fields = {}
    for key in ("name", "handle"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        value = value.strip()
        if len(value) > MAX_NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigError(f"{where}: {key} must be one line of at most {MAX_NAME_CHARS} characters")
        fields[key] = value
    return Person(**fields)


def _unique(people: tuple[Person, ...], key: Any, what: str, source: str) -> None:
    seen: dict[str, int] = {}
    for i, p in enumerate(people):
        k = key(p)
        if k in seen:
            raise ConfigError(
                f"{source}: people[{seen[k]}] and people[{i}] have the same {what} {getattr(p, what)!r}; "
                "each person must appear once"
            )
        seen[k] = i


def _utc(at: datetime) -> datetime:
    if not isinstance(at, datetime):
        raise ValueError(f"expected a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at.isoformat()} has no timezone: give an aware datetime")
    return at.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
