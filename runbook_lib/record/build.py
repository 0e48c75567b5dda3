"""Building an incident record from an executed notebook: read the findings and actions back
out of their MIME-typed outputs, assemble record.json, redact everything, render the HTML and
hand the finished directory to the archive."""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import nbformat

from runbook_lib.core.contract import ACTION_MIME, FINDING_MIME
from runbook_lib.core.errors import ArchiveError
from runbook_lib.core.present import visible
from runbook_lib.core.redact import Redactor
from runbook_lib.core.shapes import Action, Finding, Record
from runbook_lib.record.archive.base import Archive
from runbook_lib.record.archive.storage import sha256_file

log = logging.getLogger("runbook.record")

# Values redaction must never rewrite: they are structure, not content.
NOTEBOOK_STRUCTURE = frozenset({"cell_type", "output_type", "name", "id", "nbformat", "nbformat_minor"})
RECORD_STRUCTURE = frozenset({"id", "runbook", "status", "verdict", "schema", "origin", "mode"})
SCHEMA = 1


@dataclass
class ArchivedRecord:
    record_id: str
    status: str
    path: Path | None  # the record's directory; None when the archive is in S3 (see location)
    record: Record
    location: str = ""  # where the record's folder is: its directory, or its s3:// URL

    @property
    def html_path(self) -> Path:
        if self.path is None:
            raise ArchiveError(f"record {self.record_id} is in S3 ({self.location}): use html_location")
        return self.path / "record.html"

    @property
    def html_location(self) -> str:
        """The record's page as people open it: a local path, or its s3:// URL."""
        return f"{self.location or self.path}/record.html"

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def incomplete(self) -> bool:
        return bool((self.record.get("diagnosis") or {}).get("incomplete"))


def collect(nb: nbformat.NotebookNode) -> tuple[list[Finding], list[Action]]:
    """Findings and actions, in notebook order, from their MIME-typed outputs."""
    findings: list[Finding] = []
    actions: list[Action] = []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            if FINDING_MIME in data:
                findings.append(cast(Finding, {**_as_dict(data[FINDING_MIME]), "cell": index}))
            if ACTION_MIME in data:
                actions.append(cast(Action, {**_as_dict(data[ACTION_MIME]), "cell": index}))
    return findings, actions


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return json.loads(json.dumps(value))


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("omnihub-runbooks", "papermill", "nbconvert", "nbclient", "ipykernel"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


def write_record(
    archive: Archive,
    redactor: Redactor,
    staging: Path,
    nb: nbformat.NotebookNode,
    record: Record,
    say: Callable[[str], None] = lambda _msg: None,
) -> ArchivedRecord:
    """Redact, render, hash, and commit the record into the archive."""
    from runbook_lib.record.render import render_record_html

    t0 = time.monotonic()
    record = redactor.data(record, keep=RECORD_STRUCTURE)
    nb = nbformat.from_dict(redactor.data(nb, keep=NOTEBOOK_STRUCTURE))
    (staging / "notebook.ipynb").write_text(redactor.text(nbformat.writes(nb)), encoding="utf-8")
    html = visible(redactor.text(render_record_html(nb, record)))  # no raw control/bidi character anywhere
    (staging / "record.html").write_text(html, encoding="utf-8")
    record.setdefault("timings", {})["render_s"] = round(time.monotonic() - t0, 3)
    record["files"] = {name: sha256_file(staging / name) for name in ("notebook.ipynb", "record.html")}
    (staging / "record.json").write_text(
        redactor.text(json.dumps(record, indent=2, ensure_ascii=False)) + "\n", encoding="utf-8"
    )
    final = archive.commit(staging, record)  # the record's directory; its URL for an archive in S3
    location = archive.record_location(record["id"])
    say(f"record {record['id']}: {record['status']} in {record['duration_s']:.1f} s -> {location}/record.html")
    log.info(
        "record %s (%s) status=%s duration=%.2fs",
        record["id"],
        record["runbook"],
        record["status"],
        record["duration_s"],
    )
    return ArchivedRecord(record["id"], record["status"], final if isinstance(final, Path) else None, record, location)
