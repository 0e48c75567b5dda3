"""Rendering an executed notebook into record.html: summary first, then the notebook.

The HTML comes from nbconvert's HTMLExporter with ``sanitize_html=True``. nbconvert's own
sanitiser escapes headings, lists and table heads (its allowlist is minimal), which makes a
record unreadable; we install a stricter-in-spirit filter of our own: a fuller list of
harmless tags, no scripts, styles, event handlers or foreign URLs. The page also carries a
Content-Security-Policy that forbids every script and external resource.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from typing import Any

import bleach
import nbformat
from bleach.css_sanitizer import CSSSanitizer
from nbconvert import HTMLExporter
from pygments.formatters import HtmlFormatter

from .display import VERDICT_LABEL, worst_first

TEMPLATES = Path(__file__).parent / "templates"
ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "samp",
    "small",
    "span",
    "strong",
    "sub",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
}
ALLOWED_ATTRS = {
    "*": ["class", "id", "title"],
    "a": ["href"],
    "img": ["src", "alt", "width", "height"],
    "td": ["colspan", "rowspan", "align"],
    "th": ["colspan", "rowspan", "align"],
}


def clean_html(element: Any) -> str:
    text = element.decode() if isinstance(element, bytes) else str(element)
    return bleach.clean(
        text,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRS,
        protocols={"http", "https", "mailto", "data"},
        css_sanitizer=CSSSanitizer(allowed_css_properties=[]),
        strip=True,
        strip_comments=True,
    )


@lru_cache(maxsize=1)
def _exporter() -> HTMLExporter:
    exporter = HTMLExporter(
        template_name="record",
        extra_template_basedirs=[str(TEMPLATES)],
        sanitize_html=True,
        exclude_input_prompt=False,
    )
    exporter.register_filter("clean_html", clean_html)
    return exporter


@lru_cache(maxsize=1)
def _css() -> str:
    return (TEMPLATES / "record" / "record.css").read_text() + HtmlFormatter(style="default").get_style_defs(
        ".highlight"
    )


def render_record_html(nb: nbformat.NotebookNode, record: dict[str, Any]) -> str:
    resources = {
        "runbook_summary": summary_html(record),
        "runbook_css": _css(),
        "metadata": {"name": record["id"]},
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return body


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def summary_html(record: dict[str, Any]) -> str:
    """The first screen on-call reads: what fired, what was found, what was done. Every value
    is escaped here (alert labels are untrusted)."""
    alert = record.get("alert") or {}
    labels = alert.get("labels") or {}
    status = record["status"]
    title = labels.get("alertname") or "(no alert)"
    rows = [
        ("Alert", title),
        ("Severity", labels.get("severity", "")),
        ("Summary", (alert.get("annotations") or {}).get("summary", "")),
        ("Status", status),
        ("Started", record.get("started_at")),
        ("Duration", f"{record.get('duration_s', 0):.1f} s"),
        ("Alert firing since", alert.get("startsAt", "")),
        (
            "Runbook",
            f"{record.get('runbook')} (mode {record.get('mode')}, dry_run {record.get('parameters', {}).get('dry_run')})",
        ),
        ("Environment", record.get("environment")),
        ("Record", record["id"]),
        ("Fingerprint", alert.get("fingerprint", "")),
    ]
    other = {k: v for k, v in labels.items() if k not in ("alertname", "severity")}
    if other:
        rows.append(("Labels", ", ".join(f"{k}={v}" for k, v in sorted(other.items()))))
    kv = "".join(f"<tr><td><b>{_e(k)}</b></td><td>{_e(v)}</td></tr>" for k, v in rows if v not in (None, ""))

    parts = [
        '<section class="rb-summary" id="summary">',
        f'<h1>{_e(title)} <span class="rb-status rb-status-{_e(status)}">{_e(status.upper())}</span></h1>',
        f'<table class="rb-kv">{kv}</table>',
    ]
    for note in record.get("notes") or []:
        parts.append(f'<div class="rb-note"><b>Note:</b> {_e(note)}</div>')
    if record.get("failed_cell"):
        fc = record["failed_cell"]
        parts.append(
            f'<h2>The runbook did not finish</h2><div class="rb-finding rb-critical"><span class="rb-verdict">'
            f"{_e(status.upper())}</span> cell {_e(fc.get('index'))} (execution {_e(fc.get('execution_count'))}): "
            f"<b>{_e(fc.get('ename'))}</b>: {_e(fc.get('evalue'))}</div>"
            '<div class="rb-note">Findings below are those recorded before it stopped.</div>'
        )

    findings = [f for f in record.get("findings", []) if f.get("verdict") != "unchecked"]
    parts.append(f"<h2>Findings ({len(findings)})</h2>")
    if findings:
        for f in worst_first(findings):
            parts.append(_finding_line(f))
    else:
        parts.append('<div class="rb-note">No findings were recorded.</div>')

    unchecked = [f for f in record.get("findings", []) if f.get("verdict") == "unchecked"]
    parts.append(f"<h2>Could not be checked ({len(unchecked)})</h2>")
    if unchecked:
        for f in unchecked:
            parts.append(_finding_line(f))
    else:
        parts.append('<div class="rb-note">Every check ran.</div>')

    actions = record.get("actions", [])
    done = [a for a in actions if a.get("status") in ("done", "failed")]
    parts.append(f"<h2>Actions ({len(done)} taken, {len(actions) - len(done)} proposed or refused)</h2>")
    if actions:
        parts.append(
            '<table class="rb-kv"><tr class="rb-head"><td><b>action</b></td><td><b>status</b></td>'
            "<td><b>recommended</b></td><td><b>why / command</b></td></tr>"
        )
        for a in actions:
            rec = {True: "yes", False: "no"}.get(a.get("recommended"), "-")
            parts.append(
                f"<tr><td>{_e(a.get('title'))}<br><small>{_e(a.get('target'))}</small></td>"
                f"<td><b>{_e(str(a.get('status', '')).upper())}</b></td><td>{_e(rec)}</td>"
                f"<td>{_e(a.get('reason'))}<br><code>{_e(a.get('command'))}</code></td></tr>"
            )
        parts.append("</table>")
    else:
        parts.append('<div class="rb-note">No action was proposed or taken.</div>')
    parts.append("</section>")
    return "\n".join(parts)


def _finding_line(f: dict[str, Any]) -> str:
    verdict = f.get("verdict", "info")
    step = f'<span class="rb-step">{_e(f.get("step"))}</span> ' if f.get("step") else ""
    return (
        f'<div class="rb-finding rb-{_e(verdict)}"><span class="rb-verdict">{_e(VERDICT_LABEL.get(verdict, verdict))}'
        f"</span> {step}<b>{_e(f.get('check'))}</b>: {_e(f.get('summary'))}</div>"
    )
