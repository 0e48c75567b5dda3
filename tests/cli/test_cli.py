"""The command line: real --help, list, and errors for bad invocations. The commands run in this
process (tests.helpers.cli); one test runs the installed `runbook` program itself."""

from __future__ import annotations

import pytest

from tests.helpers import cli, runbook_cli


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
    res = cli(*command, "--help")
    assert res.returncode == 0
    for needle in needles:
        assert needle in res.stdout, needle


def test_the_installed_program_answers_and_exits_2_on_a_usage_error() -> None:
    """The console script (pyproject's [project.scripts]) as a user starts it: its help on
    stdout, a usage error on stderr with exit code 2, no traceback."""
    ok = runbook_cli("--help")
    assert ok.returncode == 0 and "exit codes" in ok.stdout
    bad = runbook_cli("run", "--mode", "nonsense")
    assert bad.returncode == 2 and "invalid choice" in bad.stderr and "Traceback" not in bad.stderr


def test_list_shows_every_alert_and_its_route() -> None:
    res = cli("list")
    assert res.returncode == 0
    lines = {line.split()[0]: line for line in res.stdout.splitlines() if line and line.split()[0][0].isupper()}
    assert "high-error-rate" in lines["HighErrorBudgetBurnRate"]
    assert "high-error-rate" in lines["ElevatedErrorRate"]
    assert "dlq-backlog" in lines["DLQBacklog"] and "not written yet" not in res.stdout
    severities = [line.split()[1] for line in lines.values() if len(line.split()) > 1]
    assert severities.count("critical") == 5 and severities.count("warning") == 5


def test_usage_errors_exit_2() -> None:
    res = cli("run")
    assert res.returncode == 2 and "give a runbook SLUG, an --alert" in res.stderr
    res = cli("run", "--alert", "/nonexistent/alert.json")
    assert res.returncode == 2 and "No such file" in res.stderr
    res = cli("list", "--env", "nowhere")
    assert res.returncode == 2 and "unknown environment 'nowhere'" in res.stderr


def test_a_runbooks_own_parameters_are_checked_against_its_parameters_cell() -> None:
    res = cli("run", "high-database-connections", "--param", "idle_older_then_s=5")
    assert res.returncode == 2
    assert "has no parameter 'idle_older_then_s'" in res.stderr and "idle_older_than_s" in res.stderr
    res = cli("run", "high-error-rate", "--param", "x=1")
    assert res.returncode == 2 and "declares none of its own" in res.stderr
    res = cli("run", "high-error-rate", "--param", "mode=resolve")
    assert res.returncode == 2 and "fixed parameter" in res.stderr
    res = cli("run", "high-error-rate", "--param", "no-equals-sign")
    assert res.returncode == 2 and "expected NAME=VALUE" in res.stderr
    res = cli("run", "high-error-rate", "--param", "Bad-Name=1")
    assert res.returncode == 2 and "not a parameter name" in res.stderr


def test_param_values_are_json_when_they_parse(tmp_path) -> None:
    """`open --no-launch` injects without executing: the values land in the notebook as typed."""
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    res = cli(
        "open",
        "approval-queue-backlog",
        "--no-launch",
        "--param",
        "item_ids=[12, 13]",
        "--param",
        "reason=reviewed by risk",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    import nbformat

    nb = nbformat.read(res.stdout.strip(), as_version=4)
    injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert "item_ids = [12, 13]" in injected.source and 'reason = "reviewed by risk"' in injected.source


def test_a_row_wider_than_the_terminal_is_cut_at_the_end_and_keeps_its_padding(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from runbook_lib.cli.common import print_table

    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal 80 wide (a pipe is never cut)
    print_table([{"a": "x", "b": "y" * 200}, {"a": "xx", "b": "z"}], ["a", "b"])
    header, long, short = capsys.readouterr().out.splitlines()
    assert (header, short) == ("A   B", "xx  z")
    assert long.startswith("x   yyy") and long.endswith("...") and len(long) == 80
