"""Each backend module against the real thing (Kubernetes: the real client against the fake API)."""

from __future__ import annotations

import time
from datetime import timedelta

import pandas as pd
import psycopg
import pytest
import yaml

from runbook_lib.clients.prometheus import Prometheus
from runbook_lib.core.errors import SourceError, SourceNotConfigured, SourceUnavailable
from runbook_lib.core.settings import load_settings
from runbook_lib.kernel.sources.kubernetes import Kubernetes
from runbook_lib.kernel.sources.postgres import Postgres, insert_audit
from runbook_lib.kernel.sources.redis import Redis
from runbook_lib.sandbox.services import free_port
from runbook_lib.sre import promql
from tests.helpers import HOME, NAMESPACE, REDIS_URL


# -- Prometheus -------------------------------------------------------------------------------------
def test_prometheus_query_ranks_the_incident_endpoint(prometheus, scenario) -> None:
    prom = Prometheus(prometheus.url)
    frame = prom.query('sum by (endpoint) (rate(http_requests_total{status=~"5.."}[5m]))')
    assert isinstance(frame, pd.DataFrame)
    top = frame.sort_values("value", ascending=False).iloc[0]
    assert top["endpoint"] == scenario.incident_endpoint
    ratio = prom.scalar('sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))')
    assert ratio == pytest.approx(scenario.expected_error_ratio(), rel=0.1)


def test_prometheus_range_query_is_long_form(prometheus, scenario) -> None:
    prom = Prometheus(prometheus.url)
    end = scenario.incident_start + timedelta(minutes=10)
    frame = prom.query_range("sum(rate(http_requests_total[5m]))", end - timedelta(minutes=30), end, step=60)
    assert list(frame.columns) == ["timestamp", "value"]
    assert len(frame) == 31
    assert frame["timestamp"].is_monotonic_increasing


def test_prometheus_error_body_is_surfaced(prometheus) -> None:
    prom = Prometheus(prometheus.url)
    with pytest.raises(SourceError) as exc:
        prom.query("sum(rate(http_requests_total[5m]")
    assert "bad_data" in str(exc.value) and "parse error" in str(exc.value)
    assert not isinstance(exc.value, SourceUnavailable)


