"""The SRE package's three Grafana dashboards, built with grafana-foundation-sdk: the rows and
widgets SRE_PACKAGE.md lists, the datasource variable everywhere, stable ids, and every
expression accepted by a real Prometheus."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from runbook_lib.clients.prometheus import Prometheus
from runbook_lib.core.errors import SourceError
from runbook_lib.core.settings import MetricNames
from runbook_lib.monitoring import dashboards as dashboards_module
from runbook_lib.monitoring.dashboards import dashboards, expressions, panel_id, uid
from runbook_lib.sre import sli
from runbook_lib.sre.catalog import Catalog, SLOSpec
from tests.helpers import HOME

FILES = ("slo.json", "operator.json", "infrastructure.json")
CATALOG = Catalog.load(HOME / "parameters" / "catalog.yaml", HOME / "runbooks")
SLO_NAMES = [s.name for s in CATALOG.slos]

# Rows and widgets as SRE_PACKAGE.md ("DASHBOARDS") lists them, written out here, not taken from
# the code. The SLO Status row also holds one budget stat per catalog SLO (added below).
EXPECTED = {
    "slo.json": [
        ("SLO Status", ["Availability (last 28 days)", "Burn Rate (1h)"]),
        ("Latency SLIs", ["P50 Latency", "P95 Latency", "P99 Latency"]),
        ("Workflow Health", ["Workflow Success Rate", "Approval Queue Depth", "DLQ Depth"]),
        ("Error Rate Trend", ["5xx Error Rate (last 7 days)", "5xx Error Rate by Endpoint"]),
    ],
    "operator.json": [
        ("Emergency Controls Status", ["OMNIHUB_KILL_SWITCH", "EXECUTION_SAFE_MODE", "OPERATOR_TAKEOVER"]),
        (
            "Approval Queue",
            [
                "Pending Approvals",
                "Oldest Pending Approval",
                "Approved (last 24h)",
                "Rejected (last 24h)",
                "Expired (last 24h)",
            ],
        ),
        ("Active Workflows", ["In Progress", "Queued", "Failed (last hour)"]),
        ("Recent Audit Log", ["Last 10 Operator Actions"]),
    ],
    "infrastructure.json": [
        (
            "Compute",
            ["Node CPU Utilization (avg, max)", "Node Memory Utilization (avg, max)", "Pod Count by Namespace"],
        ),
        (
            "Database",
            [
                "PostgreSQL Connections (current, max)",
                "PostgreSQL Query Duration (P95, P99)",
                "Database Disk Utilization (%)",
            ],
        ),
        ("Cache (Redis)", ["Redis Memory Utilization (%)", "Redis Hit Rate (%)", "Redis Commands/sec"]),
        ("Cost Estimation", ["Estimated Monthly Cost"]),
    ],
}
UIDS = {"slo.json": "omnihub-slo", "operator.json": "omnihub-operator", "infrastructure.json": "omnihub-infrastructure"}


@pytest.fixture(scope="module")
def built() -> dict[str, dict[str, Any]]:
    return dashboards(CATALOG, MetricNames())


def all_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for top in dash["panels"] for p in [top, *(top.get("panels") or [])]]


def layout(dash: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(row title, [panel titles]) in order, as Grafana shows them."""
    rows: list[tuple[str, list[str]]] = []
    for panel in dash["panels"]:
        if panel["type"] == "row":
            rows.append((panel["title"], [p["title"] for p in panel.get("panels") or []]))
        else:
            assert rows, f"panel {panel['title']!r} comes before the first row"
            rows[-1][1].append(panel["title"])
    return rows


def by_title(dash: dict[str, Any], title: str) -> dict[str, Any]:
    [panel] = [p for p in all_panels(dash) if p.get("title") == title]
    return panel


# -- pure ---------------------------------------------------------------------------------------


def test_three_dashboards_with_stable_uids(built) -> None:
    assert sorted(built) == sorted(FILES)
    for name in FILES:
        assert built[name]["uid"] == UIDS[name] == uid(name)
    with pytest.raises(KeyError, match="no dashboard"):
        uid("nope.json")
    with pytest.raises(KeyError, match="no dashboard"):
        panel_id("nope.json", "DLQ Depth")


def test_every_dashboard_has_the_datasource_variable_and_every_query_uses_it(built) -> None:
    for name, dash in built.items():
        [var] = [v for v in dash["templating"]["list"] if v["name"] == "datasource"]
        assert var["type"] == "datasource" and var["query"] == "prometheus", name
        queried = [p for p in all_panels(dash) if p.get("targets")]
        assert queried, name
        for panel in queried:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
            for target in panel["targets"]:
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
                assert target["expr"] and target["refId"], panel["title"]
        # no panel reaches for another data source
        assert all(p.get("datasource") in (None, panel["datasource"]) for p in all_panels(dash)), name


