"""The command line: real --help, list, and errors for bad invocations."""

from __future__ import annotations

import pytest

from tests.helpers import runbook_cli


@pytest.mark.parametrize(
    ("command", "needles"),
    [
        ([], ["list", "run", "open", "records", "show", "verify", "exit codes"]),
        (["run"], ["--alert", "--fingerprint", "--env", "--mode", "--execute", "--operator", "--approve", "record"]),
        (["open"], ["JupyterLab", "--no-launch", "prepare-only"]),
        (["records"], ["--limit"]),
        (["show"], ["unique prefix"]),
        (["verify"], ["--expect-head", "sha256"]),
        (["list"], ["triage"]),
    ],
)
def test_help_explains(command: list[str], needles: list[str]) -> None:
    res = runbook_cli(*command, "--help")
    assert res.returncode == 0
    for needle in needles:
        assert needle in res.stdout, needle


def test_list_shows_every_alert_and_its_route() -> None:
    res = runbook_cli("list")
    assert res.returncode == 0
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line and line.split()[0][0].isupper()}
    assert "high-error-rate" in lines["HighErrorBudgetBurnRate"]
    assert "high-error-rate" in lines["ElevatedErrorRate"]
    assert "triage" in lines["DLQBacklog"] and "not written yet" in lines["DLQBacklog"]
    severities = [line.split()[1] for line in lines.values() if len(line.split()) > 1]
    assert severities.count("critical") == 5 and severities.count("warning") == 5


def test_usage_errors_exit_2() -> None:
    assert runbook_cli("run").returncode == 2  # --alert is required
    res = runbook_cli("run", "--alert", "/nonexistent/alert.json")
    assert res.returncode == 2 and "No such file" in res.stderr
    res = runbook_cli("list", "--env", "nowhere")
    assert res.returncode == 2 and "unknown environment 'nowhere'" in res.stderr
