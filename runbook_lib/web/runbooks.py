"""The receiver's runbook page, ``GET /runbooks/{slug}``: what a generated alert's ``runbook_url``
points at (:func:`runbook_lib.monitoring.rules.runbook_url`).

One page per notebook in ``runbooks/``: its title and markdown cells (Severity, Summary, Impact,
Diagnosis, Resolution, Escalation, Post-Incident) as HTML, its code cells as ``<pre>`` blocks
(the exact calls a run makes), the catalog alerts routed to it, the newest records it produced
and how to run it by hand.

Safety: markdown is rendered by mistune with ``escape=True`` (raw HTML in a cell is shown as
text, never passed through), harmful link schemes become ``#harmful-link``, images are shown as
their alt text (nothing is loaded); everything else is escaped by the templates (:mod:`.pages`).

Costs: the notebook part is rendered once per (slug, notebook mtime and size); the archive is read
as every page reads it (:class:`~.pages.ArchiveView`).
"""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path
from typing import Any

import mistune
from markupsafe import Markup

from runbook_lib.core.errors import ConfigError
from runbook_lib.core.present import visible
from runbook_lib.record.archive import Archive
from runbook_lib.sre.catalog import SEVERITIES, SLUG, TRIAGE, AlertSpec, Catalog
from runbook_lib.web.pages import ArchiveView, render, verdict_css

RECENT = 20


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


Part = dict[str, Any]  # {"kind": "markdown", "html": Markup} or {"kind": "code", "text": str, "label": str}


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def render_notebook(path: Path, slug: str) -> tuple[str, list[Part]]:
    """(title, the cells as parts) of one runbook notebook: the title is the first cell's
    ``# heading`` (else the notebook's metadata title, else the slug). Raises OSError / ValueError."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise ValueError("not a notebook (no cells)")
    meta = nb.get("metadata") if isinstance(nb.get("metadata"), dict) else {}
    title = str(meta.get("title") or "")
    parts: list[Part] = []
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
                parts.append({"kind": "markdown", "html": Markup(markdown_html(text))})  # noqa: S704 (escaped by mistune)
        elif kind == "code" and text.strip():
            tags = (cell.get("metadata") or {}).get("tags") or []
            label = "parameters (a run injects the alert's context after this cell)" if "parameters" in tags else ""
            parts.append({"kind": "code", "text": text, "label": label})
    return title or slug, parts


class RunbookPages:
    """Builds ``/runbooks/{slug}`` pages for one receiver (settings fixed at start)."""

    def __init__(self, runbooks_dir: Path, catalog_file: Path, archive: Archive) -> None:
        self.runbooks_dir = Path(runbooks_dir)
        self.catalog_file = Path(catalog_file)
        self.view = ArchiveView(archive)
        self._lock = threading.Lock()
        self._notebooks: dict[str, tuple[tuple[int, int], str, list[Part]]] = {}  # slug -> (stat key, title, parts)
        self._catalog: tuple[tuple[int, int], Catalog | None, str] | None = None  # (key, catalog, error)

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
        error = ""
        if cached is not None and cached[0] == key:
            _, title, parts = cached
        else:
            try:
                with self._lock:  # rendering is rare (cached): one at a time keeps mistune's state private
                    title, parts = render_notebook(path, slug)
                    self._notebooks[slug] = (key, title, parts)
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                title, parts, error = slug, [], f"The notebook could not be read: {type(exc).__name__}: {exc}"
        alerts, catalog_error = self._alerts(slug)
        records, archive_error = self._recent(slug)
        return render(
            "runbook.html.j2",
            slug=slug,
            title=title,
            parts=parts,
            notebook_error=error,
            alerts=alerts,
            triage=slug == TRIAGE,
            catalog_error=catalog_error,
            records=records,
            archive_error=archive_error,
        )

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
    def _recent(self, slug: str) -> tuple[list[dict[str, Any]], str]:
        """Summaries of the ``RECENT`` newest records of ``slug`` (index order: newest first)."""
        scan = self.view.scan()
        if scan.error:
            return [], scan.error
        ids = [r["id"] for r in reversed(scan.records) if r["runbook"] == slug][:RECENT]
        return [{**(s := self.view.summary(rid)), "css": verdict_css(s["verdict"])} for rid in ids], ""
