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

Escalation (SRE package): after 15 minutes the secondary and the senior SRE (``senior_sre``), after
30 minutes the incident commander (``incident_commander``) and the manager. ``approvers`` name who
may approve a fix besides whoever is on call. A person's optional ``slack`` is their Slack member id.

Overrides (stored by runbook_lib.clients.oncall_overrides, applied here): one person takes one role
for a window [since, until) instead of the rotation (a swap, a sick day). When several cover an
instant, the one created last wins. :func:`effective` is :func:`who` with them applied;
:func:`check_override` refuses, before one is stored, an override that would make its person
primary and secondary at once, and :func:`check_cancel` a cancellation that would. A cancelled
override stops applying at its cancellation: what it changed before stays as it happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.errors import ConfigError
from runbook_lib.core.present import iso

WEEK = timedelta(days=7)
HALF_WEEK = timedelta(days=3, hours=12)
ENDING_GRACE = timedelta(hours=12)  # how long after a handover the end-of-shift checklist means the ended shift
MIN_PEOPLE = 3
MAX_NAME_CHARS = 100
ROSTER_FILE = Path("parameters") / "oncall.yaml"
ROSTER_KEYS = {"people", "rotation_start", "manager", "senior_sre", "incident_commander", "approvers"}
PERSON_KEYS = ("name", "handle", "slack")
SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,20}")  # a Slack member id: U0FAKE0001 (W: Enterprise Grid)
ROLES = ("primary", "secondary")
MAX_OVERRIDE = timedelta(days=30)
TOIL_KEYS = {"toil_hours_per_week", "toil_target", "toil_categories"}


@dataclass(frozen=True)
class Person:
    name: str
    handle: str
    slack: str | None = None  # Slack member id, e.g. U0FAKE0001

    def to_dict(self) -> dict[str, str | None]:
        return {"name": self.name, "handle": self.handle, "slack": self.slack}


@dataclass(frozen=True)
class Override:
    """``person`` takes ``role`` for [since, until) instead of the rotation. ``by``: who set it;
    ``id``: its row once stored. A cancelled one (``cancelled_at``) applies only until then."""

    person: Person
    role: str  # "primary" | "secondary"
    since: datetime
    until: datetime
    by: str
    created_at: datetime
    id: int | None = None
    cancelled_at: datetime | None = None
    cancelled_by: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ConfigError(f"an override's role must be primary or secondary, got {self.role!r}")
        for key in ("since", "until", "created_at", "cancelled_at"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, _utc(getattr(self, key)))
        if self.until <= self.since:
            raise ConfigError(
                f"the override's end {iso(self.until)} is not after its start {iso(self.since)}: --to must follow --from"
            )

    @property
    def ends(self) -> datetime:
        """When it stops applying: ``until``, or its cancellation when that came first."""
        return min(self.until, self.cancelled_at) if self.cancelled_at is not None else self.until

    @property
    def in_force(self) -> bool:
        """False when it was cancelled before it started: it never applies."""
        return self.ends > self.since

    def label(self) -> str:
        return f"override {self.id}" if self.id is not None else "an override"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            **self.person.to_dict(),
            "since": iso(self.since),
            "until": iso(self.until),
            "by": self.by,
            "created_at": iso(self.created_at),
            "cancelled_at": iso(self.cancelled_at) if self.cancelled_at else None,
            "cancelled_by": self.cancelled_by,
        }


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
    senior_sre: Person | None = None
    incident_commander: Person | None = None
    primary_override: Override | None = None  # the override that names the primary (effective())
    secondary_override: Override | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "primary": {
                **self.primary.to_dict(),
                "since": iso(self.primary_since),
                "until": iso(self.primary_until),
                "override_id": self.primary_override.id if self.primary_override else None,
            },
            "secondary": {
                **self.secondary.to_dict(),
                "since": iso(self.secondary_since),
                "until": iso(self.secondary_until),
                "override_id": self.secondary_override.id if self.secondary_override else None,
            },
            "manager": self.manager.to_dict(),
        }
        for role in ("senior_sre", "incident_commander"):
            if getattr(self, role) is not None:
                out[role] = getattr(self, role).to_dict()
        return out


