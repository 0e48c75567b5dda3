"""The archive in S3 (``RUNBOOK_ARCHIVE=s3://bucket/prefix``) against a real S3 protocol peer:
moto's server on loopback, one per module, each test in a bucket of its own. Records come from
the real engine (triage runs, no backend configured); `runbook records/show/verify` run as the
real command; tampering is done with boto3 behind the archive's back; concurrent writers are
separate processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from fastapi.testclient import TestClient

from runbook_lib.core.credentials import environment_secrets
from runbook_lib.core.environmental import environmental
from runbook_lib.core.errors import ArchiveError, ArchiveUnavailable, ConfigError, RecordTaken
from runbook_lib.core.layout import INDEX
from runbook_lib.core.settings import load_settings
from runbook_lib.receiver.app import create_app
from runbook_lib.record.archive import archive_for, open_archive
from runbook_lib.record.archive.s3 import LOCK, S3Archive
from runbook_lib.record.archive.verify import verify
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox.services import free_port
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import HOME, alert_payload, cli, runbook_cli
from tests.receiver.test_receiver import TOKEN, bearer

pytestmark = pytest.mark.services

SECRET = "moto-secret-access-key-5f1e9c0d"  # moto takes any; it must never show up anywhere
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIATESTINGARCHIVE01",
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # no credential lookup may leave the loopback
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
ALERTS = ("FirstAlert", "SecondAlert", "ThirdAlert")


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (its endpoint URL)."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("w")
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    assert moto, "moto_server is missing from the virtualenv (pip install 'moto[server]')"
    proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def s3_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )


def new_bucket(endpoint: str) -> str:
    name = f"rbtest-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=name)
    return name


def keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    pages = s3_client(endpoint).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
    return sorted(o["Key"][len(prefix) + 1 :] for page in pages for o in page.get("Contents", []))


def home_with_parameters(home: Path) -> Path:
    shutil.copytree(HOME / "parameters", home / "parameters")
    return home


@pytest.fixture(scope="module")
def pristine(s3_server: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An archive in S3 with three real records (triage runs through the runner) and one
    resolved event; its home (RUNBOOK_HOME) is a temporary one."""
    home = home_with_parameters(tmp_path_factory.mktemp("home"))
    bucket = new_bucket(s3_server)
    url = f"s3://{bucket}/incidents"
    with pytest.MonkeyPatch.context() as env:
        for name, value in AWS_ENV.items():
            env.setenv(name, value)
        env.setenv("RUNBOOK_HOME", str(home))
        env.setenv("RUNBOOK_RUNBOOKS_DIR", str(HOME / "runbooks"))
        settings = load_settings(overrides={"archive.path": url, "archive.endpoint": s3_server, "prometheus.url": None})
        engine = Runner(settings)
        results = [
            engine.run(RunRequest(alert=parse_alert(alert_payload(alertname=name)["alerts"][0]))) for name in ALERTS
        ]
        engine.archive.append_event(results[0].record_id, "resolved", {"ends_at": "2026-11-26T15:00:00Z"})
    return {
        "url": url,
        "bucket": bucket,
        "prefix": "incidents",
        "home": home,
        "ids": [r.record_id for r in results],
        "results": results,
        "redactor": engine.redactor,
    }


@pytest.fixture
def s3_env(s3_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The test's environment (and the CLI's): moto's endpoint and credentials, a home of its own."""
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNBOOK_ARCHIVE_ENDPOINT", s3_server)
    monkeypatch.setenv("RUNBOOK_HOME", str(home_with_parameters(tmp_path / "home")))
    monkeypatch.setenv("RUNBOOK_RUNBOOKS_DIR", str(HOME / "runbooks"))
    return s3_server


@pytest.fixture
def copy_of_pristine(s3_env: str, pristine: dict[str, Any]) -> tuple[str, list[str]]:
    """The pristine archive copied object by object to a prefix of this test's own (its URL)."""
    client, prefix = s3_client(s3_env), f"copy-{uuid.uuid4().hex[:8]}"
    for key in keys(s3_env, pristine["bucket"], pristine["prefix"]):
        client.copy_object(
            Bucket=pristine["bucket"],
            Key=f"{prefix}/{key}",
            CopySource={"Bucket": pristine["bucket"], "Key": f"{pristine['prefix']}/{key}"},
        )
    return f"s3://{pristine['bucket']}/{prefix}", pristine["ids"]


