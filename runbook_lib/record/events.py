"""Later facts about a record (the alert resolved, ...), chained in the index as events, and how
they are shown above the archived page. Light on imports: the receiver serves pages with it."""

from __future__ import annotations

from typing import Any

from runbook_lib.core.present import duration, esc, iso

# Where the summary section of record.html starts; events are shown just above it.
SUMMARY_ANCHOR = '<section class="rb-summary" id="summary">'


def event_text(e: dict[str, Any]) -> str:
    """One line for a chained event, in the one timestamp style, durations for people."""
    d = e.get("data") or {}
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


def events_banner(events: list[dict[str, Any]]) -> str:
    """Later facts (resolved, linked alerts) chained in the index, shown above the archived page;
    the record's files themselves never change."""
    if not events:
        return ""
    body = "".join(f"<div>{esc(event_text(e))}</div>" for e in events)
    return f'<div class="rb-finding rb-ok"><b>Later events (chained in the archive index)</b>{body}</div>'


def with_events(page: str, events: list[dict[str, Any]]) -> str:
    """The archived page with the events banner inserted above its summary."""
    banner = events_banner(events)
    return page.replace(SUMMARY_ANCHOR, banner + SUMMARY_ANCHOR, 1) if banner else page