@dataclass(frozen=True)
class Shift:
    """One primary week or one secondary shift: ``index`` is k (primary) or j (secondary)."""

    role: str  # "primary" | "secondary"
    index: int
    person: Person
    since: datetime
    until: datetime
    override: Override | None = None  # effective_schedule(): the override holding this stretch

    @property
    def override_id(self) -> int | None:
        return self.override.id if self.override is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            **self.person.to_dict(),
            "since": iso(self.since),
            "until": iso(self.until),
            "overridden": self.override is not None,
            "override_id": self.override_id,
        }


@dataclass(frozen=True)
class Roster:
    people: tuple[Person, ...]
    rotation_start: datetime  # UTC
    manager: Person
    source: str = "<roster>"
    senior_sre: Person | None = None  # escalation after 15 minutes, with the secondary
    incident_commander: Person | None = None  # escalation after 30 minutes, with the manager
    approvers: tuple[str, ...] = ()  # names of who may approve fixes besides whoever is on call

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
        # A Slack id names one person: the same person may hold two roles (a senior SRE who is in
        # the rotation too), two people may not share one id.
        slack_owner: dict[str, str] = {}
        for where, p in _roles(self):
            if p.slack is None:
                continue
            owner = slack_owner.setdefault(p.slack, p.name)
            if owner.casefold() != p.name.casefold():
                raise ConfigError(
                    f"{self.source}: {where}: slack {p.slack} is already {owner}'s; each Slack id names one person"
                )
        names = []
        for name in self.approvers:
            person = find_person(self, name)
            if person is None:
                known = ", ".join(p.name for p in everyone(self))
                raise ConfigError(
                    f"{self.source}: approvers: {name!r} is nobody in the roster; name someone from people, "
                    f"manager, senior_sre or incident_commander (known: {known})"
                )
            names.append(person.name)
        object.__setattr__(self, "approvers", tuple(dict.fromkeys(names)))

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
        extra = {
            role: _person(data[role], f"{source}: {role}")
            for role in ("senior_sre", "incident_commander")
            if data.get(role) is not None
        }
        approvers = data.get("approvers") or []
        if not isinstance(approvers, list) or not all(isinstance(a, str) and a.strip() for a in approvers):
            raise ConfigError(
                f"{source}: approvers must be a list of names of people in the roster, e.g. [Avery Example]"
            )
        return cls(
            people=people,
            rotation_start=start,
            manager=manager,
            source=source,
            approvers=tuple(a.strip() for a in approvers),
            **extra,
        )


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
        raise ConfigError(f"{path}: top level must be a mapping (people, rotation_start, manager, ..., toil_...)")
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
            f"{iso(t)} is before the roster's rotation_start {iso(start)} ({roster.source}): "
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
            senior_sre=roster.senior_sre,
            incident_commander=roster.incident_commander,
        )
    except OverflowError:  # a shift ending after year 9999
        raise ConfigError(f"{iso(t)} is too far in the future for the rotation") from None


def ending_shift(roster: Roster, now: datetime, after: timedelta = ENDING_GRACE) -> Shift:
    """The primary shift an end-of-shift checklist run at ``now`` is about: the one in progress,
    unless a handover happened less than ``after`` (12 h) ago, then the shift that ended there.
    The checklist is run at the end of a shift, possibly a little after the handover: at a Monday
    09:00 handover it is the week that just ended, not the 0 hours of the new one.

    Precisely: the primary shift [since, until) holding ``now - after`` (since <= now - after <
    until), i.e. the earliest shift that ends after ``now - after``; the first shift while
    ``now - after`` precedes rotation_start. ConfigError when ``now`` does. Its person is the
    rotation's (overrides change who, never when a shift ends)."""
    t = _utc(now)
    who(roster, t)  # refused before rotation_start
    k = (max(t - after, roster.rotation_start) - roster.rotation_start) // WEEK
    since = roster.rotation_start + k * WEEK
    return Shift("primary", k, roster.people[primary_index(k, len(roster.people))], since, since + WEEK)


