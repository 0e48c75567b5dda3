"""Small runbooks made on the fly, for tests and benchmarks. The minimal collection is one
`noop` runbook (start, one finding) routed from `BurstAlert`, plus the real triage runbook: it
measures the receiver and engine path (journal, workers, papermill, archive), not a
runbook's queries."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import yaml

from runbook_lib.core.contract import parameters_source

START = "import runbook_lib\nrb = runbook_lib.start(alert=alert, environment=environment, mode=mode)"


def make_runbook(folder: Path, slug: str, *cells: str, title: str | None = None) -> Path:
    """``folder/slug.ipynb``: the parameters cell, a start cell, then ``cells``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters_source())
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(title or f"# {slug}"), params, nbformat.v4.new_code_cell(START)]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{slug}.ipynb"
    nbformat.write(nb, path)
    return path


def write_minimal_collection(folder: Path, home: Path) -> tuple[Path, Path]:
    """Returns (runbooks_dir, catalog_path)."""
    runbooks = folder / "runbooks"
    runbooks.mkdir(parents=True, exist_ok=True)
    shutil.copy(home / "runbooks" / "triage.ipynb", runbooks / "triage.ipynb")
    make_runbook(
        runbooks,
        "noop",
        'rb.finding("noop", "info", f"ran for {rb.alertname} {rb.labels.get(\'instance\', \'\')}")',
        title="# No-op\n\nOne finding; for receiver load tests.",
    )
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
