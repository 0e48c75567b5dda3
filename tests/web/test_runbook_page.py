"""GET /runbooks/{slug}, where generated alerts' runbook_url points: the runbook as HTML (markdown
escaped, code as <pre>), the alerts routed to it, its newest records, how to run it; auth and
security headers as /records; 404 JSON that never echoes the slug; cached per notebook mtime."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
from fastapi.testclient import TestClient

from runbook_lib.record.archive import LocalArchive
from runbook_lib.web import runbooks as runbook_page
from runbook_lib.web.runbooks import RECENT, markdown_html
from tests.helpers import HOME
from tests.receiver.test_receiver import basic, bearer, make_client

SLUG = "high-error-rate"
NO_SUCH = {"error": "no such runbook"}


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    with make_client(tmp_path) as c:
        yield c


def step_titles(slug: str) -> list[str]:
    nb = json.loads((HOME / "runbooks" / f"{slug}.ipynb").read_text())
    text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return re.findall(r"^### (Step \d+: .+)$", text, re.M)


def archive_record(root: Path, n: int, runbook: str, alertname: str, headline: str, verdict: str = "critical") -> str:
    """A small record committed through the archive API (what a worker's run ends with)."""
    archive = LocalArchive(root)
    rid = f"20261126T{n:06d}Z-{runbook}-{n:08x}"
    staging = archive.staging_dir(rid)
    record: dict[str, Any] = {
        "id": rid,
        "runbook": runbook,
        "status": "succeeded",
        "started_at": f"2026-11-26T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}+00:00",
        "alert": {"labels": {"alertname": alertname, "severity": "critical"}},
        "diagnosis": {"verdict": verdict, "headline": headline},
    }
    (staging / "notebook.ipynb").write_text("{}")
    (staging / "record.html").write_text(f"<html><body>record {rid}</body></html>")
    (staging / "record.json").write_text(json.dumps(record))
    archive.commit(staging, record)
    return rid


def test_the_page_shows_the_runbook_its_alerts_and_how_to_run_it(client: TestClient) -> None:
    resp = client.get(f"/runbooks/{SLUG}", headers=bearer())
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    titles = step_titles(SLUG)
    assert len(titles) >= 4
    for title in titles:
        assert f"<h3>{title}</h3>" in page
    assert "<h1>High Error Rate</h1>" in page and page.count("<h1>") == 1
    for section in ("Severity", "Summary", "Impact", "Diagnosis", "Resolution", "Escalation", "Post-Incident"):
        assert f"<h2>{section}</h2>" in page
    # code cells are <pre> blocks, escaped
    assert '<pre class="rb-code"><code>rb.step(1, &quot;Identify which endpoints are failing&quot;)' in page
    # the catalog alerts routed here, with their severity
    alerts = page[page.index("Alerts routed here") : page.index('id="run"')]
    assert "<b>HighErrorBudgetBurnRate</b>" in alerts and "CRITICAL" in alerts
    assert "<b>ElevatedErrorRate</b>" in alerts and "WARNING" in alerts
    assert f"<code>runbook run {SLUG}</code>" in page and f"<code>runbook open {SLUG}</code>" in page
    assert "No records of this runbook in the archive yet." in page
    # a phone can read it; nothing runs and nothing loads from elsewhere
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "<script" not in page and "<link" not in page and "src=" not in page
    csp = resp.headers["content-security-policy"]
    assert csp.startswith("sandbox") and "default-src 'none'" in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store" and resp.headers["referrer-policy"] == "no-referrer"
    assert client.get(f"/runbooks/{SLUG}", headers=basic()).status_code == 200  # browsers: basic auth


def test_same_authentication_as_records(client: TestClient) -> None:
    for headers in ({}, bearer("wrong"), basic(password="wrong")):
        resp = client.get(f"/runbooks/{SLUG}", headers=headers)
        assert resp.status_code == 401 and "High Error Rate" not in resp.text
    assert client.get("/runbooks/nope").status_code == 401  # refused before anything is looked up
    assert "Basic" in client.get(f"/runbooks/{SLUG}").headers["www-authenticate"]


@pytest.mark.parametrize(
    "path",
    [
        "nope",
        "_template",
        "..%2F..%2Fetc%2Fpasswd",
        "..%2Fparameters%2Fcatalog.yaml",
        "%2E%2E",
        "High-Error-Rate",
        f"{SLUG}.ipynb",
        f"{SLUG}/",
        f"{SLUG}%00",
        "",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "x" * 64,
    ],
)
def test_what_is_not_a_runbook_is_404_json_and_never_echoed(client: TestClient, path: str) -> None:
    resp = client.get(f"/runbooks/{path}", headers=bearer())
    assert resp.status_code == 404 and resp.json() == NO_SUCH
    assert resp.headers["content-security-policy"] == "sandbox"
    assert "script" not in resp.text and "passwd" not in resp.text


def test_dot_segments_never_reach_a_file(client: TestClient) -> None:
    resp = client.get("/runbooks/../etc/passwd", headers=bearer())  # the client resolves it: /etc/passwd
    assert resp.status_code == 404 and "root:" not in resp.text


def test_records_of_this_runbook_newest_first_with_links(client: TestClient, tmp_path: Path) -> None:
    root = tmp_path / "executed"
    ids = [archive_record(root, n, SLUG, "HighErrorBudgetBurnRate", f"CRITICAL — run {n}") for n in range(1, 23)]
    other = archive_record(root, 99, "triage", "SomethingElse", "INFO — not this runbook", "info")
    hostile = archive_record(root, 100, SLUG, "<script>alert(1)</script>", '<img src=x onerror="alert(1)">')
    resp = client.get(f"/runbooks/{SLUG}", headers=bearer())
    page = resp.text
    shown = re.findall(r'<a href="(\.\./records/[^"]+)">', page)
    expected = [hostile, *ids[::-1]][:RECENT]  # the newest 20 of this runbook, newest first
    assert shown == [f"../records/{rid}" for rid in expected]
    assert ids[0] not in page and ids[1] not in page and other not in page and "SomethingElse" not in page
    assert f"Recent records ({RECENT})" in page
    newest = page[page.index(ids[-1]) :]
    assert "<b>HighErrorBudgetBurnRate</b>" in newest and "CRITICAL — run 22" in newest
    assert newest.index("CRITICAL — run 22") < newest.index("CRITICAL — run 21")
    assert "2026-11-26T00:00:22Z" in newest  # started, as one timestamp style
    # labels and headlines are untrusted: escaped
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in page
    # a link, resolved against the page's own URL, opens the record
    link = urljoin(f"http://testserver/runbooks/{SLUG}", shown[1])
    assert link == f"http://testserver/records/{ids[-1]}"
    opened = client.get(link, headers=bearer())
    assert opened.status_code == 200 and f"record {ids[-1]}" in opened.text
    # a record committed after the first page shows up on the next one
    later = archive_record(root, 200, SLUG, "ElevatedErrorRate", "WARNING — later")
    again = re.findall(r'<a href="\.\./records/([^"]+)">', client.get(f"/runbooks/{SLUG}", headers=bearer()).text)
    assert again == [later, *expected[:-1]]


HOSTILE_NOTEBOOK = {
    "nbformat": 4,
    "nbformat_minor": 5,
    "metadata": {"title": "Evil"},
    "cells": [
        {
            "cell_type": "markdown",
            "metadata": {},
            "source": [
                "# Evil <script>alert(1)</script>\n\n",
                "## Severity\n<script>alert(2)</script> <img src=x onerror=alert(3)> <iframe src=//evil.example>\n\n",
                "[click](javascript:alert(4)) ![pic](https://evil.example/p.png) [ok](https://example.org/doc)\n",
            ],
        },
        {"cell_type": "code", "metadata": {}, "outputs": [], "source": "x = '</code></pre><script>alert(5)</script>'"},
        {"cell_type": "markdown", "metadata": {}, "source": "## Escalation\n- **0-15 min:** page \u202eSRE"},
    ],
}


@pytest.fixture
def own_runbooks(tmp_path: Path) -> Path:
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "evil.ipynb").write_text(json.dumps(HOSTILE_NOTEBOOK))
    (runbooks / "_template.ipynb").write_text(json.dumps(HOSTILE_NOTEBOOK))
    (runbooks / "dir.ipynb").mkdir()
    (runbooks / "broken.ipynb").write_text("{not json")
    return runbooks


