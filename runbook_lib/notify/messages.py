"""Optional notifications after a record is archived: a Slack incoming webhook (every alert, Block
Kit) and/or a PagerDuty Events v2 endpoint (critical alerts only, as the SRE package routes
pages; not for an incomplete diagnosis unless notify.page_incomplete). Off unless their secret
is set in the environment. Best effort, two tries: a failed notification is logged and noted on
the job in the intake journal, never blocks a record. With notify.link_signing_key the record
link is signed and expiring (:mod:`runbook_lib.core.signing`), so it opens from a phone's browser."""

from __future__ import annotations

import hashlib
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx
from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from runbook_lib.core import signing
from runbook_lib.core.contract import worst_first
from runbook_lib.core.credentials import safe_endpoint
from runbook_lib.core.present import ago, duration, finding_text, more, one_line, slack_text, visible
from runbook_lib.core.settings import Settings
from runbook_lib.core.shapes import Record
from runbook_lib.record import diagnosis

log = logging.getLogger("runbook.notify")
_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
PAGE_SEVERITIES = {"critical"}  # the package pages for critical alerts only; Slack gets all


def record_url(settings: Settings, record_id: str, now: float | None = None) -> str | None:
    """The link to a record in a message: signed and expiring (``/r/<id>?exp=&sig=``, opens in a
    browser without the receiver's credentials) when notify.link_signing_key is set, else the
    plain ``/records/<id>``; None without notify.record_base_url."""
    cfg = settings.notify
    if not cfg.record_base_url:
        return None
    base = cfg.record_base_url.rstrip("/")
    if cfg.link_signing_key is None:
        return f"{base}/records/{record_id}"
    moment = time.time() if now is None else now
    return base + signing.signed_path(cfg.link_signing_key.get_secret_value(), record_id, moment, cfg.link_ttl_s)


def summary_lines(record: Record, top: int = 3) -> list[str]:
    findings = worst_first([f for f in record.get("findings", []) if f.get("verdict") != "unchecked"])
    lines = [finding_text(f, step=False, limit=200, inline=True) for f in findings[:top]]
    if len(findings) > top:
        lines.append(more(top, len(findings)))
    found = record.get("incident") or {}
    if who := found.get("on_call"):
        lines.append(
            f"{found.get('sev')}; on call: {who['primary']} (secondary {who['secondary']}, manager {who['manager']})"
        )
    return lines


def dedup_key(group_key: str, fingerprint: str) -> str:
    """The key Alertmanager's own PagerDuty integration uses for a group (sha256 of the group
    key, hex), so our event lands on the incident Alertmanager opened instead of a second one."""
    if group_key:
        return hashlib.sha256(group_key.encode()).hexdigest()
    return f"runbook-{fingerprint}"


EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "incomplete": ":purple_circle:"}


