"""`runbook demo`: the loopback chain end to end.

Prometheus (backfilled incident + the catalog's rules) -> Alertmanager -> `runbook serve`
-> runbook notebooks -> archived records; on call acknowledges it and takes the incident
commander role (chained events); then the incident is resolved (the burn-rate rule
stops firing) and the resolution is chained onto the record; then the DR drill restores the
sandbox database into a scratch one and says PASS or FAIL. Prints the record paths and stops
everything it started.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from runbook_lib.core.settings import Settings, load_settings
from runbook_lib.record.archive import archive_for
from runbook_lib.record.archive.verify import verify
from runbook_lib.record.build import ArchivedRecord
from runbook_lib.record.events import event_text, incident_line
from runbook_lib.record.incidents import act
from runbook_lib.sandbox import services
from runbook_lib.sandbox.stack import Sandbox
from runbook_lib.sre import oncall

MAIN_ALERT = "HighErrorBudgetBurnRate"


def _say_factory() -> Callable[[str], None]:
    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[demo {time.monotonic() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)

    return say


def run_chain(home: Path, workdir: Path, env: str | None = None) -> int:
    say = _say_factory()
    settings = load_settings(env=env)
    archive = archive_for(settings)
    token = secrets.token_urlsafe(24)
    with Sandbox(workdir, home, say) as sb:
        sb.prepare_incident()
        sb.start_database()
        sb.start_kube()
        journal = workdir / "intake.sqlite3"
        receiver_env = {
            **sb.env(),
            "RUNBOOK_WEBHOOK_TOKEN": token,
            "RUNBOOK_JOURNAL": str(journal),
            "RUNBOOK_ARCHIVE": settings.archive_url,
            **({"RUNBOOK_ARCHIVE_ENDPOINT": settings.archive.endpoint} if settings.archive.endpoint else {}),
            "RUNBOOK_ENV": settings.env,
        }
        receiver = services.start_receiver(workdir / "receiver", receiver_env)
        try:
            say(f"receiver: runbook serve on {receiver.url} (bearer token, journal {journal.name})")
            am = sb.start_alertmanager(f"{receiver.url}/alerts", token)
            prom = sb.start_prometheus(alertmanager_url=am)

            def firing() -> list[str]:
                alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
                return sorted({a["labels"]["alertname"] for a in alerts if a["state"] == "firing"})

            names = services.wait_for(
                "Prometheus to fire the burn-rate alert", lambda: MAIN_ALERT in firing() and firing(), 60, receiver
            )
            say(f"prometheus fires: {', '.join(names)}; Alertmanager posts them to the receiver")

            def recorded() -> dict[str, str]:
                with sqlite3.connect(journal) as db:
                    rows = db.execute(
                        "SELECT alertname, record_id FROM jobs WHERE state = 'done' AND status = 'firing'"
                    )
                    return dict(rows.fetchall())

            done = services.wait_for(
                "a record for every firing alert",
                lambda: (r := recorded()) and set(names) <= set(r) and r,
                180,
                receiver,
            )
            for name, rid in sorted(done.items(), key=lambda kv: kv[0] != MAIN_ALERT):
                rec = archive.load(rid)
                how = (
                    "linked to that run (one group, one runbook)" if rec["alert"]["labels"]["alertname"] != name else ""
                )
                say(
                    f"{name} -> record {rid}: runbook {rec['runbook']}, "
                    + (
                        how
                        or f"{rec['status']}, {rec['diagnosis']['verdict'].upper()}, {len(rec['findings'])} findings"
                    )
                )
            main = archive.load(done[MAIN_ALERT])
            say(f"headline: {main['diagnosis']['headline'][:200]}")
            for f in main["findings"]:
                say(f"  {f['verdict'].upper():<9} {f['check']}: {f['summary'][:140]}")

            take_it(archive, done[MAIN_ALERT], home, say)
            say(f"resolving: the {MAIN_ALERT} rule stops firing (rules reloaded)")
            sb.write_rules(drop=(MAIN_ALERT,))
            sb.reload_prometheus()
            rid = done[MAIN_ALERT]

            def resolved() -> list[dict]:
                return [e for e in archive.load(rid)["events"] if e["event"] == "resolved"]

            event = services.wait_for("the resolved event", resolved, 90, receiver)[0]
            say(f"{event_text(event)} Chained onto {rid}; the record's files are unchanged.")
            drill = dr_drill(sb, settings, say)
            count, problems = verify(archive)
            say(f"runbook verify: {count} records, {'chain intact' if not problems else problems}")
        finally:
            say("stopping receiver, Alertmanager, Prometheus, fake Kubernetes; dropping the sandbox database")
            receiver.stop()
    for rid in dict.fromkeys(rid for _name, rid in sorted(done.items(), key=lambda kv: kv[0] != MAIN_ALERT)):
        print(f"{archive.record_location(rid)}/record.html")
    print(drill.html_location)
    return 0 if not problems and drill.ok else 1


def take_it(archive: Any, rid: str, home: Path, say: Callable[[str], None]) -> None:
    """The human half: whoever the roster has on call now acknowledges the incident and takes the
    incident commander role (as `runbook ack` and `runbook assign` would, or Slack's buttons)."""
    roster = oncall.Roster.load(oncall.roster_path(home))
    primary = oncall.who(roster, datetime.now(UTC)).primary.name
    act(archive, rid, "acknowledged", primary, via="demo")
    act(archive, rid, "assigned", primary, via="demo", role="ic", person=primary)
    line = incident_line(archive.load(rid), datetime.now(UTC))
    say(f"on call: {primary} acknowledges and takes IC. {line}")


def dr_drill(sb: Sandbox, settings: Settings, say: Callable[[str], None]) -> ArchivedRecord:
    """The quarterly database-restore drill on the sandbox database, as an operator runs it
    (`runbook run dr-drill-database-restore --mode resolve --execute --operator ... --approve dr_drill`)."""
    from runbook_lib.run.request import RunRequest
    from runbook_lib.run.runner import Runner

    say("DR drill: back up the sandbox database, restore it into a scratch database, verify, measure")
    os.environ.update(sb.env())  # the drill's kernel reads the sandbox database from the environment
    request = RunRequest(
        alert=None,
        slug="dr-drill-database-restore",
        mode="resolve",
        dry_run=False,
        operator="demo@omnihub.test",
        approve=["dr_drill"],
        origin="demo",
    )
    result = Runner(settings).run(request)
    verdict = next((f for f in result.record["findings"] if f["check"] == "DR drill verdict"), None)
    say(f"DR drill -> record {result.record_id}: {verdict['summary'] if verdict else result.status}")
    return result


def run_direct(home: Path, workdir: Path, alert_file: Path, env: str | None = None) -> int:
    """Without Alertmanager: start the sandbox and run high-error-rate for the sample alert."""
    from runbook_lib.run.request import RunRequest
    from runbook_lib.run.runner import Runner
    from runbook_lib.sre.alertmanager import load_alert_text

    say = _say_factory()
    with Sandbox(workdir, home, say) as sb:
        sb.start_prometheus(rules=False)
        sb.start_database()
        sb.start_kube()
        os.environ.update(sb.env())
        settings = load_settings(env=env)
        data = json.loads(alert_file.read_text())
        started = datetime.now(UTC) - timedelta(minutes=20)
        for a in data.get("alerts", []):
            a["startsAt"] = started.isoformat().replace("+00:00", "Z")
        alert, _ = load_alert_text(json.dumps(data))
        say(f"running the high-error-rate runbook for {alert.name} (diagnose mode)")
        result = Runner(settings).run(RunRequest(alert=alert, origin="demo"), say=say)
        for f in result.record["findings"]:
            say(f"  {f['verdict'].upper():<9} {f['check']}: {f['summary'][:150]}")
        say("stopping the sandbox")
    print(result.html_location)
    return 0 if result.ok else 1
