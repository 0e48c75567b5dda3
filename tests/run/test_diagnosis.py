"""What a record says first: the diagnosis. With every backend unreachable it is incomplete,
in the record, in `runbook records`, and in `runbook run`'s exit code (3); never a green
success."""

from __future__ import annotations

from pathlib import Path

from runbook_lib.record.diagnosis import diagnose
from tests.helpers import alert_payload, cli, load_record, unreachable_kubeconfig, write_json

REFUSED = "127.0.0.1:9"  # nothing listens on the discard port


def test_every_backend_unreachable_is_incomplete_never_succeeded(tmp_path: Path, archive_dir: Path) -> None:
    """Nothing measured points anywhere (Prometheus and Kubernetes unreachable, no database or
    Redis configured: their health is nobody's measurement): incomplete."""
    env = {
        "RUNBOOK_PROMETHEUS_URL": f"http://{REFUSED}",
        "KUBECONFIG": str(unreachable_kubeconfig(tmp_path / "kubeconfig")),
    }
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "--alert", str(payload), env=env)
    assert res.returncode == 3, res.stderr
    assert "INCOMPLETE — the diagnosis could not be made" in res.stderr
    record = load_record(res.stdout)
    assert record["status"] == "succeeded"  # the notebook ran to the end ...
    assert record["diagnosis"]["incomplete"] is True and record["diagnosis"]["verdict"] == "incomplete"
    assert record["diagnosis"]["recommended_action"]["name"] == "escalate"
    html = Path(res.stdout.strip()).read_text()
    headline = html[html.index('class="rb-headline') : html.index('class="rb-when"')]
    assert "INCOMPLETE" in headline and "rb-unchecked" in headline and "SUCCEEDED" not in headline
    listed = cli("records")
    row = next(line for line in listed.stdout.splitlines() if record["id"] in line)
    assert "INCOMPLETE" in row


def test_a_measured_critical_finding_leads_however_much_else_went_unchecked(tmp_path: Path, archive_dir: Path) -> None:
    """PostgreSQL and Redis measured down (their health checks connect and are refused) while
    Prometheus and Kubernetes cannot be reached: the record leads with what was measured,
    CRITICAL, and lists what could not be checked beside it (before: INCOMPLETE, with the
    critical findings in the small print)."""
    env = {
        "RUNBOOK_PROMETHEUS_URL": f"http://{REFUSED}",
        "RUNBOOK_POSTGRES_DSN": f"postgresql://runbook@{REFUSED}/omnihub",
        "RUNBOOK_REDIS_URL": f"redis://{REFUSED}/0",
        "KUBECONFIG": str(unreachable_kubeconfig(tmp_path / "kubeconfig")),
    }
    payload = write_json(tmp_path / "p.json", alert_payload())
    res = cli("run", "--alert", str(payload), env=env)
    assert res.returncode == 0, res.stderr
    d = load_record(res.stdout)["diagnosis"]
    assert (d["verdict"], d["incomplete"]) == ("critical", False)
    assert d["headline"].startswith("CRITICAL — Not ") and "partial: " in d["headline"]
    assert "5xx rate by endpoint" in d["partial"] and "Error ratio and burn rate" in d["partial"]