@dataclass
class Message:
    """One notification, kept as plain data and rendered per service: Slack gets Block Kit with
    its mrkdwn escaping (``&``, ``<``, ``>``), PagerDuty plain text; both get control and bidi
    characters as visible escapes. Nothing from an alert reaches a service unescaped."""

    alertname: str
    severity: str
    verdict: str  # critical / warning / info / ok / incomplete / resolved
    headline: str  # plain text, the diagnosis (or "resolved after 15h50m")
    lines: list[str] = field(default_factory=list)
    url: str | None = None
    prometheus_url: str | None = None
    when: str = ""
    record_id: str | None = None  # with it (and Slack interactivity on): the incident's buttons
    fix: tuple[str, str] | None = None  # (approval name, button text) of the recommended fix
    state: str = ""  # who did what so far (acknowledged by ..., ...): the message updated in place

    def slack(self) -> dict[str, Any]:
        """Block Kit: a header with the verdict's colour, the diagnosis, the top findings, buttons."""
        title = f"{EMOJI.get(self.verdict, ':white_circle:')} {self.verdict.upper()} {slack_text(self.alertname)}"
        blocks: list[Any] = [
            HeaderBlock(text=PlainTextObject(text=title[:150], emoji=True)),
            SectionBlock(text=MarkdownTextObject(text=slack_text(one_line(self.headline))[:2900])),
        ]
        if self.lines:
            bullets = "\n".join(f"• {slack_text(one_line(line))}" for line in self.lines)
            blocks.append(SectionBlock(text=MarkdownTextObject(text=bullets[:2900])))
        context = " · ".join(x for x in (self.severity, self.when) if x)
        if context:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=slack_text(context)[:2900])]))
        if self.state:
            blocks.append(ContextBlock(elements=[MarkdownTextObject(text=slack_text(one_line(self.state))[:2900])]))
        buttons = [
            ButtonElement(text=text, url=url, action_id=action)
            for text, url, action in (("Open record", self.url, "record"), ("Prometheus", self.prometheus_url, "prom"))
            if url
        ]
        if self.record_id and self.verdict != "resolved":
            buttons += [
                ButtonElement(text="Acknowledge", action_id="ack", value=self.record_id, style="primary"),
                ButtonElement(text="I'm IC", action_id="ic", value=self.record_id),
            ]
            if self.fix:
                buttons.append(
                    ButtonElement(
                        text=self.fix[1][:75],
                        action_id="approve",
                        value=f"{self.record_id} {self.fix[0]}",
                        style="danger",
                    )
                )
            buttons.append(ButtonElement(text="Resolve", action_id="resolve", value=self.record_id))
        if buttons:
            blocks.append(ActionsBlock(elements=buttons[:25]))
        fallback = f"{self.verdict.upper()} {slack_text(self.alertname)}: {slack_text(self.headline)}"
        return {
            "text": fallback[:3000],
            "blocks": [block.to_dict() for block in blocks],
            "unfurl_links": False,
            "unfurl_media": False,
        }

    def summary(self) -> str:
        return visible(f"{self.verdict.upper()} {self.alertname}: {self.headline}")[:1024]

    def details(self) -> list[str]:
        return [visible(line) for line in self.lines]


