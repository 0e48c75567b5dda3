"""House rules for runbooks/: no stored outputs, the fixed parameters with safe defaults, the
SRE package's template sections, logic only in runbook_lib, each step titled once, and every
alert routed."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
import yaml

from runbook_lib.core.contract import PARAMETERS, declared_parameters, extra_parameter_name
from runbook_lib.monitoring.rules import rules_yaml
from runbook_lib.sre.catalog import Catalog
from tests.helpers import HOME, cli

NOTEBOOKS = sorted((HOME / "runbooks").glob("*.ipynb"))
SECTIONS = (
    "## Severity",
    "## Summary",
    "## Impact",
    "## Diagnosis",
    "## Resolution",
    "## Escalation",
    "## Post-Incident",
)
# A DR drill is a procedure, not an incident: SRE_PACKAGE.md's drill runbook has these sections.
DRILL_SECTIONS = (
    "## Objective",
    "## Pre-Drill Checklist",
    "## Drill Steps",
    "## Measure",
    "## Results",
    "## Post-Drill",
)
KINDS = yaml.safe_load((HOME / "parameters" / "catalog.yaml").read_text())["runbooks"]


def test_there_are_runbooks() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"_template", "high-error-rate", "triage"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_contract(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "stored outputs: strip them"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    values = declared_parameters(params[0].source)  # literals only, or it raises
    assert list(values)[: len(PARAMETERS)] == list(PARAMETERS), "the fixed parameters come first, in order"
    assert {k: values[k] for k in PARAMETERS} == PARAMETERS, "with the contract's safe defaults"
    own = [k for k in values if k not in PARAMETERS]
    assert all(extra_parameter_name(k) for k in own), own
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    drill = (KINDS.get(path.stem) or {}).get("kind") == "drill"
    for section in DRILL_SECTIONS if drill else SECTIONS:
        assert section in text, f"missing template section {section}"
    if drill:  # in the package's order, and none of an incident runbook's sections
        assert [text.index(s) for s in DRILL_SECTIONS] == sorted(text.index(s) for s in DRILL_SECTIONS)
        assert not [s for s in ("## Diagnosis", "## Resolution", "## Post-Incident") if s in text]
    assert nb.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_logic_lives_in_runbook_lib(path: Path) -> None:
    """Cells call runbook_lib; they import nothing else and define no functions or classes."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name.startswith("runbook_lib") for a in node.names), cell.source
            if isinstance(node, ast.ImportFrom):
                assert (node.module or "").startswith("runbook_lib"), cell.source
            assert not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Lambda), cell.source
        if "parameters" in cell.metadata.get("tags", []):
            continue  # declarations, one per line, however many the runbook has
        assert len(cell.source.splitlines()) <= 8, (
            f"cell too long for a runbook; move logic to runbook_lib: {cell.source[:60]}"
        )


STEP_CALL = re.compile(r'rb\.step\((\d+|"[^"]+"), "([^"]*)"\)')


def step_titles(nb: nbformat.NotebookNode) -> list[tuple[str, str, str | None]]:
    """(label, title in rb.step, title in the markdown heading before it) for every step."""
    out, heading_text = [], ""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading_text = cell.source
            continue
        for number, title in STEP_CALL.findall(cell.source):
            label = f"Step {number}" if number.isdigit() else number.strip('"')
            heading = re.search(rf"^### {re.escape(label)}(?: \([^)]*\))?: (.+)$", heading_text, re.M)
            out.append((label, title, heading.group(1).strip() if heading else None))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_title_metadata_is_the_notebooks_own_heading(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    heading = "".join(nb.cells[0].source).splitlines()[0]
    assert heading == f"# {nb.metadata.get('title')}", "metadata.title is what pages and records call it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_step_is_titled_once(path: Path) -> None:
    """rb.step(n, title) repeats the markdown heading above it word for word: the record's
    step labels and the notebook's headings cannot drift apart."""
    steps = step_titles(nbformat.read(path, as_version=4))
    assert steps, "a runbook has steps"
    for label, title, heading in steps:
        assert heading is not None, f"{label}: no '### {label}: ...' heading in the markdown cell before it"
        assert title == heading, f"{label}: rb.step says {title!r}, the heading says {heading!r}"


def test_the_step_title_rule_catches_a_drift() -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("### Step 1: Check the database"),
        nbformat.v4.new_code_cell('rb.step(1, "Check the DB")'),
    ]
    assert step_titles(nb) == [("Step 1", "Check the DB", "Check the database")]


