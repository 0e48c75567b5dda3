"""Later facts about a record (the alert resolved, ...), chained in the index as events, and how
they are shown above the archived page. Light on imports: the receiver serves pages with it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runbook_lib.core.present import duration, esc, iso
from runbook_lib.sre import incident, lifecycle

# Where the summary section of record.html starts; events are shown just above it.
SUMMARY_ANCHOR = '<section class="rb-summary" id="summary">'


def event_text(e: dict[str, Any]) -> str:
    """One line for a chained event, in the one timestamp style, durations for people."""
    d = e.get("data") or {}
    if (human := lifecycle.event_line(e)) is not None:
        return human
    if e.get("event") in ("resolved", "resolved-without-record"):
        if d.get("duration_s") is None:
            took = f"duration unknown ({d.get('clock_skew') or 'no start time'}: clock skew at the sender)"
        else:
            took = f"after {duration(d.get('duration_s'))}"
        return f"Resolved at {iso(d.get('ends_at'))}, {took} (notification received {iso(d.get('received_at'))})."
    if e.get("event") == "linked":
        return f"{d.get('alertname')} also fired in this group ({iso(d.get('starts_at'))}); it was not run again."
    if e.get("event") == "related":
        return f"Another record of this Alertmanager group: {d.get('record')} ({d.get('alertname')}, runbook {d.get('runbook')})."
    if e.get("event") == "report":
        return f"Incident report written: {d.get('path')} ({d.get('format')}, sha256 {str(d.get('sha256'))[:12]}...)."
    return f"{e.get('event')} at {iso(e.get('at'))}"


def incident_line(record: dict[str, Any], now: Any) -> str | None:
    """Where the record's incident stands, with its deadlines as people met or missed them:
    "Incident acknowledged by Avery at ...; acknowledge met at ... (due ...); next: ..."."""
    found = record.get("incident")
    if not found:
        return None
    events = record.get("events") or []
    fingerprint = (record.get("alert") or {}).get("fingerprint")
    story = lifecycle.summarize(events, fingerprint)
    rows = incident.record_status(found, now, events, fingerprint)
    parts = [f"Incident {lifecycle.headline(story)}"]
    parts += [incident.describe(r) for r in rows if r.get("done_at") and r["since"] == "firing"]
    if story["state"] != "resolved" or any(r["since"] == "resolved" for r in rows):
        parts.append("next: " + incident.describe(incident.next_deadline(rows)))
    parts += [f"{role}: {text}" for role, text in lifecycle.roles_text(story).items()]
    return "; ".join(parts) + "."


def events_banner(events: list[dict[str, Any]], state: str | None = None) -> str:
    """Later facts (resolved, acknowledged, linked alerts) chained in the index, shown above the
    archived page, led by where the incident stands (``state``); the record's files never change."""
    if not events and not state:
        return ""
    lead = f'<p class="rb-incident-state"><b>{esc(state)}</b></p>' if state else ""
    body = "".join(f"<li>{esc(event_text(e))}</li>" for e in events)
    return (
        f'<div class="rb-finding rb-ok">{lead}<b>Later events (chained in the archive index)</b><ul>{body}</ul></div>'
    )


def with_events(page: str, events: list[dict[str, Any]], record: dict[str, Any] | None = None, now: Any = None) -> str:
    """The archived page with the events banner inserted above its summary; with the loaded
    ``record``, led by where its incident stands at ``now``."""
    state = incident_line(record, now or datetime.now(UTC)) if record is not None and events else None
    banner = events_banner(events, state)
    return page.replace(SUMMARY_ANCHOR, banner + SUMMARY_ANCHOR, 1) if banner else page
