"""The package's escalation policy, run by the receiver (settings incident.escalation "receiver";
with "pagerduty", PagerDuty's escalation policy does it and this never runs):

* unacknowledged 15 minutes after it fired: notify the secondary and the senior SRE;
* unacknowledged after 30 minutes: the incident commander and the manager (SEV-1 and SEV-2).

The timers are rows in the intake journal, armed when a paging alert is journaled, so they
survive a restart. Each fires once: the ``escalated`` event is chained on the incident's record
under the archive's lock, only if no event of that step is there yet, and the timer is then
closed; an acknowledgement or a resolution before it is due stops it. People come from the
roster at the alert's time, schedule overrides included.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from typing import Any

from runbook_lib.clients.oncall_overrides import overrides_at
from runbook_lib.core.errors import ConfigError, Refused, RunbookError
from runbook_lib.core.present import duration, iso, when
from runbook_lib.core.settings import Settings
from runbook_lib.intake.journal import Intake
from runbook_lib.notify.messages import Notifier
from runbook_lib.record.archive import Archive
from runbook_lib.sre import incident, lifecycle, oncall
from runbook_lib.sre.catalog import Catalog

log = logging.getLogger("runbook.escalation")
MAX_TRIES = 20  # a message that cannot go out is tried again at each tick, this many times


def targets(on_call: oncall.OnCall, step: int) -> list[oncall.Person]:
    """Who step 1 (the secondary and the senior SRE) or step 2 (the incident commander and the
    manager) notifies; a role the roster does not fill is left out."""
    people = [on_call.secondary, on_call.senior_sre] if step == 1 else [on_call.incident_commander, on_call.manager]
    return [p for p in people if p is not None]


class Escalator:
    def __init__(self, settings: Settings, intake: Intake, archive: Archive, notifier: Notifier | None = None) -> None:
        self.settings = settings
        self.intake = intake
        self.archive = archive
        self.notifier = notifier or Notifier(settings)
        self._sev1: set[str] | None = None

    def tick(self, now: float) -> list[dict[str, Any]]:
        """Fire or stop every timer due at ``now``; returns what was done (for logs and tests)."""
        done = []
        for timer in self.intake.due_escalations(now):
            try:
                outcome = self._one(timer, now)
            except Exception as exc:  # one broken timer must not stop the others; it is retried
                log.warning("escalation job=%s step=%s failed: %s", timer["job"], timer["step"], type(exc).__name__)
                continue
            if outcome is not None:
                done.append(outcome)
        return done

    def _one(self, timer: dict[str, Any], now: float) -> dict[str, Any] | None:
        step, job = int(timer["step"]), timer["job"]
        rid = timer["record_id"] if timer["record_id"] and self.archive.is_indexed(timer["record_id"]) else None

        def close(state: str, why: str) -> dict[str, Any]:
            self.intake.close_escalation(job, step, state, now, rid, why)
            return {"job": job, "step": step, "record": rid, "state": state, "why": why}

        if timer["alert_resolved"]:  # its own alert, whatever the record it went into says
            return close("stopped", "stopped: its alert resolved")
        if rid is not None:
            record = self.archive.load(rid)
            alert = record.get("alert") or {}
            summary = lifecycle.summarize(record.get("events") or [], alert.get("fingerprint"))
            sev = (record.get("incident") or {}).get("sev")
            if summary["state"] != "firing" or summary["acknowledged"]:
                return close("stopped", f"stopped: {lifecycle.headline(summary)}")
            if any(e["step"] == step for e in summary["escalations"]):
                return close("stopped", "already escalated (another alert of this record)")
        else:  # no record yet (workers down or behind, the run failed): escalate from the journal
            alert = timer["alert"]
            labels = alert.get("labels") or {}
            sev = incident.sev_level(labels.get("alertname"), labels.get("severity"), self.sev1())
        if sev not in ("SEV-1", "SEV-2"):
            return close("stopped", f"stopped: {sev} does not escalate")
        fired = when(alert.get("startsAt")) or datetime.fromtimestamp(now, UTC)
        people = self.people(fired, step)
        names = [p.name for p in people] or ["nobody: the roster names no one for this step"]
        why = f"not acknowledged {duration(now - fired.timestamp())} after it fired ({sev})"
        if rid is None:
            why += f"; no record yet (its job is {timer['job_state']}): nobody has seen a diagnosis"
        labels = alert.get("labels") or {}
        text = f"ESCALATED {labels.get('alertname', '?')} ({sev}): {why}. {', '.join(names)}: please take it."
        text += f" Record {rid}." if rid else ""
        # tell first, then chain: after a crash in between a message may go out twice, never not at all
        errors = self.notifier.say(text, [p.slack for p in people if p.slack]) if self.notifier.slack_url else []
        if errors and timer["tries"] < MAX_TRIES:
            self.intake.retry_escalation(job, step, errors[0])
            log.warning("escalation message for job %s step %s failed (retried): %s", job, step, errors[0])
            return {"job": job, "step": step, "record": rid, "state": "retrying", "why": errors[0]}
        data = {
            "by": "receiver",
            "via": "receiver",
            "at": iso(datetime.fromtimestamp(now, UTC)),
            "step": step,
            "to": names,
            "why": why,
            "notified": "no Slack webhook configured: nobody was told"
            if not self.notifier.slack_url
            else (f"failed: {errors[0]}" if errors else "Slack"),
            "alertname": labels.get("alertname"),
            "fingerprint": alert.get("fingerprint"),
            "starts_at": alert.get("startsAt"),
        }

        def check(events: list[dict[str, Any]]) -> str | None:
            if rid is None:  # events about no record: this alert's escalations only
                same = [
                    e
                    for e in events
                    if e.get("event") == "escalated"
                    and (e.get("data") or {}).get("fingerprint") == data["fingerprint"]
                    and (e.get("data") or {}).get("starts_at") == data["starts_at"]
                    and (e.get("data") or {}).get("step") == step
                ]
                return "already escalated" if same else None
            s = lifecycle.summarize(events, alert.get("fingerprint"))
            if s["state"] != "firing" or s["acknowledged"]:
                return f"not escalated: {lifecycle.headline(s)}"
            if any(e["step"] == step for e in s["escalations"]):
                return "already escalated"
            return None

        try:
            self.archive.append_event(rid, "escalated", data, check=check)
        except Refused as exc:
            return close("stopped", str(exc))
        log.info("escalated record=%s step=%s to=%s notified=%s", rid, step, ", ".join(names), data["notified"])
        return {**close("fired", ", ".join(names)), "to": names}

    def people(self, fired: datetime, step: int) -> list[oncall.Person]:
        """Who the roster names for ``step`` at ``fired``, overrides included (the rotation alone
        when the overrides cannot be read; nobody when the roster cannot)."""
        try:
            roster = oncall.Roster.load(oncall.roster_path(self.settings.home))
        except ConfigError as exc:
            log.warning("escalation: the roster cannot be read: %s", exc)
            return []
        try:
            overrides = overrides_at(self.settings, roster, fired)
        except RunbookError as exc:  # better the rotation's people than nobody
            overrides = []
            log.warning("escalation: overrides not read, the rotation alone decides: %s", exc)
        return targets(oncall.effective(roster, fired, overrides), step)

    def sev1(self) -> set[str]:
        if self._sev1 is None:
            self._sev1 = set(Catalog.load(self.settings.catalog_file, self.settings.runbooks_path).sev1)
        return self._sev1

    def run(self, stop: threading.Event, clock: Any = None) -> None:
        """Tick every incident.escalation_poll_s until ``stop`` is set (the receiver's thread)."""
        import time

        clock = clock or time.time
        while not stop.wait(self.settings.incident.escalation_poll_s):
            try:
                self.tick(clock())
            except Exception as exc:  # the journal may be busy; the next tick tries again
                log.warning("escalation tick failed: %s", type(exc).__name__)
