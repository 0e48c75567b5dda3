"""The receiver's index of incidents, ``GET /records``: one row per archived record, newest first,
with the alert, its SEV level, whether it still fires, the worst finding (the diagnosis) and the
next incident deadline told against now, each linking to ``/records/{id}``.

Filters come from the query string (``status=firing|resolved``, ``sev=SEV-1|SEV-2|SEV-3``,
``runbook=<slug>``, ``limit=1..1000``, default 100) and are offered as plain links, so the page
needs no form and keeps ``form-action 'none'``. A bad value is a 400 (:class:`BadFilter`) that
names the parameter and what it allows, never the value sent.

Safety as the runbook page: every value goes through :func:`esc`, no script, no external load,
served with the runbook page's CSP (``sandbox``, ``default-src 'none'``) and the same in a meta tag.

Costs: the archive index is scanned once per index version (append-only, so its size and mtime
name it; its size and ETag in S3, one HEAD request per page) for the records and the events about them; each record's summary is read once (records
never change after archiving). Per request only the deadlines are worked out, for the rows shown.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from .. import incident
from ..catalog import SLUG
from ..errors import ArchiveError
from ..present import esc, iso
from ..record import diagnosis
from ..record.archive import RECORD_ID, Archive
from .runbook_page import META_CSP, RECORD_CSS

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
STATES = ("firing", "resolved")
PARAMETERS = ("status", "sev", "runbook", "limit")
HEADLINE_CHARS = 160
MAX_CACHED = 50_000  # record summaries kept (about 1 KB each); past it the cache starts over

PAGE_CSS = """
.rx-index main { max-width: 1250px; margin: 0 auto; }
.rx-index h1 { margin: 0.2em 0; }
.rx-filters { margin: 0.6em 0; padding: 0.4em 0.6em; background: #f6f6f8; border-radius: 6px; }
.rx-filters p { margin: 0.2em 0; }
.rx-filters b { display: inline-block; min-width: 5.5em; }
.rx-filters a, .rx-filters strong { display: inline-block; margin: 1px 0.5em 1px 0; }
.rx-filters strong { background: #1d1d1f; color: #fff; padding: 0 6px; border-radius: 4px; }
table.rx-table { width: 100%; font-size: 0.92em; table-layout: fixed; }  /* no value can widen it */
.rx-table th:nth-child(1) { width: 19%; } .rx-table th:nth-child(2) { width: 7%; } .rx-table th:nth-child(3) { width: 9%; }
.rx-table th:nth-child(4) { width: 29%; } .rx-table th:nth-child(5) { width: 22%; } .rx-table th:nth-child(6) { width: 14%; }
.rx-table th { background: #eef0f4; white-space: nowrap; }
.rx-table td { overflow-wrap: anywhere; }
.rx-table tr.rx-row td:first-child { border-left: 5px solid #999; }
.rx-table tr.rb-critical td:first-child { border-left-color: #b3261e; }
.rx-table tr.rb-warning td:first-child { border-left-color: #c77c02; }
.rx-table tr.rb-unchecked td:first-child { border-left-color: #6750a4; }
.rx-table tr.rb-info td:first-child { border-left-color: #2f6db5; }
.rx-table tr.rb-ok td:first-child { border-left-color: #1f7a3a; }
.rx-alert { font-weight: bold; }
.rx-sev { display: inline-block; font-weight: bold; padding: 0 6px; border-radius: 4px; border: 1px solid #888; white-space: nowrap; }
.rx-sev-SEV-1 { background: #b3261e; color: #fff; border-color: #b3261e; }
.rx-sev-SEV-2 { background: #fbe3c2; border-color: #c77c02; }
.rx-sev-SEV-3 { background: #e3ecf8; border-color: #2f6db5; }
.rx-state { display: inline-block; font-weight: bold; white-space: nowrap; }
.rx-state-firing { color: #b3261e; } .rx-state-resolved { color: #1f7a3a; }
.rx-table .rb-status { font-size: 0.8em; }
.rx-table .rb-verdict { min-width: 0; margin-right: 0.3em; }
.rx-overdue { color: #b3261e; font-weight: bold; }
@media (max-width: 700px) {
  .rx-table, .rx-table tbody, .rx-table tr, .rx-table td { display: block; width: auto; }
  .rx-table thead { display: none; }
  .rx-table tr.rx-row { margin: 0 0 0.7em 0; border: 1px solid #d0d0d7; border-left: 6px solid #999; border-radius: 6px; background: #fff; }
  .rx-table tr.rb-critical { border-left-color: #b3261e; } .rx-table tr.rb-warning { border-left-color: #c77c02; }
  .rx-table tr.rb-unchecked { border-left-color: #6750a4; } .rx-table tr.rb-info { border-left-color: #2f6db5; }
  .rx-table tr.rb-ok { border-left-color: #1f7a3a; }
  .rx-table tr.rx-row td, .rx-table tr.rx-row td:first-child { border: none; padding: 2px 8px; }
  .rx-table td::before { content: attr(data-label) ": "; color: #666; font-size: 0.85em; }
  .rx-table td.rx-head::before { content: none; }
  .rx-table td.rx-head { font-size: 1.05em; padding-top: 6px; }
}
"""


class BadFilter(Exception):
    """A query-string parameter /records does not take: the parameter and what it allows (the
    value sent is never repeated back)."""

    def __init__(self, parameter: str | None, message: str, allowed: list[str]) -> None:
        super().__init__(message)
        self.parameter, self.message, self.allowed = parameter, message, allowed

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.message, "allowed": self.allowed}
        if self.parameter:
            out["parameter"] = self.parameter
        return out


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    sev: str | None = None
    runbook: str | None = None
    limit: int = DEFAULT_LIMIT

    def query(self, **change: Any) -> str:
        """``?status=firing&sev=SEV-1``: these filters with ``change`` applied (None drops one)."""
        f = replace(self, **change)
        pairs = [(k, v) for k, v in (("status", f.status), ("sev", f.sev), ("runbook", f.runbook)) if v]
        if f.limit != DEFAULT_LIMIT:
            pairs.append(("limit", str(f.limit)))
        return "?" + urlencode(pairs) if pairs else "?"

    @property
    def active(self) -> bool:
        return bool(self.status or self.sev or self.runbook)


def parse_filters(params: Iterable[tuple[str, str]], known_runbooks: Iterable[str] = ()) -> Filters:
    """The filters of a query string (its (name, value) pairs, repeats kept). Raises BadFilter."""
    seen: dict[str, str] = {}
    for name, value in params:
        if name not in PARAMETERS:
            raise BadFilter(None, "unknown query parameter", list(PARAMETERS))
        if name in seen:
            raise BadFilter(name, f"give {name} once", [])
        seen[name] = value
    values = {k: v for k, v in seen.items() if v != ""}  # "status=" is no filter, as a bare link
    status, sev, runbook = values.get("status"), values.get("sev"), values.get("runbook")
    if status is not None and status not in STATES:
        raise BadFilter("status", "status must be one of the allowed values", list(STATES))
    if sev is not None and sev not in incident.SEV_LEVELS:
        raise BadFilter("sev", "sev must be one of the allowed values", list(incident.SEV_LEVELS))
    if runbook is not None and not SLUG.fullmatch(runbook):
        raise BadFilter(
            "runbook",
            "runbook must be a runbook slug (lowercase letters, digits and '-'); runbooks with records are allowed",
            sorted(known_runbooks),
        )
    limit = DEFAULT_LIMIT
    if "limit" in values:
        raw = values["limit"]
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_LIMIT):
            raise BadFilter("limit", f"limit must be an integer from 1 to {MAX_LIMIT}", [f"1-{MAX_LIMIT}"])
        limit = int(raw)
    return Filters(status, sev, runbook, limit)


@dataclass
class _Index:
    """One version of the archive index: records (index order) and events about each."""

    records: list[dict[str, Any]] = field(default_factory=list)  # {"id", "runbook", "status", "seq"}
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    error: str = ""


class RecordsIndex:
    """Builds ``/records`` pages for one receiver (archive fixed at start)."""

    def __init__(self, archive: Any) -> None:
        self.archive = archive if isinstance(archive, Archive) else Archive(archive)
        self._lock = threading.Lock()
        self._index: tuple[tuple[Any, ...], _Index] | None = None
        self._summaries: dict[str, dict[str, Any]] = {}  # record id -> summary (records never change)

    # -- the page -----------------------------------------------------------------------------
    def page(self, params: Iterable[tuple[str, str]], now: datetime) -> str:
        """The page's HTML for a query string's (name, value) pairs. Raises BadFilter."""
        index = self._read_index()
        runbooks = sorted({str(r["runbook"]) for r in index.records if SLUG.fullmatch(str(r["runbook"]))})
        filters = parse_filters(params, runbooks)
        matched = []
        for entry in self._newest_first(index):
            if filters.runbook and entry["runbook"] != filters.runbook:
                continue
            row = {**self._summary(entry["id"]), "runbook": entry["runbook"]}
            events = index.events.get(entry["id"], [])
            row["resolved"] = incident.resolved_at(events, row.get("fingerprint")) is not None
            row["state"] = "resolved" if row["resolved"] else ("firing" if row["has_alert"] else "")
            if filters.status and row["state"] != filters.status:
                continue
            if filters.sev and row["sev"] != filters.sev:
                continue
            row["events"] = events
            matched.append(row)
        shown = matched[: filters.limit]
        return _assemble(filters, runbooks, shown, len(matched), len(index.records), index.error, now)

    @staticmethod
    def _newest_first(index: _Index) -> list[dict[str, Any]]:
        """Newest run first: by the start time in the record id, then by index position."""
        return sorted(index.records, key=lambda r: (r["id"][:16], r["seq"]), reverse=True)

    # -- the archive ---------------------------------------------------------------------------
    def _read_index(self) -> _Index:
        try:
            key = self.archive.index_version()  # (size, mtime) of a file, (size, ETag) of an S3 object
        except ArchiveError as exc:
            return _Index(error=f"The archive cannot be read: {exc}")
        except OSError as exc:
            return _Index(error=f"The archive index cannot be read ({exc.strerror}); run `runbook verify`.")
        if key is None:
            return _Index()
        cached = self._index
        if cached is not None and cached[0] == key:
            return cached[1]
        found = _Index()
        try:
            for n, entry in enumerate(self.archive.entries()):
                rid = entry.get("id")
                if entry.get("type") == "record" and isinstance(rid, str) and RECORD_ID.fullmatch(rid):
                    seq = entry.get("seq") if isinstance(entry.get("seq"), int) else n
                    found.records.append({"id": rid, "runbook": str(entry.get("runbook")), "seq": seq})
                elif entry.get("type") == "event" and isinstance(entry.get("record"), str):
                    found.events.setdefault(entry["record"], []).append(entry)
        except (ArchiveError, OSError) as exc:
            return _Index(error=f"The archive index cannot be read ({exc}); run `runbook verify`.")
        self._index = (key, found)
        return found

    def _summary(self, record_id: str) -> dict[str, Any]:
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
                "run": "",
                "verdict": "",
                "headline": "",
            }
        with self._lock:
            if len(self._summaries) >= MAX_CACHED:
                self._summaries.clear()
            self._summaries[record_id] = summary
        return summary


# -- HTML ----------------------------------------------------------------------------------------
def _assemble(
    filters: Filters,
    runbooks: list[str],
    rows: list[dict[str, Any]],
    matched: int,
    total: int,
    error: str,
    now: datetime,
) -> str:
    count = f"{matched} of {total} records" if filters.active else f"{total} records"
    if len(rows) < matched:
        count += f", the newest {len(rows)} shown"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{META_CSP}">',
        '<meta name="referrer" content="no-referrer">',
        "<title>Incident records</title>",
        f"<style>{_css()}</style>",
        '</head><body class="rx-index"><main>',
        "<h1>Incident records</h1>",
        f'<p class="rb-note">{esc(count)}; newest first. Deadlines as of {esc(iso(now))}.</p>',
        _filters_html(filters, runbooks),
    ]
    if error:
        out.append(f'<p class="rb-note">{esc(error)}</p>')
    if rows:
        out += [
            '<table class="rx-table"><thead><tr><th>Alert</th><th>SEV</th><th>Status</th>'
            "<th>Worst finding</th><th>Next deadline</th><th>Started</th></tr></thead><tbody>",
            *(_row_html(r, now) for r in rows),
            "</tbody></table>",
        ]
    else:
        empty = "No record matches these filters." if filters.active else "No records in the archive yet."
        out.append(f'<p class="rb-note">{empty}</p>')
    out.append("</main></body></html>")
    return "\n".join(out)


def _choice(label: str, current: str | None, options: list[tuple[str | None, str]], filters: Filters, name: str) -> str:
    links = []
    for value, text in options:
        if value == current:
            links.append(f'<strong aria-current="true">{esc(text)}</strong>')
        else:
            links.append(f'<a href="{esc(filters.query(**{name: value}))}">{esc(text)}</a>')
    return f"<p><b>{esc(label)}</b> {' '.join(links)}</p>"


def _filters_html(filters: Filters, runbooks: list[str]) -> str:
    if filters.runbook and filters.runbook not in runbooks:
        runbooks = [*runbooks, filters.runbook]  # valid, just without records: still shown as chosen
    return (
        '<nav class="rx-filters" aria-label="Filters">'
        + _choice("Status", filters.status, [(None, "all"), *((s, s) for s in STATES)], filters, "status")
        + _choice("SEV", filters.sev, [(None, "all"), *((s, s) for s in incident.SEV_LEVELS)], filters, "sev")
        + _choice("Runbook", filters.runbook, [(None, "all"), *((r, r) for r in runbooks)], filters, "runbook")
        + "</nav>"
    )


def deadline_text(row: Mapping[str, Any], now: datetime) -> tuple[str, str]:
    """(the next deadline, what is overdue) of a row at ``now``: the next one neither met nor
    passed, as :func:`incident.describe` tells it; overdue are passed deadlines that still ask for
    something (all of them while the alert fires; once resolved, only the reports)."""
    found = row.get("incident")
    if not found:
        return "-", ""
    try:
        events = row.get("events") or []
        rows = incident.status(
            found, now, incident.resolved_at(events, row.get("fingerprint")), incident.reported(events)
        )
        ahead = incident.describe(incident.next_deadline(rows))
    except (KeyError, TypeError, ValueError, AttributeError):
        return "deadlines unreadable", ""
    overdue = [r for r in rows if r["passed"] and (not row.get("resolved") or r["since"] == "resolved")]
    if not overdue:
        return ahead, ""
    latest = max(overdue, key=lambda r: r["due"])
    text = incident.describe(latest)
    if len(overdue) > 1:
        others = [r["name"] for r in overdue if r is not latest]
        text += f"; also overdue: {', '.join(others)}"
    return ahead, text


def _shorten(text: str, limit: int = HEADLINE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _row_html(r: Mapping[str, Any], now: datetime) -> str:
    link = f"records/{esc(r['id'])}"
    verdict = str(r.get("verdict") or "")
    css = "unchecked" if verdict == "incomplete" else verdict or "info"
    state, run = str(r.get("state") or ""), str(r.get("run") or "")
    status = [f'<span class="rx-state rx-state-{esc(state)}">{esc(state)}</span>' if state else "no alert"]
    if run and run != "succeeded":
        status.append(f' <span class="rb-status rb-status-{esc(run)}">run {esc(run.replace("_", " "))}</span>')
    headline = str(r.get("headline") or "").split(" — ", 1)[-1]
    finding = f'<span class="rb-verdict">{esc(verdict.upper())}</span> {esc(_shorten(headline))}' if verdict else "-"
    ahead, overdue = deadline_text(r, now)
    deadline = esc(ahead) + (f'<div class="rx-overdue">OVERDUE: {esc(overdue)}</div>' if overdue else "")
    sev = str(r.get("sev") or "-")
    sev_html = f'<span class="rx-sev rx-sev-{esc(sev)}">{esc(sev)}</span>' if sev != "-" else "-"
    severity = f" ({esc(r['severity'])})" if r.get("severity") else ""
    slug = str(r.get("runbook") or "")
    runbook = f'<a href="runbooks/{esc(slug)}">{esc(slug)}</a>' if SLUG.fullmatch(slug) else esc(slug)
    return (
        f'<tr class="rx-row rb-{esc(css)}">'
        f'<td class="rx-head" data-label="Alert"><a class="rx-alert" href="{link}">{esc(r.get("alert"))}</a>'
        f'{severity}<div class="rb-note">runbook {runbook}</div></td>'
        f'<td data-label="SEV">{sev_html}</td>'
        f'<td data-label="Status">{"".join(status)}</td>'
        f'<td data-label="Worst finding">{finding}</td>'
        f'<td data-label="Next deadline">{deadline}</td>'
        f'<td data-label="Started" class="rx-when"><a href="{link}">{esc(r.get("started") or r["id"])}</a></td>'
        "</tr>"
    )


@lru_cache(maxsize=1)
def _css() -> str:
    """The record page's stylesheet (so all pages look alike) plus this page's rules."""
    try:
        base = RECORD_CSS.read_text(encoding="utf-8")
    except OSError:
        base = ""
    return base + PAGE_CSS
