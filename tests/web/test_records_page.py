"""GET /records, the index of incidents (newest first, SEV level, firing or resolved, the worst
finding, the next deadline against now; filters by plain links; 400 that never echoes a bad
value; same credentials and CSP as the runbook page), and GET /r/{id}, the signed, expiring link
to one record that Slack and PagerDuty messages carry (runbook_lib.core.signing). Pure: no services."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
from fastapi.testclient import TestClient

from runbook_lib.core import signing
from runbook_lib.core.credentials import SECRET_ENV_MAP, environment_secrets
from runbook_lib.core.errors import ConfigError
from runbook_lib.core.settings import load_settings
from runbook_lib.notify.messages import Notifier, record_url
from runbook_lib.record.archive import LocalArchive
from runbook_lib.sre import incident
from runbook_lib.web import pages
from runbook_lib.web.records import DEFAULT_LIMIT, MAX_LIMIT
from tests.helpers import posts_received
from tests.receiver.test_receiver import basic, bearer, make_client

KEY = "link-signing-key-0123456789abcdef0123456789abcdef"
SEV1 = {"HighErrorBudgetBurnRate", "DatabaseDown"}
HOSTILE_ALERT = "<script>document.title='pwned'</script>"
HOSTILE_FINDING = "<img src=x onerror=\"document.title='pwned'\"> & <b>bold</b>"


def make_record(
    root: Path,
    n: int,
    *,
    runbook: str,
    alertname: str | None,
    severity: str = "critical",
    fired_ago: timedelta = timedelta(minutes=5),
    verdict: str = "critical",
    summary: str = "the symptom",
    status: str = "succeeded",
    now: datetime | None = None,
    resolved_ago: timedelta | None = None,
) -> str:
    """A record committed through the archive API (what a worker's run ends with): its alert
    fired ``fired_ago`` before ``now``, its run started a minute later; ``resolved_ago`` chains a
    ``resolved`` event as the worker does."""
    now = now or datetime.now(UTC)
    archive = LocalArchive(root)
    fired = now - fired_ago
    started = fired + timedelta(minutes=1)
    rid = f"{started:%Y%m%dT%H%M%SZ}-{runbook}-{n:08x}"
    alert = (
        {
            "labels": {"alertname": alertname, "severity": severity},
            "startsAt": fired.isoformat(),
            "fingerprint": f"{n:016x}",
        }
        if alertname
        else None
    )
    findings = [{"check": "Symptom", "verdict": verdict, "summary": summary, "role": "symptom"}]
    record: dict[str, Any] = {
        "id": rid,
        "runbook": runbook,
        "status": status,
        "started_at": started.isoformat(),
        "alert": alert,
        "findings": findings,
        "actions": [],
        "incident": incident.for_alert(alert, SEV1),
    }
    staging = archive.staging_dir(rid)
    (staging / "notebook.ipynb").write_text("{}")
    (staging / "record.html").write_text(
        f'<html><head><title>{rid}</title></head><body><section class="rb-summary" id="summary">'
        f"record {rid}</section></body></html>"
    )
    (staging / "record.json").write_text(json.dumps(record))
    archive.commit(staging, record)
    if resolved_ago is not None:
        ends = now - resolved_ago
        archive.append_event(
            rid,
            "resolved",
            {
                "alertname": alertname,
                "fingerprint": f"{n:016x}",
                "starts_at": fired.isoformat(),
                "ends_at": ends.isoformat(),
                "duration_s": (ends - fired).total_seconds(),
                "received_at": ends.isoformat(),
            },
        )
    return rid


@pytest.fixture
def incidents(tmp_path: Path) -> dict[str, str]:
    """Six records, newest first: a manual run (no alert, failed), SEV-1 firing 5 minutes, SEV-2
    firing 20 minutes (acknowledge overdue), SEV-3 firing an hour, SEV-2 timed out and firing 2
    hours, SEV-1 fired 3 hours ago and resolved 30 minutes later (preliminary report overdue)."""
    root = tmp_path / "executed"
    now = datetime.now(UTC)
    return {
        "manual": make_record(
            root, 1, runbook="capacity-report", alertname=None, fired_ago=timedelta(minutes=2), status="failed", now=now
        ),
        "sev1": make_record(
            root,
            2,
            runbook="high-error-rate",
            alertname="HighErrorBudgetBurnRate",
            summary="/api/v1/workflows/execute returns 42% 5xx",
            now=now,
        ),
        "sev2": make_record(
            root,
            3,
            runbook="database-connections",
            alertname="DatabaseConnectionsHigh",
            fired_ago=timedelta(minutes=20),
            verdict="warning",
            summary="pool at 95% of max_connections",
            now=now,
        ),
        "sev3": make_record(
            root,
            4,
            runbook="high-error-rate",
            alertname="ElevatedErrorRate",
            severity="warning",
            fired_ago=timedelta(hours=1),
            verdict="info",
            summary="error ratio 0.6%",
            now=now,
        ),
        "resolved": make_record(
            root,
            5,
            runbook="database-connections",
            alertname="DatabaseDown",
            fired_ago=timedelta(hours=3),
            summary="PostgreSQL refuses connections",
            now=now,
            resolved_ago=timedelta(hours=2, minutes=30),
        ),
        "timed_out": make_record(
            root,
            6,
            runbook="high-error-rate",
            alertname="HighLatency",
            fired_ago=timedelta(hours=2),
            summary="p95 at 4.2s",
            status="timed_out",
            now=now,
        ),
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path) as c:
        yield c


@pytest.fixture
def signed_client(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(tmp_path, **{"notify.link_signing_key": KEY}) as c:
        yield c


def rows(page: str) -> list[dict[str, str]]:
    """The index's rows: record id (from its link) and the row's text."""
    out = []
    for body in re.findall(r'<tr class="rx-row[^"]*">(.*?)</tr>', page, re.S):
        rid = re.search(r'href="records/([^"]+)"', body)
        text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))).strip()
        out.append({"id": rid.group(1) if rid else "", "text": text, "html": body})
    return out


def ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [r["id"] for r in rows(resp.text)]


# -- GET /records ---------------------------------------------------------------------------------
def test_the_index_lists_records_newest_first_with_sev_status_finding_and_next_deadline(
    client: TestClient, incidents: dict[str, str]
) -> None:
    resp = client.get("/records", headers=bearer())
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    page = resp.text
    order = ["manual", "sev1", "sev2", "sev3", "timed_out", "resolved"]
    # newest first: by the run's start, which the record id begins with
    found = rows(page)
    assert [r["id"] for r in found] == [incidents[k] for k in sorted(order, key=lambda k: incidents[k], reverse=True)]
    assert [r["id"] for r in found] == [incidents[k] for k in order]
    text = {k: found[i]["text"] for i, k in enumerate(order)}
    assert "HighErrorBudgetBurnRate" in text["sev1"] and "SEV-1" in text["sev1"] and "firing" in text["sev1"]
    assert "CRITICAL /api/v1/workflows/execute returns 42% 5xx" in text["sev1"]
    # 5 minutes in: acknowledge (10 min) is next; its due time is cut to the second, so 5m or 4m5xs
    assert re.search(r"acknowledge due \S+Z \(in (5m|4m5\ds)\)", text["sev1"]) and "OVERDUE" not in text["sev1"]
    # 20 minutes in, SEV-2: acknowledge (10 min) is overdue, the status update (30 min) is next
    assert "SEV-2" in text["sev2"] and "WARNING pool at 95%" in text["sev2"]
    assert "status update due" in text["sev2"] and "OVERDUE: acknowledge overdue by 10m" in text["sev2"]
    # SEV-3: a ticket, no response deadline
    assert "SEV-3" in text["sev3"] and "no deadline ahead" in text["sev3"] and "OVERDUE" not in text["sev3"]
    # resolved: the report deadlines run from the resolution; the preliminary report (1 h) is overdue
    assert "resolved" in text["resolved"] and "firing" not in text["resolved"]
    assert "full report due" in text["resolved"] and "OVERDUE: preliminary report overdue by 1h30m" in text["resolved"]
    assert "acknowledge" not in text["resolved"]  # missed while firing, but nothing to do about it now
    # the run's own status is shown when it did not succeed
    assert "run timed out" in text["timed_out"] and "rb-status" not in found[1]["html"]
    assert "OVERDUE: resolve or escalate overdue by 1h" in text["timed_out"]
    assert "also overdue: acknowledge, status update" in text["timed_out"]  # SEV-2: no incident commander
    # a run without an alert: no SEV level, no incident, its failure shown
    assert text["manual"].startswith("(no alert)")
    assert "no alert" in text["manual"] and "run failed" in text["manual"]
    assert '<td data-label="SEV">-</td>' in found[0]["html"]
    # each row links its record (relative to /records) and its runbook page
    for r in found:
        assert urljoin("http://testserver/records", f"records/{r['id']}") == f"http://testserver/records/{r['id']}"
    assert 'href="runbooks/high-error-rate"' in found[1]["html"]
    opened = client.get(urljoin("http://testserver/records", f"records/{incidents['sev1']}"), headers=bearer())
    assert opened.status_code == 200 and f"record {incidents['sev1']}" in opened.text
    assert "6 records; newest first." in page and "Deadlines as of " in page


def test_served_like_the_runbook_page_no_script_readable_on_a_phone(client: TestClient, incidents) -> None:
    resp = client.get("/records", headers=bearer())
    csp = resp.headers["content-security-policy"]
    assert csp.startswith("sandbox") and "default-src 'none'" in csp and "form-action 'none'" in csp
    assert "script-src" not in csp
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store" and resp.headers["referrer-policy"] == "no-referrer"
    page = resp.text
    assert "<script" not in page and "<form" not in page and "<link" not in page and "src=" not in page
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "@media (max-width: 700px)" in page and "content: attr(data-label)" in page  # rows become cards


def test_same_credentials_as_records(client: TestClient, incidents: dict[str, str]) -> None:
    for headers in ({}, bearer("wrong"), basic(password="wrong")):
        resp = client.get("/records", headers=headers)
        assert resp.status_code == 401 and "HighErrorBudgetBurnRate" not in resp.text
    assert "Basic" in client.get("/records").headers["www-authenticate"]
    assert client.get("/records?sev=bogus").status_code == 401  # refused before anything is parsed
    assert client.get("/records", headers=basic()).status_code == 200  # browsers: basic auth


@pytest.mark.parametrize("path", ["/records/", "/healthz/", "/runbooks/"])
def test_a_trailing_slash_is_404_never_a_redirect_to_the_host_the_client_named(client: TestClient, path: str) -> None:
    resp = client.get(path, headers={**bearer(), "host": "evil.example"}, follow_redirects=False)
    assert resp.status_code == 404 and "location" not in resp.headers


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=firing", ["sev1", "sev2", "sev3", "timed_out"]),
        ("status=resolved", ["resolved"]),
        ("sev=SEV-1", ["sev1", "resolved"]),
        ("sev=SEV-2", ["sev2", "timed_out"]),
        ("sev=SEV-3", ["sev3"]),
        ("runbook=high-error-rate", ["sev1", "sev3", "timed_out"]),
        ("runbook=capacity-report", ["manual"]),
        ("runbook=no-records-yet", []),
        ("status=firing&sev=SEV-1", ["sev1"]),
        ("status=resolved&sev=SEV-2", []),
        ("status=firing&runbook=database-connections", ["sev2"]),
        ("sev=SEV-1&runbook=database-connections&status=resolved", ["resolved"]),
        ("sev=SEV-2&runbook=high-error-rate&status=firing&limit=1", ["timed_out"]),
        ("limit=2", ["manual", "sev1"]),
        ("status=&sev=", ["manual", "sev1", "sev2", "sev3", "timed_out", "resolved"]),  # empty: no filter
    ],
)
def test_filters_and_their_combinations(
    client: TestClient, incidents: dict[str, str], query: str, expected: list[str]
) -> None:
    resp = client.get(f"/records?{query}", headers=bearer())
    assert ids(resp) == [incidents[k] for k in expected]
    if not expected:
        assert "No record matches these filters." in resp.text


def test_filter_choices_are_plain_links_that_keep_the_other_filters(client: TestClient, incidents) -> None:
    page = client.get("/records?status=firing&sev=SEV-2", headers=bearer()).text
    nav = page[page.index('<nav class="rx-filters"') : page.index("</nav>")]
    assert "<form" not in nav and "<input" not in nav
    links = dict(
        (html.unescape(text), html.unescape(href)) for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav)
    )
    assert '<strong aria-current="true">firing</strong>' in nav and '<strong aria-current="true">SEV-2</strong>' in nav
    assert parse_qs(urlsplit(links["resolved"]).query) == {"status": ["resolved"], "sev": ["SEV-2"]}
    assert parse_qs(urlsplit(links["SEV-1"]).query) == {"status": ["firing"], "sev": ["SEV-1"]}
    assert parse_qs(urlsplit(links["database-connections"]).query) == {
        "status": ["firing"],
        "sev": ["SEV-2"],
        "runbook": ["database-connections"],
    }
    assert sorted(k for k in links if k in ("capacity-report", "database-connections", "high-error-rate")) == [
        "capacity-report",
        "database-connections",
        "high-error-rate",
    ]
    # "all" drops just that filter; each link, followed from /records, is a valid query
    for text, href in links.items():
        assert client.get(urljoin("http://testserver/records", href), headers=bearer()).status_code == 200, text


@pytest.mark.parametrize(
    ("query", "parameter", "allowed"),
    [
        ("status=<script>alert(1)</script>", "status", ["firing", "acknowledged", "mitigating", "resolved"]),
        ("status=FIRING", "status", ["firing", "acknowledged", "mitigating", "resolved"]),
        ("sev=sev-1", "sev", ["SEV-1", "SEV-2", "SEV-3"]),
        ("sev=SEV-4", "sev", ["SEV-1", "SEV-2", "SEV-3"]),
        ("sev=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", "sev", ["SEV-1", "SEV-2", "SEV-3"]),
        ("runbook=..%2F..%2Fetc%2Fpasswd", "runbook", ["capacity-report", "database-connections", "high-error-rate"]),
        ("runbook=<b>x</b>", "runbook", ["capacity-report", "database-connections", "high-error-rate"]),
        ("limit=0", "limit", [f"1-{MAX_LIMIT}"]),
        (f"limit={MAX_LIMIT + 1}", "limit", [f"1-{MAX_LIMIT}"]),
        ("limit=-1", "limit", [f"1-{MAX_LIMIT}"]),
        ("limit=ten%3Cscript%3E", "limit", [f"1-{MAX_LIMIT}"]),
        ("limit=%EF%BC%91", "limit", [f"1-{MAX_LIMIT}"]),  # a full-width digit one
        ("limit=99999999999999999999", "limit", [f"1-{MAX_LIMIT}"]),
        ("status=firing&status=resolved", "status", []),
        ("%3Cscript%3E=1", None, ["status", "sev", "runbook", "limit"]),
    ],
)
def test_bad_filter_values_are_400_naming_the_parameter_and_never_echoed(
    client: TestClient, incidents, query: str, parameter: str | None, allowed: list[str]
) -> None:
    resp = client.get(f"/records?{query}", headers=bearer())
    assert resp.status_code == 400 and resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body.get("parameter") == parameter and body["allowed"] == allowed
    assert parameter is None or parameter in body["error"]
    for echoed in ("script", "<", "img", "passwd", "FIRING", "sev-1", "SEV-4", "ten", "99999", "\uff11"):
        assert echoed not in resp.text, echoed
    assert resp.headers["content-security-policy"] == "sandbox" and resp.headers["x-content-type-options"] == "nosniff"


def test_limit_defaults_to_100_and_allows_1000(tmp_path: Path, client: TestClient) -> None:
    root = tmp_path / "executed"
    now = datetime.now(UTC)
    made = [
        make_record(root, n, runbook="triage", alertname=f"A{n}", fired_ago=timedelta(minutes=200 - n), now=now)
        for n in range(DEFAULT_LIMIT + 3)
    ]
    newest = made[::-1]
    resp = client.get("/records", headers=bearer())
    assert ids(resp) == newest[:DEFAULT_LIMIT]
    assert f"{len(made)} records, the newest {DEFAULT_LIMIT} shown" in resp.text
    assert ids(client.get(f"/records?limit={MAX_LIMIT}", headers=bearer())) == newest
    assert ids(client.get("/records?limit=3", headers=bearer())) == newest[:3]


def test_labels_and_findings_are_escaped(tmp_path: Path, client: TestClient) -> None:
    rid = make_record(tmp_path / "executed", 1, runbook="triage", alertname=HOSTILE_ALERT, summary=HOSTILE_FINDING)
    page = client.get("/records", headers=bearer()).text
    assert "<script" not in page and "<img" not in page and "<b>bold" not in page
    assert "&lt;script&gt;document.title=&#x27;pwned&#x27;&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt; &amp; &lt;b&gt;bold" in page
    assert ids(client.get("/records", headers=bearer())) == [rid]


def test_long_headlines_are_shortened(tmp_path: Path, client: TestClient) -> None:
    make_record(tmp_path / "executed", 1, runbook="triage", alertname="Long", summary="x" * 500)
    text = rows(client.get("/records", headers=bearer()).text)[0]["text"]
    assert "x" * 150 in text and "x" * 200 not in text and "…" in text


def test_the_index_is_read_once_per_version_and_each_record_once(
    tmp_path: Path, client: TestClient, incidents: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scans, reads = [], []
    real_entries, real_of = LocalArchive.entries, pages.diagnosis.of

    def counting_entries(self: LocalArchive) -> Any:
        scans.append(1)
        return real_entries(self)

    def counting_of(record: Any) -> Any:
        reads.append(record.get("id"))
        return real_of(record)

    monkeypatch.setattr(LocalArchive, "entries", counting_entries)
    monkeypatch.setattr(pages.diagnosis, "of", counting_of)
    for query in ("", "?sev=SEV-1", "?status=resolved", ""):
        assert client.get(f"/records{query}", headers=bearer()).status_code == 200
    assert len(scans) == 1 and sorted(reads) == sorted(incidents.values())
    # the alert resolves: one event chained, so a new index version, read once; records not re-read
    LocalArchive(tmp_path / "executed").append_event(
        incidents["sev1"], "resolved", {"ends_at": datetime.now(UTC).isoformat()}
    )
    scans.clear()
    assert incidents["sev1"] in ids(client.get("/records?status=resolved", headers=bearer()))
    assert len(scans) == 1 and len(reads) == len(incidents)


def test_an_empty_or_missing_archive_is_a_page_not_an_error(client: TestClient) -> None:
    resp = client.get("/records", headers=bearer())
    assert resp.status_code == 200 and "No records in the archive yet." in resp.text


def test_a_broken_index_is_reported_on_the_page(tmp_path: Path, client: TestClient, incidents) -> None:
    index = tmp_path / "executed" / "index.jsonl"
    index.write_text(index.read_text() + "not json\n")
    resp = client.get("/records", headers=bearer())
    assert resp.status_code == 200 and "The archive index cannot be read" in resp.text and "runbook verify" in resp.text


# -- signing --------------------------------------------------------------------------------------
def test_sign_and_verify() -> None:
    now = 1_800_000_000
    rid = "20261126T000000Z-triage-0000abcd"
    sig = signing.sign(KEY, rid, now + 60)
    assert re.fullmatch(r"[0-9a-f]{64}", sig) and sig == signing.sign(KEY.encode(), rid, now + 60)
    assert signing.verify(KEY, rid, str(now + 60), sig, now)
    assert signing.verify(KEY, rid, now + 60, sig, datetime.fromtimestamp(now, UTC))
    path = signing.signed_path(KEY, rid, now, 60)
    assert path == f"/r/{rid}?exp={now + 60}&sig={sig}"
    for exp, s, at, why in [
        (now + 60, sig, now + 60, "expired"),
        (now + 60, sig, now + 61, "expired"),
        (now + 61, sig, now, "bad signature"),
        (now + 60, sig[:-1] + ("0" if sig[-1] != "0" else "1"), now, "bad signature"),
        (now + 60, sig.upper(), now, "malformed"),
        (now + 60, sig[:-2], now, "malformed"),
        (now + 60, "z" * 64, now, "malformed"),
        ("1e9", sig, now, "malformed"),
        ("-5", sig, now, "malformed"),
        (" 60", sig, now, "malformed"),
        ("9" * 13, sig, now, "malformed"),
        (f"0{now + 60}", sig, now, "malformed"),  # one spelling per link
        ("0", signing.sign(KEY, rid, 0), now, "malformed"),
        (None, sig, now, "missing"),
        (now + 60, None, now, "missing"),
        (now + 60, "", now, "missing"),
    ]:
        assert signing.problem(KEY, rid, exp, s, at) == why, (exp, s, at)
        assert not signing.verify(KEY, rid, exp, s, at)
    assert not signing.verify("another-key-0123456789abcdef0123456789", rid, now + 60, sig, now)
    assert not signing.verify(None, rid, now + 60, sig, now) and not signing.verify("", rid, now + 60, sig, now)
    assert not signing.verify(KEY, rid.replace("abcd", "abce"), now + 60, sig, now)
    # a genuine signature on an absurdly distant expiry is still refused
    far = now + signing.MAX_TTL_S + 1
    assert signing.problem(KEY, rid, far, signing.sign(KEY, rid, far), now) == "malformed"
    with pytest.raises(ConfigError):
        signing.signed_path(KEY, rid, now, signing.MAX_TTL_S + 1)
    with pytest.raises(ConfigError):
        signing.sign("", rid, now)


def test_the_signing_key_is_a_secret_setting(tmp_path: Path) -> None:
    assert SECRET_ENV_MAP["RUNBOOK_LINK_SIGNING_KEY"] == ("notify", "link_signing_key")
    s = load_settings(environ={"RUNBOOK_LINK_SIGNING_KEY": KEY})
    assert s.notify.link_signing_key is not None and s.notify.link_signing_key.get_secret_value() == KEY
    assert s.notify.link_ttl_s == 7 * 86400
    assert KEY in s.secret_values() and KEY not in repr(s) and KEY not in s.model_dump_json()
    assert KEY in environment_secrets({"RUNBOOK_LINK_SIGNING_KEY": KEY})  # redacted from records and logs
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    assert environment_secrets({"RUNBOOK_LINK_SIGNING_KEY_FILE": str(key_file)}) == environment_secrets(
        {"RUNBOOK_LINK_SIGNING_KEY": KEY}
    )
    from_file = load_settings(environ={"RUNBOOK_LINK_SIGNING_KEY_FILE": str(key_file)})
    assert from_file.notify.link_signing_key.get_secret_value() == KEY
    with pytest.raises(ConfigError, match="at least 32 characters") as exc:
        load_settings(environ={"RUNBOOK_LINK_SIGNING_KEY": "short-key-123"})
    assert "short-key-123" not in str(exc.value)
    with pytest.raises(ConfigError, match="link_ttl_s"):
        load_settings(overrides={"notify.link_ttl_s": signing.MAX_TTL_S + 1})
    home = tmp_path / "home"
    (home / "parameters" / "environments").mkdir(parents=True)
    (home / "parameters" / "defaults.yaml").write_text(f"notify:\n  link_signing_key: {KEY}\n")
    (home / "parameters" / "environments" / "local.yaml").write_text("")
    with pytest.raises(ConfigError, match=r"notify\.link_signing_key is a secret") as exc:
        load_settings(environ={"RUNBOOK_HOME": str(home)})
    assert KEY not in str(exc.value)


# -- GET /r/{id} ----------------------------------------------------------------------------------
def link(record_id: str, now: float | None = None, ttl: float = 3600, key: str = KEY) -> str:
    return signing.signed_path(key, record_id, time.time() if now is None else now, ttl)


def test_a_signed_link_opens_its_record_without_credentials(
    signed_client: TestClient, incidents: dict[str, str]
) -> None:
    rid = incidents["resolved"]
    resp = signed_client.get(link(rid))
    plain = signed_client.get(f"/records/{rid}", headers=bearer())
    # the same page, chained events included; its incident line says how long until the next
    # deadline as of each request, so two requests may straddle a minute
    state = re.compile(r'<p class="rb-incident-state">.*?</p>')
    assert state.search(resp.text) and state.search(plain.text)
    assert resp.status_code == 200 and state.sub("", resp.text) == state.sub("", plain.text)
    assert f"record {rid}" in resp.text and "Later events" in resp.text
    for header in ("content-security-policy", "x-content-type-options", "cache-control", "referrer-policy"):
        assert resp.headers[header] == plain.headers[header], header
    assert resp.headers["referrer-policy"] == "no-referrer"  # the signature never leaks onwards


def _flip(sig: str) -> str:
    return sig[:10] + ("a" if sig[10] != "a" else "b") + sig[11:]


def test_expired_altered_or_incomplete_links_are_403(signed_client: TestClient, incidents: dict[str, str]) -> None:
    a, b = incidents["sev1"], incidents["sev2"]
    good = urlsplit(link(a))
    q = {k: v[0] for k, v in parse_qs(good.query).items()}
    exp, sig = q["exp"], q["sig"]
    cases = {
        "expired": link(a, now=time.time() - 7200, ttl=3600),
        "altered record id": f"/r/{b}?exp={exp}&sig={sig}",
        "altered exp": f"/r/{a}?exp={int(exp) + 1}&sig={sig}",
        "altered sig": f"/r/{a}?exp={exp}&sig={_flip(sig)}",
        "missing sig": f"/r/{a}?exp={exp}",
        "missing exp": f"/r/{a}?sig={sig}",
        "missing both": f"/r/{a}",
        "uppercase sig": f"/r/{a}?exp={exp}&sig={sig.upper()}",
        "non-hex sig": f"/r/{a}?exp={exp}&sig=<script>{sig[8:]}",
        "non-integer exp": f"/r/{a}?exp={exp}.0&sig={sig}",
        "absurd exp": (
            f"/r/{a}?exp={int(time.time()) + 10 * 365 * 86400}"
            f"&sig={signing.sign(KEY, a, int(time.time()) + 10 * 365 * 86400)}"
        ),
        "another key": link(a, key="not-the-receivers-key-0123456789abcdef"),
        "a second sig": f"/r/{a}?exp={exp}&sig={_flip(sig)}&sig={sig}",
        "id with a path": f"/r/{a}/../{b}?exp={exp}&sig={sig}",  # (httpx normalises this one away)
        "id with an encoded path": f"/r/{a}%2F..%2F{b}?exp={exp}&sig={sig}",  # sent as is
        "id with a suffix": f"/r/{a}x?exp={exp}&sig={sig}",
    }
    for name, url in cases.items():
        resp = signed_client.get(url)
        assert resp.status_code == 403, name
        assert resp.headers["content-type"] == "application/json", name
        assert a not in resp.text and b not in resp.text and "script" not in resp.text, name
        assert resp.headers["content-security-policy"] == "sandbox", name
    assert "expired" in signed_client.get(cases["expired"]).json()["error"]
    assert signed_client.get(cases["altered sig"]).json() == {"error": "this link is not valid"}
    assert signed_client.get(urlsplit(link(a)).path + "?" + good.query).status_code == 200  # the genuine one


def test_a_signed_link_grants_nothing_else(signed_client: TestClient, incidents: dict[str, str]) -> None:
    a, b = incidents["sev1"], incidents["sev2"]
    query = urlsplit(link(a)).query
    assert signed_client.get(f"/r/{b}?{query}").status_code == 403  # another record
    assert signed_client.get(f"/records?{query}").status_code == 401  # the index
    assert signed_client.get(f"/records/{a}?{query}").status_code == 401  # the plain route still wants credentials
    assert signed_client.get(f"/records/{b}?{query}").status_code == 401
    assert signed_client.get(f"/runbooks/high-error-rate?{query}").status_code == 401
    assert signed_client.get(f"/r/?{query}").status_code in (403, 404)
    missing = "20261126T000000Z-triage-00000000"  # signed, but archived nowhere
    assert signed_client.get(link(missing)).status_code == 404


def test_without_a_key_r_is_404_and_messages_link_the_plain_page(
    client: TestClient, incidents: dict[str, str], capture
) -> None:
    rid = incidents["sev1"]
    resp = client.get(link(rid))
    assert resp.status_code == 404 and resp.json() == {"error": "not found"}
    base, received = capture
    settings = notify_settings(base)
    assert settings.notify.link_signing_key is None
    assert record_url(settings, rid) == f"http://runbooks.test:9095/records/{rid}"
    slack, page = send(settings, rid, received)
    assert button_url(slack) == f"http://runbooks.test:9095/records/{rid}"
    assert page["links"] == [{"href": f"http://runbooks.test:9095/records/{rid}", "text": "Runbook record (diagnosis)"}]
    assert "/r/" not in json.dumps(slack) + json.dumps(page)


def test_with_a_key_messages_carry_a_valid_signed_link_and_never_the_key(
    signed_client: TestClient, incidents: dict[str, str], capture
) -> None:
    rid = incidents["sev1"]
    base, received = capture
    settings = notify_settings(base, RUNBOOK_LINK_SIGNING_KEY=KEY)
    before = int(time.time())
    slack, page = send(settings, rid, received)
    urls = [button_url(slack), page["links"][0]["href"]]
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc, parts.path) == ("http", "runbooks.test:9095", f"/r/{rid}")
        q = parse_qs(parts.query)
        exp, sig = q["exp"][0], q["sig"][0]
        assert before + 7 * 86400 <= int(exp) <= int(time.time()) + 7 * 86400
        assert signing.verify(KEY, rid, exp, sig, time.time())
        assert not signing.verify(KEY, incidents["sev2"], exp, sig, time.time())
        # and the receiver opens it, with no credentials
        opened = signed_client.get(f"{parts.path}?{parts.query}")
        assert opened.status_code == 200 and f"record {rid}" in opened.text
    # the resolved message links the record the same way
    assert Notifier(settings).resolved("HighErrorBudgetBurnRate", "critical", "f", rid, 600.0) == []
    resolved = received[-1][1]
    resolved_url = urlsplit(button_url(resolved))
    assert resolved_url.path == f"/r/{rid}" and "sig=" in resolved_url.query
    everything = json.dumps([body for _, body in received])
    assert KEY not in everything


@pytest.fixture
def capture() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """Slack and PagerDuty stand-ins on loopback, keeping what they are sent."""
    with posts_received() as stand_in:
        yield stand_in


def notify_settings(base: str, **environ: str) -> Any:
    return load_settings(
        environ={
            "RUNBOOK_SLACK_WEBHOOK_URL": f"{base}/services/T000/B000/slacksecret",
            "RUNBOOK_PAGERDUTY_ROUTING_KEY": "pd-routing-key-abcdef",
            "RUNBOOK_PAGERDUTY_URL": f"{base}/v2/enqueue",
            "RUNBOOK_RECORD_BASE_URL": "http://runbooks.test:9095/",
            **environ,
        }
    )


def send(settings: Any, rid: str, received: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], dict[str, Any]]:
    record = {
        "id": rid,
        "runbook": "high-error-rate",
        "status": "succeeded",
        "alert": {"labels": {"alertname": "HighErrorBudgetBurnRate", "severity": "critical"}, "fingerprint": "f"},
        "findings": [{"check": "Symptom", "verdict": "critical", "summary": "42% 5xx"}],
        "intake": {"group_key": "{}:{}"},
    }
    assert Notifier(settings).record_done(record) == []
    slack = next(body for path, body in received if path.startswith("/services/"))
    page = next(body for path, body in received if path == "/v2/enqueue")
    return slack, page


def button_url(message: dict[str, Any]) -> str:
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    return next(e["url"] for e in actions["elements"] if e["action_id"] == "record")
