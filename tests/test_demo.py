"""`make demo`, the README's first command: the real chain on loopback (Prometheus fires, Alertmanager
posts, the receiver runs the runbooks, the resolution is chained, the DR drill passes), run as
the Makefile runs it once the bootstrap and the services are up: `runbook demo`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import verify
from runbook_lib.sandbox.database import ADMIN_DSN
from runbook_lib.sre import lifecycle
from tests.helpers import HOME

pytestmark = pytest.mark.services


def demo_databases() -> set[str]:
    with psycopg.connect(ADMIN_DSN) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'runbook_demo_%'")}


def test_make_demo_runs_the_chain(tmp_path: Path) -> None:
    archive = tmp_path / "executed"
    before = demo_databases()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "runbook"), "demo"],
        capture_output=True,
        text=True,
        cwd=HOME,
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "HOME": str(tmp_path),
            "RUNBOOK_ARCHIVE": str(archive),
        },
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [Path(line) for line in done.stdout.split()]
    assert printed and all(p.name == "record.html" and p.is_file() for p in printed), done.stdout
    arc = LocalArchive(archive)
    records = {r["alert"].get("labels", {}).get("alertname", r["runbook"]): r for r in map(arc.load, _ids(arc))}
    burn = records["HighErrorBudgetBurnRate"]
    assert (burn["runbook"], burn["origin"], burn["mode"], burn["status"]) == (
        "high-error-rate",
        "receiver",
        "diagnose",
        "succeeded",
    )
    linked = [a["alertname"] for a in burn["linked_alerts"]]  # known when the run started, or chained after it
    linked += [e["data"]["alertname"] for e in burn["events"] if e["event"] == "linked"]
    # ElevatedErrorRate fires a little later than the burn-rate alert (its own `for:`); when it has
    # fired by the time the demo stops, it is linked to the burn-rate run, never a record of its own
    assert linked in ([], ["ElevatedErrorRate"]) and "ElevatedErrorRate" not in records, "one group, one run"
    # the burn-rate alert's resolution, once; a linked alert's own resolution, if it came, once too
    resolved = sorted(e["data"]["alertname"] for e in burn["events"] if e["event"] == "resolved")
    assert resolved in (["HighErrorBudgetBurnRate"], sorted(["HighErrorBudgetBurnRate", *linked])), resolved
    # three hours of data are no 28-day budget: LowErrorBudget waits for a quarter of the window
    assert "LowErrorBudget" not in records
    # on call acknowledged it and took IC (chained), within the deadline; the alert then resolved it
    story = lifecycle.summarize(burn["events"], burn["alert"]["fingerprint"])
    assert story["acknowledged"]["via"] == "demo" and story["first_ack"]["by"] == story["acknowledged"]["by"]
    assert story["roles"]["ic"]["person"] == story["first_ack"]["by"] and story["state"] == "resolved"
    assert "acknowledge met at" in done.stderr
    drill = records["dr-drill-database-restore"]
    [verdict] = [f for f in drill["findings"] if f["check"] == "DR drill verdict"]
    assert verdict["details"]["drill_verdict"] == "PASS"
    assert printed[0].parent.name == burn["id"], "the burn-rate record is printed first"
    assert verify(arc) == (len(records), [])
    assert demo_databases() <= before, "the demo drops the database it made"


def _ids(arc: LocalArchive) -> list[str]:
    return [e["id"] for e in arc.entries() if e["type"] == "record"]
