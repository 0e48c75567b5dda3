"""The toil log (SRE package, "TOIL REDUCTION": under 30 % of SRE time on toil): one row per
piece of repetitive manual work in ``toil_entries`` in the OmniHub database, and the weekly share
of the on-call hours it took.

The table is created when missing (CREATE TABLE IF NOT EXISTS, under an advisory lock so two
first writers do not race). Weeks are ISO weeks in UTC (Monday 00:00 to Monday 00:00). A week
meets the target when its share is under it (the package says "< 30 %"): a week at exactly 30 %
is flagged. Messages name the database as scheme://host:port/db only, never a password.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import psycopg

from runbook_lib.clients.pg import connected
from runbook_lib.core.errors import ConfigError
from runbook_lib.core.present import iso
from runbook_lib.sre.oncall import read_config

TABLE = "toil_entries"
TARGET = 0.30  # SRE package, "Toil Reduction Goals": < 30 % of SRE time spent on toil
MAX_MINUTES = 24 * 60
MAX_TEXT_CHARS = 500
MAX_OPERATOR_CHARS = 100
MAX_WEEKS = 520
WEEK = timedelta(days=7)

DDL = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT now(),
    operator text NOT NULL CHECK (operator <> ''),
    minutes  integer NOT NULL CHECK (minutes > 0 AND minutes <= {MAX_MINUTES}),
    category text NOT NULL,
    text     text NOT NULL CHECK (char_length(text) BETWEEN 1 AND {MAX_TEXT_CHARS})
);
CREATE INDEX IF NOT EXISTS {TABLE}_at_idx ON {TABLE} (at);
"""
LOCK_KEY = 0x746F696C  # "toil": serialises the CREATE TABLE IF NOT EXISTS of concurrent first writers


@dataclass(frozen=True)
class ToilConfig:
    """The toil keys of parameters/oncall.yaml."""

    hours_per_week: float
    categories: tuple[str, ...]
    target: float = TARGET

    @property
    def budget_minutes(self) -> float:
        return self.hours_per_week * 60

    @classmethod
    def load(cls, path: Path | str) -> ToilConfig:
        data = read_config(path)
        hours = data.get("toil_hours_per_week")
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 < hours <= 168:
            raise ConfigError(
                f"{path}: toil_hours_per_week must be the on-call hours a week toil is measured against "
                f"(a number in (0, 168], e.g. 40), got {hours!r}"
            )
        target = data.get("toil_target", TARGET)
        if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
            raise ConfigError(f"{path}: toil_target must be a share in (0, 1), e.g. 0.30, got {target!r}")
        cats = data.get("toil_categories")
        if (
            not isinstance(cats, list)
            or not cats
            or not all(isinstance(c, str) and c.strip() and c == c.strip() for c in cats)
        ):
            raise ConfigError(f"{path}: toil_categories must be a non-empty list of names, e.g. [manual-deploy, other]")
        if len(set(cats)) != len(cats):
            raise ConfigError(f"{path}: toil_categories lists a category twice")
        return cls(hours_per_week=float(hours), categories=tuple(cats), target=float(target))


@dataclass(frozen=True)
class ToilWeek:
    """One ISO week of the report (or the span of :func:`period`): its toil minutes and their
    share of the on-call hours."""

    week: str  # ISO week, e.g. "2026-W02" (a period: "2026-11-30T09:00Z..2026-12-07T09:00Z")
    start: datetime  # Monday 00:00 UTC (a period: its start)
    end: datetime  # the next Monday 00:00 UTC (a period: its end)
    entries: int
    minutes: int
    share: float  # minutes / (hours_per_week * 60)
    over_target: bool  # share >= target
    by_category: dict[str, int] = field(default_factory=dict)  # minutes, largest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "week": self.week,
            "start": iso(self.start),
            "end": iso(self.end),
            "entries": self.entries,
            "minutes": self.minutes,
            "share": self.share,
            "over_target": self.over_target,
            "by_category": dict(self.by_category),
        }


