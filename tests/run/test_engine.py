"""The engine end to end: real notebooks, real Prometheus/PostgreSQL/Redis, the `runbook` CLI."""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from runbook_lib.record.archive import LocalArchive
from tests.helpers import HOME, alert_payload, cli, html_tags, load_record, runbook_cli, write_json
from tests.support.minimal import make_runbook


@pytest.fixture
def own_runbooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "runbooks"
    folder.mkdir()
    shutil.copy(HOME / "runbooks" / "triage.ipynb", folder / "triage.ipynb")
    monkeypatch.setenv("RUNBOOK_RUNBOOKS_DIR", str(folder))
    return folder


def test_any_prometheus_names_the_dominant_endpoint_error_ratio_and_burn_rate(
    tmp_path: Path, archive_dir: Path, prometheus, scenario
) -> None:
    """Issue 2, must-show 2: only RUNBOOK_PROMETHEUS_URL set; the other backends are
    'not configured' findings, not crashes."""
    payload = write_json(tmp_path / "payload.json", alert_payload())
    res = cli("run", "high-error-rate", "--alert", str(payload), env={"RUNBOOK_PROMETHEUS_URL": prometheus.url})
    assert res.returncode == 0, res.stderr
    record = load_record(res.stdout)
    assert record["status"] == "succeeded"
    by_check = {f["check"]: f for f in record["findings"]}
    endpoint = by_check["5xx rate by endpoint"]
    assert endpoint["verdict"] == "critical"
    assert endpoint["details"]["endpoint"] == scenario.incident_endpoint
    assert scenario.incident_endpoint in endpoint["summary"]
    burn = by_check["Error ratio and burn rate"]
    expected = scenario.expected_error_ratio()
    assert burn["details"]["error_ratio_5m"] == pytest.approx(expected, rel=0.1)
    assert burn["details"]["burn_rate_5m"] == pytest.approx(expected / 0.001, rel=0.1)
    assert burn["details"]["burn_rate_1h"] > 14.4 and burn["verdict"] == "critical"
    unchecked = {u["check"]: u["why"] for u in record["unchecked"]}
    for check, backend in (
        ("PostgreSQL health", "PostgreSQL"),
        ("Redis health", "Redis"),
        ("Recent rollouts", "Kubernetes"),
    ):
        assert unchecked[check].startswith(f"{backend}: not configured")
    assert {a["status"] for a in record["actions"]} == {"unavailable"}
    assert "run succeeded" in res.stderr
    steps = [line for line in res.stderr.splitlines() if "step " in line]
    assert steps[0] == "runbook: step 1: Identify which endpoints are failing ..."
    assert re.fullmatch(r"runbook: step 1 done in \d+\.\d\d s", steps[1]) and len(steps) == 8
    assert record["diagnosis"]["verdict"] == "critical" and not record["diagnosis"]["incomplete"]
    assert record["diagnosis"]["headline"].startswith("CRITICAL — /api/v1/workflows/execute returns 100% of all 5xx")
    html = Path(res.stdout.strip()).read_text()
    assert html.count("<img") == 1 and 'alt="[graph: 5xx ratio (5m), last 3h]"' in html
    assert "open in Prometheus" in html and "/graph?g0.expr=" in html