def test_rows_and_panels_are_the_packages(built) -> None:
    expected = dict(EXPECTED)
    status_row = ["Availability (last 28 days)", "Burn Rate (1h)"] + [
        f"Error Budget Remaining ({name})" for name in SLO_NAMES
    ]
    expected["slo.json"] = [("SLO Status", status_row), *EXPECTED["slo.json"][1:]]
    for name in FILES:
        assert layout(built[name]) == expected[name], name


def test_every_catalog_slo_has_a_budget_panel_on_its_own_sli(built) -> None:
    m = MetricNames()
    dash = built["slo.json"]
    assert len(SLO_NAMES) == 5
    for spec in CATALOG.slos:
        panel = by_title(dash, f"Error Budget Remaining ({spec.name})")
        indicator = sli.for_slo(spec, m)
        assert indicator is not None
        [target] = panel["targets"]
        # the recorded series of this SLO (a raw 28-day increase per refresh is what rules are for)
        assert target["expr"] == f'slo:period_error_budget_remaining:ratio{{sloth_slo="{spec.name}"}}'
        assert panel["fieldConfig"]["defaults"]["unit"] == "percentunit"


def test_an_slo_prometheus_cannot_measure_gets_an_honest_note() -> None:
    api = SLOSpec("api-availability", "api-gateway", 0.999, "28d", "availability")
    odd = SLOSpec("blocks-fresh", "chain", 0.99, "7d", "blockchain_freshness")
    dash = dashboards(Catalog([], [api, odd], HOME / "runbooks"), MetricNames())["slo.json"]
    note = by_title(dash, "Error Budget Remaining (blocks-fresh)")
    assert note["type"] == "text" and "cannot measure" in note["options"]["content"]
    with pytest.raises(ValueError, match="no API availability SLO"):
        dashboards(Catalog([], [odd], HOME / "runbooks"), MetricNames())


def test_slo_targets_and_thresholds(built) -> None:
    dash = built["slo.json"]

    def steps(title: str) -> list[tuple[float | None, str]]:
        return [
            (s["value"], s["color"]) for s in by_title(dash, title)["fieldConfig"]["defaults"]["thresholds"]["steps"]
        ]

    assert steps("Availability (last 28 days)") == [(None, "red"), (0.999, "green")]
    assert by_title(dash, "Availability (last 28 days)")["targets"][0]["expr"] == (
        '1 - slo:sli_error:ratio_rate4w{sloth_slo="api-availability"}'
    )
    assert "[1h]" in by_title(dash, "Burn Rate (1h)")["targets"][0]["expr"]
    assert steps("P50 Latency") == [(None, "green"), (0.2, "red")]
    assert steps("P95 Latency") == [(None, "green"), (0.5, "red")]
    assert steps("P99 Latency") == [(None, "green"), (1.0, "red")]
    assert steps("Workflow Success Rate") == [(None, "red"), (0.95, "green")]
    assert steps("Approval Queue Depth") == [(None, "green"), (50, "red")]
    assert steps("DLQ Depth") == [(None, "green"), (10, "red")]
    assert 'queue="dead_letter_queue"' in by_title(dash, "DLQ Depth")["targets"][0]["expr"]
    assert by_title(dash, "5xx Error Rate (last 7 days)")["timeFrom"] == "7d"
    assert by_title(dash, "5xx Error Rate by Endpoint")["targets"][0]["legendFormat"] == "{{endpoint}}"


def test_only_the_period_panels_read_recorded_series_and_no_variable_is_left(built) -> None:
    """The 28-day panels read the recorded period series; everything else stays raw, so a
    Prometheus without the recording rules still draws all but those."""
    period = {"Availability (last 28 days)", *(f"Error Budget Remaining ({n})" for n in SLO_NAMES)}
    for name, dash in built.items():
        for title, expr in expressions(dash):
            if title in period:
                assert expr.startswith(("1 - slo:sli_error:ratio_rate4w", "slo:period_error_budget_remaining")), title
            else:
                assert "slo:" not in expr and "sloth" not in expr, (name, title)
            assert set(re.findall(r"\$\{?\w+\}?", expr)) <= {"$__rate_interval"}, (name, title, expr)


def test_emergency_controls_are_on_off_stats(built) -> None:
    dash = built["operator.json"]
    for control in ("OMNIHUB_KILL_SWITCH", "EXECUTION_SAFE_MODE", "OPERATOR_TAKEOVER"):
        panel = by_title(dash, control)
        assert panel["type"] == "stat"
        assert panel["targets"][0]["expr"] == f'max(omnihub_emergency_control_enabled{{control="{control}"}})'
        [mapping] = panel["fieldConfig"]["defaults"]["mappings"]
        assert mapping["type"] == "value"
        assert {k: v["text"] for k, v in mapping["options"].items()} == {"0": "OFF", "1": "ON"}


