"""The receiver's runbook page, ``GET /runbooks/{slug}``: what a generated alert's ``runbook_url``
points at (:func:`runbook_lib.monitoring.runbook_url`).

One page per notebook in ``runbooks/``: its title and markdown cells (Severity, Summary, Impact,
Diagnosis, Resolution, Escalation, Post-Incident) as HTML, its code cells as ``<pre>`` blocks
(the exact calls a run makes), the catalog alerts routed to it, the newest records it produced
and how to run it by hand.

Safety: markdown is rendered by mistune with ``escape=True`` (raw HTML in a cell is shown as
text, never passed through), harmful link schemes become ``#harmful-link``, images are shown
as their alt text (nothing is loaded), and every other value goes through :func:`esc`. The page
is served with ``Content-Security-Policy: sandbox`` plus ``default-src 'none'`` (no script, no
external load) and carries the same policy in a meta tag.

Costs: the notebook part is rendered once per (slug, notebook mtime and size); the archive index
is scanned once per index version (it is append-only, so its size and mtime name it); each
record's summary is read once (records never change after archiving).
"""

from __future__ import annotations

import json
import stat
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

import mistune

from ..catalog import SEVERITIES, SLUG, TRIAGE, AlertSpec, Catalog
from ..errors import ArchiveError, ConfigError
from ..present import esc, iso, visible
from ..record.archive import RECORD_ID, Archive

RECENT = 20
PAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
META_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
RECORD_CSS = Path(__file__).resolve().parent.parent / "record" / "templates" / "record" / "record.css"
PAGE_CSS = """
.rb-runbook main { max-width: 900px; margin: 0 auto; }
.rb-kicker { color: #555; font-size: 0.9em; margin: 0; }
.rb-nav a { margin-right: 0.8em; }
.rb-list { list-style: none; padding: 0; margin: 0.4em 0; }
.rb-list li { margin: 4px 0; padding: 3px 8px; border-left: 5px solid #999; background: #f6f6f8; }
.rb-sev { display: inline-block; font-weight: bold; font-size: 0.85em; margin-right: 0.4em; }
.rb-md h1 { font-size: 1.5em; } .rb-md h2 { font-size: 1.3em; margin-top: 1.4em; } .rb-md h3 { font-size: 1.1em; }
.rb-md table { display: block; overflow-x: auto; max-width: 100%; }
.rb-md pre, .rb-code { background: #f5f5f7; border: 1px solid #e3e3e8; padding: 4px 8px; }
.rb-code { white-space: pre; word-break: normal; overflow-wrap: normal; overflow-x: auto; max-width: 100%; }
.rb-code-label { color: #888; font-size: 0.8em; margin: 0.6em 0 0 0; }
.rb-md code, .rb-summary code { background: #f0f0f3; padding: 0 3px; border-radius: 3px; }
.rb-image { font-style: italic; color: #555; }
@media (max-width: 640px) { .rb-code { font-size: 0.78em; } }
"""


class _Renderer(mistune.HTMLRenderer):
    """mistune's HTML renderer, escaping raw HTML; images become their alt text (no load)."""

    def image(self, text: str, url: str, title: str | None = None) -> str:
        return f'<span class="rb-image">[image: {text or "no description"}]</span>'


_MARKDOWN = mistune.create_markdown(
    escape=True, renderer=_Renderer(escape=True), plugins=["table", "strikethrough", "task_lists"]
)