def test_every_catalog_alert_is_routed_somewhere() -> None:
    catalog = Catalog.load(HOME / "parameters" / "catalog.yaml", HOME / "runbooks")
    raw = yaml.safe_load((HOME / "parameters" / "catalog.yaml").read_text())
    names = [a["name"] for a in raw["alerts"]]
    assert len(names) == 10 and len([a for a in raw["alerts"] if a["severity"] == "critical"]) == 5
    for name in names:
        route = catalog.route(name)
        assert catalog.has_notebook(route.slug), name
    assert catalog.route("HighErrorBudgetBurnRate").slug == "high-error-rate"
    assert catalog.route("NotAnAlert").slug == "triage"


def test_an_alert_outside_the_catalog_may_name_an_alert_runbook_but_not_a_drill() -> None:
    catalog = Catalog.load(HOME / "parameters" / "catalog.yaml", HOME / "runbooks")
    burn = catalog.route("ErrorBudgetBurn", "low-error-budget")  # the generated burn-rate alerts
    assert (burn.slug, burn.reason) == ("low-error-budget", "runbook annotation")
    for hint in ("dr-drill-database-restore", "slo-report", "../triage", "nope", None):
        assert catalog.route("ErrorBudgetBurn", hint).slug == "triage", hint
    assert catalog.route("ServiceDown", "low-error-budget").slug == "service-down"  # the catalog wins


def test_an_alert_whose_runbook_is_missing_falls_to_triage_and_says_so(tmp_path: Path) -> None:
    shutil.copy(HOME / "runbooks" / "triage.ipynb", tmp_path / "triage.ipynb")
    catalog = Catalog.load(HOME / "parameters" / "catalog.yaml", tmp_path)  # only triage is written
    route = catalog.route("DLQBacklog")
    assert route.slug == "triage" and route.reason == "runbook 'dlq-backlog' not written yet"
    assert route.spec is not None and route.spec.runbook == "dlq-backlog"


def test_every_runbook_is_reached_from_an_alert_or_is_a_drill_report_or_named_manual_runbook() -> None:
    catalog = Catalog.load(HOME / "parameters" / "catalog.yaml", HOME / "runbooks")
    routed = {a.runbook for a in catalog.alerts.values()}
    for slug in catalog.slugs():
        assert slug in routed or slug in catalog.kinds, f"{slug}: no alert routes to it and the catalog lists no kind"
        assert not (slug in routed and slug in catalog.kinds), f"{slug}: both routed and listed"
    assert {s for s, (kind, _) in catalog.kinds.items() if kind in ("drill", "report", "checklist")} >= {
        "dr-drill-database-restore",
        "slo-report",
        "capacity-report",
    }
    assert set(catalog.kinds) <= set(catalog.slugs()), "the catalog lists a runbook that does not exist"


def test_runbook_list_routes_every_catalog_alert_to_its_own_runbook() -> None:
    res = cli("list", "--json")
    assert res.returncode == 0, res.stderr
    routed = {a["alert"]: a["routed_to"] for a in json.loads(res.stdout)["alerts"]}
    assert len(routed) == 10 and "triage" not in routed.values()
    assert routed["DatabaseDown"] == "database-down"
    assert routed["KillSwitchEnabled"] == "kill-switch-active"
    assert routed["ApprovalQueueBacklog"] == "approval-queue-backlog"
    assert routed["HighDatabaseConnections"] == "high-database-connections"
    assert routed["ServiceDown"] == "service-down" and routed["HighLatency"] == "high-latency"
    assert routed["LowErrorBudget"] == "low-error-budget" and routed["DLQBacklog"] == "dlq-backlog"
    assert routed["ElevatedErrorRate"] == routed["HighErrorBudgetBurnRate"] == "high-error-rate"
    runbooks = set(json.loads(res.stdout)["runbooks"])
    assert {"database-migration-failure", "data-corruption", "dr-drill-database-restore"} <= runbooks
    assert {"deployment-failure", "blockchain-rpc-down"} <= runbooks


def test_generated_rules_pass_promtool(tmp_path: Path) -> None:
    catalog = Catalog.load(HOME / "parameters" / "catalog.yaml", HOME / "runbooks")
    rules = tmp_path / "rules.yml"
    rules.write_text(rules_yaml(catalog))
    res = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 10 rules found" in res.stdout