def test_the_headline_names_symptom_cause_and_option() -> None:
    findings = [
        {"check": "Redis health", "verdict": "ok", "summary": "PONG"},
        {"check": "Recent rollouts", "verdict": "critical", "summary": "Revision 7 5m before", "role": "cause"},
        {"check": "5xx", "verdict": "critical", "summary": "/x fails 25%", "role": "symptom", "essential": True},
        {"check": "PostgreSQL health", "verdict": "unchecked", "summary": "PostgreSQL: unreachable", "details": {}},
        {
            "check": "Redis health",
            "verdict": "unchecked",
            "summary": "Redis: not configured",
            "details": {"reason": "not configured"},
        },
    ]
    actions = [
        {"title": "Scale up", "step": "Option 2", "step_title": "Scale up", "recommended": False},
        {"title": "Rollback", "step": "Option 1", "step_title": "Rollback (if recent deployment)", "recommended": True},
    ]
    d = diagnose(findings, actions)
    assert d["headline"] == (
        "CRITICAL — /x fails 25%; likely cause: Revision 7 5m before; recommended: Option 1 — Rollback (if recent "
        "deployment); partial: PostgreSQL health could not be checked"
    )  # what is not configured is nobody's partial diagnosis
    assert not d["incomplete"] and (d["checked"], d["unchecked"]) == (3, 2)
    essential_unchecked = [{**findings[2], "verdict": "unchecked"}, findings[0]]
    assert diagnose(essential_unchecked, [])["incomplete"], "every essential check unchecked, nothing wrong found"
    assert diagnose([findings[0]], [])["verdict"] == "ok"
    assert diagnose([findings[0]], [])["recommended_action"]["name"] == "none"
    # a measured problem is never hidden behind INCOMPLETE: it leads, the rest is "partial"
    leading = diagnose([{**findings[2], "verdict": "unchecked"}, findings[1]], [])
    assert (leading["verdict"], leading["incomplete"], leading["partial"]) == ("critical", False, ["5xx"])
    assert leading["recommended_action"]["name"] == "escalate"


def test_causes_are_ranked_worst_first_and_one_option_is_recommended() -> None:
    findings = [
        {"check": "Pods", "verdict": "warning", "summary": "2 pods restarted", "role": "cause", "cause": "crash_loop"},
        {"check": "Memory", "verdict": "critical", "summary": "OOMKilled x3", "role": "cause", "cause": "oom_killed"},
        {"check": "Health", "verdict": "critical", "summary": "3/3 health URLs fail", "role": "symptom"},
    ]
    plan = {"command": "kubectl set resources ...", "deployment": "api", "memory": "1Gi", "noop": False}
    actions = [
        {
            "name": "scale",
            "title": "Raise the memory limit",
            "recommended": True,
            "command": "kubectl ...",
            "plan": plan,
        },
    ]
    d = diagnose(findings, actions)
    assert d["causes"] == ["oom_killed", "crash_loop"] and d["cause_code"] == "oom_killed"
    assert d["recommended_action"] == {
        "name": "scale",
        "title": "Raise the memory limit",
        "params": {"deployment": "api", "memory": "1Gi"},
        "command": "kubectl ...",
        "reason": "",
    }


def test_a_provisional_finding_says_so_in_the_headline() -> None:
    found = {
        "check": "Budget",
        "verdict": "warning",
        "summary": "overspent 851%",
        "role": "symptom",
        "provisional": True,
    }
    d = diagnose([found], [])
    assert d["provisional"] and d["headline"].startswith("WARNING (provisional) — overspent 851%")
    # a fully measured finding at the same level is no guess: the verdict is not provisional
    burn = {"check": "Burn rate", "verdict": "warning", "summary": "9.5x over 1h", "provisional": False}
    assert not diagnose([found, burn], [])["provisional"]
    louder = diagnose([found, {**burn, "verdict": "critical"}], [])
    assert louder["verdict"] == "critical" and louder["headline"].startswith("CRITICAL — overspent 851% (provisional)")


def test_a_finding_about_the_run_is_no_evidence() -> None:
    """ "No dedicated runbook for this alert" is true, but says nothing about the system: with
    the one essential check unmade, the record is still incomplete."""
    routing = {"check": "Routing", "verdict": "warning", "summary": "No dedicated runbook", "role": "context"}
    expression = {"check": "Alert expression now", "verdict": "unchecked", "summary": "a matrix", "essential": True}
    d = diagnose([routing, expression], [])
    assert d["incomplete"] and d["headline"].startswith("INCOMPLETE")
    measured = diagnose([routing, {**expression, "verdict": "critical", "summary": "still 0"}], [])
    assert measured["verdict"] == "critical" and not measured["incomplete"]
