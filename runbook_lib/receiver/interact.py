"""People acting on an incident from outside the terminal: Slack's buttons (``POST
/slack/actions``) and PagerDuty's v3 webhooks (``POST /pagerduty/webhook``). Both are verified
before anything is read (Slack: v0 HMAC-SHA256 of ``v0:<timestamp>:<body>`` with the signing
secret, within the 5-minute window; PagerDuty: ``X-PagerDuty-Signature: v1=<HMAC-SHA256 of the
body>``), and a signed body is acted on once: a replay within the window is refused too.

What a click does is chained on the incident's record through :mod:`runbook_lib.record.incidents`,
the same writer as `runbook ack`. Approving the recommended fix never runs it here: it queues a
job of kind "action" in the journal, which a worker runs (resolve mode, the clicker as operator,
the approval named); only people on call now, or the roster's approvers, may approve, and a
destructive action waits for a second, different person (:func:`lifecycle.needs_two`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from runbook_lib.clients.oncall_overrides import overrides_at
from runbook_lib.core.contract import pin
from runbook_lib.core.errors import ArchiveError, ConfigError, JournalError, Refused, RunbookError
from runbook_lib.core.present import iso, slack_text, when
from runbook_lib.core.settings import Settings
from runbook_lib.intake.journal import Intake
from runbook_lib.notify.messages import Notifier, dedup_key
from runbook_lib.record.archive import Archive
from runbook_lib.record.incidents import act, load_incident, story
from runbook_lib.sre import lifecycle, oncall

log = logging.getLogger("runbook.interact")
MAX_BODY = 64 * 1024  # Slack's interaction payloads and PagerDuty's webhooks are a few KiB


@dataclass
class Answer:
    """What an interaction answers (status, JSON body) and what to do after answering."""

    status: int
    body: dict[str, Any]
    after: list[Callable[[], Any]] = field(default_factory=list)


def slack_signature_problem(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float, window_s: float
) -> str | None:
    """None when Slack signed ``body`` (v0) with ``secret`` within ``window_s`` of ``now``; else why not."""
    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    if not timestamp.isdigit():
        return "malformed timestamp"
    if abs(now - int(timestamp)) > window_s:
        return "stale timestamp (outside the replay window)"
    base = b"v0:" + timestamp.encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, signature.strip()) else "bad signature"


def pagerduty_signature_problem(secret: str, header: str | None, body: bytes) -> str | None:
    """None when one of the header's ``v1=`` signatures is the body's HMAC-SHA256 with ``secret``
    (PagerDuty lists several while a secret is rotated)."""
    if not header:
        return "missing X-PagerDuty-Signature"
    expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = [part.strip() for part in header.split(",")]
    return None if any(hmac.compare_digest(expected, g) for g in given) else "bad signature"


class Interactions:
    def __init__(self, settings: Settings, intake: Intake, archive: Archive, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.intake = intake
        self.archive = archive
        self.notifier = notifier or Notifier(settings)
        cfg = settings.incident
        self.slack_secret = cfg.slack_signing_secret.get_secret_value() if cfg.slack_signing_secret else None
        self.pd_secret = cfg.pagerduty_webhook_secret.get_secret_value() if cfg.pagerduty_webhook_secret else None

    # -- who ------------------------------------------------------------------------------------
    def roster(self) -> oncall.Roster:
        return oncall.Roster.load(oncall.roster_path(self.settings.home))

    def on_call(self, roster: oncall.Roster, at: datetime) -> oncall.OnCall:
        """Who is on call at ``at``: the rotation with the schedule overrides stored in
        PostgreSQL (when it is configured; without it, the rotation alone)."""
        return oncall.effective(roster, at, overrides_at(self.settings, roster, at))

    def may_approve(self, roster: oncall.Roster, person: oncall.Person, at: datetime) -> str | None:
        """None when ``person`` may approve a fix now: primary, secondary or manager on call, or
        one of the roster's approvers; else why not."""
        try:
            now = self.on_call(roster, at)
        except RunbookError as exc:  # never guess who is on call when the overrides cannot be read
            return f"who is on call cannot be read now ({exc})"
        allowed = {now.primary.name, now.secondary.name, now.manager.name, *roster.approvers}
        if person.name in allowed:
            return None
        return (
            f"{person.name} is not on call now (primary {now.primary.name}, secondary {now.secondary.name}, "
            f"manager {now.manager.name}) and not one of the roster's approvers: only they may approve a fix"
        )

    # -- Slack ----------------------------------------------------------------------------------
    def slack(self, headers: Any, body: bytes, now: float) -> Answer:
        """One Slack interaction (a button click)."""
        if self.slack_secret is None:
            return Answer(404, {"error": "not found"})
        why = slack_signature_problem(
            self.slack_secret,
            headers.get("x-slack-request-timestamp"),
            headers.get("x-slack-signature"),
            body,
            now,
            self.settings.incident.signature_window_s,
        )
        if why is None and not self.intake.first_sight(
            "slack:" + hashlib.sha256(body).hexdigest(), now, 2 * self.settings.incident.signature_window_s
        ):
            why = "replayed request"
        if why is not None:
            log.warning("Slack interaction refused: %s", why)
            return Answer(401, {"error": why})
        try:
            payload = json.loads(urllib.parse.parse_qs(body.decode("utf-8")).get("payload", [""])[0])
            user = str(payload["user"]["id"])[:40]
            clicked = payload["actions"][0]
            action_id, value = str(clicked["action_id"])[:40], str(clicked.get("value") or "")[:300]
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeError):
            return Answer(400, {"error": "not a Slack block_actions payload"})
        response_url = payload.get("response_url")
        if action_id in ("record", "prom"):  # a link button: Slack tells us, the browser did the work
            return Answer(200, {})
        try:
            text, card = self._slack_click(user, action_id, value, now, response_url)
        except (ArchiveError, JournalError, OSError) as exc:  # the archive or journal, not the click
            log.warning("Slack interaction not recorded: %s", type(exc).__name__)
            return Answer(503, {"error": "the archive cannot be written right now; click again"})
        text = slack_text(text)  # names and reasons may carry <!channel> and the like
        answer = Answer(200, {"text": text})
        if self.notifier.response_url_ok(response_url):
            reply = {"response_type": "ephemeral", "replace_original": False, "text": text}
            answer.after.append(lambda: self.notifier.respond(response_url, reply))
            if card is not None:
                answer.after.append(lambda: self.notifier.respond(response_url, {"replace_original": True, **card}))
        elif response_url:
            log.warning("Slack response_url not on an allowed host (incident.slack_response_hosts): not called")
        return answer

    def _slack_click(
        self, user: str, action_id: str, value: str, now: float, response_url: Any = None
    ) -> tuple[str, dict[str, Any] | None]:
        """(the reply to the clicker, the updated card or None)."""
        at = datetime.fromtimestamp(now, UTC)
        try:
            roster = self.roster()
        except ConfigError as exc:
            return f"Refused: the on-call roster cannot be read ({exc}).", None
        person = oncall.person_by_slack(roster, user)
        if person is None:
            return (
                f"Refused: your Slack user {user[:20]} is not in the on-call roster (parameters/oncall.yaml, "
                "a person's `slack` key), so this click cannot say who acted.",
                None,
            )
        record_ref, _, action = value.partition(" ")
        try:
            if action_id == "ack":
                act(self.archive, record_ref, "acknowledged", person.name, via="slack", now=at)
            elif action_id == "ic":
                act(
                    self.archive,
                    record_ref,
                    "assigned",
                    person.name,
                    via="slack",
                    now=at,
                    role="ic",
                    person=person.name,
                )
            elif action_id == "resolve":
                act(self.archive, record_ref, "resolved", person.name, via="slack", now=at, note="resolved from Slack")
            elif action_id == "approve":
                reply_to = response_url if self.notifier.response_url_ok(response_url) else None
                return self.approve(roster, person, record_ref, action, at, via="slack", reply_to=reply_to)
            else:
                return f"Refused: unknown button {action_id[:40]!r}.", None
        except Refused as exc:
            return f"Refused: {exc}", None
        record = self.archive.load(self.archive.find(record_ref))
        done = {"ack": "acknowledged", "ic": "is incident commander for", "resolve": "resolved"}[action_id]
        return f"{person.name} {done} {record['id']}.", self.card(record)

    def card(self, record: dict[str, Any]) -> dict[str, Any]:
        """The record's Slack message again, with who did what so far."""
        s = story(record)
        lines = [lifecycle.event_line(e) for e in record.get("events") or []]
        state = " · ".join([lifecycle.headline(s), *[x for x in lines if x][-4:]])
        message = self.notifier.card(record, state)
        if s["state"] == "resolved":
            message.record_id = None  # nothing left to click
        return message.slack()

    # -- approvals ------------------------------------------------------------------------------
    def approve(
        self,
        roster: oncall.Roster,
        person: oncall.Person,
        ref: str,
        action: str,
        at: datetime,
        via: str,
        reply_to: str | None = None,
    ) -> tuple[str, dict[str, Any] | None]:
        """Approve the record's recommended fix: chained, and queued for a worker once it has every
        approval it needs; the first of two only waits (a second, different person runs it)."""
        cfg = self.settings.incident
        try:
            record = load_incident(self.archive, ref)
        except Refused as exc:
            return f"Refused: {exc}", None
        recommended = ((record.get("diagnosis") or {}).get("recommended_action") or {}).get("name")
        if not action or action != recommended or action in ("none", "escalate"):
            return f"Refused: {action or '(nothing)'} is not the fix {record['id']} recommends.", None
        if why := self.may_approve(roster, person, at):
            return f"Refused: {why}.", None
        params = ((record.get("diagnosis") or {}).get("recommended_action") or {}).get("params") or {}
        needed = (
            2
            if lifecycle.needs_two(
                action, params, str(record.get("environment") or ""), cfg.two_person, cfg.dlq_replay_two_person_over
            )
            else 1
        )
        fingerprint = (record.get("alert") or {}).get("fingerprint")
        state: dict[str, Any] = {}

        def check(events: list[dict[str, Any]]) -> str | None:
            summary = lifecycle.summarize(events, fingerprint)
            if why := lifecycle.refusal(summary, "approval", person.name):
                return why
            if (queued := lifecycle.awaiting_run(summary, action)) is not None:
                state["awaiting"] = queued  # approved already: its run is queued or running
                return f"{action} was approved by {queued.get('by')} at {iso(queued.get('at'))}; its run is under way"
            pending = lifecycle.pending_approval(summary, action, at, cfg.two_person_window_s)
            if pending is not None and pending.get("by") == person.name:
                return f"you approved {action} at {iso(pending.get('at'))}; a second, different person must approve it"
            body["approvals"] = 2 if pending is not None else 1
            state["first"] = pending.get("by") if pending is not None else None
            return None

        body = {"by": person.name, "via": via, "at": iso(at), "action": action, "params": params, "needed": needed}
        try:
            entry = self.archive.append_event(record["id"], "approval", body, check=check)
        except Refused as exc:
            if (queued := state.get("awaiting")) is not None:  # make sure its run is queued (idempotent)
                self._enqueue(record["id"], queued, queued.get("by"), queued.get("approvers") or [], reply_to)
            return f"Refused: {exc}", None
        if entry["data"]["approvals"] < needed:
            minutes = cfg.two_person_window_s / 60
            return (
                f"{person.name} approved {action} for {record['id']}. It is destructive: a second, different "
                f"person on call must approve it within {minutes:g} minutes before it runs.",
                self.card(self.archive.load(record["id"])),
            )
        approvers = [x for x in (state.get("first"), person.name) if x]
        self._enqueue(record["id"], {**entry["data"], "hash": entry["hash"]}, person.name, approvers, reply_to)
        return (
            f"{action} approved by {', '.join(approvers)}: running it now on a worker (resolve mode, audited); "
            "the outcome follows here.",
            self.card(self.archive.load(record["id"])),
        )

    def _enqueue(
        self, incident: str, approval: Mapping[str, Any], operator: Any, approvers: list[str], reply_to: str | None
    ) -> int:
        """Queue the run of a complete approval (once: keyed by its index line's hash). The run
        is pinned to the parameters approved (:func:`contract.pin`)."""
        request = {
            "incident": incident,
            "action": approval["action"],
            "approve": [pin(approval["action"], approval.get("params") or {})],
            "operator": str(operator),
            "approvers": approvers or [str(operator)],
            "approval": approval["hash"],
            "via": approval.get("via", "slack"),
            "reply_to": reply_to,  # the outcome goes where the approval was given
        }
        job = self.intake.enqueue_action(incident, request, approval["hash"])
        log.info(
            "approved action queued job=%s incident=%s action=%s by=%s", job, incident, request["action"], operator
        )
        return job

    # -- PagerDuty ------------------------------------------------------------------------------
    def pagerduty(self, headers: Any, body: bytes, now: float) -> Answer:
        """A PagerDuty v3 webhook: incident.acknowledged / escalated / resolved / reopened, chained
        on the open records paged with the same dedup key (PagerDuty's incident_key). Each event
        is recorded once (PagerDuty retries until it gets a 2xx; a failure answers 503)."""
        if self.pd_secret is None:
            return Answer(404, {"error": "not found"})
        why = pagerduty_signature_problem(self.pd_secret, headers.get("x-pagerduty-signature"), body)
        if why is not None:
            log.warning("PagerDuty webhook refused: %s", why)
            return Answer(401, {"error": why})
        try:
            event = json.loads(body)["event"]
            kind = str(event["event_type"])[:60]
            data = event.get("data") if isinstance(event.get("data"), dict) else {}
            agent_doc = event.get("agent") if isinstance(event.get("agent"), dict) else {}
            key = str(data.get("incident_key") or "")[:200]
            agent = str(agent_doc.get("summary") or "PagerDuty")[:100]
            occurred = when(event.get("occurred_at")) or datetime.fromtimestamp(now, UTC)
            assignees = [str(a.get("summary") or "")[:100] for a in data.get("assignees") or [] if isinstance(a, dict)][
                :10
            ]
            ident = str(event.get("id") or hashlib.sha256(body).hexdigest())[:100]
        except (ValueError, KeyError, TypeError, AttributeError):
            return Answer(400, {"error": "not a PagerDuty v3 webhook"})
        digest = "pd:" + hashlib.sha256(ident.encode()).hexdigest()
        kinds = {
            "incident.acknowledged": "acknowledged",
            "incident.escalated": "escalated",
            "incident.resolved": "resolved",
            "incident.reopened": "reopened",
        }
        if kind not in kinds:
            return Answer(200, {"ignored": kind})
        if self.intake.seen(digest):
            return Answer(200, {"ignored": "already recorded"})
        extra: dict[str, Any] = {"pagerduty_incident": str(data.get("id") or "")[:40]}
        if kinds[kind] == "escalated":
            extra.update(step=None, to=assignees, why="PagerDuty escalation policy")
        elif kinds[kind] == "resolved":
            extra["note"] = "resolved in PagerDuty"
        recorded, ignored = [], []
        try:
            for record_id in self.records_for_key(key):
                try:
                    act(self.archive, record_id, kinds[kind], agent, via="pagerduty", now=occurred, **dict(extra))
                    recorded.append(record_id)
                except Refused as exc:
                    ignored.append(str(exc)[:200])
            self.intake.first_sight(digest, now, 30 * 86400)  # only once it is chained
        except (ArchiveError, JournalError, OSError) as exc:
            log.warning("PagerDuty webhook not recorded (PagerDuty retries): %s", type(exc).__name__)
            return Answer(503, {"error": "the archive cannot be written right now"})
        if not recorded:
            return Answer(200, {"ignored": ignored[0] if ignored else "no record has this incident_key"})
        return Answer(200, {"recorded": kinds[kind], "records": recorded})

    def records_for_key(self, key: str) -> list[str]:
        """The records paged with dedup key ``key``, newest first: from the journal (an alert
        group's runs share its key), else the archive's newest records (runs from the CLI)."""
        if not key:
            return []
        found = [
            r["record_id"] for r in self.intake.paged_records() if dedup_key(r["group_key"], r["fingerprint"]) == key
        ]
        if found:
            return list(dict.fromkeys(found))
        ids = [e["id"] for e in self.archive.entries() if e.get("type") == "record"][-200:]
        for rid in reversed(ids):
            try:
                rec = self.archive.load(rid)
            except (ArchiveError, OSError, ValueError):  # an unreadable record is not this one
                log.debug("record %s unreadable while matching an incident_key", rid)
                continue
            alert = rec.get("alert") or {}
            if alert and dedup_key((rec.get("intake") or {}).get("group_key", ""), alert.get("fingerprint", "")) == key:
                return [rid]
        return []
