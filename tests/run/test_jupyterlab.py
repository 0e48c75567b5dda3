"""`runbook open` proven in a real JupyterLab, driven by Debian's Chromium: the prepared notebook
opens, runs, and shows the findings and the injected parameters; a record continued in resolve
mode already has its outputs, re-runs, takes an ad-hoc cell, runs its guarded action with an
audit row, and `runbook archive` chains the session as a record (the added cell listed and
marked, the action and its audit row, the printed secret redacted in every file, the original
record showing the continuation, `runbook verify` clean)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from runbook_lib.record.archive import LocalArchive
from runbook_lib.sandbox.services import free_port
from tests.helpers import HOME, cli, temp_database

pytestmark = pytest.mark.slow
ALERT = HOME / "examples" / "alerts" / "high-error-rate.json"
TOKEN = "lab-token-" + os.urandom(4).hex()
SECRET = "ops-api-" + os.urandom(8).hex()  # what an ad-hoc cell prints: redacted in the archive
SCREENSHOTS = HOME / ".screenshots"


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with temp_database("lab") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE emergency_controls SET omnihub_kill_switch = true")
        yield {
            **os.environ,
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
            "RUNBOOK_ARCHIVE": str(tmp_path / "executed"),
            "RUNBOOK_POSTGRES_DSN": dsn,
            "OPS_API_TOKEN": SECRET,
            "RUNBOOK_OPERATOR": "",
        }


class Lab:
    """`runbook open ... -- --no-browser --port P` as the README tells a user, and its notebook."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        argv = [str(Path(sys.executable).parent / "runbook"), "open", *args, "--", "--no-browser"]
        argv += [f"--port={self.port}", f"--ServerApp.token={TOKEN}", "--LabApp.expose_app_in_browser=True"]
        argv += ["--allow-root"] if os.geteuid() == 0 else []
        self.log = Path(env["XDG_CACHE_HOME"]).parent / f"lab-{self.port}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(f"{self.url}/api/status", params={"token": TOKEN}, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.3)
        self.path = Path(
            next(ln for ln in self.log.read_text().splitlines() if "opening " in ln)
            .split("opening ")[1]
            .split(" in JupyterLab")[0]
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(30)


def js(browser: Any, code: str) -> Any:
    return browser.execute_script(code)


NB = "window.jupyterapp.shell.currentWidget"


def open_notebook(browser: Any, lab: Lab) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.set_window_size(1280, 1400)
    browser.get(f"{lab.url}/lab/tree/{lab.path.name}?token={TOKEN}")
    ready = f"return !!(window.jupyterapp && {NB} && {NB}.sessionContext && {NB}.sessionContext.session && {NB}.sessionContext.session.kernel && {NB}.sessionContext.session.kernel.status === 'idle')"
    WebDriverWait(browser, 120).until(lambda b: js(b, ready))


def notebook_text(browser: Any) -> str:
    """Every cell's source and outputs, from JupyterLab's model (the page renders only the cells
    in view)."""
    return js(
        browser,
        f"const m = {NB}.content.model; const out = [];"
        " for (let i = 0; i < m.cells.length; i++) { const c = m.cells.get(i); out.push(c.sharedModel.getSource());"
        " if (c.type === 'code') { out.push(JSON.stringify(c.sharedModel.toJSON().outputs)); } }"
        " return out.join('\\n');",
    )


def run_all(browser: Any) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    js(browser, "window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # busy, then idle again with every code cell executed
    done = f"return {NB}.sessionContext.session.kernel.status === 'idle' && {NB}.content.widgets.every(c => c.model.type !== 'code' || c.model.executionCount !== null)"
    time.sleep(1)
    WebDriverWait(browser, 300).until(lambda b: js(b, done))


def test_a_prepared_runbook_runs_in_jupyterlab_and_shows_findings_and_parameters(browser, env) -> None:
    lab = Lab(env, "high-error-rate", "--alert", str(ALERT))
    try:
        open_notebook(browser, lab)
        run_all(browser)
        text = notebook_text(browser)
        findings = browser.find_elements("css selector", ".jp-OutputArea .rb-finding")
        assert findings  # the same finding HTML the record shows, rendered
        assert text.count("application/vnd.runbook.finding+json") >= 5
        assert "HighErrorBudgetBurnRate" in text and "mode = 'diagnose'" in text and 'environment = "local"' in text
        assert "Run context" in text and "granted by `runbook open`" in text
        SCREENSHOTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOTS / "jupyterlab-runbook-1280.png"))
    finally:
        lab.stop()