def markdown_html(source: str) -> str:
    """A markdown cell as HTML: raw HTML escaped, harmful URLs dropped, invisible characters shown."""
    return str(_MARKDOWN(visible(source)))


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def render_notebook(path: Path, slug: str) -> tuple[str, str]:
    """(title, HTML of the cells) of one runbook notebook: the title is the first cell's
    ``# heading`` (else the notebook's metadata title, else the slug). Raises OSError / ValueError."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook (no cells)")
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    title = str(meta.get("title") or "")
    parts: list[str] = []
    first_markdown = True
    for cell in nb["cells"]:
        if not isinstance(cell, dict):
            continue
        kind, text = cell.get("cell_type"), _source(cell)
        if kind == "markdown":
            if first_markdown:  # the notebook's "# Title" becomes the page's h1, not repeated below
                first_markdown = False
                head, _, rest = text.lstrip().partition("\n")
                if head.startswith("# ") and head[2:].strip():
                    title, text = head[2:].strip(), rest
            if text.strip():
                parts.append(f'<section class="rb-md">{markdown_html(text)}</section>')
        elif kind == "code" and text.strip():
            tags = (cell.get("metadata") or {}).get("tags") or []
            label = "parameters (a run injects the alert's context after this cell)" if "parameters" in tags else ""
            if label:
                parts.append(f'<p class="rb-code-label">{esc(label)}</p>')
            parts.append(f'<pre class="rb-code"><code>{esc(text)}</code></pre>')
    return title or slug, "\n".join(parts)


class RunbookPages:
    """Builds ``/runbooks/{slug}`` pages for one receiver (settings fixed at start)."""

    def __init__(self, runbooks_dir: Path, catalog_file: Path, archive: Archive | Path) -> None:
        self.runbooks_dir = Path(runbooks_dir)
        self.catalog_file = Path(catalog_file)
        self.archive = archive if isinstance(archive, Archive) else Archive(archive)
        self._lock = threading.Lock()
        self._notebooks: dict[str, tuple[tuple[int, int], str, str]] = {}  # slug -> (stat key, title, html)
        self._catalog: tuple[tuple[int, int], Catalog | None, str] | None = None  # (key, catalog, error)
        self._index: tuple[tuple[Any, ...], dict[str, list[str]]] | None = None  # (key, slug -> ids newest first)
        self._records: dict[str, dict[str, str]] = {}  # record id -> its summary (records never change)

    # -- the page -----------------------------------------------------------------------------
    def page(self, slug: str) -> str | None:
        """The page's HTML, or None when ``slug`` names no servable runbook."""
        if not SLUG.fullmatch(slug):  # also refuses "_template", "..", "a/b" and anything odd
            return None
        path = self.runbooks_dir / f"{slug}.ipynb"
        try:
            st = path.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        key = (st.st_mtime_ns, st.st_size)
        cached = self._notebooks.get(slug)
        if cached is not None and cached[0] == key:
            _, title, body = cached
        else:
            try:
                with self._lock:  # rendering is rare (cached): one at a time keeps mistune's state private
                    title, body = render_notebook(path, slug)
                    self._notebooks[slug] = (key, title, body)
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                title, body = slug, _note(f"The notebook could not be read: {type(exc).__name__}: {exc}")
        return self._assemble(slug, title, body)

    def _assemble(self, slug: str, title: str, body: str) -> str:
        alerts, catalog_error = self._alerts(slug)
        records, archive_error = self._recent(slug)
        s = esc(slug)
        out = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f'<meta http-equiv="Content-Security-Policy" content="{META_CSP}">',
            '<meta name="referrer" content="no-referrer">',
            f"<title>Runbook: {esc(title)}</title>",
            f"<style>{_css()}</style>",
            '</head><body class="rb-runbook"><main>',
            '<div class="rb-summary">',
            f'<p class="rb-kicker">Runbook <code>{s}</code></p>',
            f"<h1>{esc(title)}</h1>",
            '<p class="rb-nav"><a href="#runbook">Runbook</a><a href="#records">'
            f'Recent records ({len(records)})</a><a href="#run">Run it</a></p>',
            "<h2>Alerts routed here</h2>",
        ]
        if catalog_error:
            out.append(_note(catalog_error))
        out.append(_alerts_html(alerts, slug))
        out += [
            '<h2 id="run">Run it</h2>',
            '<ul class="rb-list">',
            f"<li><code>runbook run {s}</code>: diagnose now (reads only) and archive a record; "
            f"add <code>--alert payload.json</code> for an alert's context</li>",
            f"<li><code>runbook open {s}</code>: the notebook in JupyterLab, parameters injected, "
            "to step through by hand</li>",
            "</ul>",
            "</div>",
            '<h2 id="runbook" class="rb-notebook-title">The runbook</h2>',
            body,
            f'<h2 id="records" class="rb-notebook-title">Recent records of {s}</h2>',
        ]
        if archive_error:
            out.append(_note(archive_error))
        out.append(_records_html(records))
        out.append("</main></body></html>")
        return "\n".join(out)

    # -- the catalog ---------------------------------------------------------------------------
    def _alerts(self, slug: str) -> tuple[list[AlertSpec], str]:
        """Catalog alerts routed to ``slug`` (for triage: those whose runbook is not written)."""
        catalog, error = self._load_catalog()
        if catalog is None:
            return [], error
        routed = [spec for name, spec in catalog.alerts.items() if catalog.route(name).slug == slug]
        order = {sev: i for i, sev in enumerate(SEVERITIES)}
        return sorted(routed, key=lambda a: (order.get(a.severity, 9), a.name)), ""

    def _load_catalog(self) -> tuple[Catalog | None, str]:
        try:
            st = self.catalog_file.stat()
            key = (st.st_mtime_ns, st.st_size)
        except OSError as exc:
            return None, f"The catalog cannot be read: {exc.strerror or type(exc).__name__}"
        cached = self._catalog
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        try:
            catalog, error = Catalog.load(self.catalog_file, self.runbooks_dir), ""
        except (ConfigError, KeyError, TypeError, ValueError, AttributeError) as exc:
            catalog, error = None, f"The catalog cannot be read: {exc}"
        self._catalog = (key, catalog, error)
        return catalog, error

    # -- the archive ---------------------------------------------------------------------------
    def _recent(self, slug: str) -> tuple[list[dict[str, str]], str]:
        """Summaries of the ``RECENT`` newest records of ``slug`` (index order: newest first)."""
        try:
            ids = self._index_by_slug().get(slug, [])[:RECENT]
        except (ArchiveError, OSError) as exc:
            return [], f"The archive index cannot be read ({exc}); run `runbook verify`."
        return [self._summary(rid) for rid in ids], ""

    def _index_by_slug(self) -> dict[str, list[str]]:
        key = self.archive.index_version()  # (size, mtime) of a file, (size, ETag) of an S3 object
        if key is None:
            return {}
        cached = self._index
        if cached is not None and cached[0] == key:
            return cached[1]
        by_slug: dict[str, list[str]] = {}
        for entry in self.archive.entries():
            rid = entry.get("id")
            if entry.get("type") == "record" and isinstance(rid, str) and RECORD_ID.fullmatch(rid):
                by_slug.setdefault(str(entry.get("runbook")), []).append(rid)
        for ids in by_slug.values():
            ids.reverse()
        self._index = (key, by_slug)
        return by_slug

    def _summary(self, record_id: str) -> dict[str, str]:
        cached = self._records.get(record_id)
        if cached is not None:
            return cached
        try:
            rec = json.loads(self.archive.read_record_file(record_id, "record.json"))
            alert = rec.get("alert") or {}
            labels = alert.get("labels") or {}
            diag = rec.get("diagnosis") or {}
            summary = {
                "id": record_id,
                "started": iso(rec.get("started_at")),
                "alert": str(labels.get("alertname") or "(no alert)"),
                "severity": str(labels.get("severity") or ""),
                "status": str(rec.get("status") or ""),
                "verdict": str(diag.get("verdict") or ""),
                "headline": str(diag.get("headline") or ""),
            }
        except (ArchiveError, OSError, ValueError, AttributeError) as exc:
            return {"id": record_id, "started": "", "alert": f"record unreadable: {type(exc).__name__}"}
        with self._lock:
            if len(self._records) > 5000:
                self._records.clear()
            self._records[record_id] = summary
        return summary


