"""record.html: sanitised outputs, no scripts or external resources, summary first."""

from __future__ import annotations

import json

import nbformat

from runbook_lib.core.settings import load_settings
from runbook_lib.record.render import render_record_html
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import alert_payload, cli, html_tags


def record(**kw) -> dict:
    base = {
        "id": "20261126T000000Z-x-00000000",
        "status": "failed",
        "runbook": "x",
        "mode": "diagnose",
        "parameters": {"dry_run": True},
        "environment": "local",
        "started_at": "t",
        "duration_s": 1.0,
        "alert": {"labels": {"alertname": "A<b>", "severity": "critical"}, "annotations": {}},
        "findings": [
            {"check": "c1", "verdict": "ok", "summary": "fine"},
            {"check": "c2", "verdict": "critical", "summary": "<img src=x onerror=alert(1)>"},
            {"check": "c3", "verdict": "unchecked", "summary": "Redis: not configured"},
        ],
        "actions": [{"title": "Rollback", "status": "proposed", "reason": "r", "command": "kubectl rollout undo"}],
        "failed_cell": {"index": 3, "execution_count": 2, "ename": "ValueError", "evalue": "<script>x</script>"},
    }
    base.update(kw)
    return base


def test_outputs_are_sanitised_and_nothing_loads_from_outside() -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "text/html": '<h3>kept</h3><script>alert(1)</script><a href="javascript:alert(1)">j</a>'
                '<iframe src="http://evil"></iframe><table><tr><th>th kept</th></tr></table>'
                '<div style="background:url(http://evil)" onclick="x()">d</div><link rel=stylesheet href="http://evil/x.css">',
                "text/plain": "x",
            },
        )
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title <script>bad()</script>\n\n| a |\n|---|\n| 1 |"), cell]
    html = render_record_html(nb, record())
    tags = html_tags(html)
    names = [t for t, _ in tags]
    assert "script" not in names and "iframe" not in names and "link" not in names
    attrs = [(a, v) for _, at in tags for a, v in at]
    assert not [a for a, _ in attrs if a.startswith("on") or a == "style"]
    assert not [v for a, v in attrs if a in ("href", "src") and v and ("javascript:" in v or "evil" in v)]
    assert "<h3>kept</h3>" in html and "th kept" in html and "<h1" in html  # readable markup survives
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_summary_first_with_failure_findings_unchecked_and_actions() -> None:
    html = render_record_html(nbformat.v4.new_notebook(), record())
    body = html[html.index("<body") :]
    summary = body[: body.index("executed-notebook")]
    assert "A&lt;b&gt;" in summary and "FAILED" in summary
    assert "The runbook did not finish" in summary and "ValueError" in summary and "&lt;script&gt;" in summary
    assert summary.index("c2") < summary.index("c1")  # worst first
    assert "Could not be checked (1)" in summary and "Redis: not configured" in summary
    assert "kubectl rollout undo" in summary


def test_control_and_bidi_characters_are_visible_escapes_everywhere_but_record_json(tmp_path) -> None:
    """NUL, BEL, ESC, CR and U+202E in labels: record.html (and `runbook show`) show them as
    escapes, so grep does not call the page binary and the text cannot be reversed; record.json
    keeps the raw values."""
    hostile = "db\x00\x07\x1b[2J\r\u202eevil"
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    payload = alert_payload(alertname="Hostile\u202eName", labels={"instance": hostile})
    result = Runner(settings).run(RunRequest(alert=parse_alert(payload["alerts"][0])))
    html = result.html_path.read_text(encoding="utf-8")
    for raw in ("\x00", "\x07", "\x1b", "\r", "\u202e"):
        assert raw not in html, repr(raw)
    assert "\\u202eevil" in html and "\\x1b[2J" in html
    record = json.loads((result.path / "record.json").read_text())
    assert record["alert"]["labels"]["instance"] == hostile
    shown = cli("show", result.record_id, env={"RUNBOOK_ARCHIVE": str(tmp_path / "executed")})
    assert shown.returncode == 0 and "\u202e" not in shown.stdout and "\x1b" not in shown.stdout
    assert "Hostile\\u202eName" in shown.stdout