def test_a_record_continued_in_resolve_mode_is_archived_with_the_added_cell_action_and_audit_row(browser, env) -> None:
    original = cli("run", "kill-switch-active", "--alert", str(ALERT), "--param", "reason=drill", env=env)
    rid = json.loads(cli("records", "--json", env=env).stdout)[0]["id"]
    assert original.returncode in (0, 3), original.stderr
    lab = Lab(
        env,
        rid,
        "--mode",
        "resolve",
        "--execute",
        "--operator",
        "alice",
        "--approve",
        "disable_kill_switch",
        "--param",
        "reason=the drill is over",
    )
    try:
        open_notebook(browser, lab)
        before = notebook_text(browser)
        assert "Disable OMNIHUB_KILL_SWITCH" in before  # the record's outputs are there before anything runs
        count = js(browser, f"return {NB}.content.widgets.length")
        js(browser, f"{NB}.content.activeCellIndex = {count - 1}")
        js(browser, "window.jupyterapp.commands.execute('notebook:insert-cell-below')")
        js(
            browser,
            f'{NB}.content.activeCell.model.sharedModel.setSource(\'import os\\nprint("token:", os.environ["OPS_API_TOKEN"])\')',
        )
        run_all(browser)
        after = notebook_text(browser)
        assert "token: " in after
        js(browser, "window.jupyterapp.commands.execute('docmanager:save')")
        time.sleep(2)
        browser.save_screenshot(str(SCREENSHOTS / "jupyterlab-continued-1280.png"))
    finally:
        lab.stop()

    archived = cli("archive", str(lab.path), env=env)
    assert archived.returncode == 0, archived.stderr
    assert "on-call added 1 cell" in archived.stderr
    archive = LocalArchive(Path(env["RUNBOOK_ARCHIVE"]))
    new = archive.load(archive.find(Path(archived.stdout.strip()).parent.name))
    session = new["session"]
    assert new["origin"] == "interactive" and session["operator"] == "alice" and session["continued"] == rid
    assert len(session["added"]) == 1 and session["changed"] == []
    ran = next(a for a in new["actions"] if a["name"] == "disable_kill_switch" and a["status"] == "done")
    assert ran["operator"] == "alice" and not ran["dry_run"]
    assert {r["actor"] for r in session["audit_rows"]} == {"alice"} and len(session["audit_rows"]) >= 2
    with psycopg.connect(env["RUNBOOK_POSTGRES_DSN"]) as conn:
        assert conn.execute("SELECT omnihub_kill_switch FROM emergency_controls").fetchone()[0] is False
    folder = Path(archived.stdout.strip()).parent
    for name in ("notebook.ipynb", "record.html", "record.json"):
        assert SECRET not in (folder / name).read_text(), name
    page = (folder / "record.html").read_text()
    assert "on-call added this cell in the interactive session" in page and "Interactive session" in page
    events = [e for e in archive.load(rid)["events"] if e["event"] == "continued"]
    assert len(events) == 1 and events[0]["data"]["record"] == new["id"] and events[0]["data"]["by"] == "alice"
    shown = cli("show", rid, env=env)
    assert "Continued interactively by alice" in shown.stdout and new["id"] in shown.stdout
    verified = cli("verify", env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
