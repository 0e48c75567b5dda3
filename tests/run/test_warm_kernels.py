"""Warm single-use kernels (the session's template, conftest ``warm_pool``): every run gets a
kernel forked from the template that no other run has used, so nothing one run does reaches the
next; a kernel gets the environment of the run that takes it, never a stale one; a kernel that
dies gives a failed record and the next run still gets a warm kernel; without a template a run
falls back to a cold start."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from runbook_lib.core.settings import KernelSettings, load_settings
from runbook_lib.run.pool import WarmKernels, alive
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sre.alertmanager import parse_alert
from tests.helpers import alert_payload
from tests.support.minimal import make_runbook

MEDDLE = [
    "planted_global = 42",
    "import xml.dom.minidom",
    "import runbook_lib.kernel.notebook as nb\nnb.Runbook.finding = lambda *a, **k: None",
    "import os\nos.chdir('/')\nos.environ['RUNBOOK_PLANTED'] = 'yes'",
    "import threading, time\nthreading.Thread(target=time.sleep, args=(600,), name='planted-thread', daemon=True).start()",
]
PROBE = [
    """import os, sys, threading, json
import runbook_lib.kernel.notebook as nb
seen = {
    "global": "planted_global" in globals(),
    "module": "xml.dom.minidom" in sys.modules,
    "patched": nb.Runbook.finding.__qualname__ != "Runbook.finding",
    "cwd_root": os.getcwd() == "/",
    "env": "RUNBOOK_PLANTED" in os.environ,
    "thread": any(t.name == "planted-thread" for t in threading.enumerate()),
}
from IPython.display import display  # not rb.finding: a meddling run may have patched it away
from runbook_lib.core.contract import FINDING_MIME
finding = {"step": "", "check": "probe", "verdict": "info", "summary": json.dumps(seen), "details": {"pid": os.getpid()}}
display({FINDING_MIME: finding, "text/plain": json.dumps(seen)}, raw=True)""",
]


ENV_PROBE = """import os, json
from IPython.display import display
from runbook_lib.core.contract import FINDING_MIME
mark = os.environ.get("RUNBOOK_TEST_MARK")
display({FINDING_MIME: {"step": "", "check": "env", "verdict": "info", "summary": str(mark), "details": {}},
         "text/plain": str(mark)}, raw=True)"""


@dataclass
class Counts:
    """How many runs the session's template served warm and how many went cold, since the start."""

    pool: WarmKernels
    warm: int = 0
    cold: int = 0

    def __post_init__(self) -> None:
        self.warm, self.cold = self.pool.warm_starts, self.pool.cold_starts

    def since(self) -> tuple[int, int]:
        return self.pool.warm_starts - self.warm, self.pool.cold_starts - self.cold


@pytest.fixture
def warm_runner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warm_pool: WarmKernels
) -> Iterator[tuple[Runner, Counts, Path]]:
    runbooks = tmp_path / "runbooks"
    make_runbook(runbooks, "meddle", *MEDDLE)
    make_runbook(runbooks, "probe", *PROBE)
    make_runbook(runbooks, "suicide", "import os\nos._exit(3)")
    make_runbook(runbooks, "both", *MEDDLE, *PROBE)
    make_runbook(runbooks, "env", ENV_PROBE)
    make_runbook(runbooks, "triage")  # the catalog's fallback must exist
    monkeypatch.setenv("RUNBOOK_RUNBOOKS_DIR", str(runbooks))
    settings = load_settings(overrides={"archive.path": str(tmp_path / "executed"), "prometheus.url": None})
    yield Runner(settings), Counts(warm_pool), tmp_path


def run(runner: Runner, slug: str):
    return runner.run(RunRequest(alert=parse_alert(alert_payload()["alerts"][0]), slug=slug))


def test_nothing_one_run_does_reaches_the_next(warm_runner) -> None:
    runner, counts, _ = warm_runner
    meddled = run(runner, "meddle")
    assert meddled.status == "succeeded"
    probed = run(runner, "probe")
    assert probed.status == "succeeded"
    [probe] = [f for f in probed.record["findings"] if f["check"] == "probe"]
    assert json.loads(probe["summary"]) == {
        "global": False,
        "module": False,
        "patched": False,
        "cwd_root": False,
        "env": False,
        "thread": False,
    }
    assert counts.since() == (2, 0), "both runs had warm kernels of their own"
    assert probe["details"]["pid"] != os.getpid()
    assert not alive(probe["details"]["pid"]), "a used kernel is killed after its run"
    assert "RUNBOOK_PLANTED" not in os.environ and os.getcwd() != "/"


def test_the_probe_sees_meddling_within_one_run(warm_runner) -> None:
    """The control: in the same kernel, the probe does see every change (so the test above can fail)."""
    runner, _warm, _ = warm_runner
    [probe] = [f for f in run(runner, "both").record["findings"] if f["check"] == "probe"]
    assert set(json.loads(probe["summary"]).values()) == {True}


def test_a_kernel_that_exits_gives_a_failed_record_and_the_next_run_is_warm(warm_runner) -> None:
    runner, counts, _ = warm_runner
    dead = run(runner, "suicide")
    assert dead.status == "failed"
    assert dead.record["failed_cell"]["ename"] in ("DeadKernelError", "RuntimeError")
    after = run(runner, "probe")
    assert after.status == "succeeded" and counts.since() == (2, 0)


def test_a_kernel_has_the_environment_of_the_run_that_takes_it(warm_runner, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spare forked before the environment changed is not handed to a run that needs the new
    one: the run waits for a spare forked with it (still warm)."""
    runner, counts, _ = warm_runner

    def mark() -> str:
        [found] = [f for f in run(runner, "env").record["findings"] if f["check"] == "env"]
        return found["summary"]

    monkeypatch.setenv("RUNBOOK_TEST_MARK", "one")
    assert mark() == "one"
    monkeypatch.setenv("RUNBOOK_TEST_MARK", "two")
    assert mark() == "two"
    monkeypatch.delenv("RUNBOOK_TEST_MARK")
    assert mark() == "None"
    assert counts.since() == (3, 0)


def test_without_a_template_a_run_starts_a_cold_kernel(warm_runner) -> None:
    runner, _counts, _ = warm_runner
    lonely = WarmKernels(KernelSettings(warm_kernels=1, warm_wait_s=0.2))  # never started: no template
    lonely.activate()
    try:
        result = run(runner, "probe")
    finally:
        lonely.close()
    assert result.status == "succeeded" and (lonely.warm_starts, lonely.cold_starts) == (0, 1)
