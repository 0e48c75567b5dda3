"""Papermill execution of a runbook into an archived incident record. Runs in the host process.

One run: route the alert to a notebook -> execute it with papermill (parameters injected
under fixed names) -> read findings and actions back out of the executed notebook -> redact
-> render HTML (summary first) -> write record.json -> move into the archive and chain it
into the index. A notebook that raises or times out still produces a record.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat

from . import display as d
from .archive import Archive, new_record_id, sha256_file
from .catalog import TRIAGE, Catalog, Route
from .context import Alert
from .errors import ConfigError, RunbookError, RunbookNotFound
from .redact import Redactor
from .settings import Settings, environment_secrets

log = logging.getLogger("runbook.engine")

# Values redaction must never rewrite: they are structure, not content.
NOTEBOOK_STRUCTURE = frozenset({"cell_type", "output_type", "name", "id", "nbformat", "nbformat_minor"})
RECORD_STRUCTURE = frozenset({"id", "runbook", "status", "verdict", "schema", "origin", "mode"})
PARAMETER_NAMES = ("alert", "environment", "mode", "dry_run", "operator", "approve")
STATUSES = ("succeeded", "failed", "timed_out", "interrupted")


@dataclass
class RunRequest:
    alert: Alert | None
    slug: str | None = None
    mode: str = "diagnose"
    dry_run: bool = True
    operator: str = ""
    approve: list[str] = field(default_factory=list)
    record_id: str | None = None
    attempt: int = 1
    notes: list[str] = field(default_factory=list)
    origin: str = "cli"
    intake: dict[str, Any] | None = None
    # When set, do not execute: write a record with status "interrupted" saying why.
    skip_execution: str | None = None


@dataclass
class RunResult:
    record_id: str
    status: str
    path: Path
    record: dict[str, Any]

    @property
    def html_path(self) -> Path:
        return self.path / "record.html"

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("omnihub-runbooks", "papermill", "nbconvert", "nbclient", "ipykernel"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
        self.archive = Archive(settings.archive_path)
        self.redactor = Redactor([*settings.secret_values(), *environment_secrets()])

    # -- routing ------------------------------------------------------------------------------
    def resolve(self, alert: Alert | None, slug: str | None) -> tuple[str, Route | None]:
        """The runbook slug to run: the given one, or the alert's route (triage if none)."""
        route = self.catalog.route(alert.name) if alert else None
        if slug:
            if not self.catalog.has_notebook(slug):
                known = ", ".join(self.catalog.slugs())
                raise RunbookNotFound(f"no runbook {slug!r} in {self.settings.runbooks_path} (known: {known})")
            return slug, route
        if route is None:
            raise ConfigError("give a runbook SLUG or an --alert to route from")
        if not self.catalog.has_notebook(route.slug):
            raise RunbookNotFound(f"the {route.slug!r} runbook is missing from {self.settings.runbooks_path}")
        return route.slug, route

    def parameters(self, request: RunRequest) -> dict[str, Any]:
        return {
            "alert": request.alert.to_param() if request.alert else {},
            "environment": self.settings.env,
            "mode": request.mode,
            "dry_run": bool(request.dry_run),
            "operator": request.operator,
            "approve": list(request.approve),
        }

    # -- interactive preparation ----------------------------------------------------------------
    def prepare(self, request: RunRequest, out_dir: Path | None = None) -> Path:
        """Inject parameters without executing (papermill prepare_only), for JupyterLab."""
        import papermill as pm

        slug, _ = self.resolve(request.alert, request.slug)
        out_dir = out_dir or (self.settings.archive_path / "interactive")
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{slug}.ipynb"
        pm.execute_notebook(
            str(self.catalog.notebook(slug)),
            str(out),
            parameters=self.parameters(request),
            prepare_only=True,
            progress_bar=False,
            kernel_name=self.settings.engine.kernel_name,
        )
        return out

    # -- execution --------------------------------------------------------------------------------
    def run(self, request: RunRequest, progress: bool = False, say: Callable[[str], None] | None = None) -> RunResult:
        import papermill as pm
        from nbclient.exceptions import CellTimeoutError
        from papermill.exceptions import PapermillExecutionError

        say = say or (lambda _msg: None)
        if request.mode not in ("diagnose", "resolve"):
            raise RunbookError(f"mode must be diagnose or resolve, got {request.mode!r}")
        slug, route = self.resolve(request.alert, request.slug)
        record_id = request.record_id or new_record_id(slug)
        source_nb = self.catalog.notebook(slug)
        staging = self.archive.staging_dir(record_id)
        params = self.parameters(request)
        started = datetime.now(UTC)
        t0 = time.monotonic()
        say(f"running {slug} for {request.alert.name if request.alert else 'no alert'} -> record {record_id}")

        status, failure, error_text = "succeeded", None, None
        # papermill saves the notebook as it runs, unredacted: keep that in a private (0700)
        # directory outside the archive; only redacted files ever reach the staging directory.
        workdir = Path(tempfile.mkdtemp(prefix="runbook-"))
        out_path = workdir / "executed.ipynb"
        try:  # whatever happens (even Ctrl-C), the unredacted copy does not outlive the run
            try:
                if request.skip_execution:
                    raise _Skipped(request.skip_execution)
                pm.execute_notebook(
                    str(source_nb),
                    str(out_path),
                    parameters=params,
                    kernel_name=self.settings.engine.kernel_name,
                    progress_bar=progress,
                    log_output=False,
                    cwd=str(workdir),
                    start_timeout=int(self.settings.engine.start_timeout_s),
                    execution_timeout=int(self.settings.engine.cell_timeout_s),
                    request_save_on_cell_execute=True,
                    kernel_manager_class="runbook_lib.kernels.QuietKernelManager",
                    shutdown_kernel="immediate",  # the run is over: no need to wait for a polite exit
                )
            except _Skipped as exc:
                status = "interrupted"
                failure = {"ename": "Interrupted", "evalue": str(exc), "detail": "not executed again"}
            except PapermillExecutionError as exc:
                status = "failed"
                failure = {
                    "index": exc.cell_index,
                    "execution_count": exc.exec_count,
                    "ename": exc.ename,
                    "evalue": exc.evalue,
                    "source": _first_lines(exc.source),
                }
            except CellTimeoutError as exc:
                status = "timed_out"
                failure = {
                    "ename": "CellTimeoutError",
                    "evalue": f"a cell ran longer than {self.settings.engine.cell_timeout_s:g} s",
                    "detail": str(exc).splitlines()[0] if str(exc) else "",
                }
            except Exception as exc:  # kernel died, could not start, ...: still a record
                status = "failed"
                error_text = f"{type(exc).__name__}: {exc}"
                failure = {
                    "ename": type(exc).__name__,
                    "evalue": str(exc).splitlines()[0] if str(exc) else "",
                    "detail": "the notebook could not be executed to the end",
                }
            duration = time.monotonic() - t0
            t_exec = duration
            nb = _read_or_fallback(out_path, source_nb, params)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if failure is not None:
            _locate_failed_cell(nb, failure)
        findings, actions = collect(nb)
        record: dict[str, Any] = {
            "schema": 1,
            "id": record_id,
            "runbook": slug,
            "runbook_sha256": sha256_file(source_nb),
            "environment": self.settings.env,
            "origin": request.origin,
            "mode": request.mode,
            "alert": params["alert"],
            "parameters": {k: v for k, v in params.items() if k != "alert"},
            "route": {"alertname": route.alertname, "slug": route.slug, "reason": route.reason} if route else None,
            "started_at": started.isoformat(timespec="milliseconds"),
            "ended_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "duration_s": round(duration, 3),
            "status": status,
            "failed_cell": failure,
            "findings": findings,
            "actions": actions,
            "unchecked": [{"check": f["check"], "why": f["summary"]} for f in findings if f["verdict"] == "unchecked"],
            "attempt": request.attempt,
            "notes": list(request.notes),
            "intake": request.intake,
            "versions": _versions(),
            "timings": {"execute_s": round(t_exec, 3)},
        }
        if route is not None and slug == TRIAGE and route.slug == TRIAGE:
            record["notes"].append(f"no dedicated runbook for {route.alertname} ({route.reason}); triage ran")
        if error_text:
            record["notes"].append(f"execution error: {error_text.splitlines()[0][:300]}")
        return self._write(staging, nb, record, say)

    def _write(
        self, staging: Path, nb: nbformat.NotebookNode, record: dict[str, Any], say: Callable[[str], None]
    ) -> RunResult:
        from .render import render_record_html

        t0 = time.monotonic()
        red = self.redactor
        record = red.data(record, keep=RECORD_STRUCTURE)
        nb = nbformat.from_dict(red.data(nb, keep=NOTEBOOK_STRUCTURE))
        nb_text = red.text(nbformat.writes(nb))
        (staging / "notebook.ipynb").write_text(nb_text, encoding="utf-8")
        html = red.text(render_record_html(nb, record))
        (staging / "record.html").write_text(html, encoding="utf-8")
        record.setdefault("timings", {})["render_s"] = round(time.monotonic() - t0, 3)
        record["files"] = {name: sha256_file(staging / name) for name in ("notebook.ipynb", "record.html")}
        (staging / "record.json").write_text(
            red.text(json.dumps(record, indent=2, ensure_ascii=False)) + "\n", encoding="utf-8"
        )
        final = self.archive.commit(staging, record)
        say(f"record {record['id']}: {record['status']} in {record['duration_s']:.1f} s -> {final / 'record.html'}")
        log.info(
            "record %s (%s) status=%s duration=%.2fs",
            record["id"],
            record["runbook"],
            record["status"],
            record["duration_s"],
        )
        return RunResult(record["id"], record["status"], final, record)


