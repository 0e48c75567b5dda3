"""On-call's session as evidence, without a browser: what `runbook open` grants is what the guard
believes (reassigning ``mode`` or ``dry_run`` in a cell unlocks nothing, a tampered grant only
diagnoses), and `runbook archive` refuses a file it did not prepare, altered origin metadata and
a second archive, each with exit 2; archived working copies are pruned, unarchived ones listed."""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import psycopg
import pytest

from runbook_lib.core import sessions
from runbook_lib.run.interactive import prune
from tests.helpers import HOME, cli, temp_database

ALERT = HOME / "examples" / "alerts" / "high-error-rate.json"


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNBOOK_ARCHIVE", str(tmp_path / "executed"))
    return tmp_path / "cache" / "omnihub-runbooks" / "interactive"


def opened(*args: str) -> Path:
    ran = cli("open", *args, "--no-launch")
    assert ran.returncode == 0, ran.stderr
    return Path(ran.stdout.strip())


def test_archive_refuses_what_open_did_not_prepare_altered_metadata_and_a_second_archive(work: Path) -> None:
    stray = work.parent / "stray.ipynb"
    stray.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(), str(stray))
    ran = cli("archive", str(stray))
    assert ran.returncode == 2 and "was not prepared by `runbook open`" in ran.stderr

    copy = opened("high-error-rate", "--alert", str(ALERT))
    nb = nbformat.read(str(copy), as_version=4)
    nb.metadata[sessions.METADATA_KEY]["mode"] = "resolve"  # "I'll just say it was opened in resolve mode"
    nbformat.write(nb, str(copy))
    ran = cli("archive", str(copy))
    assert ran.returncode == 2 and "origin metadata" in ran.stderr and "altered" in ran.stderr

    copy = opened("high-error-rate", "--alert", str(ALERT))
    first = cli("archive", str(copy))
    assert first.returncode == 0, first.stderr
    again = cli("archive", str(copy))
    assert again.returncode == 2 and "archived already" in again.stderr
    listed = cli("open", "--list").stdout
    assert "NOT ARCHIVED" in listed and "20" in listed  # the altered copy stays listed, unarchived


def test_archived_copies_are_pruned_after_their_age_and_unarchived_ones_never(work: Path) -> None:
    kept = opened("high-error-rate", "--alert", str(ALERT))
    done = opened("high-error-rate", "--alert", str(ALERT))
    assert cli("archive", str(done)).returncode == 0
    later = done.stat().st_mtime + 15 * 86400
    assert prune(work, 14, now=later) == [done]
    assert kept.exists() and not done.exists() and not sessions.grant_path(work, done.name).exists()


@pytest.mark.services
def test_reassigning_mode_or_dry_run_in_the_notebook_unlocks_nothing(
    work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel of a `runbook open` session reads the grant, not the notebook's variables."""
    import runbook_lib

    with temp_database("session") as dsn:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("UPDATE emergency_controls SET omnihub_kill_switch = true")
        monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", dsn)
        copy = opened("kill-switch-active", "--alert", str(ALERT), "--param", "reason=drill")
        monkeypatch.setenv(sessions.SESSION_DIR_ENV, str(work))  # what runbook open gives JupyterLab
        monkeypatch.setenv(sessions.NOTEBOOK_ENV, copy.name)  # what Jupyter gives the notebook's kernel
        alert = json.loads(ALERT.read_text())["alerts"][0]

        # a cell typed by someone who wants it to run: every variable says resolve and execute
        mode, dry_run = "resolve", False
        rb = runbook_lib.start(
            alert=alert, mode=mode, dry_run=dry_run, operator="mallory", approve=["disable_kill_switch"]
        )
        rb.mode, rb.dry_run = "resolve", False
        outcome = rb.actions.disable_control(reason="let me", recommended=True)
        assert outcome["status"] == "proposed" and rb.mode == "diagnose" and rb.dry_run is True

        # a grant rewritten by hand is no grant: diagnose only
        grant_file = sessions.grant_path(work, copy.name)
        grant = json.loads(grant_file.read_text())
        grant_file.write_text(json.dumps({**grant, "mode": "resolve", "dry_run": False, "operator": "mallory"}))
        assert rb.actions.disable_control(reason="let me", recommended=True)["status"] == "proposed"

        # outside a session (no RUNBOOK_SESSION_DIR) papermill's parameters decide, as before
        monkeypatch.delenv(sessions.SESSION_DIR_ENV)
        assert runbook_lib.start(alert=alert, mode="resolve", dry_run=True, operator="x").dry_run is True
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT omnihub_kill_switch FROM emergency_controls").fetchone()[0] is True
            assert conn.execute("SELECT count(*) FROM audit_logs WHERE source = 'runbook'").fetchone()[0] == 0
    assert os.environ.get(sessions.SESSION_DIR_ENV) is None