def test_all_backends_find_the_rollout_and_propose_actions(tmp_path: Path, full_env, fake_kube, pg_dsn) -> None:
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "--alert", str(payload))  # routed by alertname
    assert res.returncode == 0, res.stderr
    record = load_record(res.stdout)
    assert record["runbook"] == "high-error-rate"
    by_check = {f["check"]: f for f in record["findings"]}
    assert by_check["Recent rollouts"]["verdict"] == "critical"
    assert "Revision 7" in by_check["Recent rollouts"]["summary"]
    assert by_check["PostgreSQL health"]["verdict"] == "ok"
    assert by_check["Redis health"]["verdict"] == "ok"
    assert by_check["Error patterns in logs"]["verdict"] == "warning"
    assert by_check["Pod resource pressure"]["verdict"] == "warning"
    assert record["unchecked"] == []
    actions = {a["name"]: a for a in record["actions"]}
    assert actions["rollback"]["status"] == "proposed" and actions["rollback"]["recommended"] is True
    assert actions["rollback"]["plan"]["to_revision"] == 6
    assert actions["scale"]["plan"]["to_replicas"] == 5
    # diagnose mode changed nothing: no PATCH reached the API server
    assert [r for r in fake_kube[0].requests if r["method"] != "GET"] == []

    html = (Path(res.stdout.strip())).read_text()
    summary_end = html.index('id="executed-notebook"')
    first_code = html.index("jp-CodeCell", html.index("<body"))
    assert summary_end < first_code  # the summary is not buried under code
    summary = html[:summary_end]
    headline = summary[summary.index('class="rb-headline') : summary.index('class="rb-when"')]
    assert "CRITICAL" in headline and "/api/v1/workflows/execute" in headline
    assert "Likely cause:</b> Recent rollouts: Revision 7" in headline
    assert "Recommended:</b> Option 1 — Rollback (if recent deployment)" in headline
    assert "run succeeded" in headline
    for needle in (
        "HighErrorBudgetBurnRate",
        "critical",
        "/api/v1/workflows/execute",
        "Could not be checked (0)",
        "Rollback",
        "PROPOSED",
        "Revision 7",
    ):
        assert needle in summary, needle


def test_record_lists_and_shows(tmp_path: Path, full_env) -> None:
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "--alert", str(payload), "--quiet")
    assert res.returncode == 0 and res.stderr == ""
    rid = load_record(res.stdout)["id"]
    listed = cli("records")
    assert rid in listed.stdout and "succeeded" in listed.stdout
    shown = cli("show", rid[-8:])
    assert shown.returncode == 0
    assert re.search(r"^ +CRITICAL +5xx rate by endpoint: ", shown.stdout, re.M) and "record.html" in shown.stdout
    assert cli("show", "nonexistent").returncode == 1


def test_a_failing_notebook_still_produces_a_record(tmp_path: Path, archive_dir: Path, own_runbooks: Path) -> None:
    make_runbook(
        own_runbooks,
        "breaks",
        'rb.finding("before", "info", "this ran")',
        "1 / 0",
        'rb.finding("after", "ok", "never")',
    )
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "breaks", "--alert", str(payload))
    assert res.returncode == 1
    record = load_record(res.stdout)
    assert record["status"] == "failed"
    assert record["failed_cell"]["ename"] == "ZeroDivisionError"
    assert record["failed_cell"]["index"] == 4 and "1 / 0" in record["failed_cell"]["source"]
    assert [f["check"] for f in record["findings"]] == ["before"]
    execution = record["failed_cell"]["execution_count"]
    assert f"stopped in In [{execution}]: ZeroDivisionError" in res.stderr
    assert f"runbook open {record['id']}" in res.stderr  # the next step is named
    html = Path(res.stdout.strip()).read_text()
    assert "The runbook did not finish" in html and f"In [{execution}]" in html and "runbook open" in html
    assert cli("verify").returncode == 0


def test_a_cell_that_hangs_becomes_a_timed_out_record(tmp_path: Path, archive_dir: Path, own_runbooks: Path) -> None:
    make_runbook(own_runbooks, "hangs", 'rb.finding("before", "info", "ran")', "import time\ntime.sleep(60)")
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "hangs", "--alert", str(payload), env={"RUNBOOK_CELL_TIMEOUT": "3"})
    assert res.returncode == 1
    record = load_record(res.stdout)
    assert record["status"] == "timed_out"
    assert record["failed_cell"]["index"] == 4 and "time.sleep(60)" in record["failed_cell"]["source"]
    assert record["duration_s"] < 50


