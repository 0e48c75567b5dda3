"""The incident index and signed record links as on-call opens them: the receiver's app served by
uvicorn on a loopback port, opened in Debian's headless Chromium. The index lists the archived
records (credentials through CDP, since a browser cannot add a bearer token itself); a signed
link opens its record without any; an expired or altered one shows 403; a hostile label or
finding runs no script; at 390 px the index has no horizontal scrolling (screenshot in
.screenshots/records-index-390.png)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import nbformat
import pytest
import uvicorn
from selenium.common.exceptions import NoAlertPresentException

from runbook_lib.core import signing
from runbook_lib.core.settings import load_settings
from runbook_lib.receiver.app import create_app
from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.render import render_record_html
from runbook_lib.sandbox.services import free_port
from runbook_lib.sre import incident
from tests.helpers import HOME

SCREENSHOTS = HOME / ".screenshots"
TOKEN = "browser-test-token-5e4d"
KEY = "browser-link-signing-key-0123456789abcdef0123456789"
SEV1 = {"HighErrorBudgetBurnRate"}
PWNED = "document.title='pwned'"
HOSTILE_ALERT = f"<script>{PWNED}</script>"
HOSTILE_FINDING = f'<script>{PWNED};alert(1)</script><img src=x onerror="{PWNED};alert(2)"> spike'


def archive_record(root: Path, n: int, alertname: str, severity: str, fired_ago: timedelta, summary: str) -> str:
    """A record as a run archives it, with the real record page (render_record_html)."""
    now = datetime.now(UTC)
    fired, started = now - fired_ago, now - fired_ago + timedelta(minutes=1)
    rid = f"{started:%Y%m%dT%H%M%SZ}-high-error-rate-{n:08x}"
    alert = {
        "labels": {"alertname": alertname, "severity": severity},
        "annotations": {"summary": summary},
        "startsAt": fired.isoformat(),
        "fingerprint": f"{n:016x}",
    }
    record: dict[str, Any] = {
        "id": rid,
        "runbook": "high-error-rate",
        "status": "succeeded",
        "mode": "diagnose",
        "parameters": {"dry_run": True},
        "environment": "local",
        "started_at": started.isoformat(),
        "duration_s": 4.2,
        "alert": alert,
        "findings": [{"check": "5xx ratio", "verdict": "critical", "summary": summary, "role": "symptom"}],
        "actions": [],
        "incident": incident.for_alert(alert, SEV1),
    }
    archive = LocalArchive(root)
    staging = archive.staging_dir(rid)
    (staging / "notebook.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    (staging / "record.html").write_text(render_record_html(nbformat.v4.new_notebook(), record), encoding="utf-8")
    (staging / "record.json").write_text(json.dumps(record))
    archive.commit(staging, record)
    return rid


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """The receiver app on 127.0.0.1:<free port> (uvicorn in a thread), over an archive of four
    records: its base URL and the record ids."""
    root = tmp_path / "executed"
    ids = {
        "sev1": archive_record(
            root, 1, "HighErrorBudgetBurnRate", "critical", timedelta(minutes=4), "/api/v1/x 42% 5xx"
        ),
        "sev2": archive_record(root, 2, "HighLatency", "critical", timedelta(minutes=20), "p95 at 4.2s on /api/v1/y"),
        "sev3": archive_record(root, 3, "ElevatedErrorRate", "warning", timedelta(hours=2), "error ratio 0.6%"),
        "hostile": archive_record(root, 4, HOSTILE_ALERT, "critical", timedelta(hours=3), HOSTILE_FINDING),
    }
    LocalArchive(root).append_event(ids["sev3"], "resolved", {"ends_at": datetime.now(UTC).isoformat()})
    settings = load_settings(
        overrides={
            "archive.path": str(root),
            "receiver.token": TOKEN,
            "notify.link_signing_key": KEY,
            "receiver.journal": str(tmp_path / "intake.sqlite3"),
        }
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the receiver did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", ids
    finally:
        server.should_exit = True
        thread.join(15)


def signed(base: str, record_id: str, now: float | None = None, ttl: float = 3600) -> str:
    return base + signing.signed_path(KEY, record_id, time.time() if now is None else now, ttl)


def no_alert_opened(browser: Any) -> bool:
    try:
        opened = browser.switch_to.alert
    except NoAlertPresentException:
        return True
    return opened is None


def body_text(browser: Any) -> str:
    return browser.execute_script("return document.body ? document.body.innerText : ''")


def test_a_signed_link_opens_its_record_without_credentials_and_a_bad_one_shows_403(served, browser) -> None:
    base, ids = served
    rid = ids["sev1"]
    # a fresh browser has no credentials: the index and the plain record page refuse it
    browser.get(f"{base}/records")
    assert "missing or wrong credentials" in body_text(browser)
    browser.get(f"{base}/records/{rid}")
    assert "missing or wrong credentials" in body_text(browser)
    # the signed link from a message opens the record: its title and its headline
    browser.get(signed(base, rid))
    assert browser.title == rid
    headline = browser.execute_script("const h = document.querySelector('.rb-headline'); return h ? h.innerText : ''")
    assert "HighErrorBudgetBurnRate" in headline and "/api/v1/x 42% 5xx" in headline and "SEV-1" in headline
    # expired, or any part altered: 403 and nothing of the record
    good = urlsplit(signed(base, rid))
    q = {k: v[0] for k, v in parse_qs(good.query).items()}
    bad = {
        "expired": (signed(base, rid, now=time.time() - 7200), "expired"),
        "altered id": (f"{base}/r/{ids['sev2']}?{good.query}", "not valid"),
        "altered exp": (f"{base}/r/{rid}?exp={int(q['exp']) + 60}&sig={q['sig']}", "not valid"),
        "altered sig": (f"{base}/r/{rid}?exp={q['exp']}&sig={q['sig'][::-1]}", "not valid"),
        "no sig": (f"{base}/r/{rid}?exp={q['exp']}", "incomplete"),
    }
    for name, (url, says) in bad.items():
        assert httpx.get(url, timeout=10).status_code == 403, name
        browser.get(url)
        text = body_text(browser)
        assert says in text and "HighErrorBudgetBurnRate" not in text and "HighLatency" not in text, name
        assert browser.title != rid, name
    # a signed link for one record opens neither the index nor another record
    assert httpx.get(f"{base}/records?{good.query}", timeout=10).status_code == 401
    assert httpx.get(f"{base}/records/{ids['sev2']}?{good.query}", timeout=10).status_code == 401


def test_the_index_lists_the_records_and_no_script_runs(served, browser) -> None:
    base, ids = served
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {TOKEN}"}})
    browser.get(f"{base}/records")
    seen = browser.execute_script(
        """
        const rows = [...document.querySelectorAll('tr.rx-row')];
        return {
          title: document.title,
          ids: rows.map(r => r.querySelector('a.rx-alert').getAttribute('href')),
          texts: rows.map(r => r.innerText),
          scripts: document.querySelectorAll('script').length,
          images: document.querySelectorAll('img').length,
          handlers: [...document.querySelectorAll('*')].filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
        };
        """
    )
    assert seen["title"] == "Incident records" and no_alert_opened(browser)
    assert seen["ids"] == [f"records/{ids[k]}" for k in ("sev1", "sev2", "sev3", "hostile")]  # newest first
    sev1, sev2, sev3, hostile = seen["texts"]
    assert "SEV-1" in sev1 and "firing" in sev1 and "acknowledge due" in sev1
    assert "SEV-2" in sev2 and "OVERDUE: acknowledge overdue" in sev2 and "status update due" in sev2
    assert "SEV-3" in sev3 and "resolved" in sev3
    # the hostile alertname and finding are text on the page, never markup
    assert HOSTILE_ALERT in hostile and "onerror" in hostile
    assert seen["scripts"] == 0 and seen["images"] == 0 and seen["handlers"] == 0
    # the filters are plain links: SEV-1 narrows the list
    browser.find_element("link text", "SEV-1").click()
    assert parse_qs(urlsplit(browser.current_url).query) == {"sev": ["SEV-1"]}
    shown = browser.execute_script(
        "return [...document.querySelectorAll('tr.rx-row a.rx-alert')].map(a => a.getAttribute('href'))"
    )
    assert shown == [f"records/{ids['sev1']}"]
    # the hostile record's own page, opened from its signed link, runs nothing either
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    browser.get(signed(base, ids["hostile"]))
    time.sleep(0.3)  # time for an onerror that would fire
    assert browser.title == ids["hostile"] and PWNED not in browser.title and no_alert_opened(browser)
    assert browser.execute_script("return document.querySelectorAll('script').length") == 0
    # a link on the index opens the record (credentials again)
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {TOKEN}"}})
    browser.get(f"{base}/records")
    browser.find_element("link text", "HighLatency").click()
    assert browser.current_url == f"{base}/records/{ids['sev2']}" and browser.title == ids["sev2"]


def test_the_index_reads_at_390_px_without_horizontal_scrolling(served, browser) -> None:
    base, ids = served
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Bearer {TOKEN}"}})
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    )
    browser.get(f"{base}/records")
    seen = browser.execute_script(
        """
        const doc = document.documentElement;
        const cells = [...document.querySelectorAll('tr.rx-row td')];
        return {
          viewport: window.innerWidth,
          overflow: doc.scrollWidth - doc.clientWidth,
          widest: Math.max(...cells.map(c => c.getBoundingClientRect().right)),
          stacked: cells.every(c => getComputedStyle(c).display === 'block'),
          header: getComputedStyle(document.querySelector('.rx-table thead')).display,
          rows: document.querySelectorAll('tr.rx-row').length,
        };
        """
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    shot = SCREENSHOTS / "records-index-390.png"
    shot.unlink(missing_ok=True)
    assert browser.save_screenshot(str(shot))
    assert shot.is_file() and shot.stat().st_size > 1000
    assert seen["viewport"] == 390 and seen["rows"] == len(ids)
    assert seen["overflow"] <= 0, f"{seen['overflow']} px of horizontal scrolling"
    assert seen["widest"] <= 390 and seen["stacked"] and seen["header"] == "none"  # rows are cards
    metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})
    assert metrics["cssContentSize"]["width"] <= metrics["cssLayoutViewport"]["clientWidth"]
