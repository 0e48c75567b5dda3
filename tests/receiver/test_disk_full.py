"""A full disk loses nothing (issue: "Nothing lost when the disk fills").

The archive and its intake journal live on a real, small tmpfs that the test mounts (it runs as
root, as CI does; without the right to mount it fails loudly rather than skip). Midway the disk
is filled; the webhook answers 503 while it cannot journal (Alertmanager retries), workers keep
their jobs and retry with backoff while they cannot archive, /healthz says "degraded" with the
reasons. Then the file system is grown, without restarting anything, and every alert gets
exactly one record.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runbook_lib.record.archive import LocalArchive
from runbook_lib.record.archive.verify import verify
from runbook_lib.sandbox.services import start_receiver, wait_for
from tests.helpers import HOME
from tests.support.load import burst_payloads, post_all
from tests.support.minimal import write_minimal_collection

pytestmark = pytest.mark.slow
TOKEN = "disk-full-token-" + os.urandom(4).hex()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"this test mounts a small tmpfs and must run as root: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> Path:
    """Write a ballast file until the file system says it is full."""
    ballast = path / "ballast"
    with ballast.open("wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
                fh.flush()
        except OSError:
            pass
    return ballast


def records_indexed(archive: Path) -> int:
    if not (archive / "index.jsonl").exists():
        return 0
    return sum(1 for e in LocalArchive(archive).entries() if e.get("type") == "record")


def test_forty_alerts_survive_a_full_disk_without_a_restart(tmp_path: Path, small_disk: Path) -> None:
    archive = small_disk / "executed"
    runbooks, catalog = write_minimal_collection(tmp_path / "collection", HOME)
    env = {
        "RUNBOOK_ARCHIVE": str(archive),
        "RUNBOOK_RUNBOOKS_DIR": str(runbooks),
        "RUNBOOK_CATALOG": str(catalog),
        "RUNBOOK_WEBHOOK_TOKEN": TOKEN,
    }
    payloads = burst_payloads(40)
    receiver = start_receiver(tmp_path / "receiver", env, workers=2)
    url = f"{receiver.url}/alerts"
    try:
        for body in payloads[:20]:  # one at a time, as the review did
            assert post_all(url, [body], TOKEN, concurrency=1)[0].status == 200
        wait_for("20 records", lambda: records_indexed(archive) == 20, 120, receiver)

        assert post_all(url, [payloads[20]], TOKEN, concurrency=1)[0].status == 200
        ballast = fill(small_disk)  # the 21st alert is journaled; its record cannot be written

        results: list = []
        poster = threading.Thread(
            target=lambda: results.extend(
                post_all(url, [b], TOKEN, concurrency=1, retry_for_s=300)[0] for b in payloads[21:]
            ),
            daemon=True,
        )
        poster.start()  # like Alertmanager: retried while the webhook answers 503
        seen: dict[str, str] = {}

        def degraded_on_both() -> bool:
            resp = httpx.get(f"{receiver.url}/healthz", timeout=10)
            body = resp.json()
            if resp.status_code == 503 and body.get("status") == "degraded":
                for p in body.get("problems", []):
                    seen[p["component"].split()[0]] = p["reason"]
            return {"journal", "worker"} <= set(seen)

        wait_for("/healthz to report the journal and a worker degraded", degraded_on_both, 120, receiver)
        assert "no space left on device" in seen["worker"] or "disk is full" in seen["worker"]
        assert "disk is full" in seen["journal"] or "no space" in seen["journal"]
        metrics = httpx.get(f"{receiver.url}/metrics", timeout=10).text
        assert 'runbook_receiver_degraded{component="journal"} 1.0' in metrics
        assert records_indexed(archive) == 20

        subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)  # space comes back
        poster.join(300)
        assert [r.status for r in results] == [200] * 19
        wait_for("40 records", lambda: records_indexed(archive) == 40, 240, receiver)
        wait_for("/healthz ok", lambda: httpx.get(f"{receiver.url}/healthz", timeout=10).status_code == 200, 60)
        assert receiver.alive(), "the receiver was never restarted"
    finally:
        receiver.stop()
    count, problems = verify(LocalArchive(archive))
    assert (count, problems) == (40, [])
    staging = archive / ".staging"
    assert not staging.exists() or list(staging.iterdir()) == []
    arc = LocalArchive(archive)
    fingerprints = sorted(arc.load(e["id"])["alert"]["fingerprint"] for e in arc.entries() if e["type"] == "record")
    assert fingerprints == sorted(p["alerts"][0]["fingerprint"] for p in payloads), "exactly one record per alert"
    assert ballast.exists()
