"""One way to present a finding, an action or a table: as HTML (notebook outputs, the record
page) and as one line of text (notebook text, the CLI, Slack and PagerDuty).

Every dynamic value is escaped here; alert labels and finding texts are untrusted. The HTML
uses only tags and classes the record sanitiser keeps.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from runbook_lib.core.contract import VERDICT_LABEL

RECOMMENDED = {True: "yes", False: "no", None: "not assessed"}
# Control characters (C0 but tab and newline, DEL, C1), the bidirectional formatting marks that
# can reverse how text reads (U+202E), and characters that hide text (zero-width, soft hyphen,
# line/paragraph separators, byte-order mark, tag characters): never shown raw to a person.
INVISIBLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\U000e0000-\U000e007f]"
)


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group(0))
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def visible(text: str) -> str:
    """``text`` with control and bidi characters shown as escapes (``\\x1b``, ``\\u202e``), so a
    label can neither drive a terminal, make grep call a page binary, nor reverse what it says.
    Records keep the raw value in record.json; every rendered surface goes through here."""
    return INVISIBLE.sub(_escape_one, text)


def esc(value: Any) -> str:
    """HTML-escape any value (None is empty), quotes included; control and bidi characters visible."""
    return html.escape(visible("" if value is None else str(value)), quote=True)


def slack_text(value: Any) -> str:
    """A value for Slack mrkdwn: visible escapes, then Slack's own escaping of ``&``, ``<`` and ``>``
    (so ``<!channel>`` or ``<https://evil|label>`` in a label is shown, never obeyed)."""
    text = visible("" if value is None else str(value))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def verdict_label(verdict: str) -> str:
    return VERDICT_LABEL.get(verdict, str(verdict).upper())


def finding_text(f: Mapping[str, Any], *, step: bool = True, limit: int | None = None, inline: bool = False) -> str:
    """``WARNING     [Step 1] check: summary``: the verdict in a column, for terminals and
    notebooks; ``inline=True`` gives ``WARNING: check: summary`` for chat and paging messages,
    whose fonts do not line columns up, on one line (a newline from an alert label cannot start a
    line of its own). The summary is cut to ``limit`` characters."""
    summary = str(f.get("summary", ""))
    check = str(f.get("check", ""))
    if inline:
        summary, check = one_line(summary), one_line(check)
    if limit is not None and len(summary) > limit:
        summary = summary[: limit - 3] + "..."
    where = f"[{f['step']}] " if step and f.get("step") else ""
    label = verdict_label(f.get("verdict", ""))
    if inline:
        return f"{label}: {where}{check}: {summary}"
    return f"{label:<11} {where}{check}: {summary}"


def one_line(text: Any) -> str:
    """``text`` with every run of white space (newlines included) as one space."""
    return " ".join(str("" if text is None else text).split())


def finding_html(f: Mapping[str, Any]) -> str:
    verdict = f.get("verdict", "info")
    step = f'<span class="rb-step">{esc(f["step"])}</span> ' if f.get("step") else ""
    return (
        f'<div class="rb-finding rb-{esc(verdict)}"><span class="rb-verdict">{esc(verdict_label(verdict))}</span> '
        f"{step}<b>{esc(f.get('check'))}</b>: {esc(f.get('summary'))}</div>"
    )


def action_text(a: Mapping[str, Any]) -> str:
    lines = [f"ACTION {a.get('title')}: {str(a.get('status', '')).upper()} - {a.get('reason', '')}"]
    if a.get("command"):
        lines.append(f"  command: {a['command']}")
    return "\n".join(lines)


def action_html(a: Mapping[str, Any]) -> str:
    rows = [
        ("status", a.get("status")),
        ("target", a.get("target", "")),
        ("why", a.get("reason", "")),
        ("recommended", RECOMMENDED.get(a.get("recommended"), "not assessed")),
    ]
    if a.get("operator"):
        rows.append(("operator", a["operator"]))
    if a.get("audit_ids"):
        rows.append(("audit_logs ids", ", ".join(str(i) for i in a["audit_ids"])))
    body = "".join(f"<tr><td><b>{esc(k)}</b></td><td>{esc(v)}</td></tr>" for k, v in rows if v not in ("", None))
    command = f"<pre>{esc(a['command'])}</pre>" if a.get("command") else ""
    plan = ""
    if a.get("plan") is not None:
        plan = f"<details><summary>exact change</summary><pre>{esc(json.dumps(a['plan'], indent=2, default=str))}</pre></details>"
    return (
        f'<div class="rb-action rb-action-{esc(a.get("status"))}"><b>Action: {esc(a.get("title"))}</b>'
        f'<table class="rb-kv">{body}</table>{command}{plan}</div>'
    )


def note_html(text: str, label: str = "") -> str:
    prefix = f"<b>{esc(label)}</b> " if label else ""
    return f'<div class="rb-note">{prefix}{esc(text)}</div>'


def kv_html(rows: Sequence[tuple[str, Any]]) -> str:
    """A two-column key/value table; rows with an empty value are left out."""
    body = "".join(f"<tr><td><b>{esc(k)}</b></td><td>{esc(v)}</td></tr>" for k, v in rows if v not in (None, ""))
    return f'<table class="rb-kv">{body}</table>'


def table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None, note: str = "") -> str:
    """A plain HTML table using only tags the record sanitiser keeps."""
    head = "".join(f"<td><b>{esc(c)}</b></td>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    caption = f"<b>{esc(title)}</b>" if title else ""
    foot = note_html(note) if note else ""
    return f'<div class="rb-tablewrap">{caption}<table class="rb-table"><tr class="rb-head">{head}</tr>{body}</table>{foot}</div>'


def cell(value: Any) -> str:
    """One table cell's text: floats to 6 significant digits, timestamps in UTC, NaN empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        try:
            return iso(value)
        except (ValueError, AttributeError):
            return str(value)
    return str(value)


def duration(seconds: float | None) -> str:
    """5400 -> '1h30m', 10832 -> '3h00m', 42 -> '42s', 0.31 -> '0.3s': the largest unit and,
    unless nothing is left, the next one zero-padded (never '3h32s', which reads as 3 h 32 min)."""
    if seconds is None or math.isnan(seconds) or seconds < 0:
        return "n/a"
    if math.isinf(seconds):
        return "never"
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for i, (unit, size) in enumerate(units[:-1]):
        if whole >= size:
            first, rest = divmod(whole, size)
            next_unit, next_size = units[i + 1]
            return f"{first}{unit}" if rest == 0 else f"{first}{unit}{rest // next_size:02d}{next_unit}"
    return f"{whole}s"


def percent(value: float | None, digits: int = 2) -> str:
    """0.0123 -> '1.23%'; None -> 'n/a'."""
    return "n/a" if value is None else f"{value:.{digits}%}"


def times(value: float | None) -> str:
    """A burn rate: 14.4 -> '14.4x'; None -> 'n/a'."""
    return "n/a" if value is None else f"{value:.1f}x"


def when(value: Any) -> datetime | None:
    """A timestamp from a datetime or ISO text (any offset, 'Z'), in UTC; None if it is not one."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def iso(value: Any) -> str:
    """The one timestamp style: ISO 8601 UTC to the second, 2026-11-27T14:53:29Z."""
    moment = when(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else str(value or "")


def ago(value: Any, now: Any) -> str:
    """'24m ago' (or 'in 5m'), relative to ``now``."""
    then, ref = when(value), when(now)
    if then is None or ref is None:
        return ""
    delta = (ref - then).total_seconds()
    return f"{duration(abs(delta))} ago" if delta >= 0 else f"in {duration(-delta)}"


def more(shown: int, total: int) -> str:
    """'+N more' when a list was cut, else ''."""
    return f"+{total - shown} more" if total > shown else ""
