"""Incident response from SRE_PACKAGE.md: the SEV level of an alert and the deadlines that run
from its ``startsAt`` (and, for the reports, from its resolution).

The SEV level comes from the catalog by rule: a warning is SEV-3; a critical alert pages and is
SEV-1 when the catalog's ``severity_levels`` lists it there (a total outage or a risk to data),
else SEV-2. An alert outside the catalog goes by its own ``severity`` label the same way.

Deadlines are derived, never stored as later changes: a record carries its SEV level and its
deadlines from the moment it was written (``record.json`` → ``incident``), and whether one has
passed is worked out when the record is read, so nothing here can break ``runbook verify``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from runbook_lib.core.present import duration, iso, when
from runbook_lib.sre import lifecycle

SEV_LEVELS = ("SEV-1", "SEV-2", "SEV-3")
MEANING = {
    "SEV-1": "critical: total service outage or data-loss risk; page immediately, incident commander within 15 min",
    "SEV-2": "major: partial outage or degraded performance; on-call responds, escalate if not resolved in 1 hour",
    "SEV-3": "minor: a workaround exists; Slack notification, a ticket, fix in the next sprint",
}


@dataclass(frozen=True)
class Rule:
    name: str
    after: timedelta
    since: str  # "firing" (startsAt) or "resolved"
    levels: tuple[str, ...]


# The package's incident timeline.
RULES = (
    Rule("acknowledge", timedelta(minutes=10), "firing", ("SEV-1", "SEV-2")),
    Rule("incident commander", timedelta(minutes=15), "firing", ("SEV-1",)),
    Rule("status update", timedelta(minutes=30), "firing", ("SEV-1", "SEV-2")),
    Rule("resolve or escalate", timedelta(minutes=60), "firing", ("SEV-1", "SEV-2")),
    Rule("preliminary report", timedelta(hours=1), "resolved", ("SEV-1", "SEV-2")),
    Rule("full report", timedelta(hours=24), "resolved", ("SEV-1", "SEV-2")),
    Rule("postmortem", timedelta(weeks=1), "resolved", ("SEV-1", "SEV-2")),
)


def sev_level(alertname: str | None, severity: str | None, sev1: set[str]) -> str:
    """SEV-1 for a critical alert listed as such, SEV-2 for other critical ones, SEV-3 otherwise."""
    if (severity or "").lower() != "critical":
        return "SEV-3"
    return "SEV-1" if alertname in sev1 else "SEV-2"


def deadlines(sev: str, starts_at: Any, resolved_at: Any = None) -> list[dict[str, Any]]:
    """The deadlines of an incident of level ``sev``: name, due (ISO), what it runs from. The
    report deadlines exist only once the incident is resolved."""
    fired, resolved = when(starts_at), when(resolved_at)
    out = []
    for rule in RULES:
        if sev not in rule.levels:
            continue
        base = fired if rule.since == "firing" else resolved
        if base is None:
            continue
        out.append(
            {"name": rule.name, "due": iso(base + rule.after), "after": rule.after.total_seconds(), "since": rule.since}
        )
    return out


def for_alert(
    alert: Mapping[str, Any] | None,
    sev1: set[str],
    resolved_at: Any = None,
    members: list[Mapping[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """What a record stores about its incident: the SEV level (the worst of the alert and the
    ``members`` one run stands for, each {alertname, severity}), its meaning and the deadlines."""
    if not alert:
        return None
    labels = alert.get("labels") or {}
    levels = [sev_level(labels.get("alertname"), labels.get("severity"), sev1)]
    levels += [sev_level(m.get("alertname"), m.get("severity"), sev1) for m in members or []]
    sev = min(levels)  # "SEV-1" < "SEV-2" < "SEV-3"
    return {
        "sev": sev,
        "meaning": MEANING[sev],
        "deadlines": deadlines(sev, alert.get("startsAt"), resolved_at),
    }


def status(
    incident: Mapping[str, Any] | None,
    now: Any,
    resolved_at: Any = None,
    reported: bool = False,
    done: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Each deadline with ``met``, ``missed``, ``passed`` and ``left_s`` at ``now``. With
    ``resolved_at`` the report deadlines are added and the response deadlines stop at the
    resolution (met if it came first); ``reported``: a report is attached, so the preliminary and
    full report deadlines are met; ``done``: deadline name -> when what it asks was done (an
    acknowledgement at 03:07 against 03:10: met; at 03:12: missed, ``done_at`` says when)."""
    if not incident:
        return []
    moment = when(now)
    fired = next((d for d in incident.get("deadlines", []) if d["since"] == "firing"), None)
    starts = when(fired["due"]) - timedelta(seconds=fired["after"]) if fired else None
    rows = list(incident.get("deadlines", []))
    if resolved_at is not None and starts is not None and not any(d["since"] == "resolved" for d in rows):
        rows = deadlines(incident["sev"], starts, resolved_at)
    resolved = when(resolved_at)
    out = []
    for d in rows:
        due = when(d["due"])
        done_at = when((done or {}).get(d["name"]))
        if d["since"] == "firing" and resolved is not None and (done_at is None or resolved < done_at):
            done_at = resolved  # resolving answers every response deadline
        met = (done_at is not None and due is not None and done_at <= due) or (
            reported and d["name"] in ("preliminary report", "full report")
        )
        missed = (
            not met
            and due is not None
            and ((done_at is not None and done_at > due) or (moment is not None and moment > due))
        )
        left = (due - moment).total_seconds() if due and moment else None
        row = {**d, "passed": missed, "missed": missed, "met": met, "left_s": left}
        if done_at is not None:
            row["done_at"] = iso(done_at)
        out.append(row)
    return out


