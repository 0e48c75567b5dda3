"""A minimal runbook collection for receiver load tests and benchmarks: one `noop` runbook
(start, one finding) routed from `BurstAlert`, plus the real triage runbook. It measures the
receiver and engine path (journal, workers, papermill, archive), not a runbook's queries."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import yaml

PARAMS = 'alert = {}\nenvironment = "local"\nmode = "diagnose"\ndry_run = True\noperator = ""\napprove = []'


def write_minimal_collection(folder: Path, home: Path) -> tuple[Path, Path]:
    """Returns (runbooks_dir, catalog_path)."""
    runbooks = folder / "runbooks"
    runbooks.mkdir(parents=True, exist_ok=True)
    shutil.copy(home / "runbooks" / "triage.ipynb", runbooks / "triage.ipynb")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# No-op\n\nOne finding; for receiver load tests."),
        params,
        nbformat.v4.new_code_cell(
            "import runbook_lib\n\nrb = runbook_lib.start(alert=alert, environment=environment, mode=mode)\n"
            'rb.finding("noop", "info", f"ran for {rb.alertname} {rb.labels.get(\'instance\', \'\')}")'
        ),
    ]
    nbformat.write(nb, runbooks / "noop.ipynb")
    catalog = folder / "catalog.yaml"
    catalog.write_text(
        yaml.safe_dump(
            {
                "alerts": [
                    {
                        "name": "BurstAlert",
                        "severity": "warning",
                        "runbook": "noop",
                        "for": "0s",
                        "expr": "vector(1)",
                        "summary": "load test",
                    }
                ]
            }
        )
    )
    return runbooks, catalog