def test_cells_are_keyboard_focusable_and_plots_carry_their_title_as_alt_text() -> None:
    """What nbconvert's own closing pass did (we skip it for speed): tabindex on every input
    wrapper and output, alternative text on every image."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot()")
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"image/png": png, "text/plain": "graph: 5xx ratio"}),
        nbformat.v4.new_output("stream", name="stdout", text="hello"),
        nbformat.v4.new_output("display_data", data={"text/html": '<p class="jp-OutputArea-output">x</p>'}),
    ]
    nb.cells = [nbformat.v4.new_code_cell("x = 1"), cell]
    tags = html_tags(render_record_html(nb, record()))
    inputs = [dict(a) for t, a in tags if t == "div" and dict(a).get("class") == "jp-Cell-inputWrapper"]
    outputs = [
        dict(a) for t, a in tags if t == "div" and "jp-OutputArea-output" in (dict(a).get("class") or "").split()
    ]
    assert len(inputs) == 2 and all(a.get("tabindex") == "0" for a in inputs)
    assert len(outputs) == 3 and all(a.get("tabindex") == "0" for a in outputs)
    images = [dict(a) for t, a in tags if t == "img"]
    assert [a.get("alt") for a in images] == ["graph: 5xx ratio"]


def test_an_alerts_own_links_are_clickable_only_on_a_configured_host(tmp_path) -> None:
    """runbook_url and generatorURL come from whoever posted the alert: a record links them only
    when they point at our runbook pages, Prometheus or Alertmanager, and shows the rest as text."""
    settings = load_settings(
        overrides={
            "archive.path": str(tmp_path / "executed"),
            "prometheus.url": None,
            "links.alertmanager_url": "http://alertmanager.internal:9093",
        }
    )
    payload = alert_payload(alertname="LinkBait")
    alert = payload["alerts"][0]
    alert["annotations"]["runbook_url"] = "https://runbooks.omnihub.dev/runbooks/triage"
    alert["generatorURL"] = "https://login.evil.example/graph?g0.expr=up"
    result = Runner(settings).run(RunRequest(alert=parse_alert(alert)))
    html = result.html_path.read_text(encoding="utf-8")
    hrefs = [dict(a).get("href") for t, a in html_tags(html) if t == "a"]
    assert "https://runbooks.omnihub.dev/runbooks/triage" in hrefs
    assert not [h for h in hrefs if h and "evil.example" in h]
    assert "login.evil.example/graph" in html  # still there to read, as text
    record = json.loads((result.path / "record.json").read_text())
    assert [(x["title"], x["trusted"]) for x in record["links"] if x.get("from") == "alert"] == [
        ("Runbook", True),
        ("Alert source", False),
    ]


def test_which_alert_links_count_as_ours() -> None:
    from runbook_lib.core.links import alert_links

    bases = ["http://prometheus:9090/", "https://runbooks.omnihub.dev", None, "not a url"]
    for url, ours in [
        ("http://prometheus:9090/graph?g0.expr=up", True),
        ("http://PROMETHEUS:9090/graph", True),
        ("https://runbooks.omnihub.dev:443/runbooks/x", True),
        ("http://prometheus:9091/graph", False),  # another port
        ("https://prometheus:9090/graph", False),  # another scheme
        ("https://runbooks.omnihub.dev.evil.example/x", False),
        ("https://runbooks.omnihub.dev@evil.example/x", False),  # userinfo, host is evil.example
        ("javascript:alert(1)", False),
    ]:
        [link] = alert_links({"generatorURL": url}, bases)
        assert link["trusted"] is ours, url
    assert alert_links({"annotations": {"runbook_url": ""}, "generatorURL": None}, bases) == []


def test_the_page_never_says_ago_it_says_when_against_the_run() -> None:
    """record.html never changes: "fired 6s ago · acknowledge due in 9m54s" was false a minute
    later and beside a served "Resolved". It tells times against the run."""
    from runbook_lib.record.render import _headline_html

    rec = record(
        status="succeeded",
        started_at="2026-12-07T03:00:06+00:00",
        alert={
            "labels": {"alertname": "A", "severity": "critical"},
            "annotations": {},
            "startsAt": "2026-12-07T03:00:00Z",
        },
        incident={"sev": "SEV-2", "started_at": "2026-12-07T03:00:00Z"},
    )
    line = _headline_html(rec)
    assert "fired 6s before this run (2026-12-07T03:00:00Z)" in line
    assert " ago" not in line and "(in " not in line