def test_redaction_canary_in_no_file_and_no_output(
    tmp_path: Path, archive_dir: Path, own_runbooks: Path, pg_dsn: str, prometheus
) -> None:
    canary_pw = "CANARY-pw-7f3a9c"
    canary_token = "CANARY-token-1b2c3d"
    dsn = pg_dsn.replace("postgres@", f"postgres:{canary_pw}@")  # trust auth ignores the password
    token_file = tmp_path / "token"
    token_file.write_text(canary_token + "\n")
    make_runbook(
        own_runbooks,
        "leaky",
        "import os\nprint(os.environ['RUNBOOK_POSTGRES_DSN'])\nprint(repr(os.environ))",
        "h = rb.postgres.health()\nrb.finding('pg', 'ok', 'dsn was ' + os.environ['RUNBOOK_POSTGRES_DSN'])",
        "raise RuntimeError('connect failed for ' + os.environ['RUNBOOK_POSTGRES_DSN'] + ' ' + open(os.environ['RUNBOOK_PROMETHEUS_TOKEN_FILE']).read())",
    )
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli(
        "run",
        "leaky",
        "--alert",
        str(payload),
        "-v",
        env={
            "RUNBOOK_POSTGRES_DSN": dsn,
            "RUNBOOK_PROMETHEUS_TOKEN_FILE": str(token_file),
            "RUNBOOK_PROMETHEUS_URL": prometheus.url,
        },
    )
    assert res.returncode == 1  # the notebook raised on purpose
    folder = Path(res.stdout.strip()).parent
    record = json.loads((folder / "record.json").read_text())
    assert record["findings"][0]["check"] == "pg"  # it did connect with that DSN
    for name in ("notebook.ipynb", "record.html", "record.json"):
        text = (folder / name).read_text()
        assert canary_pw not in text, name
        assert canary_token not in text, name
        assert "[REDACTED]" in text, name
    index = (archive_dir / "index.jsonl").read_text()
    assert canary_pw not in index and canary_token not in index
    assert canary_pw not in res.stderr + res.stdout and canary_token not in res.stderr + res.stdout


def test_hostile_label_values_never_execute(tmp_path: Path, archive_dir: Path, prometheus) -> None:
    marker = tmp_path / "pwned"
    hostile = {
        "quote": 'x"; import os; os.system("touch ' + str(marker) + '"); "',
        "triple": "'''\n__import__('os').system('touch " + str(marker) + "')\n'''",
        "backslash": "end\\",
        "html": "</td><script>alert(1)</script><img src=x onerror=alert(2)>",
        "braces": "{{ $labels.instance }} {0} %s",
        "unicode": "ünï\u2028\u0000code",
    }
    payload = alert_payload(labels=hostile)
    payload["alerts"][0]["annotations"]["summary"] = "<script>document.title='x'</script>"
    path = write_json(tmp_path / "p.json", payload)
    res = cli("run", "high-error-rate", "--alert", str(path), env={"RUNBOOK_PROMETHEUS_URL": prometheus.url})
    assert res.returncode == 0, res.stderr
    assert not marker.exists()
    record = load_record(res.stdout)
    for key, value in hostile.items():
        assert record["alert"]["labels"][key] == value  # injected as data, round-tripped exactly
    html = Path(res.stdout.strip()).read_text()
    tags = html_tags(html)
    assert "script" not in {t for t, _ in tags}
    assert [a for _, attrs in tags for a, _ in attrs if a.startswith("on")] == []
    assert [v for _, attrs in tags for a, v in attrs if a in ("src", "href") and v and v.startswith("x")] == []
    assert "&lt;script&gt;" in html  # shown, escaped


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('{"version": "4", "alerts": [', [], "not valid JSON"),
        (json.dumps({**alert_payload(), "version": "3"}), [], "version"),
        (
            json.dumps({"labels": {"severity": "critical"}, "startsAt": "2026-01-01T00:00:00Z"}),
            [],
            "labels.alertname is required",
        ),
        (json.dumps(alert_payload()), ["--fingerprint", "feedbeef"], "no such alert in the payload"),
        (json.dumps(alert_payload()), ["no-such-runbook"], "no runbook 'no-such-runbook'"),
        (json.dumps(alert_payload()), ["--mode", "resolve", "--execute"], "needs --operator"),
        ("x" * 1_100_000, [], "larger than 1048576 bytes"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    tmp_path: Path, archive_dir: Path, content: str, args: list[str], message: str
) -> None:
    path = tmp_path / "in.json"
    path.write_text(content)
    res = cli("run", *args, "--alert", str(path))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert not archive_dir.exists() or not list(LocalArchive(archive_dir).entries())  # nothing half-written