def test_markdown_and_code_from_the_notebook_are_escaped(tmp_path: Path, own_runbooks: Path) -> None:
    overrides = {"runbooks_dir": str(own_runbooks), "catalog_path": str(tmp_path / "missing.yaml")}
    with make_client(tmp_path, **overrides) as c:
        resp = c.get("/runbooks/evil", headers=bearer())
        assert resp.status_code == 200
        page = resp.text
        assert "<script" not in page and "<img" not in page and "<iframe" not in page and "javascript:" not in page
        assert "<h1>Evil &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page
        assert "&lt;img src=x onerror=alert(3)&gt;" in page
        assert '<a href="#harmful-link">click</a>' in page and '<a href="https://example.org/doc">ok</a>' in page
        assert "evil.example/p.png" not in page and "[image: pic]" in page  # shown, never loaded
        assert "&lt;/code&gt;&lt;/pre&gt;&lt;script&gt;" in page
        assert "\u202e" not in page and "\\u202eSRE" in page
        assert "The catalog cannot be read" in page  # the page still serves without its catalog
        for name in ("_template", "dir", "runbooks"):
            assert c.get(f"/runbooks/{name}", headers=bearer()).json() == NO_SUCH
        broken = c.get("/runbooks/broken", headers=bearer())
        assert broken.status_code == 200 and "The notebook could not be read: JSONDecodeError" in broken.text


