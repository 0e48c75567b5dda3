"""Rendering an executed notebook into record.html: summary first, then the notebook.

The HTML comes from nbconvert's HTMLExporter with ``sanitize_html=True``. nbconvert's own
sanitiser escapes headings, lists and table heads (its allowlist is minimal), which makes a
record unreadable; we install a stricter-in-spirit filter of our own: a fuller list of
harmless tags, no scripts, styles, event handlers or foreign URLs. The page also carries a
Content-Security-Policy that forbids every script and external resource.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import bleach
import bleach.sanitizer
import nbformat
from bleach.css_sanitizer import CSSSanitizer
from nbconvert import HTMLExporter
from nbconvert.exporters.templateexporter import TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from pygments.formatters import HtmlFormatter

from runbook_lib.core.contract import worst_first
from runbook_lib.core.present import duration, esc, finding_html, iso, kv_html, note_html, when
from runbook_lib.core.shapes import Record
from runbook_lib.record import diagnosis
from runbook_lib.record.events import SUMMARY_ANCHOR
from runbook_lib.sre import incident

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


@lru_cache(maxsize=1)
def _cleaner() -> bleach.sanitizer.Cleaner:
    """Built once per process: bleach.clean() would build (and parse its allowlists) per output."""
    return bleach.sanitizer.Cleaner(
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRS,
        protocols={"http", "https", "mailto", "data"},
        css_sanitizer=CSSSanitizer(allowed_css_properties=[]),
        strip=True,
        strip_comments=True,
    )


def clean_html(element: Any) -> str:
    text = element.decode() if isinstance(element, bytes) else str(element)
    return _cleaner().clean(text)


# the opening tags nbconvert makes keyboard-focusable (so a wide cell can be scrolled by keys)
_FOCUSABLE = re.compile(r'<div class="(?:jp-Cell-inputWrapper|[^"<>]*\bjp-OutputArea-output\b[^"<>]*)"')


class RecordExporter(HTMLExporter):
    """HTMLExporter without its closing BeautifulSoup pass, which re-parses and re-serialises
    the whole page (about 40 ms a record, half the render) only to add ``alt`` to images and
    ``tabindex`` to cells. Our template gives every plot its title as ``alt``; ``tabindex`` is
    added here to the same elements with one substitution."""

    def from_notebook_node(  # type: ignore[override]
        self, nb: nbformat.NotebookNode, resources: dict[str, Any] | None = None, **kw: Any
    ) -> tuple[str, dict[str, Any]]:
        langinfo = nb.metadata.get("language_info", {})
        lexer = langinfo.get("pygments_lexer", langinfo.get("name", None))
        resources = self._init_resources(resources)
        self.register_filter("highlight_code", Highlight2HTML(pygments_lexer=lexer, parent=self))
        self.register_filter(
            "filter_data_type",
            WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata, parent=self, resources=resources),
        )
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return _FOCUSABLE.sub(lambda m: m.group(0) + ' tabindex="0"', html), resources


@lru_cache(maxsize=1)
def _exporter() -> HTMLExporter:
    exporter = RecordExporter(
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


def prime() -> None:
    """Build the exporter, its templates, the CSS and the sanitiser now (a long-lived worker does
    this once, before its first record, and then freezes the heap: see receiver.worker)."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# x"), nbformat.v4.new_code_cell("x = 1")]
    render_record_html(nb, {"id": "prime", "status": "succeeded", "findings": [], "actions": []})


def render_record_html(nb: nbformat.NotebookNode, record: Record) -> str:
    resources = {
        "runbook_summary": summary_html(record),
        "runbook_css": _css(),
        "metadata": {"name": record["id"]},
    }
    body, _ = _exporter().from_notebook_node(nb, resources=resources)
    return body