def test_operator_counts_use_the_named_metrics(built) -> None:
    exprs = dict(expressions(built["operator.json"]))
    assert exprs["Pending Approvals"] == "sum(omnihub_approval_queue_pending)"
    assert exprs["Oldest Pending Approval"] == "max(omnihub_approval_oldest_pending_seconds)"
    for decision in ("approved", "rejected", "expired"):
        expr = exprs[f"{decision.capitalize()} (last 24h)"]
        assert f'omnihub_approvals_decided_total{{decision="{decision}"}}[1d]' in expr
    assert exprs["In Progress"] == 'sum(omnihub_workflows_active{state="running"})'
    assert exprs["Queued"] == 'sum(omnihub_workflows_active{state="queued"})'
    assert 'omnihub_workflows_total{status="failed"}[1h]' in exprs["Failed (last hour)"]


def test_text_panels_say_what_is_not_shown(built) -> None:
    audit = by_title(built["operator.json"], "Last 10 Operator Actions")
    assert audit["type"] == "text" and "targets" not in audit
    content = audit["options"]["content"]
    assert "audit_logs" in content and "runbook run kill-switch-active" in content and "no audit rows" in content
    cost = by_title(built["infrastructure.json"], "Estimated Monthly Cost")
    assert cost["type"] == "text" and "targets" not in cost
    assert "none is configured" in cost["options"]["content"]


def test_metric_names_come_from_the_settings() -> None:
    m = MetricNames(
        http_requests="api_requests_total",
        status_label="code",
        endpoint_label="route",
        latency_histogram="api_latency_seconds",
        db_query_duration="app_db_seconds",
        queue_messages="rmq_messages",
        workflows_total="wf_total",
        outcome_label="result",
        failed_outcome='bad "one"',
    )
    built = dashboards(CATALOG, m)
    text = "\n".join(e for dash in built.values() for _, e in expressions(dash))
    for default in ("http_requests_total", "http_request_duration_seconds", "omnihub_db_query_duration_seconds"):
        assert default not in text
    # the API's requests only: its job (metrics.api_job) on every query about it
    assert 'api_requests_total{job="api-gateway",code=~"5.."}' in text and "sum by (route)" in text
    assert "api_requests_total[" not in text and "api_latency_seconds_bucket[" not in text
    assert "api_latency_seconds_bucket" in text and "app_db_seconds_bucket" in text
    assert 'rmq_messages{queue="dead_letter_queue"}' in text
    assert 'wf_total{result="bad \\"one\\""}' in text  # quoted by promql, never pasted
    with pytest.raises(ValueError, match="label name"):
        dashboards(CATALOG, MetricNames(endpoint_label="bad-label"))


def test_panel_ids_are_stable_unique_and_match_panel_id(built) -> None:
    for name, dash in built.items():
        ids = [p["id"] for p in all_panels(dash)]
        assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids), name
        for panel in all_panels(dash):
            if panel["type"] != "row":
                assert panel_id(name, panel["title"]) == panel["id"], (name, panel["title"])
    # a new SLO does not move any other panel's id (records link to /d/<uid>?viewPanel=<id>)
    more = Catalog([], [*CATALOG.slos, SLOSpec("extra", "x", 0.99, "28d", "execution_success")], HOME / "runbooks")
    bigger = dashboards(more, MetricNames())["slo.json"]
    before = {p["title"]: p["id"] for p in all_panels(built["slo.json"])}
    after = {p["title"]: p["id"] for p in all_panels(bigger)}
    assert {t: after[t] for t in before} == before
    assert "Error Budget Remaining (extra)" in after


def test_panels_fit_the_grid(built) -> None:
    for name, dash in built.items():
        for panel in all_panels(dash):
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24 and pos["h"] > 0, (name, panel["title"])


def test_builds_are_deterministic_and_round_trip_as_json(built) -> None:
    again = dashboards(CATALOG, MetricNames())
    assert again == built
    for name, dash in built.items():
        text = json.dumps(dash, indent=2, sort_keys=True)
        assert json.loads(text) == dash
        assert text == json.dumps(again[name], indent=2, sort_keys=True)
        assert "time" in dash and dash["time"]["to"] == "now"  # relative: no build timestamp


def test_expressions_lists_every_target(built) -> None:
    counts = {name: len(expressions(dash)) for name, dash in built.items()}
    targets = {name: sum(len(p.get("targets") or []) for p in all_panels(dash)) for name, dash in built.items()}
    assert counts == targets
    assert all(isinstance(t, str) and isinstance(e, str) for dash in built.values() for t, e in expressions(dash))