def test_the_notebook_part_is_rendered_once_per_mtime(
    tmp_path: Path, own_runbooks: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = runbook_page.render_notebook

    def counting(path: Path, slug: str) -> tuple[str, str]:
        calls.append(slug)
        return real(path, slug)

    monkeypatch.setattr(runbook_page, "render_notebook", counting)
    with make_client(tmp_path, runbooks_dir=str(own_runbooks)) as c:
        for _ in range(3):
            assert "Escalation" in c.get("/runbooks/evil", headers=bearer()).text
        assert calls == ["evil"]
        nb = own_runbooks / "evil.ipynb"
        changed = json.loads(json.dumps(HOSTILE_NOTEBOOK))
        changed["cells"][2]["source"] = "## Escalation\nCall the incident commander."
        nb.write_text(json.dumps(changed))
        st = nb.stat()
        os.utime(nb, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        page = c.get("/runbooks/evil", headers=bearer()).text
        assert "Call the incident commander." in page and calls == ["evil", "evil"]


def test_every_runbook_page_renders(client: TestClient) -> None:
    slugs = sorted(p.stem for p in (HOME / "runbooks").glob("*.ipynb") if not p.stem.startswith("_"))
    assert SLUG in slugs and "triage" in slugs
    for slug in slugs:
        resp = client.get(f"/runbooks/{slug}", headers=bearer())
        assert resp.status_code == 200, slug
        assert "The notebook could not be read" not in resp.text and "<script" not in resp.text, slug
    assert "Any alert not in the catalog." in client.get("/runbooks/triage", headers=bearer()).text


def test_markdown_html_escapes_raw_html() -> None:
    assert (
        markdown_html("<b onclick=x>hi</b> **bold**")
        == "<p>&lt;b onclick=x&gt;hi&lt;/b&gt; <strong>bold</strong></p>\n"
    )


def test_it_reads_at_phone_width(tmp_path: Path, client: TestClient, browser) -> None:
    """390 px in headless Chromium: no horizontal scrolling; a long code line scrolls in its <pre>."""
    root = tmp_path / "executed"
    archive_record(root, 1, SLUG, "HighErrorBudgetBurnRate", "CRITICAL — " + "a-very-long-token-" * 12)
    page = tmp_path / "page.html"
    page.write_text(client.get(f"/runbooks/{SLUG}", headers=bearer()).text, encoding="utf-8")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    )
    browser.get(page.as_uri())
    seen = browser.execute_script(
        """
        const doc = document.documentElement;
        const pres = [...document.querySelectorAll('pre.rb-code')];
        return {
          viewport: window.innerWidth,
          overflow: doc.scrollWidth - doc.clientWidth,
          widest: Math.max(...pres.map(p => p.getBoundingClientRect().right)),
          scrolling: pres.filter(p => p.scrollWidth > p.clientWidth).length,
          h1: document.querySelector('h1').getBoundingClientRect().bottom,
        };
        """
    )
    assert seen["viewport"] == 390
    assert seen["overflow"] <= 0, f"{seen['overflow']} px of horizontal scrolling"
    assert seen["widest"] <= 390 and seen["scrolling"] >= 1  # long code scrolls inside its own box
    assert seen["h1"] < 300