def summary_html(record: Record) -> str:
    """The first screen on-call reads: the diagnosis (worst verdict, symptom, likely cause,
    recommended option), then what fired and when, what was found, what was done. Every value
    is escaped here (alert labels are untrusted)."""
    parts = [SUMMARY_ANCHOR, _headline_html(record), _group_html(record), kv_html(_summary_rows(record))]
    parts.append(_links_html(record))
    parts += [note_html(note, "Note:") for note in record.get("notes") or []]
    if record.get("failed_cell"):
        parts.append(_failure_html(record))
    findings = record.get("findings", [])
    checked = worst_first([f for f in findings if f.get("verdict") != "unchecked"])
    unchecked = [f for f in findings if f.get("verdict") == "unchecked"]
    parts += _section(f"Findings ({len(checked)})", [finding_html(f) for f in checked], "No findings were recorded.")
    parts += _section(
        f"Could not be checked ({len(unchecked)})", [finding_html(f) for f in unchecked], "Every check ran."
    )
    parts += _actions_html(record.get("actions", []))
    parts.append("</section>")
    return "\n".join(parts)


def _headline_html(record: Record) -> str:
    d = diagnosis.of(record)
    alert = record.get("alert") or {}
    labels = alert.get("labels") or {}
    verdict = d["verdict"]
    css = "unchecked" if verdict == "incomplete" else verdict
    status = str(record.get("status", ""))
    shown_verdict = f"{verdict.upper()} (provisional)" if d.get("provisional") else verdict.upper()
    name = labels.get("alertname") or _run_name(record)
    lines = [
        f'<div class="rb-verdict-line"><span class="rb-verdict">{esc(shown_verdict)}</span> '
        f'<span class="rb-alertname">{esc(name)}</span> '
        f'<span class="rb-status rb-status-{esc(status)}">run {esc(status.replace("_", " "))}</span></div>'
    ]
    if verdict == "incomplete":
        lines.append(f'<p class="rb-symptom">{esc(d["headline"])}</p>')
    else:
        lines.append(f'<p class="rb-symptom">{esc(d["symptom"] or "No problem found by the checks that ran.")}</p>')
        if d.get("cause"):
            code = f' <code class="rb-cause-code">{esc(d["cause_code"])}</code>' if d.get("cause_code") else ""
            lines.append(f'<p class="rb-cause"><b>Likely cause:</b> {esc(d["cause"])}{code}</p>')
    lines.append(_recommended_html(d))
    if d.get("partial"):
        lines.append(f'<p class="rb-partial"><b>Partial:</b> could not check {esc(", ".join(d["partial"]))}</p>')
    fired = alert.get("startsAt")
    sev = (record.get("incident") or {}).get("sev", "")
    when = [
        sev,
        labels.get("severity", ""),
        f"fired {_before_run(fired, record.get('started_at'))} ({iso(fired)})" if fired else "",
        _next_deadline(record),
    ]
    lines.append(f'<p class="rb-when">{esc(" · ".join(w for w in when if w))}</p>')
    return f'<div class="rb-headline rb-{esc(css)}">{"".join(lines)}</div>'


def _run_name(record: Record) -> str:
    """What a run without an alert is: a DR drill by its name, else the runbook."""
    slug = str(record.get("runbook") or "")
    return f"DR drill {slug.removeprefix('dr-drill-')}" if slug.startswith("dr-drill-") else slug or "(no alert)"


def _recommended_html(d: Any) -> str:
    """The one recommended thing, with the exact command ready to copy."""
    action = d.get("recommended_action")
    if not action:  # a record archived before recommended_action existed
        return (
            f'<p class="rb-recommended"><b>Recommended:</b> {esc(d["recommended"])}</p>' if d.get("recommended") else ""
        )
    if action["name"] == "none":
        return f'<p class="rb-recommended"><b>Recommended:</b> no action ({esc(action["reason"])})</p>'
    title = d.get("recommended") or action["title"]
    why = f" — {esc(action['reason'])}" if action.get("reason") else ""
    command = f'<pre class="rb-command"><code>{esc(action["command"])}</code></pre>' if action.get("command") else ""
    performs = (
        f'<p class="rb-performs">which runs, guarded and audited: <code>{esc(action["performs"])}</code></p>'
        if action.get("performs")
        else ""
    )
    return f'<div class="rb-recommended"><p><b>Recommended:</b> {esc(title)}{why}</p>{command}{performs}</div>'