def parse_minutes(text: str | int) -> int:
    """A positive whole number of minutes, at most a day's."""
    if isinstance(text, bool):
        raise ConfigError(f"minutes must be a positive whole number, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        raw = str(text).strip()
        if not raw.isascii() or not raw.isdigit():
            raise ConfigError(f"--minutes must be a positive whole number of minutes, got {str(text)!r}")
        value = int(raw)
    if value < 1:
        raise ConfigError(f"--minutes must be at least 1, got {value}")
    if value > MAX_MINUTES:
        raise ConfigError(f"--minutes {value} is more than a day ({MAX_MINUTES}); log each day's toil separately")
    return value


def check_entry(
    operator: str, minutes: int | str, category: str, text: str, categories: Iterable[str] | None = None
) -> tuple[str, int, str, str]:
    """The entry as it will be stored (stripped), or ConfigError naming what is wrong."""
    text = (text or "").strip()
    if not text:
        raise ConfigError("the toil entry's text is empty: say what the manual work was")
    if len(text) > MAX_TEXT_CHARS:
        raise ConfigError(f"the toil entry's text has {len(text)} characters; at most {MAX_TEXT_CHARS}")
    if any((ord(c) < 32 and c not in "\t\n") or ord(c) == 127 for c in text):
        raise ConfigError("the toil entry's text holds control characters")
    value = parse_minutes(minutes)
    category = (category or "").strip()
    known = tuple(categories) if categories is not None else None
    if not category or (known is not None and category not in known):
        listed = ", ".join(known) if known else "(none configured)"
        raise ConfigError(f"unknown toil category {category!r}; known: {listed}")
    operator = (operator or "").strip()
    if not operator:
        raise ConfigError("a toil entry needs --operator NAME (or $RUNBOOK_OPERATOR): who did the work")
    if len(operator) > MAX_OPERATOR_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in operator):
        raise ConfigError(f"--operator must be one line of at most {MAX_OPERATOR_CHARS} characters")
    return operator, value, category, text


def table_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()
    return bool(row and row[0])


def ensure_table(conn: psycopg.Connection[Any]) -> None:
    """Create toil_entries if it is missing (inside the caller's transaction). Only when missing:
    CREATE ... IF NOT EXISTS still needs the CREATE privilege on the schema."""
    if not table_exists(conn):
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        conn.execute(DDL)