def test_stdin_input_and_unknown_alert_goes_to_triage(archive_dir: Path, prometheus) -> None:
    payload = alert_payload(alertname="SomethingNobodyExpected", severity="warning")
    payload["alerts"][0]["generatorURL"] = f"{prometheus.url}/graph?g0.expr=vector%281%29&g0.tab=1"
    res = cli("run", "--alert", "-", input=json.dumps(payload), env={"RUNBOOK_PROMETHEUS_URL": prometheus.url})
    assert res.returncode == 0, res.stderr
    record = load_record(res.stdout)
    assert record["runbook"] == "triage"
    assert record["route"] == {"alertname": "SomethingNobodyExpected", "slug": "triage", "reason": "not in catalog"}
    routing = next(f for f in record["findings"] if f["check"] == "Routing")
    assert "No dedicated runbook for SomethingNobodyExpected" in routing["summary"]
    # the expression from generatorURL (vector(1)) was evaluated against OUR Prometheus
    now = next(f for f in record["findings"] if f["check"] == "Alert expression now")
    assert now["details"]["origin"] == f"generatorURL (127.0.0.1:{prometheus.port})" and now["details"]["series"] == 1


def test_triage_runs_no_expression_from_a_foreign_or_oversized_generator_url(archive_dir: Path, prometheus) -> None:
    foreign = alert_payload(alertname="Foreign")
    foreign["alerts"][0]["generatorURL"] = "http://prom.evil.example:9090/graph?g0.expr=count%28up%29"
    huge = alert_payload(alertname="Huge")
    huge["alerts"][0]["generatorURL"] = (
        f"{prometheus.url}/graph?g0.expr=" + "vector%281%29+%2B+" * 300 + "vector%281%29"
    )
    env = {"RUNBOOK_PROMETHEUS_URL": prometheus.url}
    for payload, expected in ((foreign, "points at prom.evil.example, not our Prometheus"), (huge, "limit 2000")):
        res = cli("run", "--alert", "-", input=json.dumps(payload), env=env)
        assert res.returncode == 3, res.stderr  # incomplete: its essential check did not run
        now = next(f for f in load_record(res.stdout)["findings"] if f["check"] == "Alert expression now")
        assert now["verdict"] == "unchecked" and expected in now["summary"], now["summary"]
        assert now["details"]["origin"].startswith("generatorURL (")


def test_open_prepares_parameters_without_executing(tmp_path: Path, archive_dir: Path) -> None:
    payload = write_json(tmp_path / "p.json", alert_payload(labels={"instance": "10.0.0.1:8080"}))
    res = cli("open", "high-error-rate", "--alert", str(payload), "--no-launch")
    assert res.returncode == 0, res.stderr
    nb = nbformat.read(res.stdout.strip(), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "10.0.0.1:8080" in injected[0].source
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")  # prepared, not run
    assert list(LocalArchive(archive_dir).entries()) == []  # an interactive copy is not a record


def test_unredacted_output_never_touches_the_archive(tmp_path: Path, archive_dir: Path, own_runbooks: Path) -> None:
    """papermill saves the notebook after every cell, before redaction: that copy must live
    outside the archive, so a crash mid-run cannot leave a secret in executed/."""
    import subprocess
    import sys
    import time

    canary = "CANARY-midrun-5e6f7a8b"
    make_runbook(
        own_runbooks, "slow", "import os\nprint(os.environ['RUNBOOK_PROMETHEUS_TOKEN'])", "import time\ntime.sleep(2)"
    )
    payload = write_json(tmp_path / "p.json", alert_payload())
    env = {**__import__("os").environ, "RUNBOOK_PROMETHEUS_TOKEN": canary}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "runbook"), "run", "slow", "--alert", str(payload), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen_files = 0
    while proc.poll() is None:
        for f in archive_dir.rglob("*") if archive_dir.exists() else []:
            if f.is_file():
                seen_files += 1
                assert canary not in f.read_text(errors="replace"), f
        time.sleep(0.2)
    assert proc.returncode == 3  # it ran to the end, but it checked nothing: incomplete
    text = (Path(proc.stdout.read().strip())).parent.joinpath("notebook.ipynb").read_text()
    assert canary not in text and "[REDACTED]" in text
    assert seen_files > 0


