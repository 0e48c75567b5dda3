"""Chaining what people do about an incident (acknowledge, assign a role, post an update,
escalate, approve, resolve, reopen) as events on its record: the one writer the CLI, Slack's
buttons and PagerDuty's webhooks use (the receiver's escalation timers chain theirs with their
own check, :mod:`runbook_lib.receiver.escalation`). Each event
is checked against the record's events under the archive's lock (:mod:`runbook_lib.sre.lifecycle`
says what is allowed), so two clicks at once cannot both acknowledge, and nothing but a reopening
happens to a resolved incident."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from runbook_lib.core.errors import ArchiveError, Refused
from runbook_lib.core.present import iso, one_line, visible, when
from runbook_lib.record.archive.base import Archive
from runbook_lib.sre import lifecycle

MAX_TEXT = 2000  # an update or a note: one screen, not a document
MAX_NAME = 100


def _clean(text: Any, limit: int, what: str) -> str:
    value = visible(one_line(str(text or ""))).strip()
    if not value:
        raise Refused(f"{what} is empty")
    if len(value) > limit:
        raise Refused(f"{what} is {len(value)} characters; at most {limit}")
    return value


def load_incident(archive: Archive, ref: str) -> dict[str, Any]:
    """The record ``ref`` (an id or a unique part of one) names, as an incident: Refused when it
    ran without an alert (a manual run is not an incident)."""
    try:
        record = archive.load(archive.find(ref))
    except ArchiveError as exc:
        raise Refused(str(exc)) from None
    if not record.get("alert"):
        raise Refused(f"record {record['id']} ran without an alert: it is not an incident")
    if record.get("origin") == "approval":
        of = next((r.get("record_id") for r in record.get("related_records") or []), None)
        raise Refused(f"record {record['id']} is the run of an approved fix, not an incident: act on {of}")
    return record


def act(
    archive: Archive,
    ref: str,
    kind: str,
    by: str,
    *,
    via: str = "cli",
    now: Any = None,
    role: str | None = None,
    **data: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Chain ``kind`` (a :data:`lifecycle.HUMAN_EVENTS` name) by ``by`` on the incident ``ref``;
    returns (the record as loaded before, the chained index line). Refused (exit 2) with the
    reason for an unknown record, a record without an alert, a resolved incident (but to reopen
    it), a second acknowledgement, an unknown role, an empty operator or text."""
    if kind not in lifecycle.HUMAN_EVENTS:
        raise Refused(f"unknown incident event {kind!r}")
    who = _clean(by, MAX_NAME, "the operator") if kind != "escalated" else str(by or "receiver")
    record = load_incident(archive, ref)
    fingerprint = (record.get("alert") or {}).get("fingerprint")
    moment = iso(when(now) or datetime.now(UTC))  # a sender's unreadable time is not kept
    body: dict[str, Any] = {"by": who, "via": via, "at": moment}
    if kind == "assigned":
        body["role"] = role
        body["person"] = _clean(data.pop("person", ""), MAX_NAME, "--person")
    for key in ("text", "note", "why"):
        if key in data and data[key] is not None:
            body[key] = _clean(data.pop(key), MAX_TEXT, key)
        data.pop(key, None)
    body.update({k: v for k, v in data.items() if v is not None})

    def check(events: list[dict[str, Any]]) -> str | None:
        why = lifecycle.refusal(lifecycle.summarize(events, fingerprint), kind, who, role)
        return f"record {record['id']}: {why}" if why else None

    entry = archive.append_event(record["id"], kind, body, check=check)
    return record, entry


def story(record: Mapping[str, Any]) -> dict[str, Any]:
    """Where a loaded record's incident stands (:func:`lifecycle.summarize`)."""
    return lifecycle.summarize(record.get("events") or [], (record.get("alert") or {}).get("fingerprint"))