def test_the_module_imports_only_shared_modules() -> None:
    source = Path(dashboards_module.__file__).read_text()
    imported = set(re.findall(r"^from \.(\w*) import|^from \. import (.+)$", source, re.M))
    names = {n.strip() for pair in imported for part in pair for n in part.split(",") if n.strip()}
    assert names <= {"settings", "catalog", "slo", "sli", "promql"}, names


# -- against a real Prometheus --------------------------------------------------------------------

GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1d",
    "${datasource}": "prometheus",
}


def concrete(expr: str) -> str:
    for var, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


@pytest.mark.services
def test_prometheus_accepts_every_expression(built, prometheus, scenario) -> None:
    prom = Prometheus(prometheus.url)
    rejected, answered = [], {}
    try:
        for name, dash in built.items():
            for title, expr in expressions(dash):
                try:
                    answered[(name, title, expr)] = prom.query(concrete(expr))
                except SourceError as exc:  # no data is fine; a rejected expression is not
                    rejected.append(f"{name} / {title}: {exc} -- {expr}")
    finally:
        prom.close()
    assert not rejected, "\n".join(rejected)
    assert len(answered) == sum(len(expressions(d)) for d in built.values())
    # the backfilled incident's HTTP series flow through the SLO dashboard's raw expressions
    slo_frames = {title: frame for (name, title, _), frame in answered.items() if name == "slo.json"}
    # (the 28-day panels read recorded series, which this rule-less Prometheus has not: their
    # values are checked against the recording rules in test_the_28_day_panels_read_the_recorded_budget)
    assert len(slo_frames["Burn Rate (1h)"]) == 1
    by_endpoint = slo_frames["5xx Error Rate by Endpoint"]
    assert len(by_endpoint) >= 2
    # each endpoint's own ratio: the incident's endpoint reads its 25 % (it once read its share of
    # all traffic, a few percent), the others their tiny baseline
    worst = by_endpoint.loc[by_endpoint["value"].idxmax()]
    assert worst["endpoint"] == scenario.incident_endpoint
    assert worst["value"] == pytest.approx(scenario.incident_error_ratio, rel=0.2)


def test_every_metric_a_dashboard_reads_comes_from_the_metrics_settings() -> None:
    """Renamed in ``metrics`` (an exporter of another version, the application's own prefix),
    every dashboard follows: no panel keeps a name of its own."""
    renamed = {
        name: f"renamed_{name}"
        for name, value in MetricNames().model_dump().items()
        if "_" in str(value) and name not in ("error_status_regex",)
    }
    built = dashboards(CATALOG, MetricNames(**renamed))
    text = json.dumps(built)
    for name, default in MetricNames().model_dump().items():
        if name in renamed and len(str(default)) > 6:
            assert f'"{default}' not in text and f"({default}" not in text and f"{{{default}" not in text, (
                name,
                default,
            )
    for new in ("renamed_approvals_pending", "renamed_node_cpu", "renamed_redis_hits", "renamed_emergency_control"):
        assert new in text, new


def test_the_28_day_panels_read_the_recorded_budget(built, tmp_path: Path) -> None:
    """The panels' own expressions, evaluated by promtool with the generated recording rules on
    two hours at 0.05 % errors: availability 99.95 %, half the 99.9 % budget left."""
    import subprocess

    import yaml

    from runbook_lib.core.settings import load_settings
    from runbook_lib.monitoring import rules as monitoring

    settings = load_settings()
    recording = monitoring.generate(CATALOG, settings)["prometheus/slo_recording_rules.yml"]
    (tmp_path / "rules.yml").write_text(recording)
    dash = built["slo.json"]
    exprs = {
        title: by_title(dash, title)["targets"][0]["expr"]
        for title in ("Availability (last 28 days)", "Error Budget Remaining (api-availability)")
    }
    minutes = 120
    series = [
        {"series": 'http_requests_total{job="api-gateway",status="500"}', "values": f"0+5x{minutes}"},
        {"series": 'http_requests_total{job="api-gateway",status="200"}', "values": f"0+9995x{minutes}"},
    ]
    expected = {"Availability (last 28 days)": 0.9995, "Error Budget Remaining (api-availability)": 0.5}
    tests = [
        {
            "interval": "1m",
            "input_series": series,
            "promql_expr_test": [
                {
                    "expr": f"round(sum({expr}), 0.0001)",
                    "eval_time": f"{minutes}m",
                    "exp_samples": [{"labels": "{}", "value": expected[title]}],
                }
                for title, expr in exprs.items()
            ],
        }
    ]
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests})
    )
    res = subprocess.run(
        ["promtool", "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