def test_triage_with_a_range_expression_reports_instead_of_crashing(archive_dir: Path, prometheus) -> None:
    payload = alert_payload(alertname="OddAlert")
    payload["alerts"][0]["generatorURL"] = f"{prometheus.url}/graph?g0.expr=up%5B5m%5D&g0.tab=1"
    res = cli("run", "--alert", "-", input=json.dumps(payload), env={"RUNBOOK_PROMETHEUS_URL": prometheus.url})
    assert res.returncode == 3, res.stderr  # its one essential check could not be made: incomplete
    record = load_record(res.stdout)
    finding = next(f for f in record["findings"] if f["check"] == "Alert expression now")
    assert finding["verdict"] == "unchecked" and "returns a matrix, not an instant vector" in finding["summary"]


def test_open_continues_from_a_record_outside_the_archive(tmp_path: Path, archive_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    made = cli("run", "triage", "--alert", str(write_json(tmp_path / "p.json", alert_payload())))
    rid = load_record(made.stdout)["id"]
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    copy = Path(cli("open", rid[-8:], "--no-launch", env=env).stdout.strip())
    assert copy.is_relative_to(tmp_path / "cache") and not copy.is_relative_to(archive_dir)
    nb = nbformat.read(copy, as_version=4)
    assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), "outputs included"
    passed = runbook_cli("open", rid, "--", "--version", env=env)  # options reach jupyter lab
    assert passed.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\s*", passed.stdout), passed.stdout
    assert "opening" in passed.stderr and "jupyter-lab" in passed.stderr
    assert cli("verify").returncode == 0, "the archive is untouched"


def test_open_finds_its_own_jupyterlab_and_passes_options_after_the_alert(tmp_path: Path, archive_dir: Path) -> None:
    """The venv's bin is not on PATH (`.venv/bin/runbook open …`), and `--` follows an option."""
    payload = write_json(tmp_path / "p.json", alert_payload())
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"}
    res = runbook_cli("open", "high-error-rate", "--alert", str(payload), "--", "--version", env=env)
    assert res.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+\s*", res.stdout), (res.stdout, res.stderr)
    assert f"({Path(sys.executable).parent / 'jupyter-lab'})" in res.stderr
    wrong = cli("records", "--", "--version")
    assert wrong.returncode == 2 and "only taken by `runbook open`" in wrong.stderr


def test_open_says_clearly_when_jupyterlab_is_missing(tmp_path: Path, archive_dir: Path, monkeypatch, capsys) -> None:
    from runbook_lib.cli import main

    (tmp_path / "bin").mkdir()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "bin" / "python"))  # an environment without it
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    payload = write_json(tmp_path / "p.json", alert_payload())
    assert main(["open", "high-error-rate", "--alert", str(payload), "--", "--allow-root"]) == 1
    out = capsys.readouterr()
    assert "JupyterLab is not installed in this environment" in out.err
    prepared = Path(out.out.strip())
    assert prepared.is_file() and prepared.is_relative_to(tmp_path / "cache"), "the notebook is still ready"
