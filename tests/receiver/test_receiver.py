"""The webhook in process (no workers): authentication, validation, limits, deduplication,
503 on a journal failure, and a fuzz of POST /alerts that must never produce a 5xx."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runbook_lib.core.settings import load_settings
from runbook_lib.intake.locks import receiver_locks
from runbook_lib.receiver.app import create_app
from runbook_lib.sandbox.services import free_port
from runbook_lib.sre.alertmanager import parse_payload
from tests.helpers import alert_payload, runbook_cli

TOKEN = "receiver-test-token-9f8e"
USER, PASSWORD = "alertmanager", "basic-pw-7c6d"


def make_client(tmp: Path, **overrides: Any) -> TestClient:
    settings = load_settings(
        overrides={
            "archive.path": str(tmp / "executed"),
            "receiver.token": TOKEN,
            "receiver.basic_user": USER,
            "receiver.basic_password": PASSWORD,
            **overrides,
        }
    )
    return TestClient(create_app(settings), raise_server_exceptions=False)


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    with make_client(tmp_path) as c:
        yield c


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str = USER, password: str = PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def jobs(tmp: Path) -> int:
    path = tmp / "executed" / "intake.sqlite3"
    with sqlite3.connect(path) as db:
        return db.execute("SELECT count(*) FROM jobs").fetchone()[0]


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        (bearer("wrong"), 401),
        (bearer(TOKEN + "x"), 401),
        ({"Authorization": TOKEN}, 401),
        (basic(password="wrong"), 401),
        (basic(user="mallory"), 401),
        ({"Authorization": "Basic !!!notbase64"}, 401),
        (bearer(), 200),
        (basic(), 200),
    ],
)
def test_authentication_both_schemes(tmp_path: Path, headers: dict[str, str], status: int) -> None:
    with make_client(tmp_path) as c:
        resp = c.post("/alerts", json=alert_payload(), headers=headers)
    assert resp.status_code == status
    assert jobs(tmp_path) == (1 if status == 200 else 0)  # a refused request creates nothing


def test_validation_errors_are_4xx_saying_what_is_wrong(client: TestClient, tmp_path: Path) -> None:
    resp = client.post("/alerts", content=b'{"version": "4", "alerts": [', headers=bearer())
    assert resp.status_code == 400 and "malformed JSON" in resp.json()["error"]
    wrong = {**alert_payload(), "version": "3"}
    resp = client.post("/alerts", json=wrong, headers=bearer())
    assert resp.status_code == 422 and resp.json()["error"].startswith("version")
    missing = alert_payload()
    del missing["alerts"][0]["startsAt"]
    resp = client.post("/alerts", json=missing, headers=bearer())
    assert resp.status_code == 422 and resp.json()["error"] == "alerts[0].startsAt: field required"
    resp = client.post("/alerts", json=[1, 2], headers=bearer())
    assert resp.status_code == 422 and "must be a JSON object" in resp.json()["error"]
    resp = client.post("/alerts", json={**alert_payload(), "version": 4}, headers=bearer())
    assert resp.status_code == 422 and resp.json()["error"] == 'version: must be the string "4", not the number 4'
    resp = client.post("/alerts", content="\udcff".encode("utf-8", "surrogatepass"), headers=bearer())
    assert resp.status_code == 400
    assert jobs(tmp_path) == 0


def test_unknown_fields_are_ignored(client: TestClient, tmp_path: Path) -> None:
    p = alert_payload()
    p["someFutureField"] = {"nested": [1, 2, 3]}
    p["alerts"][0]["anotherOne"] = "x"
    resp = client.post("/alerts", json=p, headers=bearer())
    assert resp.status_code == 200 and resp.json()["accepted"] == 1


def test_body_limit_with_and_without_content_length(tmp_path: Path) -> None:
    with make_client(tmp_path, **{"receiver.max_body_bytes": 4096}) as c:
        big = alert_payload(labels={"filler": "x" * 5000})
        assert c.post("/alerts", json=big, headers=bearer()).status_code == 413

        def chunks():  # no Content-Length: the limit holds while streaming
            yield b'{"version": "4", "alerts": ["'
            for _ in range(10):
                yield b"y" * 1000
            yield b'"]}'

        assert c.post("/alerts", content=chunks(), headers=bearer()).status_code == 413
        assert c.post("/alerts", json=alert_payload(), headers=bearer()).status_code == 200
    assert jobs(tmp_path) == 1


def test_dedup_key_is_fingerprint_startsat_status(client: TestClient, tmp_path: Path) -> None:
    p = alert_payload(fingerprint="f00d")
    first = client.post("/alerts", json=p, headers=bearer()).json()
    again = client.post("/alerts", json=p, headers=bearer()).json()
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    assert (again["accepted"], again["duplicates"]) == (0, 1)
    later = alert_payload(fingerprint="f00d", starts_at=None)  # a new startsAt: a new incident
    assert client.post("/alerts", json=later, headers=bearer()).json()["accepted"] == 1
    resolved = json.loads(json.dumps(p))
    resolved["alerts"][0]["status"] = "resolved"
    assert client.post("/alerts", json=resolved, headers=bearer()).json()["accepted"] == 1
    assert jobs(tmp_path) == 3
    metrics = client.get("/metrics").text
    assert "runbook_alerts_deduplicated_total 1.0" in metrics
    assert "runbook_notifications_received_total 4.0" in metrics
    assert 'runbook_queue_depth{state="queued"} 3.0' in metrics


def test_each_alert_of_a_group_is_its_own_job(client: TestClient, tmp_path: Path) -> None:
    p = alert_payload(alertname="A")
    b = json.loads(json.dumps(p["alerts"][0]))
    b.update(fingerprint="bbbb", labels={"alertname": "B"})
    c = json.loads(json.dumps(p["alerts"][0]))
    c.update(fingerprint="cccc", labels={"alertname": "C"})
    p["alerts"] += [b, c]
    resp = client.post("/alerts", json=p, headers=bearer())
    assert resp.json()["accepted"] == 3 and jobs(tmp_path) == 3


def test_journal_failure_answers_503_and_alertmanager_retries(tmp_path: Path) -> None:
    with make_client(tmp_path, **{"receiver.journal_busy_timeout_s": 0.3}) as c:
        journal = tmp_path / "executed" / "intake.sqlite3"
        blocker = sqlite3.connect(journal, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another writer holds the journal
        try:
            resp = c.post("/alerts", json=alert_payload(), headers=bearer())
            assert resp.status_code == 503 and "retry" in resp.json()["error"]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        resp = c.post("/alerts", json=alert_payload(), headers=bearer())  # the retry
        assert resp.status_code == 200
    assert jobs(tmp_path) == 1


def test_records_endpoint_headers_and_auth(client: TestClient) -> None:
    assert client.get("/records/20261126T000000Z-x-00000000").status_code == 401
    resp = client.get("/records/20261126T000000Z-x-00000000", headers=bearer())
    assert resp.status_code == 404
    assert resp.headers["content-security-policy"] == "sandbox"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert client.get("/records/..%2F..%2Fetc%2Fpasswd", headers=bearer()).status_code == 404
    assert client.get("/healthz").json()["status"] == "ok"


# -- fuzz ------------------------------------------------------------------------------------------------
json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_any = st.recursive(
    json_leaf,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)
label_maps = st.dictionaries(st.text(max_size=12), st.text(max_size=40) | json_leaf, max_size=4)
alert_shaped = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "FIRING", ""]) | json_leaf,
        "labels": label_maps.map(lambda d: {"alertname": "Fuzz", **d}) | label_maps | json_any,
        "annotations": label_maps,
        "startsAt": st.sampled_from(
            ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00.123456789+02:00", "0001-01-01T00:00:00Z", "not a date", ""]
        )
        | json_leaf,
        "endsAt": st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-26T11:00:00Z"]) | json_leaf,
        "generatorURL": st.text(max_size=60) | json_leaf,
        "fingerprint": st.text(max_size=20) | json_leaf,
    },
)
payload_shaped = st.fixed_dictionaries(
    {},
    optional={
        "version": st.sampled_from(["4", "3", 4, ""]) | json_leaf,
        "groupKey": st.text(max_size=30) | json_leaf,
        "truncatedAlerts": st.integers() | json_leaf,
        "status": st.sampled_from(["firing", "resolved"]) | json_leaf,
        "receiver": st.text(max_size=10),
        "groupLabels": label_maps,
        "commonLabels": label_maps,
        "commonAnnotations": label_maps,
        "externalURL": st.text(max_size=30),
        "alerts": st.lists(alert_shaped, max_size=4) | json_any,
    },
)


def _valid(labels: dict[str, str], annotations: dict[str, str], fingerprint: str, extra: dict[str, Any]) -> bytes:
    p = alert_payload(labels={k: v for k, v in labels.items() if k not in ("alertname", "severity")})
    p["alerts"][0]["annotations"] = annotations
    p["alerts"][0]["fingerprint"] = fingerprint
    p.update({k: v for k, v in extra.items() if k not in p})
    return json.dumps(p).encode()


valid_hostile = st.builds(
    _valid,
    labels=st.dictionaries(st.text(max_size=12), st.text(max_size=60), max_size=5),
    annotations=st.dictionaries(st.text(max_size=12), st.text(max_size=60), max_size=3),
    fingerprint=st.text(max_size=24),
    extra=st.dictionaries(st.text(max_size=10), json_any, max_size=3),
)
bodies = (
    valid_hostile
    | payload_shaped.map(lambda d: json.dumps(d).encode())
    | json_any.map(lambda d: json.dumps(d).encode())
    | st.binary(max_size=200)
    | st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass"))
)


def test_fuzz_post_alerts_never_5xx(tmp_path: Path) -> None:
    seen: dict[int, int] = {}
    with make_client(tmp_path) as c:

        @settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(body=bodies)
        def fuzz(body: bytes) -> None:
            resp = c.post("/alerts", content=body, headers={**bearer(), "Content-Type": "application/json"})
            seen[resp.status_code] = seen.get(resp.status_code, 0) + 1
            assert resp.status_code < 500, (resp.status_code, body[:200], resp.text[:200])
            if resp.status_code >= 400:
                assert resp.json()["error"]  # says what is wrong

        fuzz()
        assert c.get("/healthz").status_code == 200  # still serving
    assert sum(seen.values()) >= 1000
    assert seen.get(200, 0) > 0 and seen.get(422, 0) > 0  # both paths exercised


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000, 400),  # nesting deeper than the parser goes
        (b'{"version": "4", "n": ' + b"9" * 5000 + b"}", 400),  # integer too long to convert
        (b'{"version": "4", "groupKey": "\\udfff", "alerts": []}', 400),  # lone surrogate
    ],
)
def test_poison_bodies_are_4xx_not_5xx(client: TestClient, body: bytes, status: int) -> None:
    resp = client.post("/alerts", content=body, headers=bearer())
    assert resp.status_code == status, resp.text
    assert resp.json()["error"].startswith("malformed JSON")


@pytest.mark.parametrize("starts", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z", "1200-01-01T00:00:00Z"])
def test_out_of_range_times_are_422(client: TestClient, tmp_path: Path, starts: str) -> None:
    p = alert_payload()
    p["alerts"][0]["startsAt"] = starts
    resp = client.post("/alerts", json=p, headers=bearer())
    assert resp.status_code == 422 and resp.json()["error"].startswith("alerts[0].startsAt")
    p = alert_payload()
    p["alerts"][0]["endsAt"] = "0001-01-01T00:00:00+01:00"  # zero time with an offset: still "not ended"
    assert client.post("/alerts", json=p, headers=bearer()).status_code == 200


def test_a_second_receiver_on_the_same_archive_is_refused_even_with_its_own_journal(tmp_path: Path) -> None:
    """Two journals on one archive would record one alert twice: the archive itself is locked."""
    archive = tmp_path / "executed"
    first = load_settings(overrides={"archive.path": str(archive), "receiver.journal": str(tmp_path / "j1.sqlite3")})
    env = {
        "RUNBOOK_ARCHIVE": str(archive),
        "RUNBOOK_JOURNAL": str(tmp_path / "j2.sqlite3"),
        "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
    }
    with receiver_locks(first):
        second = runbook_cli("serve", "--port", str(free_port()), env=env, timeout=60)
    assert second.returncode == 1
    assert f"another receiver is already serving the archive {archive}" in second.stderr
    assert "j1.sqlite3" in second.stderr  # names the holder


def test_metrics_say_what_the_local_workers_are_running(tmp_path: Path) -> None:
    """With the local executor, every job the journal has running is a run in flight (the
    supervisor is built but not started: no worker takes the jobs)."""
    from runbook_lib.workers.supervisor import Supervisor

    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "receiver.token": TOKEN})
    app = create_app(settings, executor=Supervisor(settings, None, {}, 1))
    intake = app.state.intake
    for n in range(3):
        intake.accept(parse_payload(alert_payload(fingerprint=f"f{n}")), "{}")
    intake.claim("a worker")
    metrics = TestClient(app).get("/metrics").text
    assert 'runbook_runs_in_flight{executor="local"} 1.0' in metrics
    assert 'runbook_queue_depth{state="queued"} 2.0' in metrics
    assert 'runbook_queue_depth{state="running"} 1.0' in metrics


def test_a_job_running_longer_than_any_run_takes_makes_healthz_degraded(tmp_path: Path) -> None:
    """An idle receiver whose only job has been 'running' past receiver.stuck_after_s (its worker
    is wedged, or the archive has been down all along) is not ok."""
    with make_client(tmp_path, **{"receiver.stuck_after_s": 60}) as client:
        intake = client.app.state.intake
        intake.accept(parse_payload(alert_payload(alertname="Wedged", fingerprint="feedbeef")), "{}")
        job = intake.claim("celery")
        assert client.get("/healthz").json()["status"] == "ok"  # running, not for long
        with sqlite3.connect(tmp_path / "executed" / "intake.sqlite3") as db:
            db.execute("UPDATE jobs SET claimed_at = claimed_at - 61 WHERE id = ?", (job.id,))
        resp = client.get("/healthz")
        body = resp.json()
        assert resp.status_code == 503 and body["status"] == "degraded" and body["running"] == 1
        [problem] = body["problems"]
        assert (
            problem["component"] == f"job {job.id}" and "Wedged running for 61 s (worker celery)" in problem["reason"]
        )
        intake.finish(job.id, "succeeded", None)
        assert client.get("/healthz").status_code == 200