def _before_run(fired: Any, run: Any) -> str:
    """'24m before this run': the page never changes, so it never says "ago" (read a day
    later, or after the incident resolved, "6 s ago" would be false)."""
    then, ref = when(fired), when(run)
    if then is None or ref is None:
        return ""
    delta = (ref - then).total_seconds()
    return f"{duration(abs(delta))} {'before' if delta >= 0 else 'after'} this run"


def _next_deadline(record: Record) -> str:
    """The next response deadline as it stood when the record was made (the page never changes;
    `runbook show` and /records tell it against now)."""
    rows = incident.status(record.get("incident"), record.get("started_at"))
    row = incident.next_deadline(rows)
    if not rows:
        return ""
    if not row:
        return "at this run: no deadline ahead"
    state = "overdue" if row.get("passed") else "due"
    return f"at this run: {row['name']} {state} {row['due']}"


def _group_html(record: Record) -> str:
    """The rest of the story: alerts of the same group this run also stands for, and the group's
    other records (later ones appear as events on the served page and in `runbook show`)."""
    lines = []
    linked = record.get("linked_alerts") or []
    if linked:
        names = ", ".join(f"{a.get('alertname')} ({a.get('severity')})" for a in linked)
        lines.append(f"Also firing in this group, diagnosed by this run (not run again): {names}.")
    for other in record.get("related_records") or []:
        if other.get("relation") == "continued":
            lines.append(f"This interactive session continues record {other.get('record_id')}.")
        elif record.get("origin") == "approval":
            lines.append(f"The approved fix of incident {other.get('record_id')}.")
        else:
            lines.append(f"Another record of this group: {other.get('record_id')} ({other.get('alertname')}).")
    return "".join(note_html(line) for line in lines)


def _links_html(record: Record) -> str:
    """The alert's runbook_url and generatorURL, and the record's own links (Prometheus, Grafana),
    as links people can follow. Only http(s) URLs become links, and of the alert's own only those
    the run found pointing at a configured host (``trusted``): whoever posts an alert chooses
    them, so the others are shown as text, never as something to click."""
    items = []
    for link in _record_links(record):
        title, url = link.get("title"), link.get("url")
        if not _http(url):
            continue
        if link.get("from") == "alert" and link.get("trusted") is not True:
            items.append(f"{esc(title)} (not a configured host, not a link): <code>{esc(url)}</code>")
        else:
            items.append(f'<a href="{esc(url)}">{esc(title)}</a>')
    return f'<p class="rb-links">{" · ".join(items)}</p>' if items else ""


def _record_links(record: Record) -> list[dict[str, Any]]:
    """The record's links; a record from before links were marked gets its alert's links as
    untrusted ones."""
    links = list(record.get("links") or [])
    if not any(link.get("from") == "alert" for link in links):
        alert = record.get("alert") or {}
        older = [
            ("Runbook", (alert.get("annotations") or {}).get("runbook_url")),
            ("Alert source", alert.get("generatorURL")),
        ]
        links = [{"title": t, "url": u, "from": "alert", "trusted": False} for t, u in older if u] + links
    return links


def _http(url: Any) -> bool:
    return isinstance(url, str) and url.lower().startswith(("http://", "https://")) and len(url) < 8192


def _summary_rows(record: Record) -> list[tuple[str, Any]]:
    alert = record.get("alert") or {}
    labels = alert.get("labels") or {}
    dry_run = record.get("parameters", {}).get("dry_run")
    rows = [
        ("Alert", labels.get("alertname") or "(no alert)"),
        ("Severity", labels.get("severity", "")),
        ("Summary", (alert.get("annotations") or {}).get("summary", "")),
        ("Run", f"{record['status']} in {duration(record.get('duration_s'))}, {iso(record.get('started_at'))}"),
        ("Alert firing since", iso(alert.get("startsAt", ""))),
        ("Incident", _incident_text(record)),
        ("On call when it fired", _on_call_text(record)),
        ("Runbook", f"{record.get('runbook')} (mode {record.get('mode')}, dry_run {dry_run})"),
        ("Environment", record.get("environment")),
        ("Record", record["id"]),
        ("Fingerprint", alert.get("fingerprint", "")),
    ]
    other = {k: v for k, v in labels.items() if k not in ("alertname", "severity")}
    if other:
        rows.append(("Labels", ", ".join(f"{k}={v}" for k, v in sorted(other.items()))))
    if session := record.get("session"):  # archived from JupyterLab (runbook archive)
        rows.insert(0, ("Interactive session", _session_text(session)))
    return rows


