"""What a record says first: the diagnosis, not the run.

From the findings and actions the notebook recorded: the worst verdict among the checks that
ran, the symptom (what is broken), the likely cause, the recommended option, and whether the
diagnosis is *incomplete*: no check could be made, or every essential check went unchecked.
An incomplete record is never shown as a green success; ``runbook run`` exits 3 for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from runbook_lib.core.contract import worst_first
from runbook_lib.core.shapes import Diagnosis

MEASURED = ("critical", "warning", "info", "ok")  # anything but "unchecked": a check ran


def diagnose(findings: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]]) -> Diagnosis:
    checked = [f for f in findings if f.get("verdict") != "unchecked"]
    unchecked = [f for f in findings if f.get("verdict") == "unchecked"]
    essential = [f for f in findings if f.get("essential")]
    incomplete = not any(f.get("verdict") in MEASURED for f in findings) or (
        bool(essential) and all(f.get("verdict") == "unchecked" for f in essential)
    )
    ranked = worst_first(checked)
    verdict = "incomplete" if incomplete else (ranked[0]["verdict"] if ranked else "ok")
    bad = [f for f in ranked if f.get("verdict") in ("critical", "warning")]
    symptom = next((f for f in bad if f.get("role") == "symptom"), bad[0] if bad else None)
    if symptom is None:  # nothing wrong: a finding that says what is fine (a drill's PASS) leads
        symptom = next((f for f in ranked if f.get("role") == "symptom"), None)
    cause = next((f for f in bad if f.get("role") == "cause" and f is not symptom), None)
    recommended = next((a for a in actions if a.get("recommended")), None)
    return {
        "verdict": verdict,
        "incomplete": incomplete,
        "symptom": _line(symptom),
        "cause": _line(cause),
        "recommended": _option(recommended),
        "checked": len(checked),
        "unchecked": len(unchecked),
        "headline": headline(verdict, symptom, cause, recommended, unchecked),
    }


def headline(
    verdict: str,
    symptom: Mapping[str, Any] | None,
    cause: Mapping[str, Any] | None,
    recommended: Mapping[str, Any] | None,
    unchecked: Sequence[Mapping[str, Any]],
) -> str:
    """One line on-call reads first, e.g. "CRITICAL — /x returns 100% of all 5xx ...; likely
    cause: revision 7 ...; recommended: Option 1 — Rollback"."""
    if verdict == "incomplete":
        what = "; ".join(str(f.get("summary", "")) for f in unchecked[:2])
        return f"INCOMPLETE — the diagnosis could not be made: {what or 'no check ran'}"
    parts = [f"{verdict.upper()} — {_clause(symptom['summary']) if symptom else 'no problem found'}"]
    if cause:
        parts.append(f"likely cause: {_clause(cause['summary'])}")
    if recommended:
        parts.append(f"recommended: {_option(recommended)}")
    return "; ".join(parts)


def _clause(text: Any) -> str:
    return str(text).strip().rstrip(".")


def _line(f: Mapping[str, Any] | None) -> str | None:
    return f"{f.get('check')}: {f.get('summary')}" if f else None


def _option(a: Mapping[str, Any] | None) -> str | None:
    if not a:
        return None
    step = str(a.get("step") or "")
    title = a.get("step_title") or a.get("title")
    return f"{step} — {title}" if step.startswith("Option") else str(title)


def of(record: Mapping[str, Any]) -> Diagnosis:
    """The record's diagnosis (older records, archived before it was stored, get it computed)."""
    stored = record.get("diagnosis")
    return cast(Diagnosis, dict(stored)) if stored else diagnose(record.get("findings", []), record.get("actions", []))
