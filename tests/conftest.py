"""Fixtures on real services: Prometheus (Debian's package, backfilled by promtool), the local
PostgreSQL and Redis, and the real kubernetes client against the fake API server
(runbook_lib/sandbox/fake_kube.py).

Servers are shared: one per session where no test changes them (each Prometheus data scenario,
Chromium, the ganache pair, a RabbitMQ vhost), one per module where a module changes one, and
runs go through one kernel template per session (warm kernels, forked with each run's own
environment), as a receiver's workers run them.

A missing service is a failure, never a skip: CI must not count an untested path as passing.
Tests that need services are marked `services` (automatically when they use a service
fixture); `pytest -m "not services"` runs the pure ones without any.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from runbook_lib.sandbox import services
from runbook_lib.sandbox.fake_kube import FakeKube
from runbook_lib.sandbox.incident import Scenario, write_file
from tests.helpers import HOME, NAMESPACE, REDIS_URL, temp_database

if TYPE_CHECKING:
    from selenium import webdriver

    from runbook_lib.run.pool import WarmKernels
    from tests.support.cluster import Cluster, Pair

# Fixtures that reach a real service; a test using one is marked `services` automatically.
SERVICE_FIXTURES = {
    "prometheus",
    "pg_dsn",
    "fresh_db",
    "full_env",
    "ganache_pair",
    "vhost",
    "pg_pair",
    "pair",
    "drill_server",
}
# Variables that would point a test at something other than what it set up.
OUR_VARS = [
    "RUNBOOK_ENV",
    "RUNBOOK_HOME",
    "RUNBOOK_ARCHIVE",
    "RUNBOOK_ARCHIVE_ENDPOINT",
    "RUNBOOK_PROMETHEUS_URL",
    "RUNBOOK_PROMETHEUS_TOKEN",
    "RUNBOOK_POSTGRES_DSN",
    "RUNBOOK_POSTGRES_DSN_FILE",
    "RUNBOOK_REDIS_URL",
    "KUBECONFIG",
    "RUNBOOK_KUBE_NAMESPACE",
    "RUNBOOK_CELL_TIMEOUT",
    "RUNBOOK_RUNBOOKS_DIR",
    "RUNBOOK_CATALOG",
    "RUNBOOK_OPERATOR",
    "RUNBOOK_WEBHOOK_TOKEN",
    "RUNBOOK_JOURNAL",
    "RUNBOOK_WORKERS",
    "RUNBOOK_LINK_SIGNING_KEY",
    "RUNBOOK_RABBITMQ_URL",
    "RUNBOOK_GRAFANA_URL",
    "RUNBOOK_POSTGRES_DRILL_DSN",
    "RUNBOOK_BROKER_URL",
    "RUNBOOK_BROKER_SIGNING_KEY",
    "RUNBOOK_RETRY_MAX_S",
    "RUNBOOK_ALERTMANAGER_URL",
    "RUNBOOK_EXECUTOR",
    "RUNBOOK_SLACK_SIGNING_SECRET",
    "RUNBOOK_PAGERDUTY_WEBHOOK_SECRET",
    "RUNBOOK_ESCALATION",
]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses a service fixture; slow tests always use services."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.services)


def pytest_collection_finish(session: pytest.Session) -> None:
    """When any selected test needs the services, all of them must be there: a missing service
    stops the run with an error, never a skip. Pure tests (-m "not services") need none."""
    if not any(item.get_closest_marker("services") for item in session.items):
        return
    missing = [
        f"{name} on 127.0.0.1:{port}"
        for name, port in (("PostgreSQL", 5432), ("Redis", 6379), ("RabbitMQ", 5672))
        if not _port_open(port)
    ]
    missing += [b for b in ("prometheus", "promtool", "prometheus-alertmanager", "rabbitmqctl") if not shutil.which(b)]
    if not (HOME / ".tools" / "node_modules" / ".bin" / "ganache").exists():
        missing.append("ganache (.tools/node_modules/.bin/ganache)")
    if missing:
        pytest.exit(
            f"required services/binaries missing: {', '.join(missing)} (run scripts/bootstrap.sh and scripts/services.sh)",
            3,
        )


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in OUR_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def warm_pool() -> WarmKernels:
    """The session's kernel template (the project's conftest.py starts it)."""
    from conftest import POOL

    assert POOL, "the session's kernel template was not started"
    return POOL[0]


@pytest.fixture(autouse=True)
def _warm_kernels(warm_pool: WarmKernels) -> None:
    warm_pool.activate()  # a test that started (and closed) a pool of its own left none active


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


# Debian's headless Chromium, as on-call opens a record.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One Chromium for the session (see :func:`browser`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.fail("Debian's chromium and chromium-driver are required (scripts/bootstrap.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: webdriver.Chrome) -> webdriver.Chrome:
    """The session's Chromium as a new visitor: a blank page, no cookies, no extra headers, no
    emulated screen left by an earlier test."""
    chromium.get("about:blank")
    chromium.delete_all_cookies()
    chromium.execute_cdp_cmd("Network.enable", {})
    chromium.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    chromium.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    return chromium


@pytest.fixture(scope="session")
def pg_pair() -> Iterator[Pair]:
    """A PostgreSQL primary of the session's own (initdb: password authentication, 30
    connections) with a hot standby streaming from it (see :func:`pair`)."""
    from tests.support.cluster import Pair

    made = Pair(max_connections=30)
    yield made
    made.remove()


@pytest.fixture
def pair(pg_pair: Pair) -> tuple[Cluster, Cluster]:
    """(primary, standby), streaming: whatever an earlier test stopped, promoted or detached is
    put back first. A test may stop the primary, promote or reconfigure the standby."""
    return pg_pair.reset()


@pytest.fixture
def drill_server(pair: tuple[Cluster, Cluster], monkeypatch: pytest.MonkeyPatch) -> str:
    """Where a DR drill of this test puts its scratch databases: this test process's own primary
    (RUNBOOK_POSTGRES_DRILL_DSN). A drill refuses to start while another drill's scratch database
    is young on its server, so test processes drilling at once must not share one."""
    dsn = pair[0].dsn()
    monkeypatch.setenv("RUNBOOK_POSTGRES_DRILL_DSN", dsn)
    return dsn


@pytest.fixture(scope="session")
def ganache_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """Two local Ethereum nodes on one chain (ganache, from .tools/): for the blockchain runbook
    and the chaos drill. Tests that mine blocks read heights, they never assume them."""
    from tests.support import ganache

    work = tmp_path_factory.mktemp("ganache")
    a = ganache.start_ganache(work, chain_id=1337, blocks=5)
    try:
        b = ganache.start_ganache(work, chain_id=1337, blocks=5)
    except BaseException:
        a.stop()
        raise
    yield a, b
    a.stop()
    b.stop()


@pytest.fixture(scope="session")
def vhost() -> Iterator[str]:
    """A RabbitMQ virtual host of this session's own (three rabbitmqctl calls once, not per test);
    tests declare queues of their own names in it."""
    from tests.support.services import rabbitmq_vhost

    with rabbitmq_vhost("rbtest") as name:
        yield name