def schedule(roster: Roster, start: datetime, weeks: int) -> list[Shift]:
    """Every primary and secondary shift that overlaps [start, start + weeks * 7 days), ordered by
    start (a primary before a secondary starting at the same instant)."""
    if isinstance(weeks, bool) or not isinstance(weeks, int) or weeks < 1:
        raise ConfigError(f"weeks must be a whole number of at least 1, got {weeks!r}")
    first = who(roster, start)
    try:
        end = _utc(start) + weeks * WEEK
    except OverflowError:
        raise ConfigError(f"{weeks} weeks from {iso(start)} is too far in the future for the rotation") from None
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


def on_call_at(home: Path, at: datetime, overrides: Iterable[Override] = ()) -> dict[str, str] | None:
    """{"primary": name, "secondary": name, "manager": name} at ``at`` (e.g. an alert's startsAt),
    with ``overrides`` applied (:func:`effective`), and "senior_sre" and "incident_commander" when
    the roster names them; for records and notifications. None when ``home`` has no
    parameters/oncall.yaml or ``at`` precedes its rotation_start; ConfigError when the file is
    broken. A naive ``at`` is taken as UTC."""
    path = roster_path(home)
    if not path.is_file():
        return None
    roster = Roster.load(path)
    if at.tzinfo is None or at.utcoffset() is None:
        at = at.replace(tzinfo=UTC)
    if _utc(at) < roster.rotation_start:
        return None
    now = effective(roster, at, overrides)
    out = {"primary": now.primary.name, "secondary": now.secondary.name, "manager": now.manager.name}
    if roster.senior_sre is not None:
        out["senior_sre"] = roster.senior_sre.name
    if roster.incident_commander is not None:
        out["incident_commander"] = roster.incident_commander.name
    return out


# -- people ---------------------------------------------------------------------------------------


def everyone(roster: Roster) -> tuple[Person, ...]:
    """The rotation's people, then the manager, senior SRE and incident commander (each person
    once, by name)."""
    seen: dict[str, Person] = {}
    for _where, p in _roles(roster):
        seen.setdefault(p.name.casefold(), p)
    return tuple(seen.values())


def find_person(roster: Roster, name: str) -> Person | None:
    """Whoever in the roster (people, manager, senior_sre, incident_commander) has ``name`` as
    their name or handle, ignoring case and surrounding blanks (a handle's leading @ optional)."""
    wanted = (name or "").strip().casefold()
    if not wanted:
        return None
    people = everyone(roster)
    for p in people:
        if p.name.casefold() == wanted:
            return p
    for p in people:
        handle = p.handle.casefold()
        if wanted in (handle, handle.removeprefix("@")) or "@" + wanted == handle:
            return p
    return None


def require_person(roster: Roster, name: str) -> Person:
    """:func:`find_person`, or ConfigError listing who is in the roster."""
    person = find_person(roster, name)
    if person is None:
        known = ", ".join(p.name for p in everyone(roster))
        raise ConfigError(f"unknown person {name.strip()!r}: not in the roster {roster.source} (known: {known})")
    return person


def person_by_slack(roster: Roster, slack_id: str) -> Person | None:
    """Whoever in the roster (people, manager, senior_sre, incident_commander) has Slack member id
    ``slack_id``; None for anyone else."""
    wanted = (slack_id or "").strip()
    return next((p for p in everyone(roster) if p.slack is not None and p.slack == wanted), None)


# -- overrides ------------------------------------------------------------------------------------


def effective(roster: Roster, at: datetime, overrides: Iterable[Override] = ()) -> OnCall:
    """:func:`who` at ``at`` with ``overrides`` applied: per role, the override covering ``at``
    (half-open [since, until)) names the person; when several do, the one created last. Each
    role's since/until is the stretch of its rotation shift holding ``at`` during which the same
    override (or none) applies: an override's window clipped to the shift, the rotation's shift
    cut where an override starts or ends; exact when ``overrides`` holds every override overlapping
    the shifts holding ``at`` (the names need only those covering ``at``). An override that names
    the other role's person is kept as it is here (:func:`check_override` refuses it before it is
    stored)."""
    base = who(roster, at)
    t = _utc(at)
    found: dict[str, Any] = {}
    for role in ROLES:
        since, until = getattr(base, f"{role}_since"), getattr(base, f"{role}_until")
        piece = next(p for p in _pieces(since, until, _of_role(overrides, role)) if p[0] <= t < p[1])
        p_since, p_until, winner = piece
        found[role] = winner.person if winner is not None else getattr(base, role)
        found[f"{role}_since"], found[f"{role}_until"], found[f"{role}_override"] = p_since, p_until, winner
    return OnCall(
        manager=base.manager,
        senior_sre=base.senior_sre,
        incident_commander=base.incident_commander,
        **found,
    )


