"""Executing one runbook notebook with papermill, and what came of it.

Whatever happens (an exception in a cell, a cell timeout, a kernel that never starts, Ctrl-C),
the caller gets the executed notebook back, or the source notebook marked as not executed, so
a record can always be written. The executed notebook is taken from papermill's engine in
memory (:class:`KeepingEngine`), never saved: no unredacted copy is ever written to disk, and
no run pays for a save per cell. A cold kernel's working directory is a private temporary
directory, removed before returning (a warm kernel has its own scratch directory).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from papermill.engines import NBClientEngine, papermill_engines

from runbook_lib.core.environmental import environmental
from runbook_lib.core.settings import KernelSettings

log = logging.getLogger("runbook.run")
KERNEL_MANAGER = "runbook_lib.run.kernels.IpcKernelManager"
ENGINE = "runbook"
_kept = threading.local()


class KeepingEngine(NBClientEngine):
    """papermill's nbclient engine that keeps the notebook it executed (outputs so far included)
    for the caller, also when a cell failed, timed out or the kernel died."""

    @classmethod
    def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
        _kept.nb = nb_man.nb
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register(ENGINE, KeepingEngine)


@dataclass
class Execution:
    status: str  # succeeded / failed / timed_out / interrupted
    nb: nbformat.NotebookNode
    duration_s: float
    failure: dict[str, Any] | None = None
    error_text: str | None = None  # an error outside any cell (the kernel died, could not start)


class StepProgress:
    """Says when each runbook step (a cell calling rb.step) starts and how long it took."""

    STEP = re.compile(r'rb\.step\((\d+|"[^"]+"), "([^"]*)"')

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say
        self.started: dict[int, tuple[str, float]] = {}

    def on_cell_start(self, cell: Any, cell_index: int, **_kw: Any) -> None:
        match = self.STEP.search(cell.get("source", ""))
        if match:
            number = match.group(1).strip('"')
            label = f"step {number}" if number.isdigit() else number
            self.started[cell_index] = (label, time.monotonic())
            self.say(f"{label}: {match.group(2)} ...")

    def on_cell_executed(self, cell: Any, cell_index: int, **_kw: Any) -> None:
        if cell_index in self.started:
            label, t0 = self.started.pop(cell_index)
            self.say(f"{label} done in {time.monotonic() - t0:.2f} s")


def execute(
    source: Path,
    params: dict[str, Any],
    kernels: KernelSettings,
    progress: bool = False,
    skip: str | None = None,
    say: Callable[[str], None] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Execution:
    """Run ``source`` with ``params`` injected. ``skip``: do not run; record it as interrupted.
    ``say``: told when each step starts and ends. ``environ``: the kernel's whole environment
    (a cold kernel); None: this process's."""
    t0 = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="runbook-"))
    _kept.nb = None
    try:
        if skip:
            status: str = "interrupted"
            failure: dict[str, Any] | None = {"ename": "Interrupted", "evalue": skip, "detail": "not executed again"}
            error_text = None
        else:
            from runbook_lib.run.kernels import kernel_environment  # jupyter_client: only when a run starts

            with kernel_environment(environ):
                status, failure, error_text = _papermill(source, workdir, params, kernels, progress, say)
        duration = time.monotonic() - t0
        nb = _kept_or_source(source, params)
    finally:
        _kept.nb = None
        shutil.rmtree(workdir, ignore_errors=True)
    if failure is not None:
        _locate_failed_cell(nb, failure)
    return Execution(status, nb, duration, failure, error_text)


def _papermill(
    source: Path,
    workdir: Path,
    params: dict[str, Any],
    kernels: KernelSettings,
    progress: bool,
    say: Callable[[str], None] | None = None,
) -> tuple[str, dict[str, Any] | None, str | None]:
    import papermill as pm
    from nbclient.exceptions import CellTimeoutError
    from papermill.exceptions import PapermillExecutionError

    hooks: dict[str, Any] = {}
    if say is not None:
        steps = StepProgress(say)
        hooks = {"on_cell_start": steps.on_cell_start, "on_cell_executed": steps.on_cell_executed}
    try:
        pm.execute_notebook(
            str(source),
            None,  # kept in memory by KeepingEngine, never written
            parameters=params,
            engine_name=ENGINE,
            kernel_name=kernels.kernel_name,
            progress_bar=progress,
            log_output=False,
            cwd=str(workdir),
            start_timeout=int(kernels.start_timeout_s),
            execution_timeout=int(kernels.cell_timeout_s),
            request_save_on_cell_execute=False,
            kernel_manager_class=KERNEL_MANAGER,
            shutdown_kernel="immediate",  # the run is over: no need to wait for a polite exit
            **hooks,
        )
    except PapermillExecutionError as exc:
        return (
            "failed",
            {
                "index": exc.cell_index,
                "execution_count": exc.exec_count,
                "ename": exc.ename,
                "evalue": exc.evalue,
                "source": first_lines(exc.source),
            },
            None,
        )
    except CellTimeoutError as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        evalue = f"a cell ran longer than {kernels.cell_timeout_s:g} s"
        return "timed_out", {"ename": "CellTimeoutError", "evalue": evalue, "detail": detail}, None
    except Exception as exc:  # kernel died, could not start, ...: still a record
        if environmental(exc):  # no space for a connection file, no memory to fork: retried, never final
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        failure = {
            "ename": type(exc).__name__,
            "evalue": first,
            "detail": "the notebook could not be executed to the end",
        }
        return "failed", failure, f"{type(exc).__name__}: {exc}"
    return "succeeded", None, None


def _kept_or_source(source: Path, params: dict[str, Any]) -> nbformat.NotebookNode:
    """The executed notebook as papermill kept it; if execution never began (the kernel did not
    start), the source notebook with the parameters noted, so the record still shows what ran."""
    nb = getattr(_kept, "nb", None)
    if nb is not None and any(c.get("metadata", {}).get("papermill", {}).get("start_time") for c in nb.cells):
        return nb
    nb = nb if nb is not None else nbformat.read(str(source), as_version=4)
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
        failure["source"] = first_lines(cell.get("source", ""))


def first_lines(source: str, n: int = 3) -> str:
    lines = str(source).splitlines()
    return "\n".join(lines[:n]) + ("\n..." if len(lines) > n else "")