def _session_text(session: Any) -> str:
    """'Avery Example, opened 2026-...; on-call added 3 cells, changed 1 (marked below); continues
    record X; dry runs / actions run (approved: ...); 2 audit rows'."""
    runs = (
        "actions dry runs"
        if session.get("dry_run")
        else f"actions run, approved: {', '.join(session.get('approve') or []) or 'none'}"
    )
    parts = [
        f"{session.get('operator') or 'no operator'}, opened {iso(session.get('prepared_at'))}",
        f"{session.get('summary')} (marked in the notebook below)",
        runs,
        f"{len(session.get('audit_rows') or [])} audit row(s) by this operator in the session",
    ]
    if session.get("continued"):
        parts.insert(1, f"continues record {session['continued']}")
    return "; ".join(parts)


def _on_call_text(record: Record) -> str:
    who = (record.get("incident") or {}).get("on_call")
    if not who:
        return "no roster (parameters/oncall.yaml) covers the firing time"
    return f"primary {who['primary']}, secondary {who['secondary']}, manager {who['manager']}"


def _incident_text(record: Record) -> str:
    found = record.get("incident")
    if not found:
        if record.get("origin") == "interactive":
            return "not an incident: an interactive session, evidence on the record it continues"
        if record.get("origin") == "approval":
            return "not an incident: the run of a fix approved on its incident"
        return "no alert: no incident"
    rows = incident.status(found, record.get("started_at"))
    due = "; ".join(f"{r['name']} {r['due']}" for r in rows) or "no response deadline"
    return f"{found['sev']} ({found['meaning']}). Deadlines: {due}"


def _failure_html(record: Record) -> str:
    fc, status = record["failed_cell"], str(record["status"])
    where = f"the cell shown as In [{fc['execution_count']}]" if fc.get("execution_count") else "a cell"
    return (
        f'<h2>The runbook did not finish</h2><div class="rb-finding rb-critical"><span class="rb-verdict">'
        f"{esc(status.upper().replace('_', ' '))}</span> in {esc(where)}: "
        f"<b>{esc(fc.get('ename'))}</b>: {esc(fc.get('evalue'))}</div>"
        + note_html(
            f"Findings below are those recorded before it stopped. To continue from its outputs: "
            f"runbook open {record['id']}"
        )
    )


def _section(heading: str, items: list[str], empty: str) -> list[str]:
    return [f"<h2>{esc(heading)}</h2>", *(items or [note_html(empty)])]


def _actions_html(actions: list[dict[str, Any]]) -> list[str]:
    done = [a for a in actions if a.get("status") in ("done", "failed")]
    heading = f"Actions ({len(done)} taken, {len(actions) - len(done)} proposed or refused)"
    if not actions:
        return _section(heading, [], "No action was proposed or taken.")
    rows = [
        '<table class="rb-kv"><tr class="rb-head"><td><b>action</b></td><td><b>status</b></td>'
        "<td><b>why / command</b></td></tr>"
    ]
    for a in actions:
        rec = " · recommended" if a.get("recommended") else ""  # a bare "yes" column means nothing on a phone
        rows.append(
            f"<tr><td>{esc(a.get('title'))}<br><small>{esc(a.get('target'))}</small></td>"
            f'<td class="rb-action-status"><b>{esc(str(a.get("status", "")).upper())}</b>{esc(rec)}</td>'
            f"<td>{esc(a.get('reason'))}<br><code>{esc(a.get('command'))}</code></td></tr>"
        )
    rows.append("</table>")
    return _section(heading, ["".join(rows)], "")
