"""The human half of an incident, read from the events chained about its record. Pure: no clock,
no archive; every function takes the events (as :meth:`Archive.load` returns them) and, where it
matters, the instant it answers for.

An incident moves firing -> acknowledged -> mitigating -> resolved and may be reopened. Each move
is an event on the record, hash-chained in the archive index like the alert's own resolution:

=================  ==================================================================
event              data
=================  ==================================================================
acknowledged       by, via
assigned           by, via, role (ic / tl / cl), person
update             by, via, text
escalated          step, to (names), why, via
approval           by, via, action, params, approvals (1 or 2), needed (1 or 2)
executed           by, via, action, record (the resolve run's record id), outcome
resolved           by, via, note (a person) -- or fingerprint, ends_at (the alert)
reopened           by, via, why
=================  ==================================================================

Every human event carries ``at`` in its data (the instant it happened, ISO 8601), which may differ
from the index line's own ``at`` (when it was chained): a PagerDuty webhook says when the
acknowledgement was made. The record's files never change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_lib.core.present import iso, when

ROLES = {"ic": "incident commander", "tl": "technical lead", "cl": "communications lead"}
STATES = ("firing", "acknowledged", "mitigating", "resolved")
HUMAN_EVENTS = ("acknowledged", "assigned", "update", "escalated", "approval", "executed", "resolved", "reopened")

# Actions a second, different person must approve from chat by default (settings
# incident.two_person changes it per action): they end sessions, move the primary, roll back a
# production deployment or replay letters in bulk (dlq_replay: only above a count).
DESTRUCTIVE = {"terminate_idle", "terminate_blocker", "cancel_blocker", "dr_failover", "rollback", "dlq_replay"}


def data_of(event: Mapping[str, Any]) -> Mapping[str, Any]:
    data = event.get("data")
    return data if isinstance(data, Mapping) else {}


def at_of(event: Mapping[str, Any]) -> str | None:
    """When an event happened: its data's ``at`` (or an alert's ``ends_at``), else when it was chained."""
    data = data_of(event)
    for moment in (data.get("at"), data.get("ends_at"), event.get("at")):
        if isinstance(moment, str) and when(moment) is not None:
            return moment
    return None


def _is_resolution(event: Mapping[str, Any], fingerprint: str | None) -> bool:
    if event.get("event") not in ("resolved", "resolved-without-record"):
        return False
    seen = data_of(event).get("fingerprint")
    return not (fingerprint and seen and seen != fingerprint and not data_of(event).get("by"))


def summarize(events: Iterable[Mapping[str, Any]], fingerprint: str | None = None) -> dict[str, Any]:
    """Where the incident stands after ``events`` (oldest first): its state, who acknowledged it
    and when, the roles, status updates, escalations, approvals, executions, its resolution (by a
    person or by the alert) and reopenings. ``fingerprint``: the record's alert's; a group member
    resolving does not resolve the incident."""
    out: dict[str, Any] = {
        "state": "firing",
        "acknowledged": None,
        "first_ack": None,
        "roles": {},
        "updates": [],
        "escalations": [],
        "approvals": [],
        "executed": [],
        "resolved": None,
        "reopened": [],
    }
    for e in events:
        kind, d, at = e.get("event"), data_of(e), at_of(e)
        if kind == "acknowledged":
            out["first_ack"] = out["first_ack"] or {"by": d.get("by"), "at": at, "via": d.get("via")}
            if out["acknowledged"] is None:
                out["acknowledged"] = {"by": d.get("by"), "at": at, "via": d.get("via")}
            if out["state"] == "firing":
                out["state"] = "acknowledged"
        elif kind == "assigned" and d.get("role") in ROLES:
            out["roles"][d["role"]] = {"person": d.get("person"), "by": d.get("by"), "at": at}
        elif kind == "update":
            out["updates"].append({"by": d.get("by"), "at": at, "text": d.get("text")})
        elif kind == "escalated":
            out["escalations"].append(
                {"step": d.get("step"), "to": d.get("to") or [], "why": d.get("why"), "at": at, "via": d.get("via")}
            )
        elif kind == "approval":
            out["approvals"].append({**d, "at": at, "hash": e.get("hash")})
        elif kind == "executed":
            out["executed"].append({**d, "at": at})
            if d.get("outcome") == "done" and out["state"] in ("firing", "acknowledged"):
                out["state"] = "mitigating"  # a fix that was refused or failed mitigates nothing
        elif _is_resolution(e, fingerprint):
            if out["resolved"] is None:
                out["resolved"] = {"by": d.get("by"), "note": d.get("note"), "at": at, "via": d.get("via")}
            out["state"] = "resolved"
        elif kind == "reopened":
            out["reopened"].append({"by": d.get("by"), "at": at, "why": d.get("why")})
            out["resolved"] = None
            out["acknowledged"] = None
            out["state"] = "firing"
    return out


def fulfilled(summary: Mapping[str, Any]) -> dict[str, str]:
    """Deadline name -> when what it asks for was done, from a :func:`summarize`: acknowledged,
    an incident commander assigned, a status update posted, resolved or escalated."""
    done: dict[str, str] = {}
    if ack := summary.get("first_ack"):
        done["acknowledge"] = ack["at"]
    if ic := summary.get("roles", {}).get("ic"):
        done["incident commander"] = ic["at"]
    if summary.get("updates"):
        done["status update"] = summary["updates"][0]["at"]
    # escalated by a person or by PagerDuty's policy; the receiver's own timer escalating an
    # incident nobody touched answers nothing
    moments = [x["at"] for x in summary.get("escalations", []) if x.get("at") and x.get("via") != "receiver"]
    if summary.get("resolved") and summary["resolved"].get("at"):
        moments.append(summary["resolved"]["at"])
    if moments:
        done["resolve or escalate"] = min(moments, key=lambda m: when(m) or datetime.max.replace(tzinfo=UTC))
    return done


def refusal(summary: Mapping[str, Any], kind: str, by: str, role: str | None = None) -> str | None:
    """Why ``kind`` by ``by`` cannot be chained now (None: it can): nothing happens to a resolved
    incident but a reopening; an incident is acknowledged once; only a resolved one is reopened."""
    state = summary.get("state")
    if kind == "reopened":
        return None if state == "resolved" else f"the incident is {state}, not resolved: there is nothing to reopen"
    if state == "resolved":
        r = summary.get("resolved") or {}
        who = f"by {r['by']}" if r.get("by") else "by its alert"
        return f"the incident was resolved {who} at {iso(r.get('at'))}: reopen it first (runbook reopen)"
    if kind == "acknowledged" and summary.get("acknowledged"):
        a = summary["acknowledged"]
        return f"already acknowledged by {a['by']} at {iso(a['at'])}"
    if kind == "assigned" and role not in ROLES:
        return f"role must be one of {', '.join(ROLES)}"
    return None


def needs_two(
    action: str, params: Mapping[str, Any], environment: str, overrides: Mapping[str, bool], over: int
) -> bool:
    """Whether approving ``action`` from chat takes two different people: the setting for that
    action if there is one, else destructive by default (a rollback only in production, a DLQ
    replay only of more than ``over`` letters)."""
    if action in overrides:
        return bool(overrides[action])
    if action not in DESTRUCTIVE:
        return False
    if action == "rollback":
        return environment.startswith("prod")
    if action == "dlq_replay":
        count = params.get("count") or params.get("letters") or params.get("limit")
        return not isinstance(count, int) or count > over
    return True


def pending_approval(summary: Mapping[str, Any], action: str, now: Any, window_s: float) -> Mapping[str, Any] | None:
    """The first approval of ``action`` still waiting for its second (within ``window_s`` of it,
    and not yet followed by a run), or None."""
    moment = when(now)
    for a in reversed(summary.get("approvals", [])):
        if a.get("action") != action:
            continue
        if a.get("approvals", 1) >= a.get("needed", 1):
            return None  # the newest approval of it was complete: nothing waits
        started = when(a.get("at"))
        if moment is not None and started is not None and moment - started > timedelta(seconds=window_s):
            return None
        return a
    return None


def awaiting_run(summary: Mapping[str, Any], action: str) -> Mapping[str, Any] | None:
    """The newest complete approval of ``action`` whose run has not been chained yet (queued or
    running): approving again must not run the fix a second time."""
    ran = {x.get("approval") for x in summary.get("executed", [])}
    for a in reversed(summary.get("approvals", [])):
        if a.get("action") != action or a.get("approvals", 1) < a.get("needed", 1):
            continue
        return None if a.get("hash") in ran else a
    return None


def roles_text(summary: Mapping[str, Any]) -> dict[str, str]:
    """Role name -> "Person (assigned by X at T)" for the roles assigned."""
    return {
        ROLES[r]: f"{v['person']} (assigned by {v['by']} at {iso(v['at'])})"
        for r, v in summary.get("roles", {}).items()
    }


def event_line(event: Mapping[str, Any]) -> str | None:
    """One sentence for a human event (None for the others)."""
    kind, d = event.get("event"), data_of(event)
    via = f" via {d['via']}" if d.get("via") and d.get("via") != "cli" else ""
    at = iso(at_of(event))
    if kind == "acknowledged":
        return f"Acknowledged by {d.get('by')} at {at}{via}."
    if kind == "assigned":
        return f"{d.get('person')} is {ROLES.get(str(d.get('role')), d.get('role'))} (assigned by {d.get('by')} at {at}{via})."
    if kind == "update":
        return f"Status update by {d.get('by')} at {at}{via}: {d.get('text')}"
    if kind == "escalated":
        return f"Escalated at {at} to {', '.join(d.get('to') or []) or 'nobody'}: {d.get('why')}"
    if kind == "approval":
        count = f" ({d.get('approvals')} of {d.get('needed')} approvals)" if d.get("needed", 1) > 1 else ""
        return f"{d.get('action')} approved by {d.get('by')} at {at}{via}{count}."
    if kind == "executed":
        return f"{d.get('action')} run by {d.get('by')} at {at}: {d.get('outcome')} (record {d.get('record')})."
    if kind == "resolved" and d.get("by"):
        note = f": {d.get('note')}" if d.get("note") else ""
        return f"Resolved by {d.get('by')} at {at}{via}{note}"
    if kind == "continued":
        return f"Continued interactively by {d.get('by')} at {at} -> record {d.get('record')} ({d.get('summary')})."
    if kind == "reopened":
        why = f": {d.get('why')}" if d.get("why") else ""
        return f"Reopened by {d.get('by')} at {at}{via}{why}"
    return None


def headline(summary: Mapping[str, Any]) -> str:
    """'acknowledged by Avery at 2026-...' / 'resolved by ...' / 'firing, not acknowledged'."""
    state = summary.get("state")
    if state == "resolved":
        r = summary.get("resolved") or {}
        return f"resolved by {r.get('by') or 'its alert'} at {iso(r.get('at'))}"
    if state == "mitigating":
        x = summary["executed"][-1]
        return f"mitigating: {x.get('action')} run by {x.get('by')} at {iso(x.get('at'))}"
    if state == "acknowledged":
        a = summary["acknowledged"]
        return f"acknowledged by {a['by']} at {iso(a['at'])}"
    return "firing, not acknowledged" + (" (reopened)" if summary.get("reopened") else "")
