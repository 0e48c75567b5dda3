"""The traffic and platform runbooks (service-down, high-latency, low-error-budget,
deployment-failure), each executed through the runner against one real Prometheus backfilled
with three days of platform metrics (tests/support/traffic.py), the fake Kubernetes API
with crashing pods or a stuck rollout, direct health probes of loopback servers, and a real
long-running PostgreSQL query. Each test asserts the finding that names the cause, against
what the data holds (the scenario's own totals), not against numbers copied from the code."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runbook_lib.core.settings import load_settings
from runbook_lib.monitoring import dashboards
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox import services
from runbook_lib.sandbox.fake_kube import SANDBOX_SECRETS, FakeKube
from runbook_lib.sre.alertmanager import parse_alert
from runbook_lib.sre.catalog import Catalog
from tests.helpers import NAMESPACE, alert_payload, own_parameters
from tests.support.traffic import SLOW_ENDPOINT, PlatformScenario, write_file

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PlatformScenario, services.Service]]:
    scenario = PlatformScenario.default()
    work = tmp_path_factory.mktemp("platform")
    write_file(scenario, work / "platform.om")
    services.backfill(work / "platform.om", work / "tsdb")
    prom = services.start_prometheus(work, work / "tsdb")
    yield scenario, prom
    prom.stop()


class _Health(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def health_urls() -> Iterator[dict[str, str]]:
    """A healthy instance, one answering 503, and a port where nothing listens."""
    servers = []
    urls = {}
    for name, code in (("healthy", 200), ("failing", 503)):
        server = ThreadingHTTPServer(("127.0.0.1", 0), type(name, (_Health,), {"status": code}))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        urls[name] = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    urls["refused"] = f"http://127.0.0.1:{services.free_port()}/healthz"
    yield urls
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(
    platform: tuple[PlatformScenario, services.Service],
    health_urls: dict[str, str],
    pg_dsn: str,
    archive_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[FakeKube]:
    """Everything configured: the platform Prometheus, PostgreSQL, the fake API server (the
    newest revision rolled out just before the canary's errors) and the health URLs, written
    into a parameters/ of the test's own."""
    scenario, prom = platform
    urls = "\n".join(f"    - {u}" for u in health_urls.values())
    own_parameters(
        tmp_path,
        monkeypatch,
        f"service:\n  health_urls:\n{urls}\n  probe_timeout_s: 1\ncapacity:\n  database_disk_bytes: 12000000000\n",
    )
    fake = FakeKube()
    fake.add_api_gateway(NAMESPACE, scenario.canary_at - timedelta(minutes=2))
    fake.start()
    for var, value in {
        "RUNBOOK_PROMETHEUS_URL": prom.url,
        "RUNBOOK_POSTGRES_DSN": pg_dsn,
        "KUBECONFIG": str(fake.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE)),
        "RUNBOOK_KUBE_NAMESPACE": NAMESPACE,
    }.items():
        monkeypatch.setenv(var, value)
    yield fake
    fake.stop()


def run(slug: str, alertname: str | None = None, **request: Any) -> dict[str, Any]:
    alert = parse_alert(alert_payload(alertname)["alerts"][0]) if alertname else None
    result = Runner(load_settings()).run(RunRequest(alert=alert, slug=None if alertname else slug, **request))
    assert result.status == "succeeded", result.record.get("failed_cell")
    assert result.record["runbook"] == slug
    return result.record


def finding(record: dict[str, Any], check: str) -> dict[str, Any]:
    found = [f for f in record["findings"] if f["check"] == check]
    assert found, f"no {check!r} finding in {[f['check'] for f in record['findings']]}"
    return found[0]


