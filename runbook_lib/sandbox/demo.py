"""`runbook demo`: the sandbox on loopback, one alert, one record."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..settings import load_settings
from .stack import Sandbox


def run_direct(home: Path, workdir: Path, alert_file: Path) -> int:
    """Start the sandbox, run high-error-rate for the sample alert via the engine, print the record."""
    from ..context import load_alert_text
    from ..engine import Engine, RunRequest

    t0 = time.monotonic()

    def say(msg: str) -> None:
        print(f"[demo {time.monotonic() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)

    with Sandbox(workdir, home, say) as sb:
        sb.start_prometheus()
        sb.start_database()
        sb.start_kube()
        os.environ.update(sb.env())
        settings = load_settings()
        data = json.loads(alert_file.read_text())
        started = datetime.now(UTC) - timedelta(minutes=20)
        for a in data.get("alerts", []):
            a["startsAt"] = started.isoformat().replace("+00:00", "Z")
        alert, _ = load_alert_text(json.dumps(data))
        say(f"running the high-error-rate runbook for {alert.name} (diagnose mode)")
        result = Engine(settings).run(RunRequest(alert=alert, origin="demo"), say=say)
        for f in result.record["findings"]:
            say(f"  {f['verdict'].upper():<9} {f['check']}: {f['summary'][:150]}")
        say("stopping the sandbox")
    print(result.html_path)
    return 0 if result.ok else 1
