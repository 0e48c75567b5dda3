"""What a record says first: the diagnosis, not the run.

From the findings and actions the notebook recorded: the worst verdict among the checks that
ran, the symptom (what is broken), the likely cause and its code (and every measured cause,
ranked), the one recommended action with its exact command, and whether the diagnosis is
*incomplete*.

The rule. A record is never louder or quieter than its evidence:

- It is incomplete only when nothing measured points anywhere: no check found a problem, and
  either no check ran or every essential check went unchecked. A finding about the run rather
  than the system (``role="context"``, e.g. "no dedicated runbook for this alert") is shown but
  is not evidence either way. An incomplete record is never
  shown as a green success; ``runbook run`` exits 3 for it.
- A measured critical (or warning) finding always leads, even when other checks could not be
  made; those are listed beside it as ``partial``.
- A finding measured on too little data (``provisional``) is never louder than a warning (the
  kernel caps it), and the headline says it is provisional.
- A record recommends one thing: the option the runbook recommended, else "escalate" when
  something is wrong and no option addresses it, else "none".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

from runbook_lib.core.contract import approval_params, worst_first
from runbook_lib.core.shapes import Diagnosis, RecommendedAction

MEASURED = ("critical", "warning", "info", "ok")  # anything but "unchecked": a check ran
BAD = ("critical", "warning")


def diagnose(
    findings: Sequence[Mapping[str, Any]],
    actions: Sequence[Mapping[str, Any]],
    *,
    runbook: str | None = None,
    record_id: str | None = None,
    environment: str | None = None,
) -> Diagnosis:
    """The diagnosis of a run's findings and actions; with the record's runbook, id and
    environment, the recommended option's command is the guarded one that performs it."""
    checked = [f for f in findings if f.get("verdict") != "unchecked"]
    unchecked = [f for f in findings if f.get("verdict") == "unchecked"]
    essential = [f for f in findings if f.get("essential")]
    ranked = worst_first(checked)
    evidence = [f for f in ranked if f.get("role") != "context"]  # context: about the run, not the system
    bad = [f for f in evidence if f.get("verdict") in BAD]
    incomplete = not bad and (
        not evidence or (bool(essential) and all(f.get("verdict") == "unchecked" for f in essential))
    )
    verdict = "incomplete" if incomplete else (ranked[0]["verdict"] if ranked else "ok")
    symptom = next((f for f in bad if f.get("role") == "symptom"), bad[0] if bad else None)
    if symptom is None:  # nothing wrong: a finding that says what is fine (a drill's PASS) leads
        symptom = next((f for f in ranked if f.get("role") == "symptom"), None)
    cause = next((f for f in bad if f.get("role") == "cause" and f is not symptom), None)
    codes = [str(f["cause"]) for f in bad if f.get("cause")]
    if cause is not None and cause.get("cause"):
        codes.insert(0, str(cause["cause"]))
    causes = list(dict.fromkeys(codes))
    chosen = next((a for a in actions if a.get("recommended")), None)
    action = recommended_action(chosen, verdict, symptom)
    if chosen is not None and runbook and record_id and action["name"] not in ("none", "escalate"):
        action = guarded(action, runbook, record_id, environment)
    partial = (
        []
        if incomplete
        else [str(f.get("check")) for f in unchecked if (f.get("details") or {}).get("reason") != "not configured"]
    )
    # provisional when everything that sets the verdict is: a fully measured finding at the same
    # level is no guess (a 1h burn at 50x is critical however young the 28-day window's data)
    top = [f for f in ranked if f.get("verdict") == verdict]
    provisional = bool(top) and all(f.get("provisional") for f in top)
    return {
        "verdict": verdict,
        "incomplete": incomplete,
        "symptom": _line(symptom),
        "cause": _line(cause),
        "cause_code": causes[0] if causes else None,
        "causes": causes,
        "recommended": _option(chosen) if chosen and chosen.get("name") not in ("none", "escalate") else None,
        "recommended_action": action,
        "partial": partial,
        "provisional": provisional,
        "checked": len(checked),
        "unchecked": len(unchecked),
        "headline": headline(verdict, symptom, cause, chosen, unchecked, partial=partial, provisional=provisional),
    }


