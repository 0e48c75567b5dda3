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

from runbook_lib.core.errors import ConfigError, Refused, RunbookError
from runbook_lib.core.present import duration, iso, when
from runbook_lib.core.settings import Settings
from runbook_lib.intake.journal import Intake
from runbook_lib.notify.messages import Notifier
from runbook_lib.receiver.interact import read_overrides
from runbook_lib.record.archive import Archive
from runbook_lib.sre import lifecycle, oncall

log = logging.getLogger("runbook.escalation")


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
        rid = timer["record_id"]
        if not rid or not self.archive.is_indexed(rid):
            return None  # its record is still being written: the next tick
        record = self.archive.load(rid)
        alert = record.get("alert") or {}
        summary = lifecycle.summarize(record.get("events") or [], alert.get("fingerprint"))
        sev = (record.get("incident") or {}).get("sev")
        step = int(timer["step"])
        stop = None
        if summary["state"] != "firing" or summary["acknowledged"]:
            stop = f"stopped: {lifecycle.headline(summary)}"
        elif sev not in ("SEV-1", "SEV-2"):
            stop = f"stopped: {sev} does not escalate"
        elif any(e["step"] == step for e in summary["escalations"]):
            stop = "already escalated (another alert of this record)"
        if stop is not None:
            self.intake.close_escalation(timer["job"], step, "stopped", now, rid, stop)
            return {"job": timer["job"], "step": step, "record": rid, "state": "stopped", "why": stop}
        fired = when(alert.get("startsAt")) or datetime.fromtimestamp(now, UTC)
        try:
            roster = oncall.Roster.load(oncall.roster_path(self.settings.home))
        except ConfigError as exc:
            roster = None
            log.warning("escalation for %s: the roster cannot be read: %s", rid, exc)
        people: list[oncall.Person] = []
        if roster is not None:
            try:
                overrides = read_overrides(self.settings, roster, fired)
            except RunbookError as exc:  # better the rotation's people than nobody
                overrides = []
                log.warning("escalation for %s: overrides not read, the rotation alone decides: %s", rid, exc)
            people = targets(oncall.effective(roster, fired, overrides), step)
        waited = duration(now - fired.timestamp())
        why = f"not acknowledged {waited} after it fired ({sev})"
        names = [p.name for p in people] or ["nobody: the roster names no one for this step"]
        data = {
            "by": "receiver",
            "via": "receiver",
            "at": iso(datetime.fromtimestamp(now, UTC)),
            "step": step,
            "to": names,
            "why": why,
        }

        def check(events: list[dict[str, Any]]) -> str | None:
            s = lifecycle.summarize(events, alert.get("fingerprint"))
            if s["state"] != "firing" or s["acknowledged"]:
                return f"not escalated: {lifecycle.headline(s)}"
            if any(e["step"] == step for e in s["escalations"]):
                return "already escalated"
            return None

        try:
            self.archive.append_event(rid, "escalated", data, check=check)
        except Refused as exc:
            self.intake.close_escalation(timer["job"], step, "stopped", now, rid, str(exc))
            return {"job": timer["job"], "step": step, "record": rid, "state": "stopped", "why": str(exc)}
        self.intake.close_escalation(timer["job"], step, "fired", now, rid, ", ".join(names))
        labels = alert.get("labels") or {}
        text = (
            f"ESCALATED {labels.get('alertname', '?')} ({sev}): {why}. {', '.join(names)}: please take it. "
            f"Record {rid}."
        )
        for err in self.notifier.say(text, [p.slack for p in people if p.slack]):
            log.warning("escalation message for %s failed: %s", rid, err)
        log.info("escalated record=%s step=%s to=%s", rid, step, ", ".join(names))
        return {"job": timer["job"], "step": step, "record": rid, "state": "fired", "to": names}

    def run(self, stop: threading.Event, clock: Any = None) -> None:
        """Tick every incident.escalation_poll_s until ``stop`` is set (the receiver's thread)."""
        import time

        clock = clock or time.time
        while not stop.wait(self.settings.incident.escalation_poll_s):
            try:
                self.tick(clock())
            except Exception as exc:  # the journal may be busy; the next tick tries again
                log.warning("escalation tick failed: %s", type(exc).__name__)
