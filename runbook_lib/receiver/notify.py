"""Optional notifications after a record is archived: a Slack incoming webhook (every alert)
and/or a PagerDuty Events v2 endpoint (critical alerts only, as the SRE package routes pages).
Off unless their secret is set in the environment. Best effort, two tries: a failed
notification is logged and noted on the job in the intake journal, never blocks a record."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..contract import worst_first
from ..credentials import safe_endpoint
from ..present import finding_text, slack_text, visible
from ..settings import Settings

log = logging.getLogger("runbook.notify")
_PD_SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}
PAGE_SEVERITIES = {"critical"}  # the package pages for critical alerts only; Slack gets all


def record_url(settings: Settings, record_id: str) -> str | None:
    base = settings.notify.record_base_url
    return f"{base.rstrip('/')}/records/{record_id}" if base else None


def summary_lines(record: dict[str, Any], top: int = 3) -> list[str]:
    findings = worst_first(record.get("findings", []))
    return [finding_text(f, step=False, limit=200, inline=True) for f in findings[:top]]


@dataclass
class Message:
    """One notification, kept as plain data and rendered per service: Slack gets its mrkdwn
    escaping (``&``, ``<``, ``>``), PagerDuty plain text; both get control and bidi characters
    as visible escapes. Nothing from an alert reaches a service unescaped."""

    alertname: str
    severity: str
    fingerprint: str
    headline: str  # follows the alert name: "(critical): runbook high-error-rate succeeded"
    lines: list[str] = field(default_factory=list)
    url: str | None = None

    def slack(self) -> str:
        text = f"*{slack_text(self.alertname)}* {slack_text(self.headline)}"
        text += "".join(f"\n• {slack_text(line)}" for line in self.lines)
        return text + (f"\nRecord: {slack_text(self.url)}" if self.url else "")

    def summary(self) -> str:
        return visible(f"{self.alertname} {self.headline}")[:1024]

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

    def record_done(self, record: dict[str, Any]) -> list[str]:
        """Send the record's summary; returns errors (empty when all went out)."""
        alert = record.get("alert") or {}
        labels = alert.get("labels") or {}
        message = Message(
            alertname=labels.get("alertname", "?"),
            severity=labels.get("severity", ""),
            fingerprint=alert.get("fingerprint", ""),
            headline=f"({labels.get('severity', '')}): runbook {record['runbook']} {record['status']}",
            lines=summary_lines(record),
            url=record_url(self.settings, record["id"]),
        )
        details = {"record": record["id"], "status": record["status"], "findings": message.details()}
        return self._send(message, "trigger", details)

    def resolved(
        self, alertname: str, severity: str, fingerprint: str, record_id: str | None, duration_s: float | None
    ) -> list[str]:
        took = f" after {duration_s:.0f} s" if duration_s is not None and duration_s >= 0 else ""
        url = record_url(self.settings, record_id) if record_id else None
        message = Message(alertname, severity, fingerprint, f"resolved{took}.", url=url)
        return self._send(message, "resolve", {"record": record_id})

    def _send(self, message: Message, action: str, details: dict[str, Any]) -> list[str]:
        errors = []
        timeout = httpx.Timeout(self.settings.notify.timeout_s)
        if self.slack_url:
            errors += self._post("Slack", self.slack_url, {"text": message.slack()}, timeout)
        if self.pd_key and message.severity in PAGE_SEVERITIES:
            event: dict[str, Any] = {
                "routing_key": self.pd_key,
                "event_action": action,
                "dedup_key": f"runbook-{message.fingerprint}",
            }
            if action == "trigger":
                event["payload"] = {
                    "summary": message.summary(),
                    "source": "omnihub-runbooks",
                    "severity": _PD_SEVERITY.get(message.severity, "warning"),
                    "custom_details": details,
                }
                if message.url:
                    event["links"] = [{"href": message.url, "text": "Runbook record"}]
            errors += self._post("PagerDuty", self.settings.notify.pagerduty_url, event, timeout)
        return errors

    def _post(self, what: str, url: str, body: dict[str, Any], timeout: httpx.Timeout) -> list[str]:
        where = safe_endpoint(url) if what == "PagerDuty" else "the Slack webhook"
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
