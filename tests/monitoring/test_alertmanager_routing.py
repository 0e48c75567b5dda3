"""The generated alertmanager.yml on a real Alertmanager (Debian's), its PagerDuty, Slack and
webhook endpoints pointed at a recorder on loopback: one condition pages once, and a page on one
SLO mutes only that SLO's warnings.

HighErrorBudgetBurnRate (the package's alert) and the page-tier ErrorBudgetBurn of
api-availability fire on the same condition under different alertnames. Before, they were two
notification groups: two PagerDuty incidents for one problem."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from runbook_lib.core.settings import load_settings
from runbook_lib.monitoring import rules as monitoring
from runbook_lib.sandbox import services

pytestmark = pytest.mark.services


class Recorder:
    """Every POST on loopback, by path: what PagerDuty, Slack and the receiver would get."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.posts.append((self.path, json.loads(body or b"{}")))
                self.send_response(202 if self.path.startswith("/pagerduty") else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"success","ok":true}')

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def at(self, prefix: str) -> list[dict[str, Any]]:
        return [body for path, body in self.posts if path.startswith(prefix)]


def loopback_config(work: Path, recorder: Recorder) -> dict[str, Any]:
    """The generated configuration, changed only where it must be to run here: endpoints on the
    recorder, secret files in ``work``, the waits in seconds instead of minutes."""
    config = yaml.safe_load(monitoring.generate_alertmanager(load_settings()))
    secrets = {"slack": f"{recorder.url}/slack", "pagerduty": "0123456789abcdef0123456789abcdef", "token": "t"}
    for name, value in secrets.items():
        (work / name).write_text(value)
    config["global"]["slack_api_url_file"] = str(work / "slack")

    def fast(route: dict[str, Any]) -> None:
        for key, value in (("group_wait", "1s"), ("group_interval", "2s")):
            if key in route:
                route[key] = value
        for sub in route.get("routes", []):
            fast(sub)

    config["route"].update(group_wait="1s", group_interval="2s")
    fast(config["route"])
    for receiver in config["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            pd["routing_key_file"] = str(work / "pagerduty")
            pd["url"] = f"{recorder.url}/pagerduty"
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = f"{recorder.url}/receiver"
            hook["http_config"]["authorization"]["credentials_file"] = str(work / "token")
    return config


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    am = services.start_alertmanager(tmp_path / "am", "", config=loopback_config(tmp_path, recorder))
    yield am.url, recorder
    am.stop()
    recorder.server.shutdown()


def fire(url: str, *alerts: dict[str, str]) -> None:
    now = datetime.now(UTC).isoformat()
    body = [{"labels": labels, "annotations": {"summary": labels["alertname"]}, "startsAt": now} for labels in alerts]
    httpx.post(f"{url}/api/v2/alerts", json=body, timeout=5).raise_for_status()


def settle(recorder: Recorder, seconds: float = 6.0) -> None:
    """Wait until nothing new arrived for a while (group_wait 1 s, group_interval 2 s)."""
    deadline, seen = time.monotonic() + 30, -1
    while time.monotonic() < deadline:
        time.sleep(seconds / 3)
        if len(recorder.posts) == seen and seen > 0:
            return
        seen = len(recorder.posts)


API = {"service": "api-gateway", "slo": "api-availability"}
TIER = {"alertname": "ErrorBudgetBurn", "burn_rate": "13.44x", "long_window": "1h", "short_window": "5m"}


def test_one_condition_pages_once(alertmanager: tuple[str, Recorder]) -> None:
    url, recorder = alertmanager
    # the page tier fires first (2 m pending against the package alert's 5 m), then the alert
    fire(url, {**TIER, **API, "severity": "critical", "sloth_slo": "api-availability"})
    time.sleep(3)
    fire(url, {"alertname": "HighErrorBudgetBurnRate", **API, "severity": "critical"})
    settle(recorder)
    events = recorder.at("/pagerduty")
    assert events, recorder.posts
    assert len({e["dedup_key"] for e in events}) == 1, "one PagerDuty incident, updated, never a second"
    names = {a["labels"]["alertname"] for body in recorder.at("/receiver") for a in body["alerts"]}
    assert names == {"ErrorBudgetBurn", "HighErrorBudgetBurnRate"}
    groups = {body["groupKey"] for body in recorder.at("/receiver") if body["receiver"] == "critical"}
    assert len(groups) == 1, groups


def test_a_page_mutes_its_own_slos_warnings_never_another_slos(alertmanager: tuple[str, Recorder]) -> None:
    url, recorder = alertmanager
    fire(url, {"alertname": "HighErrorBudgetBurnRate", **API, "severity": "critical"})
    time.sleep(2)
    fire(
        url,
        {"alertname": "ElevatedErrorRate", **API, "severity": "warning"},
        {
            "alertname": "ErrorBudgetBurn",
            "service": "orchestrator",
            "slo": "workflow-success",
            "severity": "warning",
            "burn_rate": "2.8x",
        },
        {"alertname": "ApprovalQueueBacklog", "service": "orchestrator", "severity": "warning"},
    )
    settle(recorder)
    warned = {
        a["labels"]["alertname"] + "/" + a["labels"].get("slo", "")
        for body in recorder.at("/receiver")
        if body["receiver"] == "warning"
        for a in body["alerts"]
    }
    assert warned == {"ErrorBudgetBurn/workflow-success", "ApprovalQueueBacklog/"}, warned
    assert len(recorder.at("/pagerduty")) >= 1 and len({e["dedup_key"] for e in recorder.at("/pagerduty")}) == 1


def test_amtool_routes_an_slos_alerts_to_one_group(tmp_path: Path) -> None:
    path = tmp_path / "alertmanager.yml"
    path.write_text(monitoring.generate_alertmanager(load_settings()))

    def route(*labels: str) -> str:
        res = subprocess.run(
            ["amtool", "config", "routes", "test", f"--config.file={path}", "--verify.receivers=critical", *labels],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        return res.stdout.strip()

    assert route("alertname=HighErrorBudgetBurnRate", "severity=critical", *[f"{k}={v}" for k, v in API.items()]) == (
        "critical"
    )
    assert "critical" in route("alertname=ErrorBudgetBurn", "severity=critical", *[f"{k}={v}" for k, v in API.items()])
