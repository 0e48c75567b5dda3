"""The receiver's index of incidents, ``GET /records``: one row per archived record, newest first,
with the alert, its SEV level, whether it still fires, the worst finding (the diagnosis) and the
next incident deadline told against now, each linking to ``/records/{id}``.

Filters come from the query string (``status=firing|resolved``, ``sev=SEV-1|SEV-2|SEV-3``,
``runbook=<slug>``, ``limit=1..1000``, default 100) and are offered as plain links, so the page
needs no form and keeps ``form-action 'none'``. A bad value is a 400 (:class:`BadFilter`) that
names the parameter and what it allows, never the value sent.

Safety and costs as every page (:mod:`.pages`): autoescaped templates, the sandbox CSP, the
index scanned once per version and each record's summary read once. Per request only the
deadlines are worked out, for the rows shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from runbook_lib.core.present import iso
from runbook_lib.record.archive import Archive
from runbook_lib.sre import incident, lifecycle
from runbook_lib.sre.catalog import SLUG
from runbook_lib.web.pages import ArchiveView, IndexScan, render, verdict_css

DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
STATES = ("firing", "acknowledged", "mitigating", "resolved")
PARAMETERS = ("status", "sev", "runbook", "limit")
HEADLINE_CHARS = 160


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


class RecordsIndex:
    """Builds ``/records`` pages for one receiver (archive fixed at start)."""

    def __init__(self, archive: Archive) -> None:
        self.view = ArchiveView(archive)

    def page(self, params: Iterable[tuple[str, str]], now: datetime) -> str:
        """The page's HTML for a query string's (name, value) pairs. Raises BadFilter."""
        index = self.view.scan()
        runbooks = sorted({str(r["runbook"]) for r in index.records if SLUG.fullmatch(str(r["runbook"]))})
        filters = parse_filters(params, runbooks)
        matched = []
        for entry in _newest_first(index):
            if filters.runbook and entry["runbook"] != filters.runbook:
                continue
            row = {**self.view.summary(entry["id"]), "runbook": entry["runbook"]}
            events = index.events.get(entry["id"], [])
            story = lifecycle.summarize(events, row.get("fingerprint"))
            row["resolved"] = story["state"] == "resolved"
            is_incident = row.get("incident") is not None  # the run of an approved fix is not one
            row["resolved"] = row["resolved"] and is_incident
            row["state"] = story["state"] if is_incident else ""
            # what follows the state word: "by Avery Example at ...", "rollback run by ..."
            row["story"] = lifecycle.headline(story).removeprefix(story["state"]).lstrip(": ") if is_incident else ""
            if (
                filters.status
                and row["state"] != filters.status
                and not (filters.status == "firing" and row["state"] in ("acknowledged", "mitigating"))
            ):  # "firing": every open incident, acknowledged or not
                continue
            if filters.sev and row["sev"] != filters.sev:
                continue
            row["events"] = events
            matched.append(row)
        shown = matched[: filters.limit]
        count = f"{len(matched)} of {len(index.records)} records" if filters.active else f"{len(index.records)} records"
        if len(shown) < len(matched):
            count += f", the newest {len(shown)} shown"
        return render(
            "records.html.j2",
            count=count,
            now=iso(now),
            choices=_choices(filters, runbooks),
            error=index.error,
            rows=[_row(r, now) for r in shown],
            empty="No record matches these filters." if filters.active else "No records in the archive yet.",
        )


def _newest_first(index: IndexScan) -> list[dict[str, Any]]:
    """Newest run first: by the start time in the record id, then by index position."""
    return sorted(index.records, key=lambda r: (r["id"][:16], r["seq"]), reverse=True)


def _choices(filters: Filters, runbooks: list[str]) -> list[dict[str, Any]]:
    """The filter links: for each filter, its options with the current one marked."""
    if filters.runbook and filters.runbook not in runbooks:
        runbooks = [*runbooks, filters.runbook]  # valid, just without records: still shown as chosen
    out = []
    for label, name, current, values in (
        ("Status", "status", filters.status, STATES),
        ("SEV", "sev", filters.sev, incident.SEV_LEVELS),
        ("Runbook", "runbook", filters.runbook, runbooks),
    ):
        options = [(None, "all"), *((v, v) for v in values)]
        out.append(
            {
                "label": label,
                "options": [
                    {"text": text, "current": value == current, "href": filters.query(**{name: value})}
                    for value, text in options
                ],
            }
        )
    return out


def deadline_text(row: Mapping[str, Any], now: datetime) -> tuple[str, str]:
    """(the next deadline, what is overdue) of a row at ``now``: the next one neither met nor
    passed, as :func:`incident.describe` tells it; overdue are passed deadlines that still ask for
    something (all of them while the alert fires; once resolved, only the reports)."""
    found = row.get("incident")
    if not found:
        return "-", ""
    try:
        events = row.get("events") or []
        rows = incident.record_status(found, now, events, row.get("fingerprint"))
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


def _row(r: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What the template shows of one row."""
    verdict = str(r.get("verdict") or "")
    ahead, overdue = deadline_text(r, now)
    slug = str(r.get("runbook") or "")
    return {
        "id": r["id"],
        "css": verdict_css(verdict),
        "alert": r.get("alert"),
        "severity": r.get("severity") or "",
        "runbook": slug,
        "runbook_link": bool(SLUG.fullmatch(slug)),
        "sev": str(r.get("sev") or "-"),
        "state": str(r.get("state") or ""),
        "story": str(r.get("story") or ""),
        "has_alert": bool(r.get("has_alert")),
        "run": str(r.get("run") or ""),
        "verdict": verdict,
        "headline": _shorten(str(r.get("headline") or "").split(" — ", 1)[-1]),
        "ahead": ahead,
        "overdue": overdue,
        "started": r.get("started") or "",
    }