def action(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(a for a in record["actions"] if a["name"] == name)


# -- service-down -------------------------------------------------------------------------------------
def test_service_down_names_the_down_target_the_crashing_pods_and_the_failing_probes(
    env: FakeKube, platform: tuple[PlatformScenario, services.Service]
) -> None:
    env.crash_pods(NAMESPACE)
    record = run("service-down", "ServiceDown")
    scenario = platform[0]

    up = finding(record, "Scrape targets (up)")
    assert up["details"]["down"] == [scenario.down_instance] and up["details"]["scope"] == "some"
    assert up["details"]["vanished"] == [scenario.replaced_instance]  # replaced, not down
    assert up["details"]["total"] == 3
    assert up["verdict"] == "warning" and scenario.down_instance in up["summary"]

    pods = finding(record, "Pods")
    assert pods["role"] == "cause"
    reasons = pods["details"]["reasons"]
    assert set(reasons) >= {"CrashLoopBackOff", "OOMKilled", "Error", "Unschedulable"}
    assert "OOMKilled" in pods["summary"] and "CrashLoopBackOff" in pods["summary"]

    events = finding(record, "Recent events")["details"]["reasons"]
    assert events["BackOff"] == 14 and events["FailedScheduling"] == 3 and "Unhealthy" in events

    probes = finding(record, "Health probes")
    kinds = sorted(probes["details"]["failing"].values())
    assert kinds == ["http_status 503", "refused"] and probes["verdict"] == "warning"

    # the newest revision rolled out shortly before the alert: rollback, not restart, is
    # recommended; both are only proposed
    rollback, restart = action(record, "rollback"), action(record, "restart")
    assert rollback["recommended"] is True and restart["recommended"] is False
    assert rollback["status"] == restart["status"] == "proposed"
    assert not [r for r in env.requests if r["method"] == "PATCH"]


def test_service_down_restart_patches_the_template_only_when_approved(env: FakeKube) -> None:
    env.crash_pods(NAMESPACE)
    dry = run("service-down", mode="resolve", dry_run=True, operator="alice", approve=["restart"])
    assert action(dry, "restart")["status"] == "dry_run"
    assert not [r for r in env.requests if r["method"] == "PATCH"]

    done = run("service-down", mode="resolve", dry_run=False, operator="alice", approve=["restart"])
    restart = action(done, "restart")
    assert restart["status"] == "done", restart
    patches = [r for r in env.requests if r["method"] == "PATCH"]
    assert len(patches) == 1 and patches[0]["content_type"] == "application/merge-patch+json"
    annotations = env.deployments[(NAMESPACE, "api-gateway")]["spec"]["template"]["metadata"]["annotations"]
    assert "kubectl.kubernetes.io/restartedAt" in annotations
    assert restart["audit_ids"], "a real change writes its audit rows"


# -- high-latency -------------------------------------------------------------------------------------
@pytest.fixture
def long_query(pg_dsn: str) -> Iterator[None]:
    """A report query that has been running for a while, from its own application."""
    conn = psycopg.connect(pg_dsn, application_name="report-export", autocommit=True)
    worker = threading.Thread(target=_sleep, args=(conn,), daemon=True)
    worker.start()
    with psycopg.connect(pg_dsn, autocommit=True) as probe:
        for _ in range(100):
            if probe.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'report-export'"
                " AND state = 'active' AND now() - query_start > interval '6 seconds'"
            ).fetchone():
                break
            threading.Event().wait(0.1)
    yield
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'report-export'")
    worker.join(5)
    conn.close()


def _sleep(conn: psycopg.Connection[Any]) -> None:
    try:
        conn.execute("SELECT pg_sleep(120) /* monthly report export */")
    except psycopg.Error:
        pass  # cancelled at the end of the test


