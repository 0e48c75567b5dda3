"""Incident reports built from an archived record, never by hand: the timeline (firing, receipt,
each runbook step with its time, actions, audit_logs rows in the incident window, resolution),
the findings, the SEV level and its deadlines, the roles to fill in, root cause and impact
pre-filled from the findings and marked for a human to complete, and the runbook's own
Post-Incident checklist.

A written report is attached to the archive: ``reports/<record id>/report-<n>.<fmt>``, its
sha256 chained in the index as a ``report`` event, so ``runbook verify`` covers it."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runbook_lib.core.contract import worst_first
from runbook_lib.core.present import duration, iso, visible, when
from runbook_lib.record import diagnosis
from runbook_lib.record.archive.base import Archive
from runbook_lib.sre import incident, lifecycle

STEP_CALL = re.compile(r"""^rb\.step\(\s*(?P<n>[^,]+?)\s*,\s*(?P<q>["'])(?P<title>.*?)(?P=q)\s*\)""", re.M)


@dataclass
class Event:
    at: datetime
    what: str
    source: str  # alertmanager, receiver, runbook, action, audit_logs


@dataclass
class Report:
    record: dict[str, Any]
    timeline: list[Event] = field(default_factory=list)
    checklist: list[str] = field(default_factory=list)
    audit_note: str = ""


def build(
    archive: Archive, record_id: str, audit_rows: list[dict[str, Any]] | None = None, audit_note: str = ""
) -> Report:
    """The report of one record (``audit_rows``: audit_logs rows of the incident window, read
    by the caller where PostgreSQL is configured)."""
    record = archive.load(record_id)
    nb = json.loads(archive.read_record_file(record_id, "notebook.ipynb"))
    report = Report(record=record, checklist=_checklist(nb), audit_note=audit_note)
    alert = record.get("alert") or {}
    add = report.timeline.append
    if fired := when(alert.get("startsAt")):
        add(Event(fired, f"{(alert.get('labels') or {}).get('alertname', 'alert')} fired", "alertmanager"))
    if received := when((record.get("intake") or {}).get("received_at")):
        add(Event(received, "notification received by the runbook receiver", "receiver"))
    if started := when(record.get("started_at")):
        add(Event(started, f"runbook {record.get('runbook')} started ({record.get('mode')} mode)", "runbook"))
    for at, label in _steps(nb):
        add(Event(at, label, "runbook"))
    if ended := when(record.get("ended_at")):
        add(Event(ended, f"runbook {record.get('status')}: {diagnosis.of(record).get('headline', '')}", "runbook"))
    for action in record.get("actions") or []:
        if at := when(action.get("at")):
            add(
                Event(
                    at,
                    f"{action.get('title')}: {action.get('status')} ({action.get('operator') or 'no operator'})",
                    "action",
                )
            )
    for row in audit_rows or []:
        if at := when(row.get("created_at")):
            add(
                Event(
                    at,
                    f"audit: {row.get('actor')} {row.get('action')} {row.get('resource_type')}/{row.get('resource_id')} -> {row.get('outcome')}",
                    "audit_logs",
                )
            )
    for event in record.get("events") or []:
        data = event.get("data") or {}
        human = lifecycle.event_line(event)
        if human is not None and (at := when(lifecycle.at_of(event))):
            add(Event(at, human, str(data.get("via") or "cli")))
        elif event.get("event") in ("resolved", "resolved-without-record") and (at := when(data.get("ends_at"))):
            add(Event(at, "alert resolved", "alertmanager"))
    report.timeline.sort(key=lambda e: e.at)
    return report


def window(record: dict[str, Any]) -> tuple[datetime, datetime]:
    """The incident window: from its firing (or the run) to its resolution (or now), plus an hour."""
    alert = record.get("alert") or {}
    start = when(alert.get("startsAt")) or when(record.get("started_at")) or datetime.now(UTC)
    end = when(incident.record_resolved_at(record)) or datetime.now(UTC)
    return start - timedelta(minutes=5), end + timedelta(hours=1)


def _steps(nb: dict[str, Any]) -> list[tuple[datetime, str]]:
    out = []
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = "".join(cell.get("source") or "")
        m = STEP_CALL.search(source)
        at = when(((cell.get("metadata") or {}).get("papermill") or {}).get("start_time"))
        if m and at:
            n = m["n"].strip().strip("\"'")
            label = f"Step {n}" if n.isdigit() else n
            out.append((at, f"{label}: {m['title']}"))
    return out


def _checklist(nb: dict[str, Any]) -> list[str]:
    """The runbook's own checklist for afterwards: its '## Post-Incident' section (a drill's
    '## Post-Drill')."""
    items, inside = [], False
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in "".join(cell.get("source") or "").splitlines():
            if line.startswith("## "):
                inside = line.strip().lower() in ("## post-incident", "## post-drill")
            elif inside and line.strip().startswith("- ["):
                items.append(re.sub(r"^- \[[ xX]\]\s*", "", line.strip()))
    return items


MD_SPECIAL = re.compile(r"([\\`*_\[\]<>!])")  # links, images, HTML, emphasis, code; lines are flattened


def _md(value: Any) -> str:
    """A record value (alert labels are untrusted) as one line of Markdown text: control
    characters made visible, newlines flattened, every character with a meaning escaped, so a
    label can neither add a heading nor a link nor an image."""
    flat = " ".join(visible(str(value if value is not None else "")).split())
    return MD_SPECIAL.sub(r"\\\1", flat)


def markdown(report: Report, now: datetime | None = None) -> str:
    """The report as Markdown (every value from the record made visible: no control characters)."""
    rec = report.record
    alert = rec.get("alert") or {}
    labels = alert.get("labels") or {}
    d = diagnosis.of(rec)
    now = now or datetime.now(UTC)
    inc = rec.get("incident")
    events = rec.get("events") or []
    story = lifecycle.summarize(events, alert.get("fingerprint"))
    rows = incident.record_status(inc, now, events, alert.get("fingerprint"))
    roles = story["roles"]

    def role(key: str) -> str:
        r = roles.get(key)
        return f"{_md(r['person'])} (assigned by {_md(r['by'])} at {iso(r['at'])})" if r else "TO COMPLETE"

    findings = worst_first([f for f in rec.get("findings") or [] if f.get("verdict") != "unchecked"])
    lines = [
        f"# Incident report: {_md(labels.get('alertname') or rec.get('runbook'))} ({rec['id']})",
        "",
        "_Built by `runbook report` from the archived record; sections marked TO COMPLETE are for a human._",
        "",
        "## Summary",
        "",
        f"- **Severity:** {inc['sev']}: {inc['meaning']}" if inc else "- **Severity:** no alert (not an incident)",
        f"- **Alert:** {_md(labels.get('alertname', ''))} ({_md(labels.get('severity', ''))}), fired {iso(alert.get('startsAt'))}",
        f"- **Status:** {_md(lifecycle.headline(story)) if story['state'] != 'firing' else 'still firing, not acknowledged, when this report was built'}",
        f"- **Diagnosis:** {_md(d.get('headline', ''))}",
        f"- **Record:** {rec['id']} (runbook {rec.get('runbook')}, {rec.get('status')})",
        "",
        "## Roles",
        "",
        f"- **Incident Commander (IC):** {role('ic')}",
        f"- **Technical Lead (TL):** {role('tl')}",
        f"- **Communications Lead (CL):** {role('cl')}",
        "",
        "## Deadlines",
        "",
    ]
    lines += [
        f"- {r['name']}: due {r['due']}"
        + (f", done {r['done_at']}" if r.get("done_at") else "")
        + (" — met" if r["met"] else " — **missed**" if r.get("done_at") else " — **passed**" if r["passed"] else "")
        for r in rows
    ] or ["- none (SEV-3: a ticket, fixed in the next sprint)"]
    lines += ["", "## Timeline (UTC)", ""]
    lines += [f"- {iso(e.at)} [{e.source}] {_md(e.what)}" for e in report.timeline]
    if report.audit_note:
        lines.append(f"- ({report.audit_note})")
    lines += ["", "## Findings", ""]
    lines += [f"- **{f['verdict'].upper()}** {_md(f.get('check'))}: {_md(f.get('summary'))}" for f in findings]
    lines += ["", "## Root cause (TO COMPLETE)", ""]
    # The diagnosis's cause line (the leading cause finding and its code), never every finding
    # that calls itself a cause: a stale or superseded one would become the report's root cause.
    if d.get("cause"):
        code = f" (cause code: {_md(d['cause_code'])})" if d.get("cause_code") else ""
        lines.append(f"- Pre-filled from the diagnosis: {_md(d['cause'])}{code}")
    elif d.get("cause_code"):
        lines.append(f"- Pre-filled from the diagnosis: cause code {_md(d['cause_code'])}; the details: TO COMPLETE.")
    else:
        lines.append("- The runbook named no cause: TO COMPLETE.")
    symptom = d.get("symptom") or "no symptom recorded"
    lines += ["", "## Impact (TO COMPLETE)", "", f"- Pre-filled from the diagnosis: {_md(symptom)}"]
    if (fired := when(alert.get("startsAt"))) and (ended := when(incident.record_resolved_at(rec))):
        lines.append(f"- Duration: {duration((ended - fired).total_seconds())} from firing to resolution.")
    lines += ["", "## Actions taken", ""]
    taken = [
        f"- {_md(a.get('title'))}: {a.get('status')} ({_md(a.get('operator') or 'no operator')})"
        for a in rec.get("actions") or []
    ]
    taken += [  # approved fixes run afterwards, each its own record
        f"- {_md(x.get('action'))}: {_md(x.get('outcome'))}, run by {_md(x.get('by'))} at {iso(x.get('at'))},"
        f" approved by {_md(', '.join(x.get('approvers') or []))} (record {_md(x.get('record'))})"
        for x in story["executed"]
    ]
    lines += taken or ["- none"]
    lines += ["", "## Post-Incident checklist (from the runbook)", ""]
    lines += [f"- [ ] {_md(item)}" for item in report.checklist] or ["- [ ] Write the postmortem"]
    return "\n".join(lines) + "\n"


def html(report: Report, now: datetime | None = None) -> str:
    """The same report as a standalone HTML page (escaped; no scripts)."""
    from runbook_lib.core.present import esc

    body = []
    for line in markdown(report, now).splitlines():
        if line.startswith("# "):
            body.append(f"<h1>{esc(_unescape(line[2:]))}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{esc(_unescape(line[3:]))}</h2>")
        elif line.startswith("- "):
            text = esc(_unescape(line[2:].replace("**", "")))
            body.append(f"<li>{text}</li>")
        elif line.strip():
            body.append(f"<p>{esc(line.strip('_'))}</p>")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Incident report {esc(report.record['id'])}</title>"
        "<style>body{font-family:sans-serif;max-width:50rem;margin:1rem auto;padding:0 1rem;line-height:1.4}"
        "li{margin:.2rem 0;overflow-wrap:anywhere}</style></head><body>" + "\n".join(body) + "</body></html>\n"
    )


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def attach(archive: Archive, record_id: str, text: str, fmt: str) -> tuple[Path | str, dict[str, Any]]:
    """Attach the report to the archive (see :meth:`Archive.attach_report`)."""
    return archive.attach_report(record_id, text, fmt)


def attached_unchanged(record: Mapping[str, Any], text: str, fmt: str) -> str | None:
    """The path of the newest attached report of this format when it holds exactly ``text``
    (by its chained sha256): attaching it again would only add report-N+1 with the same words."""
    latest = next(
        (
            e.get("data") or {}
            for e in reversed(record.get("events") or [])
            if e.get("event") == "report" and (e.get("data") or {}).get("format") == fmt
        ),
        None,
    )
    if latest and latest.get("sha256") == hashlib.sha256(text.encode("utf-8")).hexdigest():
        return str(latest.get("path"))
    return None