def add(
    dsn: str,
    operator: str,
    minutes: int | str,
    category: str,
    text: str,
    *,
    categories: Iterable[str] | None = None,
    at: datetime | None = None,
    connect_timeout_s: float = 5.0,
) -> int:
    """Store one toil entry (at ``at``, default the database's now()); returns its id. ``categories``:
    the known ones (ConfigError for another); None accepts any non-empty category."""
    operator, value, category, text = check_entry(operator, minutes, category, text, categories)
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ValueError("at must be timezone-aware")
    with connected(dsn, connect_timeout_s, "the toil entry was not recorded") as conn:
        ensure_table(conn)
        row = conn.execute(
            f"INSERT INTO {TABLE} (at, operator, minutes, category, text)"
            " VALUES (coalesce(%s, now()), %s, %s, %s, %s) RETURNING id",
            (at, operator, value, category, text),
        ).fetchone()
    assert row is not None
    return int(row[0])


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week holding ``moment``."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def report(
    dsn: str,
    weeks: int,
    now: datetime,
    *,
    hours_per_week: float,
    target: float = TARGET,
    connect_timeout_s: float = 5.0,
) -> list[ToilWeek]:
    """The last ``weeks`` ISO weeks up to the one holding ``now``, oldest first, each with its toil
    minutes, entries, share of ``hours_per_week`` and minutes by category (largest first; ties by
    name). Weeks without entries are there, at 0."""
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= MAX_WEEKS:
        raise ConfigError(f"--weeks must be a whole number from 1 to {MAX_WEEKS}, got {weeks!r}")
    if not hours_per_week > 0:
        raise ConfigError(f"toil_hours_per_week must be positive, got {hours_per_week!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    last = week_start(now)
    first = last - (weeks - 1) * WEEK
    end = last + WEEK
    rows: list[Any] = []
    with connected(dsn, connect_timeout_s, "no report") as conn:
        if table_exists(conn):  # nothing logged yet: a report creates nothing
            rows = conn.execute(
                f"SELECT date_trunc('week', at AT TIME ZONE 'UTC') AS week, category, sum(minutes), count(*)"
                f" FROM {TABLE} WHERE at >= %s AND at < %s GROUP BY 1, 2",
                (first, end),
            ).fetchall()
    cells: dict[datetime, dict[str, tuple[int, int]]] = {}
    for wk, category, minutes, count in rows:
        cells.setdefault(wk.replace(tzinfo=UTC), {})[category] = (int(minutes), int(count))
    budget = Fraction(str(hours_per_week)) * 60
    out = []
    for i in range(weeks):
        start = first + i * WEEK
        year, number, _ = start.isocalendar()
        out.append(_row(f"{year}-W{number:02d}", start, start + WEEK, cells.get(start, {}), budget, target))
    return out


def period(
    dsn: str,
    since: datetime,
    until: datetime,
    *,
    hours_per_week: float,
    target: float = TARGET,
    connect_timeout_s: float = 5.0,
) -> ToilWeek:
    """The toil logged in [since, until) (e.g. a primary on-call shift), as one row like the
    report's: minutes, entries, share and minutes by category. ``week`` names the span
    (``2026-11-30T09:00Z..2026-12-07T09:00Z``); the share is of ``hours_per_week`` scaled to the
    span's length (a 7-day shift: as it is)."""
    if not hours_per_week > 0:
        raise ConfigError(f"toil_hours_per_week must be positive, got {hours_per_week!r}")
    for moment in (since, until):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("since and until must be timezone-aware")
    if not since < until:
        raise ValueError(f"an empty span: {iso(since)} is not before {iso(until)}")
    rows: list[Any] = []
    with connected(dsn, connect_timeout_s, "no report") as conn:
        if table_exists(conn):  # nothing logged yet: a report creates nothing
            rows = conn.execute(
                f"SELECT category, sum(minutes), count(*) FROM {TABLE} WHERE at >= %s AND at < %s GROUP BY 1",
                (since, until),
            ).fetchall()
    micro = timedelta(microseconds=1)
    budget = Fraction(str(hours_per_week)) * 60 * Fraction((until - since) // micro, WEEK // micro)
    cats = {category: (int(minutes), int(count)) for category, minutes, count in rows}
    label = f"{since.astimezone(UTC):%Y-%m-%dT%H:%MZ}..{until.astimezone(UTC):%Y-%m-%dT%H:%MZ}"
    return _row(label, since, until, cats, budget, target)


def _row(
    label: str, start: datetime, end: datetime, cats: dict[str, tuple[int, int]], budget: Fraction, target: float
) -> ToilWeek:
    """One span's row from its (minutes, entries) by category and its budget in minutes."""
    minutes = sum(m for m, _ in cats.values())
    return ToilWeek(
        week=label,
        start=start,
        end=end,
        entries=sum(c for _, c in cats.values()),
        minutes=minutes,
        share=float(minutes / budget),
        over_target=minutes / budget >= Fraction(str(target)),
        by_category=dict(sorted(((c, m) for c, (m, _) in cats.items()), key=lambda cm: (-cm[1], cm[0]))),
    )


def top_categories(weeks: Iterable[ToilWeek]) -> dict[str, int]:
    """Minutes by category over ``weeks``, largest first (ties by name)."""
    total: dict[str, int] = {}
    for w in weeks:
        for category, minutes in w.by_category.items():
            total[category] = total.get(category, 0) + minutes
    return dict(sorted(total.items(), key=lambda cm: (-cm[1], cm[0])))
