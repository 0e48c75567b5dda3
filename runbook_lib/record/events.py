"""Later facts about a record (the alert resolved, ...), chained in the index as events, and how
they are shown above the archived page. Light on imports: the receiver serves pages with it."""

from __future__ import annotations

from typing import Any

from ..present import esc

# Where the summary section of record.html starts; events are shown just above it.
SUMMARY_ANCHOR = '<section class="rb-summary" id="summary">'


def events_banner(events: list[dict[str, Any]]) -> str:
    """Later facts (resolved) chained in the index, shown above the archived page; the record's
    files themselves never change."""
    lines = []
    for e in events:
        d = e.get("data") or {}
        if e.get("event") == "resolved" and d.get("duration_s") is None:
            lines.append(
                f"Resolved at {d.get('ends_at')}; duration unknown ({d.get('clock_skew') or 'no start time'}: "
                f"clock skew at the sender) (notification received {d.get('received_at')})."
            )
        elif e.get("event") == "resolved":
            lines.append(
                f"Resolved at {d.get('ends_at')} after {max(0.0, float(d.get('duration_s') or 0)):.0f} s "
                f"(notification received {d.get('received_at')})."
            )
        else:
            lines.append(f"{e.get('event')} at {e.get('at')}")
    if not lines:
        return ""
    body = "".join(f"<div>{esc(line)}</div>" for line in lines)
    return f'<div class="rb-finding rb-ok"><b>Later events (chained in the archive index)</b>{body}</div>'


def with_events(page: str, events: list[dict[str, Any]]) -> str:
    """The archived page with the events banner inserted above its summary."""
    banner = events_banner(events)
    return page.replace(SUMMARY_ANCHOR, banner + SUMMARY_ANCHOR, 1) if banner else page