def effective_schedule(roster: Roster, start: datetime, weeks: int, overrides: Iterable[Override] = ()) -> list[Shift]:
    """:func:`schedule` with ``overrides`` applied: each shift is split where an override of its
    role starts or ends, the overridden stretches naming the override's person (and the override,
    ``Shift.override_id``). Only stretches overlapping [start, start + weeks * 7 days), ordered by
    start (a primary before a secondary starting at the same instant)."""
    shifts = schedule(roster, start, weeks)
    begin, end = _utc(start), _utc(start) + weeks * WEEK
    by_role = {role: _of_role(overrides, role) for role in ROLES}
    out: list[Shift] = []
    for s in shifts:
        for since, until, winner in _pieces(s.since, s.until, by_role[s.role]):
            if since < end and until > begin:
                person = winner.person if winner is not None else s.person
                out.append(Shift(s.role, s.index, person, since, until, winner))
    return sorted(out, key=lambda s: (s.since, s.role != "primary"))


def check_override(roster: Roster, override: Override, existing: Iterable[Override] = ()) -> None:
    """ConfigError when ``override`` may not be stored next to ``existing`` (the stored overrides
    overlapping its window): :func:`validate_override` refuses it, or, anywhere in its window, its
    person would be the other role (by the rotation or by another override): nobody is primary
    and secondary at once. The message names the first such instant and the role. Being stored
    last, ``override`` wins its own role throughout its window."""
    validate_override(roster, override)
    other = "secondary" if override.role == "primary" else "primary"
    existing = [o for o in existing if o.id is None or o.id != override.id]
    t = override.since
    while t < override.until:
        now = effective(roster, t, existing)
        holder = getattr(now, other)
        if holder.name.casefold() == override.person.name.casefold():
            how = getattr(now, f"{other}_override")
            source = f"by {how.label()} (set by {how.by})" if how is not None else "by the rotation"
            raise ConfigError(
                f"{override.person.name} cannot be {override.role} from {iso(override.since)} to "
                f"{iso(override.until)}: at {iso(t)} they are {other} {source}, and nobody may be primary "
                f"and secondary at once; override the {other} for that stretch first, or pick someone else"
            )
        t = getattr(now, f"{other}_until")


def validate_override(roster: Roster, override: Override) -> None:
    """ConfigError when ``override`` is wrong whatever else is stored: its person is not in the
    roster, it starts before rotation_start, it lasts more than 30 days, or nobody set it."""
    require_person(roster, override.person.name)
    if override.since < roster.rotation_start:
        raise ConfigError(
            f"the override starts at {iso(override.since)}, before the roster's rotation_start "
            f"{iso(roster.rotation_start)} ({roster.source})"
        )
    if override.until - override.since > MAX_OVERRIDE:
        raise ConfigError(
            f"the override lasts {_span(override.until - override.since)}; at most {MAX_OVERRIDE.days} days: "
            f"change the roster ({roster.source}) for anything longer"
        )
    by = (override.by or "").strip()
    if not by or len(by) > MAX_NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in by):
        raise ConfigError(
            f"an override needs who sets it (--operator NAME or $RUNBOOK_OPERATOR), one line of at most "
            f"{MAX_NAME_CHARS} characters"
        )


def check_cancel(roster: Roster, override: Override, remaining: Iterable[Override], at: datetime) -> None:
    """ConfigError when cancelling ``override`` at ``at`` would make someone primary and secondary
    at once in what is left of its window (``remaining``: the other stored overrides overlapping
    it): the rotation (or an older override) comes back there."""
    remaining = [o for o in remaining if o is not override and (o.id is None or o.id != override.id)]
    t, end = max(_utc(at), override.since), override.ends
    while t < end:
        now = effective(roster, t, remaining)
        if now.primary.name.casefold() == now.secondary.name.casefold():
            sources = [o.label() for o in (now.primary_override, now.secondary_override) if o is not None] or [
                "the rotation"
            ]
            raise ConfigError(
                f"cancelling {override.label()} would make {now.primary.name} primary and secondary at once at "
                f"{iso(t)} (by {' and '.join(sources)}); cancel or change that first, or add an override for "
                f"the {override.role} instead"
            )
        t = min(now.primary_until, now.secondary_until)