def _alerts_html(alerts: list[AlertSpec], slug: str) -> str:
    items = [
        f'<li class="rb-{esc(a.severity)}"><span class="rb-sev rb-verdict">{esc(a.severity.upper())}</span>'
        f"<b>{esc(a.name)}</b>: {esc(a.summary)}</li>"
        for a in alerts
    ]
    if slug == TRIAGE:
        items.append('<li class="rb-info">Any alert not in the catalog.</li>')
    if not items:
        return '<p class="rb-note">No catalog alert routes here (run it by hand, below).</p>'
    return '<ul class="rb-list rb-alerts">' + "".join(items) + "</ul>"


def _records_html(records: list[dict[str, str]]) -> str:
    if not records:
        return '<p class="rb-note">No records of this runbook in the archive yet.</p>'
    items = []
    for r in records:
        verdict = r.get("verdict", "")
        css = "unchecked" if verdict == "incomplete" else verdict or "info"
        status = r.get("status", "")
        line = [
            f'<a href="../records/{esc(r["id"])}">{esc(r.get("started") or r["id"])}</a> ',
            f"<b>{esc(r.get('alert'))}</b>",
            f' <span class="rb-step">{esc(r["severity"])}</span>' if r.get("severity") else "",
        ]
        if verdict:
            line.append(f' <span class="rb-verdict">{esc(verdict.upper())}</span>')
        if status:
            line.append(f' <span class="rb-status rb-status-{esc(status)}">run {esc(status.replace("_", " "))}</span>')
        if r.get("headline"):
            line.append(f'<div class="rb-note">{esc(r["headline"])}</div>')
        items.append(f'<li class="rb-finding rb-{esc(css)}">{"".join(line)}</li>')
    return '<ul class="rb-list rb-records">' + "".join(items) + "</ul>"


def _note(text: str) -> str:
    return f'<p class="rb-note">{esc(text)}</p>'


@lru_cache(maxsize=1)
def _css() -> str:
    """The record page's stylesheet (so both look alike) plus this page's few rules."""
    try:
        base = RECORD_CSS.read_text(encoding="utf-8")
    except OSError:
        base = ""
    return base + PAGE_CSS
