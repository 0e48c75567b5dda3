"""What the pages share: Jinja templates (autoescaped: a value reaches the page escaped unless
a template marks it safe, and only HTML this package built from escaped parts is), one
stylesheet, the Content-Security-Policy they are served with, and one reader of the archive's
index and record summaries (:class:`ArchiveView`).

Safety: every page is served with ``Content-Security-Policy: sandbox`` plus ``default-src
'none'`` (no script, no external load, no form) and carries the same policy in a meta tag.

Costs: the archive index is scanned once per index version (append-only, so its size and mtime
name it; its size and ETag in S3, one HEAD request per page) for the records and the events about
them; each record's summary is read once (records never change after archiving).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from runbook_lib.core.errors import ArchiveError
from runbook_lib.core.layout import is_record_id
from runbook_lib.core.present import esc, iso
from runbook_lib.record import diagnosis
from runbook_lib.record.archive import Archive

PAGE_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
META_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
HERE = Path(__file__).resolve().parent
RECORD_CSS = HERE.parent / "record" / "templates" / "record" / "record.css"
MAX_CACHED = 50_000  # record summaries kept (about 1 KB each); past it the cache starts over


def _shown(value: Any) -> Markup:
    """Every value a template prints: escaped as everywhere else (:func:`present.esc`: quotes
    too, control and bidi characters made visible), unless this package built it as Markup."""
    return value if isinstance(value, Markup) else Markup(esc(value))  # noqa: S704 (escaped just now)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        finalize=_shown,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The record's stylesheet (so every page looks alike) plus the pages' own rules."""
    parts = []
    for path in (RECORD_CSS, HERE / "static" / "pages.css"):
        try:
            parts.append(path.read_text(encoding="utf-8"))
        except OSError:
            pass
    return "\n".join(parts)


def render(template: str, **context: Any) -> str:
    """A page from its template, with the stylesheet and the meta CSP every page carries."""
    page = _environment().get_template(template)
    return page.render(stylesheet=stylesheet(), meta_csp=Markup(META_CSP), **context)  # noqa: S704 (our constant)


def verdict_css(verdict: str) -> str:
    """The colour class of a verdict (incomplete shows as unchecked)."""
    return "unchecked" if verdict == "incomplete" else verdict or "info"


@dataclass
class IndexScan:
    """One version of the archive index: records (index order) and the events about each."""

    records: list[dict[str, Any]] = field(default_factory=list)  # {"id", "runbook", "seq"}
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: str = ""


class ArchiveView:
    """The archive as the pages read it: the index scanned once per version, each record's
    summary read once."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self._lock = threading.Lock()
        self._scan: tuple[tuple[Any, ...], IndexScan] | None = None
        self._summaries: dict[str, dict[str, Any]] = {}

    def scan(self) -> IndexScan:
        """The index now; an unreadable archive is an IndexScan with its error (never raises)."""
        try:
            key = self.archive.index_version()  # (size, mtime) of a file, (size, ETag) of an S3 object
        except ArchiveError as exc:
            return IndexScan(error=f"The archive cannot be read: {exc}")
        except OSError as exc:
            return IndexScan(error=f"The archive index cannot be read ({exc.strerror}); run `runbook verify`.")
        if key is None:
            return IndexScan()
        cached = self._scan
        if cached is not None and cached[0] == key:
            return cached[1]
        found = IndexScan()
        try:
            for n, entry in enumerate(self.archive.entries()):
                rid = entry.get("id")
                if entry.get("type") == "record" and is_record_id(rid):
                    seq = entry.get("seq") if isinstance(entry.get("seq"), int) else n
                    found.records.append({"id": rid, "runbook": str(entry.get("runbook")), "seq": seq})
                elif entry.get("type") == "event" and isinstance(entry.get("record"), str):
                    found.events.setdefault(entry["record"], []).append(entry)
        except (ArchiveError, OSError) as exc:
            return IndexScan(error=f"The archive index cannot be read ({exc}); run `runbook verify`.")
        self._scan = (key, found)
        return found

    def summary(self, record_id: str) -> dict[str, Any]:
        """What a list shows of one record (an unreadable record says so in ``alert``)."""
        cached = self._summaries.get(record_id)
        if cached is not None:
            return cached
        try:
            rec = json.loads(self.archive.read_record_file(record_id, "record.json"))
            alert = rec.get("alert") or {}
            labels = alert.get("labels") or {}
            found = rec.get("incident")
            d = diagnosis.of(rec)
            summary = {
                "id": record_id,
                "started": iso(rec.get("started_at")),
                "alert": str(labels.get("alertname") or "(no alert)"),
                "has_alert": bool(alert),
                "severity": str(labels.get("severity") or ""),
                "sev": str(found.get("sev")) if isinstance(found, Mapping) and found.get("sev") else "-",
                "incident": found if isinstance(found, Mapping) else None,
                "fingerprint": str(alert.get("fingerprint") or ""),
                "run": str(rec.get("status") or ""),
                "verdict": str(d.get("verdict") or ""),
                "headline": str(d.get("headline") or ""),
            }
        except (ArchiveError, OSError, ValueError, AttributeError, TypeError, KeyError) as exc:
            return {
                "id": record_id,
                "started": "",
                "alert": f"record unreadable: {type(exc).__name__}",
                "has_alert": False,
                "severity": "",
                "sev": "-",
                "incident": None,
                "fingerprint": "",
                "run": "",
                "verdict": "",
                "headline": "",
            }
        with self._lock:
            if len(self._summaries) >= MAX_CACHED:
                self._summaries.clear()
            self._summaries[record_id] = summary
        return summary