def calendar_ics(shifts: Iterable[Shift], stamp: datetime, name: str = "On call") -> bytes:
    """An iCalendar (RFC 5545) with one VEVENT per shift: SUMMARY "On call (primary): NAME",
    DTSTART/DTEND in UTC, a UID stable per role and start (a calendar that subscribes to it
    updates events instead of duplicating them), DTSTAMP ``stamp``."""
    from icalendar import Calendar, Event

    cal = Calendar()
    cal.add("prodid", "-//OmniHub runbooks//runbook oncall//EN")
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", "UTC")
    for s in shifts:
        event = Event()
        event.add("uid", f"oncall-{s.role}-{s.since.astimezone(UTC):%Y%m%dT%H%M%SZ}@runbook")
        event.add("dtstamp", _utc(stamp))
        event.add("dtstart", s.since.astimezone(UTC))
        event.add("dtend", s.until.astimezone(UTC))
        event.add("summary", f"On call ({s.role}): {s.person.name}")
        lines = [f"{s.role.capitalize()} on call: {s.person.name} ({s.person.handle})"]
        if s.person.slack:
            lines.append(f"Slack: {s.person.slack}")
        if s.override is not None:
            lines.append(f"{s.override.label().capitalize()}, set by {s.override.by}")
        event.add("description", "\n".join(lines))
        event.add("transp", "TRANSPARENT")  # on call is not busy time
        cal.add_component(event)
    return cal.to_ical()


def _of_role(overrides: Iterable[Override], role: str) -> list[Override]:
    return [o for o in overrides if o.role == role and o.in_force]


def _pieces(since: datetime, until: datetime, overrides: list[Override]) -> list[tuple[datetime, datetime, Any]]:
    """[since, until) cut into stretches with one winner each (the override created last among
    those covering it, or None: the rotation), neighbours with the same winner merged."""
    edges = sorted({since, until, *(e for o in overrides for e in (o.since, o.ends) if since < e < until)})
    out: list[tuple[datetime, datetime, Any]] = []
    for a, b in pairwise(edges):
        covering = [o for o in overrides if o.since <= a < o.ends]
        winner = max(covering, key=_recency, default=None)
        if out and out[-1][2] is winner:
            out[-1] = (out[-1][0], b, winner)
        else:
            out.append((a, b, winner))
    return out


def _recency(o: Override) -> tuple[datetime, int]:
    return (o.created_at, o.id if o.id is not None else -1)


def _roles(roster: Roster) -> list[tuple[str, Person]]:
    out = [(f"people[{i}]", p) for i, p in enumerate(roster.people)]
    out += [
        (role, getattr(roster, role))
        for role in ("manager", "senior_sre", "incident_commander")
        if getattr(roster, role) is not None
    ]
    return out


def _span(d: timedelta) -> str:
    hours = d.total_seconds() / 3600
    return f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} hours"


def _person(raw: Any, where: str) -> Person:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected {{name: ..., handle: ...}}, got {type(raw).__name__}")
    unknown = sorted(str(k) for k in raw if k not in PERSON_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(PERSON_KEYS)})")
    fields = {}
    for key in ("name", "handle"):
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key} must be a non-empty string")
        value = value.strip()
        if len(value) > MAX_NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ConfigError(f"{where}: {key} must be one line of at most {MAX_NAME_CHARS} characters")
        fields[key] = value
    slack = raw.get("slack")
    if slack is not None:
        if not isinstance(slack, str) or not SLACK_ID.fullmatch(slack.strip()):
            raise ConfigError(
                f"{where}: slack must be a Slack member id (U or W, then 2 to 20 capital letters or digits, "
                f"e.g. U0FAKE0001), got {slack!r}"
            )
        fields["slack"] = slack.strip()
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