def record_status(
    incident: Mapping[str, Any] | None, now: Any, events: list[Mapping[str, Any]], fingerprint: str | None
) -> list[dict[str, Any]]:
    """:func:`status` from a record's chained events: its resolution (by the alert or a person,
    undone by a reopening), its report, and what people did (acknowledged, an IC assigned, ...)."""
    summary = lifecycle.summarize(events, fingerprint)
    resolved = (summary.get("resolved") or {}).get("at")
    return status(incident, now, resolved, reported(events), lifecycle.fulfilled(summary))


def next_deadline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first deadline neither met nor passed."""
    ahead = [r for r in rows if not r["passed"] and not r["met"]]
    return min(ahead, key=lambda r: r["due"]) if ahead else None


def describe(row: Mapping[str, Any] | None) -> str:
    """'status update due 2026-11-27T15:30:00Z (in 12m)' or 'acknowledge overdue by 5m'."""
    if not row:
        return "no deadline ahead"
    left = row.get("left_s")
    if left is None:
        return f"{row['name']} due {row['due']}"
    if row.get("done_at") and row.get("met"):
        return f"{row['name']} met at {row['done_at']} (due {row['due']})"
    if row.get("done_at") and row.get("missed"):
        return f"{row['name']} missed: done at {row['done_at']}, due {row['due']}"
    if row.get("passed"):
        return f"{row['name']} overdue by {duration(-left)} (due {row['due']})"
    return f"{row['name']} due {row['due']} (in {duration(left)})"


def resolved_at(events: list[Mapping[str, Any]], fingerprint: str | None = None) -> str | None:
    """When the incident was resolved, from its record's chained events: its own alert resolved
    (Alertmanager's endsAt) or a person resolved it, and nobody reopened it since. With
    ``fingerprint`` (the record's alert's), a resolution of another alert linked to the same
    record (a group member) does not count: the incident is still firing."""
    return (lifecycle.summarize(events or [], fingerprint).get("resolved") or {}).get("at")


def record_resolved_at(record: Mapping[str, Any]) -> str | None:
    """When a loaded record's own alert resolved (None while it fires)."""
    return resolved_at(record.get("events") or [], (record.get("alert") or {}).get("fingerprint"))


def reported(events: list[Mapping[str, Any]]) -> bool:
    """Whether an incident report (`runbook report`) is attached to the record."""
    return any(e.get("event") == "report" for e in events or [])