def test_engine_records_are_listed_shown_and_verified_by_the_cli(s3_env: str, pristine: dict[str, Any]) -> None:
    url, ids = pristine["url"], pristine["ids"]
    stored = keys(s3_env, pristine["bucket"], pristine["prefix"])
    for rid in ids:
        folder = f"{rid[:4]}/{rid[4:6]}/{rid[6:8]}/{rid}"
        assert {f"{folder}/{n}" for n in ("notebook.ipynb", "record.html", "record.json")} <= set(stored)
    assert {"index.jsonl", "HEAD"} <= set(stored) and LOCK not in stored  # the lock was released
    assert not any((pristine["home"] / ".runbook" / ".staging").iterdir())  # staging uploaded, then removed
    assert pristine["results"][0].path is None
    assert (
        pristine["results"][0].html_location == f"{url}/{ids[0][:4]}/{ids[0][4:6]}/{ids[0][6:8]}/{ids[0]}/record.html"
    )

    env = {"RUNBOOK_ARCHIVE": url}
    listed = cli("records", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["id"] for r in rows] == ids[::-1]
    assert [r["alert"] for r in rows] == list(ALERTS[::-1])
    assert [r["resolved"] for r in rows] == ["", "", "yes"]

    shown = cli("show", ids[1][-8:], env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"record    {ids[1]}" in shown.stdout and "SecondAlert" in shown.stdout
    assert f"html      {url}/{ids[1][:4]}/{ids[1][4:6]}/{ids[1][6:8]}/{ids[1]}/record.html" in shown.stdout

    verified = cli("verify", env=env)
    assert verified.returncode == 0, verified.stderr
    assert f"ok: 3 records verified in {url}; chain intact" in verified.stdout
    anchor = cli("anchor", env=env)
    assert anchor.returncode == 0 and anchor.stdout.startswith("4:")


def test_the_secret_access_key_is_redacted_and_stored_nowhere(s3_env: str, pristine: dict[str, Any]) -> None:
    assert SECRET in environment_secrets({"AWS_SECRET_ACCESS_KEY": SECRET})
    assert SECRET not in pristine["redactor"].text(f"the key is {SECRET}")
    client = s3_client(s3_env)
    for key in keys(s3_env, pristine["bucket"], pristine["prefix"]):
        body = client.get_object(Bucket=pristine["bucket"], Key=f"{pristine['prefix']}/{key}")["Body"].read()
        assert SECRET.encode() not in body, key


def flip_middle_byte(endpoint: str, url: str, rel: str) -> None:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = s3_client(endpoint)
    data = bytearray(client.get_object(Bucket=bucket, Key=f"{prefix}/{rel}")["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=bytes(data))


@pytest.mark.parametrize("name", ["record.json", "record.html", "notebook.ipynb"])
def test_one_changed_byte_in_one_object_is_named_by_verify(copy_of_pristine, s3_env: str, name: str) -> None:
    url, ids = copy_of_pristine
    target = ids[1]
    assert cli("verify", env={"RUNBOOK_ARCHIVE": url}).returncode == 0
    flip_middle_byte(s3_env, url, f"{target[:4]}/{target[4:6]}/{target[6:8]}/{target}/{name}")
    res = cli("verify", env={"RUNBOOK_ARCHIVE": url})
    assert res.returncode == 1
    assert f"{target}: {name} changed since it was archived" in res.stderr
    assert ids[0] not in res.stderr and ids[2] not in res.stderr


def test_a_removed_index_line_and_a_planted_object_are_found(copy_of_pristine, s3_env: str) -> None:
    url, _ids = copy_of_pristine
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = s3_client(s3_env)
    index = client.get_object(Bucket=bucket, Key=f"{prefix}/{INDEX}")["Body"].read()
    client.put_object(Bucket=bucket, Key=f"{prefix}/{INDEX}", Body=b"".join(index.splitlines(keepends=True)[:-1]))
    client.put_object(Bucket=bucket, Key=f"{prefix}/2026/11/27/planted.html", Body=b"<script>")
    problems = {str(p) for p in verify(open_archive(url, endpoint=s3_env))[1]}
    assert any(p.startswith("HEAD: says seq 4 but the index ends at seq 3") for p in problems)
    assert "2026/11/27/planted.html: unexpected file in the archive's date directories" in problems


APPENDER = """
import sys
from runbook_lib.record.archive import open_archive
url, endpoint, writer, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
archive = open_archive(url, endpoint=endpoint)
archive.read_head()  # connect (and check the bucket) before the start
print("ready", flush=True)
sys.stdin.readline()  # "go": every writer is connected, they start together
for n in range(count):
    archive.append_event(None, "note", {"writer": writer, "n": n})
print(archive.lock_waits, flush=True)
"""


def test_concurrent_appends_from_four_processes_make_one_linear_chain(s3_env: str) -> None:
    url = f"s3://{new_bucket(s3_env)}/shared"
    writers, each = 4, 10
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, url, s3_env, f"w{i}", str(each)],
            cwd=HOME,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(writers)
    ]
    for p in procs:  # however long imports take on a loaded machine
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    start = time.time()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outs, errors = zip(*(p.communicate(timeout=180) for p in procs), strict=True)
    elapsed = time.time() - start
    assert [p.returncode for p in procs] == [0] * writers, errors
    archive = open_archive(url, endpoint=s3_env)
    entries = list(archive.entries())
    assert [e["seq"] for e in entries] == list(range(1, writers * each + 1))
    for i in range(writers):  # every append is there once, each writer's in its own order
        assert [e["data"]["n"] for e in entries if e["data"]["writer"] == f"w{i}"] == list(range(each))
    # they did contend: some writer found the lock held (the lock is not fair: a writer appending
    # back to back may take it again before a waiter's backoff ends, so the order alone says little)
    assert sum(int(out.split()[-1]) for out in outs) > 0, "the writers never met at the lock"
    assert verify(archive) == (0, [])
    assert archive.read_head() == {"seq": 40, "hash": entries[-1]["hash"]}
    assert LOCK not in keys(s3_env, url.split("/")[2], "shared")
    print(f"\n{writers * each} appends by {writers} processes in {elapsed:.1f} s: {writers * each / elapsed:.1f}/s")


def put_lock(endpoint: str, url: str, body: bytes) -> None:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3_client(endpoint).put_object(Bucket=bucket, Key=f"{prefix}/{LOCK}", Body=body)


def lock_exists(endpoint: str, url: str) -> bool:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return LOCK in keys(endpoint, bucket, prefix)


def test_a_stale_lock_is_broken(s3_env: str, caplog: pytest.LogCaptureFixture) -> None:
    url = f"s3://{new_bucket(s3_env)}/a"
    put_lock(s3_env, url, json.dumps({"owner": "gone-host:4242", "expires": time.time() - 60}).encode())
    t0 = time.monotonic()
    S3Archive(url, endpoint=s3_env).append_event(None, "note", {"n": 1})
    assert time.monotonic() - t0 < 5  # not the 30 s lease, not the 90 s wait
    assert "broke a stale archive lock held by gone-host:4242" in caplog.text
    assert not lock_exists(s3_env, url)
    # a lock nobody can read is stale one lease after it was written (by the server's clock)
    put_lock(s3_env, url, b"\x00 not json")
    S3Archive(url, endpoint=s3_env, lease_s=1.0).append_event(None, "note", {"n": 2})
    archive = open_archive(url, endpoint=s3_env)
    assert [e["seq"] for e in archive.entries()] == [1, 2] and verify(archive) == (0, [])


def test_a_live_lock_makes_a_writer_wait_then_times_out_clearly(s3_env: str) -> None:
    url = f"s3://{new_bucket(s3_env)}/a"
    archive = S3Archive(url, endpoint=s3_env)
    archive.append_event(None, "note", {"n": 0})
    put_lock(s3_env, url, json.dumps({"owner": "busy-host:7", "expires": time.time() + 30}).encode())
    done: list[float] = []
    t0 = time.monotonic()
    writer = threading.Thread(
        target=lambda: (archive.append_event(None, "note", {"n": 1}), done.append(time.monotonic()))
    )
    writer.start()
    time.sleep(1.5)
    assert writer.is_alive() and [e["seq"] for e in archive.entries()] == [1]  # waiting, nothing written
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3_client(s3_env).delete_object(Bucket=bucket, Key=f"{prefix}/{LOCK}")  # the holder finishes
    writer.join(timeout=10)
    assert done and done[0] - t0 >= 1.5
    assert [e["seq"] for e in archive.entries()] == [1, 2] and verify(archive) == (0, [])

    put_lock(s3_env, url, json.dumps({"owner": "busy-host:7", "expires": time.time() + 30}).encode())
    impatient = S3Archive(url, endpoint=s3_env, lock_wait_s=1.0)
    with pytest.raises(ArchiveUnavailable) as caught:
        impatient.append_event(None, "note", {"n": 2})
    assert str(caught.value).startswith(f"{url}: the archive lock (.lock) is held by busy-host:7 until ")
    assert environmental(caught.value) == "archive unavailable: archive lock busy"  # a worker retries the job
    assert [e["seq"] for e in archive.entries()] == [1, 2]


def test_a_writer_whose_lease_ran_out_chains_after_the_one_that_broke_its_lock(
    s3_env: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The ETag check on index.jsonl: a writer stalled past its lease (here: a lease of 0 s)
    between reading the index and writing it back does not overwrite the line another writer
    chained meanwhile; it reads again and chains after it."""
    url = f"s3://{new_bucket(s3_env)}/a"
    stalled = S3Archive(url, endpoint=s3_env, lease_s=0.0)
    other = S3Archive(url, endpoint=s3_env)
    read_tagged = stalled.files.read_tagged
    interleaved: list[int] = []

    def read_then_stall(rel: str) -> Any:
        got = read_tagged(rel)
        if rel == INDEX and not interleaved:
            interleaved.append(other.append_event(None, "note", {"by": "other"})["seq"])
        return got

    stalled.files.read_tagged = read_then_stall  # type: ignore[method-assign]
    line = stalled.append_event(None, "note", {"by": "stalled"})
    entries = list(other.entries())
    assert interleaved == [1] and line["seq"] == 2
    assert [(e["seq"], e["data"]["by"]) for e in entries] == [(1, "other"), (2, "stalled")]
    assert verify(other) == (0, [])
    assert "index.jsonl changed while this writer held the lock" in caplog.text


def staged(s3_env: str, url: str, record_id: str, alertname: str) -> tuple[Runner, Path, dict[str, Any]]:
    """A finished run of ``record_id``, staged and not committed: (its runner, staging, record)."""
    runner = Runner(load_settings(overrides={"archive.path": url, "archive.endpoint": s3_env, "prometheus.url": None}))
    kept: dict[str, Any] = {}

    def keep(staging: Path, record: dict[str, Any]) -> str:
        kept["staging"] = staging.parent / f"{staging.name}.kept-{uuid.uuid4().hex[:8]}"
        shutil.copytree(staging, kept["staging"])
        kept["record"] = json.loads((staging / "record.json").read_text())
        raise ArchiveUnavailable("staged only", "test")

    runner.archive.commit = keep  # type: ignore[method-assign]
    alert = parse_alert(alert_payload(alertname=alertname)["alerts"][0])
    with pytest.raises(ArchiveUnavailable):
        runner.run(RunRequest(alert=alert, record_id=record_id))
    del runner.archive.commit
    return runner, kept["staging"], kept["record"]


def test_a_writer_whose_lease_ran_out_never_overwrites_a_record_another_delivery_indexed(s3_env: str) -> None:
    """Two deliveries of one record: the stalled one (lease 0 s) finds the other's files when it
    uploads, and overwrites none; the record in S3 stays the indexed one and verifies."""
    url = f"s3://{new_bucket(s3_env)}/a"
    rid = "20261207T120000Z-triage-0000abcd"
    _, stalled_dir, _ = staged(s3_env, url, rid, "StalledDelivery")
    other, other_dir, other_record = staged(s3_env, url, rid, "OtherDelivery")
    stalled_archive = S3Archive(url, endpoint=s3_env, lease_s=0.0)
    is_indexed = stalled_archive.is_indexed
    interleaved: list[str] = []

    def indexed_then_stall(record_id: str) -> bool:
        answer = is_indexed(record_id)
        if not interleaved:  # the stalled writer passed its "not indexed yet" check, then stalled
            interleaved.append(other.archive.commit(other_dir, other_record))
        return answer

    stalled_archive.is_indexed = indexed_then_stall  # type: ignore[method-assign]
    with pytest.raises(ArchiveError, match="already in the archive"):
        stalled_archive.commit(stalled_dir, json.loads((stalled_dir / "record.json").read_text()))
    archive = open_archive(url, endpoint=s3_env)
    assert interleaved and archive.load(rid)["alert"]["labels"]["alertname"] == "OtherDelivery"
    assert verify(archive) == (1, [])


def test_a_partial_upload_is_replaced_and_a_complete_one_is_the_others(s3_env: str) -> None:
    url = f"s3://{new_bucket(s3_env)}/a"
    archive = open_archive(url, endpoint=s3_env)
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client = s3_client(s3_env)

    # a try that died after its first file: the next delivery's files replace what it left
    rid = "20261207T120000Z-triage-0000aaaa"
    _, staging, record = staged(s3_env, url, rid, "AfterADeadTry")
    client.put_object(Bucket=bucket, Key=f"{prefix}/{archive.relpath_for(rid)}/record.html", Body=b"<p>half</p>")
    archive.commit(staging, record)
    assert archive.read_record_file(rid, "record.html") != b"<p>half</p>" and verify(archive) == (1, [])

    # another delivery uploaded everything and died before its index line: its record stands
    rid = "20261207T120000Z-triage-0000bbbb"
    _, first_dir, _ = staged(s3_env, url, rid, "FirstDelivery")
    _, second_dir, second = staged(s3_env, url, rid, "SecondDelivery")
    for name in ("record.html", "notebook.ipynb", "record.json"):
        body = (first_dir / name).read_bytes()
        client.put_object(Bucket=bucket, Key=f"{prefix}/{archive.relpath_for(rid)}/{name}", Body=body)
    with pytest.raises(RecordTaken):
        archive.commit(second_dir, second)
    assert not archive.is_indexed(rid) and archive.adopt(rid)
    assert archive.load(rid)["alert"]["labels"]["alertname"] == "FirstDelivery"
    assert verify(archive) == (2, [])


def test_adopt_attempts_and_reports_on_a_remote_archive(copy_of_pristine, s3_env: str) -> None:
    url, ids = copy_of_pristine
    archive = open_archive(url, endpoint=s3_env)
    assert [archive.note_attempt(ids[0]) for _ in range(3)] == [1, 2, 3]
    where, event = archive.attach_report(ids[0], "# Incident report\n", "md")
    assert where == f"{url}/reports/{ids[0]}/report-1.md" and event["event"] == "report"
    assert archive.attach_report(ids[0], "<p>again</p>", "html")[0].endswith("report-2.html")
    assert verify(archive) == (3, [])

    # a crash between the upload and the index line: the record is adopted, not run again
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    client, rid = s3_client(s3_env), ids[2].replace(ids[2][-8:], "0badcafe")
    old, new = archive.relpath_for(ids[2]), archive.relpath_for(rid)
    record = json.loads(archive.read_record_file(ids[2], "record.json"))
    record["id"] = rid
    for name in ("notebook.ipynb", "record.html"):
        body = archive.read_record_file(ids[2], name)
        client.put_object(Bucket=bucket, Key=f"{prefix}/{new}/{name}", Body=body)
    assert not archive.has_record_dir(rid) and not archive.adopt(rid)  # no record.json yet: not in place
    client.put_object(Bucket=bucket, Key=f"{prefix}/{new}/record.json", Body=json.dumps(record).encode())
    assert archive.has_record_dir(rid) and not archive.is_indexed(rid)
    assert any("is not in the index" in str(p) for p in verify(archive)[1])
    assert archive.adopt(rid) and archive.is_indexed(rid) and not archive.adopt(rid)
    assert verify(archive) == (4, []) and old != new

    flip_middle_byte(s3_env, url, f"reports/{ids[0]}/report-1.md")
    assert [str(p) for p in verify(archive)[1]] == [
        f"reports/{ids[0]}/report-1.md: attached report changed since it was written (sha256 differs)"
    ]


def test_the_receiver_serves_records_from_the_archive_in_s3(
    s3_env: str, pristine: dict[str, Any], tmp_path: Path
) -> None:
    ids = pristine["ids"]
    settings = load_settings(
        overrides={
            "archive.path": pristine["url"],
            "receiver.journal": str(tmp_path / "intake.sqlite3"),
            "receiver.token": TOKEN,
        }
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        index = client.get("/records", headers=bearer())
        assert index.status_code == 200
        assert "3 records; newest first" in index.text
        for rid, name in zip(ids, ALERTS, strict=True):
            assert f'href="records/{rid}"' in index.text and name in index.text
        page = client.get(f"/records/{ids[0]}", headers=bearer())
        assert page.status_code == 200 and "FirstAlert" in page.text
        assert "Later events (chained in the archive index)" in page.text and "Resolved at" in page.text
        assert client.get(f"/records/{ids[0][:-8]}00000000", headers=bearer()).status_code == 404
        assert ids[0] in client.get("/runbooks/triage", headers=bearer()).text
        assert client.get(f"/records/{ids[0]}").status_code == 401


def test_an_unreachable_archive_is_a_503_not_a_missing_record(s3_env: str, tmp_path: Path) -> None:
    settings = load_settings(
        overrides={
            "archive.path": "s3://rbtest-nowhere/x",
            "archive.endpoint": f"http://127.0.0.1:{free_port()}",
            "receiver.journal": str(tmp_path / "intake.sqlite3"),
            "receiver.token": TOKEN,
        }
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        resp = client.get("/records/20261127T120000Z-triage-0000abcd", headers=bearer())
        assert resp.status_code == 503 and resp.json() == {"error": "the archive cannot be read right now"}
        index = client.get("/records", headers=bearer())
        assert index.status_code == 200 and "cannot reach the S3 endpoint" in index.text


def test_clear_errors_name_the_archive_and_what_to_do_never_the_secret(s3_env: str) -> None:
    bucket = new_bucket(s3_env)
    dead = f"http://127.0.0.1:{free_port()}"
    cases = [
        ({"RUNBOOK_ARCHIVE": f"s3://{bucket}/x", "RUNBOOK_ARCHIVE_ENDPOINT": dead}, "cannot reach the S3 endpoint"),
        ({"RUNBOOK_ARCHIVE": "s3://rbtest-no-such-bucket/x"}, "the bucket 'rbtest-no-such-bucket' does not exist"),
        (
            {"RUNBOOK_ARCHIVE": f"s3://{bucket}/x", "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""},
            "no S3 credentials",
        ),
    ]
    for env, expected in cases:
        res = runbook_cli("records", env=env, timeout=60)
        assert res.returncode == 1, res
        assert expected in res.stderr and env["RUNBOOK_ARCHIVE"].split("/")[2] in res.stderr
        assert "Traceback" not in res.stderr and SECRET not in res.stderr + res.stdout
    with_key = cli("verify", env={"RUNBOOK_ARCHIVE": f"s3://AKIA:{SECRET}@{bucket}/x"})
    assert with_key.returncode == 2 and "must not contain credentials" in with_key.stderr
    assert SECRET not in with_key.stderr + with_key.stdout


def test_settings_of_an_archive_in_s3_or_at_a_file_url(tmp_path: Path) -> None:
    home = home_with_parameters(tmp_path / "home")
    environ = {"RUNBOOK_HOME": str(home), "RUNBOOK_ARCHIVE": "s3://Records-Bucket/x"}
    with pytest.raises(ConfigError, match="needs a bucket name"):
        load_settings(environ=environ)
    s = load_settings(
        environ={
            **environ,
            "RUNBOOK_ARCHIVE": "s3://records//team/a/",
            "RUNBOOK_ARCHIVE_ENDPOINT": "http://s3.internal:9000",
        }
    )
    assert (s.archive_is_remote, s.archive_url, s.archive.endpoint) == (
        True,
        "s3://records/team/a",
        "http://s3.internal:9000",
    )
    assert s.archive_path == home / ".runbook" and s.journal_path == home / ".runbook" / "intake.sqlite3"
    assert isinstance(archive_for(s), S3Archive) and archive_for(s).location == "s3://records/team/a"
    local = load_settings(environ={**environ, "RUNBOOK_ARCHIVE": f"file://{tmp_path}/arch"})
    assert (local.archive_is_remote, local.archive_path, local.archive_url) == (
        False,
        tmp_path / "arch",
        str(tmp_path / "arch"),
    )
    assert type(archive_for(local)).__name__ == "LocalArchive"