def test_high_latency_ranks_the_slow_endpoint_follows_the_database_and_finds_the_long_query(
    env: FakeKube, long_query: None, archive_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNBOOK_GRAFANA_URL", "https://grafana.example.test")
    record = run("high-latency", "HighLatency")

    latency = finding(record, "Latency by endpoint")
    assert latency["details"]["endpoint"] == SLOW_ENDPOINT and latency["details"]["over_target"] == [SLOW_ENDPOINT]
    assert latency["details"]["p95_s"] > latency["details"]["target_s"] == 0.5

    follows = finding(record, "What latency follows")
    assert follows["role"] == "cause" and follows["details"]["follows"] == "database query time"
    corr = follows["details"]["correlations"]
    assert corr["database query time"] > corr["error rate"]

    slow = finding(record, "Slow queries")
    assert slow["role"] == "cause" and slow["details"]["application"] == "report-export"
    assert slow["details"]["source"] == "pg_stat_activity" and slow["details"]["seconds"] > 5
    assert "monthly report export" in slow["details"]["query"]

    # the p95 query links the generated SLO dashboard's P95 panel (the same id the dashboard has)
    settings = load_settings()
    slo_dash = dashboards.dashboards(Catalog.load(settings.catalog_file, settings.runbooks_path), settings.metrics)
    p95 = next(p for p in dashboards.panels(slo_dash["slo.json"]) if p.get("title") == "P95 Latency")
    page = next(archive_dir.rglob(f"{record['id']}/record.html")).read_text()
    assert "https://grafana.example.test/d/omnihub-slo?from=" in page and f"viewPanel={p95['id']}" in page


# -- low-error-budget ---------------------------------------------------------------------------------
def test_low_error_budget_reports_every_slo_with_band_burn_and_exhaustion(
    env: FakeKube, platform: tuple[PlatformScenario, services.Service]
) -> None:
    record = run("low-error-budget", "LowErrorBudget")
    scenario = platform[0]  # its truth: what the data holds, computed while writing it
    expected_remaining = 1 - scenario.truth.ratio("3d") / 0.001

    api_finding = finding(record, "Error budget: api-availability")
    api = api_finding["details"]
    assert api["budget_remaining"] == pytest.approx(expected_remaining, abs=0.05)
    # the scenario burns 84 % of the budget in three days: the freeze band (10-25 % left)
    assert 0.10 < expected_remaining < 0.25 and api["band"] == "freeze"
    assert api_finding["provisional"] is True and 60 <= api["data_hours"] <= 80  # three days of a 28-day window
    assert api_finding["verdict"] == "warning", "provisional: never louder than a warning"
    burns = api["burn_rates"]
    assert burns["1h"] == pytest.approx(scenario.truth.ratio("1h") / 0.001, rel=0.1)
    assert burns["6h"] == pytest.approx(scenario.truth.ratio("6h") / 0.001, rel=0.1)
    assert burns["3d"] == pytest.approx(scenario.truth.ratio("3d") / 0.001, rel=0.1)
    assert burns["1h"] > burns["6h"] > burns["3d"]  # the canary's errors are the newest
    assert api["exhausted_at"] not in ("", "never at this burn")

    # the record leads with the worst SLO and the policy it sets
    overview = finding(record, "Error budgets")
    budgets = [f["details"] for f in record["findings"] if f["check"].startswith("Error budget:")]
    worst = min(budgets, key=lambda d: d["budget_remaining"])
    assert overview["role"] == "symptom" and overview["details"]["worst"] == worst["slo"]
    assert record["diagnosis"]["symptom"].startswith("Error budgets:")
    # step 2 looks at the errors now; it does not judge the 28-day budget a second time
    assert not [f for f in record["findings"] if f["check"].startswith("Error budget (")]
    assert record["diagnosis"]["verdict"] != "critical" or not record["diagnosis"]["provisional"]

    names = {f["details"].get("slo") for f in record["findings"] if f["check"].startswith("Error budget:")}
    assert names == {
        "api-availability",
        "api-latency-p95",
        "workflow-success",
        "execution-success",
        "database-availability",
    }
    db = finding(record, "Error budget: database-availability")["details"]
    assert db["budget_remaining"] < 1  # the ten minutes pg_up was 0


# -- deployment-failure -------------------------------------------------------------------------------
def test_deployment_failure_names_the_stuck_rollout_the_change_and_the_worse_canary(
    env: FakeKube, platform: tuple[PlatformScenario, services.Service], archive_dir: Path
) -> None:
    env.break_rollout(NAMESPACE)
    record = run("deployment-failure")

    status = finding(record, "Rollout status")
    assert status["verdict"] == "critical" and status["details"]["deadline_exceeded"] is True
    assert "ProgressDeadlineExceeded" in status["summary"]

    changed = finding(record, "What the new revision changed")["details"]
    assert changed["old_image"].endswith(":1.42.0") and changed["new_image"].endswith(":1.43.0")
    assert set(changed["env_changed"]) == {
        "DB_POOL_SIZE",
        "FEATURE_BATCH_EXECUTE",
        "DB_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "DATABASE_URL",
    }
    # the application's own secrets changed too, and show only as changed: never their values,
    # in the record, the page, the notebook (the rollback plan's template included)
    files = [p for p in archive_dir.rglob(f"{record['id']}/*") if p.is_file()]
    text = "".join(p.read_text() for p in files)
    assert len(files) >= 3 and not [s for s in SANDBOX_SECRETS if s in text]
    assert "postgres://api:***@db-2:5432/omnihub" in text

    canary = finding(record, "Canary against stable")
    assert canary["role"] == "cause" and canary["verdict"] == "critical"
    d = canary["details"]
    assert d["canary"] == "1.43.0" and d["stable"] == "1.42.0"
    scenario = platform[0]
    assert d["canary_error_ratio"] == pytest.approx(scenario.canary_error_ratio, rel=0.1)
    assert d["stable_error_ratio"] == pytest.approx(scenario.baseline_error_ratio, rel=0.5)

    rollback = action(record, "rollback")
    assert rollback["recommended"] is True and rollback["status"] == "proposed"
    assert rollback["plan"]["to_revision"] == 6 and rollback["plan"]["images"] == ["omnihub/api-gateway:1.42.0"]


# -- the report notebooks ---------------------------------------------------------------------------
def _open(browser: Any, page: Path) -> dict[str, Any]:
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    )
    browser.get(page.as_uri())
    return browser.execute_script(
        """
        const imgs = [...document.querySelectorAll('img')];
        return {decoded: imgs.filter(i => i.complete && i.naturalWidth > 0).map(i => i.alt),
                overflow: document.documentElement.scrollWidth - document.documentElement.clientWidth};
        """
    )


