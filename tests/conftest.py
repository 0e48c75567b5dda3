"""Fixtures on real services: Prometheus (Debian's package, backfilled by promtool), the local
PostgreSQL and Redis, and the real kubernetes client against tests/fake_kube.py.

A missing service is a failure, never a skip: CI must not count an untested path as passing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

HOME = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HOME / "tests"))

from fake_kube import FakeKube  # noqa: E402

from runbook_lib.sandbox import database, services  # noqa: E402
from runbook_lib.sandbox.incident import Scenario, write_file  # noqa: E402

NAMESPACE = "omnihub-prod"
REDIS_URL = "redis://127.0.0.1:6379/0"
# Variables that would point a test at something other than what it set up.
OUR_VARS = [
    "RUNBOOK_ENV",
    "RUNBOOK_HOME",
    "RUNBOOK_ARCHIVE",
    "RUNBOOK_PROMETHEUS_URL",
    "RUNBOOK_PROMETHEUS_TOKEN",
    "RUNBOOK_POSTGRES_DSN",
    "RUNBOOK_POSTGRES_DSN_FILE",
    "RUNBOOK_REDIS_URL",
    "RUNBOOK_AMQP_URL",
    "KUBECONFIG",
    "RUNBOOK_KUBE_NAMESPACE",
    "RUNBOOK_CELL_TIMEOUT",
    "RUNBOOK_RUNBOOKS_DIR",
    "RUNBOOK_CATALOG",
    "RUNBOOK_OPERATOR",
    "RUNBOOK_WEBHOOK_TOKEN",
    "RUNBOOK_JOURNAL",
    "RUNBOOK_WORKERS",
]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pytest_sessionstart(session: pytest.Session) -> None:
    missing = [
        f"{name} on 127.0.0.1:{port}" for name, port in (("PostgreSQL", 5432), ("Redis", 6379)) if not _port_open(port)
    ]
    missing += [b for b in ("prometheus", "promtool", "prometheus-alertmanager") if not shutil.which(b)]
    if missing:
        pytest.exit(
            f"required services/binaries missing: {', '.join(missing)} (run scripts/bootstrap.sh and scripts/services.sh)",
            3,
        )


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in OUR_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def archive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "executed"
    monkeypatch.setenv("RUNBOOK_ARCHIVE", str(path))
    return path


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return Scenario.default(datetime.now(UTC), ahead=timedelta(hours=2))


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory: pytest.TempPathFactory, scenario: Scenario) -> Iterator[services.Service]:
    """A real Prometheus holding the synthetic incident (backfilled), no rules."""
    work = tmp_path_factory.mktemp("prometheus")
    write_file(scenario, work / "incident.om")
    services.backfill(work / "incident.om", work / "tsdb")
    svc = services.start_prometheus(work, work / "tsdb")
    yield svc
    svc.stop()


@contextmanager
def temp_database(tag: str) -> Iterator[str]:
    """A database of this run's own with the OmniHub schema and seed; dropped afterwards."""
    name = f"rbtest_{os.getpid()}_{tag}_{uuid.uuid4().hex[:6]}"
    dsn = database.create_database(name)
    try:
        yield dsn
    finally:
        database.drop_database(name)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """Shared by read-mostly tests."""
    with temp_database("shared") as dsn:
        yield dsn


@pytest.fixture
def fresh_db() -> Iterator[str]:
    """For a test that changes rows."""
    with temp_database("fresh") as dsn:
        yield dsn


@pytest.fixture
def fake_kube(tmp_path: Path, scenario: Scenario) -> Iterator[tuple[FakeKube, Path]]:
    """The fake API server with deployment/api-gateway whose newest revision rolled out four
    minutes before the incident; and a kubeconfig for it."""
    fake = FakeKube()
    assert scenario.incident_start
    fake.add_api_gateway(NAMESPACE, scenario.incident_start - timedelta(minutes=4))
    fake.start()
    kubeconfig = fake.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)
    yield fake, kubeconfig
    fake.stop()


@pytest.fixture
def full_env(
    monkeypatch: pytest.MonkeyPatch,
    archive_dir: Path,
    prometheus: services.Service,
    pg_dsn: str,
    fake_kube: tuple[FakeKube, Path],
) -> dict[str, str]:
    """Every backend configured, through the environment, as on-call would have it."""
    env = {
        "RUNBOOK_PROMETHEUS_URL": prometheus.url,
        "RUNBOOK_POSTGRES_DSN": pg_dsn,
        "RUNBOOK_REDIS_URL": REDIS_URL,
        "KUBECONFIG": str(fake_kube[1]),
        "RUNBOOK_KUBE_NAMESPACE": NAMESPACE,
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def alert_payload(
    alertname: str = "HighErrorBudgetBurnRate",
    starts_at: datetime | None = None,
    labels: dict[str, str] | None = None,
    status: str = "firing",
    fingerprint: str | None = None,
    severity: str = "critical",
) -> dict[str, Any]:
    starts = (starts_at or datetime.now(UTC) - timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    lab = {"alertname": alertname, "severity": severity, **(labels or {})}
    alert = {
        "status": status,
        "labels": lab,
        "annotations": {"summary": f"{alertname} summary", "description": "test alert"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9/graph?g0.expr=vector%281%29&g0.tab=1",
        "fingerprint": fingerprint or uuid.uuid4().hex[:16],
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "runbooks",
        "groupLabels": {"alertname": alertname},
        "commonLabels": dict(lab),
        "commonAnnotations": dict(alert["annotations"]),
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert],
    }


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def runbook_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The real `runbook` command, in a subprocess, with the test's environment."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(Path(sys.executable).parent / "runbook"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        check=False,
    )


def load_record(html_path: str | Path) -> dict[str, Any]:
    return json.loads((Path(str(html_path).strip()).parent / "record.json").read_text())
