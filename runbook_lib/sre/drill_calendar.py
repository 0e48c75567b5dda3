"""The quarterly DR drill program: the calendar in parameters/drills.yaml, and each drill's state
in a year from its runs in the archive (its last run, the verdict, whether it is done, due,
upcoming or overdue). Pure: the caller passes the runs and the instant."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.errors import ConfigError

CALENDAR_FILE = Path("parameters") / "drills.yaml"
SLUG_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class Drill:
    name: str
    runbook: str
    quarter: int
    environment: str
    what: str


@dataclass(frozen=True)
class Run:
    """One archived run of a drill's runbook."""

    record_id: str
    runbook: str
    at: datetime
    mode: str
    verdict: str | None  # PASS / FAIL, None when the drill gave none (diagnose mode, failed run)
    environment: str = ""  # the record's environment ("" when unknown); shown, never counted


@dataclass(frozen=True)
class State:
    drill: Drill
    year: int
    starts: datetime
    ends: datetime
    status: str  # done / failed / due / upcoming / overdue
    last: Run | None  # the latest run of the drill (any year)
    in_quarter: Run | None  # the latest real run in its quarter of ``year``

    @property
    def last_not_counted(self) -> str | None:
        """Why the last run does not count for this drill's quarter (:func:`not_counted`); None
        when it counts or there is none."""
        return not_counted(self.drill, self.last, self.year) if self.last else None

    def verdict_text(self) -> str:
        """The last run's verdict, marked when it does not count for the quarter ("PASS (not
        counted)"), "-" without one."""
        if not self.last:
            return "-"
        return (self.last.verdict or "-") + (" (not counted)" if self.last_not_counted else "")

    def last_run_note(self) -> str | None:
        """When the last run does not count, a sentence saying so and why ("last run: PASS on
        2026-12-07 in local does not count for Q1 2026: run in Q4 2026, ..."); else None."""
        why, last = self.last_not_counted, self.last
        if why is None or last is None:
            return None
        where = f" in {last.environment}" if last.environment else ""
        return (
            f"{self.drill.name}: last run: {last.verdict or 'no verdict'} on {last.at:%Y-%m-%d}{where} "
            f"({last.record_id}) does not count for Q{self.drill.quarter} {self.year}: {why}"
        )

    def to_dict(self) -> dict[str, Any]:
        last = self.last
        return {
            "drill": self.drill.name,
            "runbook": self.drill.runbook,
            "quarter": f"Q{self.drill.quarter}",
            "environment": self.drill.environment,
            "what": self.drill.what,
            "window": [self.starts.isoformat(), self.ends.isoformat()],
            "status": self.status,
            "last_run": last.at.isoformat() if last else None,
            "last_verdict": last.verdict if last else None,
            "last_record": last.record_id if last else None,
            "last_environment": (last.environment or None) if last else None,
            "last_counts": last is not None and self.last_not_counted is None,
            "last_not_counted": self.last_not_counted,
        }


def load(path: Path) -> list[Drill]:
    """The calendar; ConfigError naming what is wrong."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read the drill calendar {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    items = data.get("drills") if isinstance(data, dict) else None
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{path}: `drills` must be a non-empty list")
    drills = []
    for i, item in enumerate(items):
        where = f"{path.name}: drills[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a mapping")
        try:
            drill = Drill(
                name=str(item["name"]),
                runbook=str(item["runbook"]),
                quarter=int(item["quarter"]),
                environment=str(item.get("environment", "")),
                what=str(item.get("what", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: missing or bad field {exc}") from None
        if drill.quarter not in (1, 2, 3, 4):
            raise ConfigError(f"{where} ({drill.name}): quarter must be 1-4, not {drill.quarter}")
        if not drill.runbook or set(drill.runbook) - SLUG_CHARS:
            raise ConfigError(f"{where} ({drill.name}): runbook {drill.runbook!r} is not a runbook slug")
        drills.append(drill)
    if len({d.name for d in drills}) != len(drills):
        raise ConfigError(f"{path}: a drill name appears twice")
    return drills


def quarter_window(year: int, quarter: int) -> tuple[datetime, datetime]:
    start = datetime(year, 3 * (quarter - 1) + 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if quarter == 4 else datetime(year, 3 * quarter + 1, 1, tzinfo=UTC)
    return start, end


def verdict_of(record: Mapping[str, Any]) -> str | None:
    """PASS or FAIL from a drill record's verdict finding (any drill: a check named '... verdict'
    whose details carry ``drill_verdict`` or ``verdict``)."""
    for f in record.get("findings") or []:
        if not str(f.get("check", "")).lower().endswith("verdict"):
            continue
        details = f.get("details") or {}
        value = details.get("drill_verdict") or details.get("verdict")
        if value in ("PASS", "FAIL"):
            return str(value)
    return None


def quarter_of(at: datetime) -> str:
    """'Q4 2026'."""
    return f"Q{(at.month - 1) // 3 + 1} {at.year}"


def not_counted(drill: Drill, run: Run, year: int) -> str | None:
    """Why ``run`` is not ``drill``'s drill in ``year``, or None when it is. The calendar's one
    rule (:func:`calendar` counts exactly the runs this passes): a run of the drill's runbook in
    resolve mode that gave a verdict, inside the drill's quarter of ``year``. The run's
    environment is not part of it."""
    if run.runbook != drill.runbook:
        return f"a run of {run.runbook}, not of {drill.runbook}"
    if run.mode != "resolve":
        return f"a {run.mode}-mode run is a pre-check; only a resolve-mode run is a drill"
    if not run.verdict:
        return "the run gave no PASS/FAIL verdict"
    starts, ends = quarter_window(year, drill.quarter)
    if not starts <= run.at < ends:
        return (
            f"it ran in {quarter_of(run.at)}, and a drill counts only in its own quarter "
            f"({starts:%Y-%m-%d} .. {ends:%Y-%m-%d})"
        )
    return None


def calendar(drills: Iterable[Drill], runs: Iterable[Run], year: int, now: datetime) -> list[State]:
    """Each drill's state in ``year`` at ``now``: done (a PASS in its quarter), failed (runs in
    its quarter, none passed), due (its quarter is now), upcoming, or overdue (its quarter ended
    with no PASS). Only resolve-mode runs count as drills; diagnose runs are pre-checks."""
    runs = sorted(runs, key=lambda r: r.at)
    out = []
    for drill in sorted(drills, key=lambda d: d.quarter):
        starts, ends = quarter_window(year, drill.quarter)
        mine = [r for r in runs if r.runbook == drill.runbook and r.mode == "resolve" and r.verdict]
        inside = [r for r in mine if not_counted(drill, r, year) is None]
        passed = any(r.verdict == "PASS" for r in inside)
        if passed:
            status = "done"
        elif now >= ends:
            status = "overdue"
        elif inside:
            status = "failed"
        elif now >= starts:
            status = "due"
        else:
            status = "upcoming"
        out.append(State(drill, year, starts, ends, status, mine[-1] if mine else None, inside[-1] if inside else None))
    return out


def next_due(states: list[State], now: datetime) -> State | None:
    """The first drill still to run: overdue first, then due or failed now, then upcoming."""
    rank = {"overdue": 0, "due": 1, "failed": 1, "upcoming": 2}
    todo = [s for s in states if s.status in rank]
    return min(todo, key=lambda s: (rank[s.status], s.ends)) if todo else None