class Notifier:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        cfg = settings.notify
        self.slack_url = cfg.slack_webhook_url.get_secret_value() if cfg.slack_webhook_url else None
        self.pd_key = cfg.pagerduty_routing_key.get_secret_value() if cfg.pagerduty_routing_key else None

    @property
    def enabled(self) -> bool:
        return bool(self.slack_url or self.pd_key)

    @property
    def interactive(self) -> bool:
        """Slack's buttons are answered here (incident.slack_signing_secret is set)."""
        return self.settings.incident.slack_signing_secret is not None

    def card(self, record: Record, state: str = "") -> Message:
        """The message about a record: its diagnosis, top findings, links and, with Slack
        interactivity, the incident's buttons (Acknowledge, I'm IC, the recommended fix, Resolve)."""
        alert = record.get("alert") or {}
        labels = alert.get("labels") or {}
        d = diagnosis.of(record)
        prometheus = next(
            (
                link["url"]
                for link in record.get("links") or []
                if link.get("from") != "alert" and "Prometheus" in link["title"]
            ),
            None,
        )
        action = d.get("recommended_action") or {}
        fix = None
        if action.get("name") not in (None, "none", "escalate"):
            fix = (str(action["name"]), f"Approve: {action.get('title') or action['name']}")
        return Message(
            alertname=labels.get("alertname", "?"),
            severity=labels.get("severity", ""),
            verdict=d["verdict"],
            headline=d["headline"].split(" — ", 1)[-1],
            lines=summary_lines(record),
            url=record_url(self.settings, record["id"]),
            prometheus_url=prometheus,
            when=" · ".join(
                x
                for x in (
                    f"fired {ago(alert.get('startsAt'), record.get('started_at'))}" if alert.get("startsAt") else "",
                    "also firing: " + ", ".join(str(a.get("alertname")) for a in record.get("linked_alerts") or [])
                    if record.get("linked_alerts")
                    else "",
                )
                if x
            ),
            record_id=record["id"] if self.interactive and alert else None,
            fix=fix,
            state=state,
        )

    def say(self, text: str, mention: list[str] | None = None) -> list[str]:
        """One plain line to the Slack channel (an escalation, an approved fix's outcome), with
        ``mention`` (Slack member ids) pinged: the ids come from the roster, never from an alert."""
        if not self.slack_url:
            return []
        pings = " ".join(f"<@{m}>" for m in mention or [] if m.isalnum())
        body = {"text": f"{pings} {slack_text(text)}".strip()[:3000], "unfurl_links": False}
        return self._post("Slack", self.slack_url, body)

    def response_url_ok(self, url: Any) -> bool:
        """A Slack interaction's response_url we may call: on incident.slack_response_hosts only
        (the URL comes in a request; it must never make the receiver call anywhere else)."""
        if not isinstance(url, str):
            return False
        parts = urllib.parse.urlsplit(url)
        return (
            parts.scheme in ("https", "http") and (parts.hostname or "") in self.settings.incident.slack_response_hosts
        )

    def respond(self, response_url: str, body: dict[str, Any]) -> list[str]:
        """Answer a Slack interaction through its response_url (only on an allowed host)."""
        if not self.response_url_ok(response_url):
            return ["Slack: response_url not on incident.slack_response_hosts; not called"]
        return self._post("Slack", response_url, body)

    def to_thread(self, response_url: str | None, text: str) -> list[str]:
        """A line where a click came from (its response_url, visible to the channel), else the
        channel's webhook."""
        if response_url and self.response_url_ok(response_url):
            return self.respond(
                response_url,
                {"response_type": "in_channel", "replace_original": False, "text": slack_text(text)[:3000]},
            )
        return self.say(text)

    def resolve_page(self, record: Record) -> list[str]:
        """PagerDuty's resolve for the incident this receiver paged (incident.pagerduty_pages):
        nobody else would close it."""
        if not (self.pd_key and self.settings.incident.pagerduty_pages):
            return []
        alert = record.get("alert") or {}
        if (alert.get("labels") or {}).get("severity") not in PAGE_SEVERITIES:
            return []  # never paged
        event = {
            "routing_key": self.pd_key,
            "event_action": "resolve",
            "dedup_key": dedup_key((record.get("intake") or {}).get("group_key", ""), alert.get("fingerprint", "")),
        }
        return self._post("PagerDuty", self.settings.notify.pagerduty_url, event)

    def record_done(self, record: Record) -> list[str]:
        """Send the record's diagnosis; returns errors (empty when all went out)."""
        alert = record.get("alert") or {}
        labels = alert.get("labels") or {}
        d = diagnosis.of(record)
        message = self.card(record)
        errors = []
        if self.slack_url:
            errors += self._post("Slack", self.slack_url, message.slack())
        page = labels.get("severity") in PAGE_SEVERITIES and (
            not d["incomplete"] or self.settings.notify.page_incomplete
        )
        if self.pd_key and page:
            details = {"record": record["id"], "verdict": d["verdict"], "findings": message.details()}
            errors += self._page(
                message,
                dedup_key((record.get("intake") or {}).get("group_key", ""), alert.get("fingerprint", "")),
                details,
            )
        return errors

    def resolved(
        self, alertname: str, severity: str, fingerprint: str, record_id: str | None, duration_s: float | None
    ) -> list[str]:
        """Slack only: Alertmanager resolves its own PagerDuty incident when the whole group resolves
        (a resolve from us, per alert, could close it while others still fire)."""
        took = f" after {duration(duration_s)}" if duration_s is not None and duration_s >= 0 else ""
        url = record_url(self.settings, record_id) if record_id else None
        message = Message(alertname, severity, "resolved", f"resolved{took}.", url=url)
        return self._post("Slack", self.slack_url, message.slack()) if self.slack_url else []

    def _page(self, message: Message, key: str, details: dict[str, Any]) -> list[str]:
        event: dict[str, Any] = {
            "routing_key": self.pd_key,
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": message.summary(),
                "source": "omnihub-runbooks",
                "severity": _PD_SEVERITY.get(message.severity, "warning"),
                "custom_details": details,
            },
        }
        if message.url:
            event["links"] = [{"href": message.url, "text": "Runbook record (diagnosis)"}]
        return self._post("PagerDuty", self.settings.notify.pagerduty_url, event)

    def _post(self, what: str, url: str, body: dict[str, Any]) -> list[str]:
        where = safe_endpoint(url) if what == "PagerDuty" else "the Slack webhook"
        timeout = httpx.Timeout(self.settings.notify.timeout_s)
        for attempt in (1, 2):
            try:
                resp = httpx.post(url, json=body, timeout=timeout)
                if resp.status_code < 300:
                    return []
                err = f"{what}: {where} answered HTTP {resp.status_code}"
                if resp.status_code < 500:
                    break
            except httpx.HTTPError as exc:
                err = f"{what}: {where} unreachable ({type(exc).__name__})"
            if attempt == 1:
                continue
        log.warning("notification failed: %s", err)
        return [err]