def test_the_slo_report_shows_its_graphs_and_the_band_per_slo(
    env: FakeKube, platform: tuple[PlatformScenario, services.Service], pg_dsn: str, archive_dir: Path, browser: Any
) -> None:
    record = run("slo-report")
    scenario = platform[0]
    assert record["alert"] is None or not record["alert"]
    burn = finding(record, "Error budget burn-down")["details"]
    # the same freeze band as low-error-budget: 84 % of the budget spent in the three days of data
    assert burn["band"] == "freeze" and burn["budget_remaining"] == pytest.approx(
        1 - scenario.truth.ratio("3d") / 0.001, abs=0.05
    )
    assert burn["budget_remaining_at_start"] > burn["budget_remaining"]  # it burned down
    latency = finding(record, "Latency percentiles against targets")["details"]
    assert "p95" in latency["over_target"]  # the slow endpoint drags p95 past 500 ms
    with psycopg.connect(pg_dsn) as conn:  # what the workflows table says, asked independently
        done, failed = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'completed'), count(*) FILTER (WHERE status = 'failed')"
            " FROM workflows WHERE created_at > now() - interval '1 day'"
        ).fetchone()
    wf = finding(record, "Workflow success")["details"]
    assert (wf["completed"], wf["failed"]) == (done, failed)
    queues = finding(record, "Queue depths")["details"]
    assert queues["dlq_depth"] == pytest.approx(340, abs=1)  # the scenario's DLQ, from Prometheus
    assert {f["details"]["slo"] for f in record["findings"] if f["check"].startswith("Error budget:")} == {
        "api-availability",
        "api-latency-p95",
        "workflow-success",
        "execution-success",
        "database-availability",
    }
    page = next(archive_dir.rglob(f"{record['id']}/record.html"))
    seen = _open(browser, page)
    graphs = [alt for alt in seen["decoded"] if alt.startswith("[graph:")]
    assert len(graphs) >= 4, seen  # availability, burn-down, latency, DLQ depth
    assert seen["overflow"] <= 0


def test_the_capacity_report_projects_each_trigger_and_the_hpa_headroom(
    env: FakeKube, platform: tuple[PlatformScenario, services.Service], archive_dir: Path, browser: Any
) -> None:
    record = run("capacity-report")
    scenario = platform[0]
    crossings = finding(record, "Scaling triggers")["details"]["crossings"]
    # by hand, from the scenario's linear growth (per pod or in all, now -> trigger):
    expected_days = {
        "cpu": (0.35 - 0.32) / 0.05,  # 0.17 + 3 x 0.05 cores of a 0.5 limit -> 70 %
        "memory": (409.6 - 375) / 25,  # 300 + 3 x 25 MiB of 512 -> 80 %
        "disk": (9.6 - 8.9) / 0.3,  # 8 + 3 x 0.3 GB of a 12 GB volume -> 80 %
        "connections": (80 - 55) / 5,  # 40 + 3 x 5 of 100 -> 80 %
    }
    for resource, days in expected_days.items():
        when = datetime.fromisoformat(crossings[resource].replace("Z", "+00:00"))
        got = (when - scenario.now).total_seconds() / 86400
        assert got == pytest.approx(days, rel=0.15, abs=0.1), (resource, got, days)
    headroom = finding(record, "HPA headroom")["details"]
    assert headroom["replicas"] == 3 and headroom["needed"] == 3 and headroom["headroom"] == 17
    growth = finding(record, "Growth against the package's projections")["details"]["measured"]
    assert growth["Requests/sec"] == pytest.approx(75 * 2 / 3, rel=0.1)  # two of three instances answer
    page = next(archive_dir.rglob(f"{record['id']}/record.html"))
    seen = _open(browser, page)
    assert any(alt.startswith("[graph: Use against capacity") for alt in seen["decoded"]), seen