def test_prometheus_unreachable_is_typed_and_fast() -> None:
    prom = Prometheus(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    t0 = time.monotonic()
    with pytest.raises(SourceUnavailable, match="unreachable"):
        prom.query("up")
    assert time.monotonic() - t0 < 10  # generous bound: this is about not hanging, not speed


def test_prometheus_not_configured() -> None:
    with pytest.raises(SourceNotConfigured, match="RUNBOOK_PROMETHEUS_URL"):
        Prometheus.from_settings(load_settings(overrides={"prometheus.url": None}))


def test_promql_quoting_round_trips_hostile_values_through_prometheus(prometheus) -> None:
    prom = Prometheus(prometheus.url)
    for value in ['a"b', "back\\slash", 'x"} or vector(1) #', "line\nbreak", "tab\tand 'single'", "ünï©ødé"]:
        frame = prom.query(f'label_replace(vector(1), "v", {promql.quote(value)}, "", "")')
        assert frame["v"].iloc[0] == value
    with pytest.raises(ValueError):
        promql.label_name('status"}')
    assert promql.selector("m", a="x", b=("=~", "5..")) == 'm{a="x",b=~"5.."}'


# -- PostgreSQL -------------------------------------------------------------------------------------
def test_postgres_health_controls_and_read_only_queries(pg_dsn) -> None:
    pg = Postgres(pg_dsn)
    health = pg.health()
    assert health["accepting"] is True and health["max_connections"] > 0 and health["in_recovery"] is False
    assert pg.emergency_controls()["execution_safe_mode"] is False
    assert int(pg.query("SELECT count(*) AS n FROM approval_queue WHERE status = 'pending'")["n"][0]) == 7
    with pytest.raises(SourceError, match="ReadOnlySqlTransaction"):
        pg.query("UPDATE emergency_controls SET execution_safe_mode = true")
    assert pg.emergency_controls()["execution_safe_mode"] is False


def test_postgres_audit_insert_is_in_the_callers_transaction(fresh_db) -> None:
    pg = Postgres(fresh_db)
    with pytest.raises(RuntimeError), pg.connect(read_only=False) as conn:
        insert_audit(conn, actor="t", action="x", resource_type="r", resource_id="1", outcome="started", details={})
        raise RuntimeError("roll back")
    with pg.connect(read_only=False) as conn:
        audit_id = insert_audit(
            conn, actor="t", action="x", resource_type="r", resource_id="1", outcome="started", details={"k": "v"}
        )
    rows = pg.query("SELECT id, details FROM audit_logs WHERE actor = 't'")
    assert rows["id"].tolist() == [audit_id]
    assert rows["details"][0] == {"k": "v"}


def test_postgres_unreachable_and_statement_timeout(pg_dsn) -> None:
    with pytest.raises(SourceUnavailable, match="cannot connect to postgresql://127.0.0.1"):
        Postgres(f"postgresql://postgres@127.0.0.1:{free_port()}/x", connect_timeout_s=2).health()
    with pytest.raises(SourceError, match="statement timed out after 100 ms"):
        Postgres(pg_dsn, statement_timeout_ms=100).query("SELECT pg_sleep(2)")


def test_postgres_password_never_in_errors() -> None:
    dsn = f"postgresql://app:hunter2-never-shown@127.0.0.1:{free_port()}/x"
    with pytest.raises(SourceUnavailable) as exc:
        Postgres(dsn, connect_timeout_s=2).health()
    assert "hunter2" not in str(exc.value)
    assert "hunter2" not in repr(Postgres(dsn))


# -- Redis --------------------------------------------------------------------------------------------
@pytest.mark.services
def test_redis_ping_and_info() -> None:
    r = Redis(REDIS_URL)
    assert r.ping() >= 0
    info = r.info()
    assert info["redis_version"] and info["role"] == "master"
    with pytest.raises(SourceUnavailable, match="PING failed"):
        Redis(f"redis://127.0.0.1:{free_port()}/0", timeout_s=2).ping()


# -- Kubernetes (real client, fake API) ---------------------------------------------------------------
def test_rollout_history_reads_replicaset_revisions(fake_kube) -> None:
    _, kubeconfig = fake_kube
    k = Kubernetes(str(kubeconfig), None, NAMESPACE)
    history = k.rollout_history("api-gateway")
    assert history["revision"].tolist() == [7, 6, 5]
    assert history["current"].tolist() == [True, False, False]
    assert history["images"][0].endswith(":1.43.0")


def test_rollback_plan_is_kubectls_json_patch(fake_kube) -> None:
    fake, kubeconfig = fake_kube
    k = Kubernetes(str(kubeconfig), None, NAMESPACE)
    plan = k.rollback_plan("api-gateway")
    assert (plan["from_revision"], plan["to_revision"]) == (7, 6)
    ops = {op["path"]: op for op in plan["patch"]}
    assert ops["/spec/template"]["op"] == "replace"
    assert "pod-template-hash" not in ops["/spec/template"]["value"]["metadata"]["labels"]
    assert ops["/spec/template"]["value"]["spec"]["containers"][0]["image"].endswith(":1.42.0")
    # annotations: the deployment's skip-listed ones kept (revision), the ReplicaSet's others copied
    assert ops["/metadata/annotations"]["value"]["deployment.kubernetes.io/revision"] == "7"
    assert ops["/metadata/annotations"]["value"]["kubernetes.io/change-cause"].endswith(":1.42.0")
    k.patch_deployment("api-gateway", NAMESPACE, plan["_patch"])
    assert fake.requests[-1]["content_type"] == "application/json-patch+json"
    assert k.rollout_history("api-gateway")["images"][0].endswith(":1.42.0")  # now the newest revision (8)
    with pytest.raises(SourceError, match="unable to find the specified revision 99"):
        k.rollback_plan("api-gateway", to_revision=99)


def test_logs_and_top_pods(fake_kube) -> None:
    _, kubeconfig = fake_kube
    k = Kubernetes(str(kubeconfig), None, NAMESPACE)
    logs = k.log_patterns("api-gateway", {"error": r"\bERROR\b", "oom": "OOMKilled"}, tail_lines=30)
    counts = logs.groupby("pattern")["count"].sum()
    assert counts["error"] == 30 and counts["oom"] == 0  # 3 pods x every third of 30 lines
    top = k.top_pods("api-gateway")
    assert top["cpu_ratio"].tolist() == [0.96, 0.96, 0.96]
    assert top["memory_limit_mib"].tolist() == [512.0, 512.0, 512.0]


def test_kubernetes_errors_are_status_messages(fake_kube, tmp_path) -> None:
    fake, kubeconfig = fake_kube
    k = Kubernetes(str(kubeconfig), None, NAMESPACE)
    with pytest.raises(SourceError, match='NotFound \\(404\\): deployments.apps "ghost" not found'):
        k.deployment("ghost")
    wrong = fake.write_kubeconfig(tmp_path / "wrong", NAMESPACE)
    wrong.write_text(wrong.read_text().replace(fake.token, "wrong-token"))
    with pytest.raises(SourceError, match="Unauthorized"):
        Kubernetes(str(wrong), None, NAMESPACE).deployment("api-gateway")
    fake.stop()
    with pytest.raises(SourceUnavailable, match="unreachable"):
        k.deployment("api-gateway")


def test_bad_kubeconfig_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "kc"
    bad.write_text("not: [a kubeconfig")
    with pytest.raises(SourceError, match="cannot be used"):
        Kubernetes(str(bad), None, NAMESPACE)


def test_psycopg_is_version_3() -> None:
    assert psycopg.__version__.startswith("3.")


def rbac_rules(role: str) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) the named Role of deploy/kubernetes/rbac.yaml allows."""
    docs = yaml.safe_load_all((HOME / "deploy" / "kubernetes" / "rbac.yaml").read_text())
    [doc] = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == role]
    return {
        (g, r, v) for rule in doc["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
    }


def needed(request: dict) -> tuple[str, str, str]:
    """What one API request needs, as RBAC names it: /apis/apps/v1/namespaces/ns/deployments/x/scale
    is ("apps", "deployments/scale", "patch"); a GET of a collection is "list"."""
    parts = request["path"].split("?")[0].strip("/").split("/")
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[parts.index("namespaces") + 2 :]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    verb = {"GET": "get" if len(rest) > 1 else "list", "PATCH": "patch"}[request["method"]]
    return group, resource, verb


def test_the_documented_rbac_allows_exactly_what_the_runbooks_call(fake_kube) -> None:
    fake, kubeconfig = fake_kube
    k = Kubernetes(str(kubeconfig), None, NAMESPACE)
    k.rollout_history("api-gateway")
    k.log_patterns("api-gateway", {"error": "ERROR"}, 50)
    k.top_pods("api-gateway")
    plan = k.rollback_plan("api-gateway")
    diagnose = {needed(r) for r in fake.requests}
    assert diagnose <= rbac_rules("runbook-diagnose"), diagnose - rbac_rules("runbook-diagnose")
    fake.requests.clear()
    k.patch_deployment("api-gateway", NAMESPACE, plan["_patch"])
    k.scale("api-gateway", NAMESPACE, 4)
    resolve = {needed(r) for r in fake.requests}
    assert resolve == {("apps", "deployments", "patch"), ("apps", "deployments/scale", "patch")}
    assert resolve <= rbac_rules("runbook-resolve") and not resolve & rbac_rules("runbook-diagnose")