class _Skipped(Exception):
    pass


def collect(nb: nbformat.NotebookNode) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Findings and actions, in notebook order, from their MIME-typed outputs."""
    findings, actions = [], []
    for index, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            if d.FINDING_MIME in data:
                findings.append({**_as_dict(data[d.FINDING_MIME]), "cell": index})
            if d.ACTION_MIME in data:
                actions.append({**_as_dict(data[d.ACTION_MIME]), "cell": index})
    return findings, actions


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value)
    return json.loads(json.dumps(value))


def _read_or_fallback(out_path: Path, source: Path, params: dict[str, Any]) -> nbformat.NotebookNode:
    """The executed notebook as papermill saved it; if it never got written (the kernel did not
    start), the source notebook with the parameters noted, so the record still shows what ran."""
    if out_path.exists():
        try:
            return nbformat.read(str(out_path), as_version=4)
        except Exception:
            log.warning("executed notebook %s unreadable; recording the source notebook instead", out_path)
    nb = nbformat.read(str(source), as_version=4)
    nb.cells.insert(
        0,
        nbformat.v4.new_markdown_cell(
            "**This runbook did not execute.** Parameters were:\n\n```json\n" + json.dumps(params, indent=2) + "\n```"
        ),
    )
    return nb


def _locate_failed_cell(nb: nbformat.NotebookNode, failure: dict[str, Any]) -> None:
    """Find the failing (or timed-out) cell from papermill's per-cell metadata. ``index`` is the
    cell's position in the runbook notebook itself (papermill's injected-parameters and error
    marker cells not counted), so it points at the cell a runbook author would edit."""
    added = {"injected-parameters", "papermill-error-cell-tag"}
    failed = last_started = None
    source_index = -1
    for cell in nb.cells:
        if added & set(cell.get("metadata", {}).get("tags", [])):
            continue
        source_index += 1
        pm_meta = cell.get("metadata", {}).get("papermill", {})
        if pm_meta.get("exception"):
            failed = (source_index, cell)
            break
        if pm_meta.get("start_time"):
            last_started = (source_index, cell)
    found = failed or last_started
    if found:
        index, cell = found
        failure["index"] = index
        failure["execution_count"] = cell.get("execution_count")
        failure["source"] = _first_lines(cell.get("source", ""))


def _first_lines(source: str, n: int = 3) -> str:
    lines = str(source).splitlines()
    return "\n".join(lines[:n]) + ("\n..." if len(lines) > n else "")
