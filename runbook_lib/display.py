"""Output bundles that cross from the kernel to the host inside the executed notebook.

A finding or an action is displayed as one output carrying its JSON under its own MIME type
(read back by the engine for record.json) plus HTML and plain text for people. Every dynamic
value in the HTML is escaped here; nbconvert sanitises again when the record is rendered.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

FINDING_MIME = "application/vnd.runbook.finding+json"
ACTION_MIME = "application/vnd.runbook.action+json"
RUN_MIME = "application/vnd.runbook.run+json"

VERDICTS = ("critical", "warning", "unchecked", "info", "ok")
VERDICT_LABEL = {
    "critical": "CRITICAL",
    "warning": "WARNING",
    "unchecked": "NOT CHECKED",
    "info": "INFO",
    "ok": "OK",
}


def worst_first(findings: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Findings ordered critical, warning, unchecked, info, ok (unknown verdicts last)."""
    rank = {v: i for i, v in enumerate(VERDICTS)}
    return sorted(findings, key=lambda f: rank.get(f.get("verdict", ""), len(rank)))


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def jsonable(value: Any) -> Any:
    """Make details JSON-safe: timestamps as ISO text, NaN as None, sets as lists."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def finding_html(f: Mapping[str, Any]) -> str:
    verdict = f["verdict"]
    step = f'<span class="rb-step">{esc(f["step"])}</span> ' if f.get("step") else ""
    return (
        f'<div class="rb-finding rb-{esc(verdict)}"><span class="rb-verdict">{esc(VERDICT_LABEL[verdict])}</span> '
        f"{step}<b>{esc(f['check'])}</b>: {esc(f['summary'])}</div>"
    )


def finding_text(f: Mapping[str, Any]) -> str:
    step = f"[{f['step']}] " if f.get("step") else ""
    return f"{VERDICT_LABEL[f['verdict']]:<11} {step}{f['check']}: {f['summary']}"


def action_html(a: Mapping[str, Any]) -> str:
    rows = [
        ("status", a["status"]),
        ("target", a.get("target", "")),
        ("why", a.get("reason", "")),
        ("recommended", {True: "yes", False: "no", None: "not assessed"}[a.get("recommended")]),
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
        f'<div class="rb-action rb-action-{esc(a["status"])}"><b>Action: {esc(a["title"])}</b>'
        f'<table class="rb-kv">{body}</table>{command}{plan}</div>'
    )


def action_text(a: Mapping[str, Any]) -> str:
    lines = [f"ACTION {a['title']}: {a['status'].upper()} - {a.get('reason', '')}"]
    if a.get("command"):
        lines.append(f"  command: {a['command']}")
    return "\n".join(lines)


def table_html(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None, note: str = "") -> str:
    """A plain HTML table using only tags the record sanitiser keeps."""
    head = "".join(f"<td><b>{esc(c)}</b></td>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>" for row in rows)
    caption = f"<b>{esc(title)}</b>" if title else ""
    foot = f'<div class="rb-note">{esc(note)}</div>' if note else ""
    return f'<div class="rb-tablewrap">{caption}<table class="rb-table"><tr class="rb-head">{head}</tr>{body}</table>{foot}</div>'


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        try:
            return value.strftime("%Y-%m-%d %H:%M:%S UTC")
        except (ValueError, AttributeError):
            return str(value)
    return str(value)