def recommended_action(
    chosen: Mapping[str, Any] | None, verdict: str, symptom: Mapping[str, Any] | None
) -> RecommendedAction:
    """The one thing to do: the runbook's recommended option (its approval name, the plan's
    parameters, the exact command) or decision; by default "escalate" when something is wrong
    and "none" when nothing is."""
    if chosen is not None:
        params = approval_params(chosen.get("plan") or {})
        return {
            "name": str(chosen.get("name")),
            "title": str(chosen.get("title") or ""),
            "params": params,
            "command": str(chosen.get("command") or ""),
            "reason": str(chosen.get("why") or ""),
        }
    if verdict in BAD or verdict == "incomplete":
        what = "the diagnosis could not be made" if verdict == "incomplete" else "no guarded option addresses it"
        return {
            "name": "escalate",
            "title": "Escalate",
            "params": {},
            "command": "",
            "reason": f"{what}: follow the runbook's Escalation section",
        }
    return {"name": "none", "title": "No action", "params": {}, "command": "", "reason": "nothing needs doing"}


def guarded(action: RecommendedAction, runbook: str, record_id: str, environment: str | None) -> RecommendedAction:
    """The command on-call copies is the guarded one: the runbook again for the same alert, in
    resolve mode, this option approved, with an audit row and the operator's name
    ($RUNBOOK_OPERATOR or --operator), on fresh evidence. What the option runs underneath
    (kubectl, SQL) stays beside it to read: pasting that would skip the audit."""
    env = f" --env {environment}" if environment and environment != "local" else ""
    command = f"runbook run {runbook} --record {record_id}{env} --mode resolve --execute --approve {action['name']}"
    out: RecommendedAction = {**action, "command": command}
    if action.get("command"):
        out["performs"] = action["command"]
    return out


def headline(
    verdict: str,
    symptom: Mapping[str, Any] | None,
    cause: Mapping[str, Any] | None,
    recommended: Mapping[str, Any] | None,
    unchecked: Sequence[Mapping[str, Any]],
    *,
    partial: Sequence[str] = (),
    provisional: bool = False,
) -> str:
    """One line on-call reads first, e.g. "CRITICAL — /x returns 100% of all 5xx ...; likely
    cause: revision 7 ...; recommended: Option 1 — Rollback; partial: Redis could not be checked"."""
    if verdict == "incomplete":
        what = "; ".join(str(f.get("summary", "")) for f in unchecked[:2])
        return f"INCOMPLETE — the diagnosis could not be made: {what or 'no check ran'}"
    label = f"{verdict.upper()} (provisional)" if provisional else verdict.upper()
    what = _sentence(symptom["summary"]) if symptom else "no problem found"
    if symptom and symptom.get("provisional") and not provisional:
        what += " (provisional)"
    parts = [f"{label} — {what}"]
    if cause:
        parts.append(f"likely cause: {_sentence(cause['summary'])}")
    if recommended:
        name = recommended.get("name")
        if name == "escalate":
            parts.append(f"recommended: escalate ({_clause(recommended.get('why', ''))})")
        elif name != "none":
            parts.append(f"recommended: {_option(recommended)}")
    if partial:
        shown = ", ".join(partial[:3]) + (f" and {len(partial) - 3} more" if len(partial) > 3 else "")
        parts.append(f"partial: {shown} could not be checked")
    return "; ".join(parts)


def _sentence(text: Any) -> str:
    """The first sentence of a finding's summary: the headline is one line, the card has the rest."""
    return _clause(re.split(r"(?<=[.!?])\s+(?=[A-Z(])", str(text).strip(), maxsplit=1)[0])


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
