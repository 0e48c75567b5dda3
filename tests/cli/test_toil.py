"""`runbook toil add` / `runbook toil report` against a real PostgreSQL: entries go in through the
real command and come back through `report --json` and straight from toil_entries.

By hand, with 40 on-call hours a week (2400 min) and the package's target of under 30 % (720 min):
  last week:         300 + 120 + 60 = 480 min -> 480 / 2400 = 20.0 %  (ok)
  the week before:   600 + 180      = 780 min -> 780 / 2400 = 32.5 %  (OVER)
  three weeks back:  720            = 720 min -> 720 / 2400 = 30.0 %  (OVER: the target is < 30 %)
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from runbook_lib.clients.toil import week_start
from tests.helpers import HOME, cli

pytestmark = pytest.mark.services

CATEGORIES = ["manual-deploy", "alert-noise", "data-fix", "access-request", "other"]


def make_home(tmp_path: Path, **overrides: object) -> dict[str, str]:
    """A project home whose oncall.yaml has known toil settings; the environment to use it."""
    home = tmp_path / "home"
    shutil.copytree(HOME / "parameters", home / "parameters", dirs_exist_ok=True)
    data = yaml.safe_load((HOME / "parameters" / "oncall.yaml").read_text())
    data.update({"toil_hours_per_week": 40, "toil_target": 0.30, "toil_categories": CATEGORIES, **overrides})
    (home / "parameters" / "oncall.yaml").write_text(yaml.safe_dump(data))
    return {"RUNBOOK_HOME": str(home), "RUNBOOK_RUNBOOKS_DIR": str(HOME / "runbooks")}


def label(moment: datetime) -> str:
    year, week, _ = moment.isocalendar()
    return f"{year}-W{week:02d}"


def test_toil_round_trip_and_the_share_against_30_percent(fresh_db: str, tmp_path: Path) -> None:
    env = {**make_home(tmp_path), "RUNBOOK_POSTGRES_DSN": fresh_db, "RUNBOOK_OPERATOR": "alice"}
    this_week = week_start(datetime.now(UTC))
    last, before, three = (this_week - k * timedelta(days=7) for k in (1, 2, 3))
    entries = [
        # (text, minutes, category, at, operator)
        ("deployed edge function by hand", 300, "manual-deploy", last + timedelta(days=1, hours=10), None),
        ("silenced flapping disk alert", 120, "alert-noise", last + timedelta(days=2), "bob"),
        ("fixed a stuck workflow row", 60, "data-fix", last + timedelta(days=6, hours=23, minutes=59), None),
        ("deployed edge function by hand", 600, "manual-deploy", before + timedelta(hours=9), None),
        ("granted staging access", 180, "access-request", before + timedelta(days=3), "bob"),
        ("replayed the DLQ by hand", 720, "other", three + timedelta(days=4), None),
    ]
    ids = []
    for text, minutes, category, at, operator in entries:
        args = ["toil", "add", text, "--minutes", str(minutes), "--category", category, "--at", at.isoformat()]
        res = cli(*args, *(["--operator", operator] if operator else []), env=env)
        assert res.returncode == 0, res.stderr
        assert f"{minutes} min {category} by {operator or 'alice'}" in res.stdout
        ids.append(int(res.stdout.split()[2]))
    # the default instant is the database's now(), and the default category "other"
    now_entry = cli("toil", "add", "  restarted the exporter  ", "--minutes", "5", env=env)
    assert now_entry.returncode == 0, now_entry.stderr
    ids.append(int(now_entry.stdout.split()[2]))
    assert ids == sorted(ids) and len(set(ids)) == 7

    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute("SELECT id, at, operator, minutes, category, text FROM toil_entries ORDER BY id").fetchall()
    stored = [(r[2], r[3], r[4], r[5], r[1]) for r in rows[:6]]
    expected = [(op or "alice", m, c, t, at) for t, m, c, at, op in entries]
    assert stored == expected
    assert rows[6][2:] == ("alice", 5, "other", "restarted the exporter")
    assert abs(rows[6][1] - datetime.now(UTC)) < timedelta(minutes=2)

    res = cli("toil", "report", "--weeks", "5", "--json", env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["hours_per_week"] == 40 and report["target"] == 0.30
    assert fresh_db.rsplit("/", 1)[1] in report["database"]
    weeks = {w["week"]: w for w in report["weeks"]}
    assert len(weeks) == 5 and list(weeks) == sorted(weeks)
    w1, w2, w3 = weeks[label(last)], weeks[label(before)], weeks[label(three)]
    assert (w1["minutes"], w1["entries"], w1["share"], w1["over_target"]) == (480, 3, pytest.approx(0.20), False)
    assert w1["by_category"] == {"manual-deploy": 300, "alert-noise": 120, "data-fix": 60}
    assert list(w1["by_category"]) == ["manual-deploy", "alert-noise", "data-fix"]  # largest first
    assert (w2["minutes"], w2["share"], w2["over_target"]) == (780, pytest.approx(0.325), True)
    assert (w3["minutes"], w3["share"], w3["over_target"]) == (720, pytest.approx(0.30), True)  # exactly 30 %: over
    assert (w1["start"], w1["end"]) == (last.strftime("%Y-%m-%dT%H:%M:%SZ"), this_week.strftime("%Y-%m-%dT%H:%M:%SZ"))
    this = weeks[label(this_week)]
    assert this["minutes"] == 5 and this["by_category"] == {"other": 5}
    assert report["total_minutes"] == 480 + 780 + 720 + 5
    assert report["by_category"] == {
        "manual-deploy": 900,
        "other": 725,
        "access-request": 180,
        "alert-noise": 120,
        "data-fix": 60,
    }
    assert set(report["weeks_over_target"]) == {label(before), label(three)}

    text = cli("toil", "report", "--weeks", "5", env=env)
    assert text.returncode == 0, text.stderr
    line = {ln.split()[0]: ln for ln in text.stdout.splitlines() if ln[:4].isdigit()}
    assert "480" in line[label(last)] and "20.0%" in line[label(last)] and " ok " in line[label(last)]
    assert "manual-deploy 300, alert-noise 120, data-fix 60" in line[label(last)]
    assert "32.5%" in line[label(before)] and "OVER" in line[label(before)]
    assert "30.0%" in line[label(three)] and "OVER" in line[label(three)]
    assert "2 of 5 weeks at or over the 30% target" in text.stdout
    assert "target: under 30% (720 min)" in text.stdout

    # a shorter report leaves older weeks out
    short = json.loads(cli("toil", "report", "--weeks", "1", "--json", env=env).stdout)
    assert [w["week"] for w in short["weeks"]] == [label(this_week)]


def test_the_share_follows_toil_hours_per_week(fresh_db: str, tmp_path: Path) -> None:
    env = {**make_home(tmp_path, toil_hours_per_week=10), "RUNBOOK_POSTGRES_DSN": fresh_db}
    at = (week_start(datetime.now(UTC)) - timedelta(days=3)).isoformat()
    res = cli("toil", "add", "rotated a cert", "--minutes", "150", "--operator", "carol", "--at", at, env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(cli("toil", "report", "--json", env=env).stdout)
    week = next(w for w in report["weeks"] if w["minutes"])
    assert week["share"] == pytest.approx(0.25) and week["over_target"] is False  # 150 / 600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--minutes", "0"], "--minutes must be at least 1, got 0"),
        (["x", "--minutes", "-5"], "--minutes must be a positive whole number of minutes, got '-5'"),
        (["x", "--minutes", "1.5"], "--minutes must be a positive whole number of minutes, got '1.5'"),
        (["x", "--minutes", "ten"], "--minutes must be a positive whole number of minutes, got 'ten'"),
        (["x", "--minutes", "1441"], "--minutes 1441 is more than a day (1440)"),
        (["x", "--minutes", "99999999999999999999"], "is more than a day"),
        (
            ["x", "--minutes", "5", "--category", "meetings"],
            "unknown toil category 'meetings'; known: " + ", ".join(CATEGORIES),
        ),
        (["   ", "--minutes", "5"], "the toil entry's text is empty"),
        (["", "--minutes", "5"], "the toil entry's text is empty"),
        (["y" * 501, "--minutes", "5"], "the toil entry's text has 501 characters; at most 500"),
        (["bell\x07", "--minutes", "5"], "control characters"),
        (["x", "--minutes", "5", "--at", "soon"], "--at: 'soon' is not an ISO 8601 timestamp"),
        (["x", "--minutes", "5", "--at", "2999-01-01T00:00:00Z"], "is in the future"),
    ],
)
def test_toil_add_refuses_bad_input(fresh_db: str, tmp_path: Path, args: list[str], message: str) -> None:
    env = {**make_home(tmp_path), "RUNBOOK_POSTGRES_DSN": fresh_db, "RUNBOOK_OPERATOR": "alice"}
    res = cli("toil", "add", *args, env=env)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr
    with psycopg.connect(fresh_db) as conn:  # nothing was written, not even the table
        assert conn.execute("SELECT to_regclass('toil_entries')").fetchone() == (None,)


def test_toil_add_text_of_exactly_500_characters_is_kept(fresh_db: str, tmp_path: Path) -> None:
    env = {**make_home(tmp_path), "RUNBOOK_POSTGRES_DSN": fresh_db}
    res = cli("toil", "add", "z" * 500, "--minutes", "1440", "--operator", "dana", env=env)
    assert res.returncode == 0, res.stderr
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT char_length(text), minutes FROM toil_entries").fetchone() == (500, 1440)


def test_toil_needs_an_operator_and_a_database(tmp_path: Path) -> None:
    env = make_home(tmp_path)
    res = cli("toil", "add", "x", "--minutes", "5", env={**env, "RUNBOOK_POSTGRES_DSN": "postgresql://127.0.0.1:9/x"})
    assert res.returncode == 2 and "needs --operator NAME (or $RUNBOOK_OPERATOR)" in res.stderr
    res = cli("toil", "add", "x", "--minutes", "5", "--operator", "alice", env=env)
    assert res.returncode == 2 and "set RUNBOOK_POSTGRES_DSN (or RUNBOOK_POSTGRES_DSN_FILE)" in res.stderr
    res = cli("toil", "report", env=env)
    assert res.returncode == 2 and "set RUNBOOK_POSTGRES_DSN" in res.stderr


@pytest.mark.parametrize("weeks", ["0", "-1", "two", "1.5", "521"])
def test_toil_report_refuses_bad_weeks(tmp_path: Path, weeks: str) -> None:
    env = {**make_home(tmp_path), "RUNBOOK_POSTGRES_DSN": "postgresql://127.0.0.1:9/x"}
    res = cli("toil", "report", "--weeks", weeks, env=env)
    assert res.returncode == 2 and f"--weeks must be a whole number from 1 to 520, got {weeks!r}" in res.stderr


def test_toil_never_prints_the_password(tmp_path: Path) -> None:
    secret = "s3cret-pw-Toil"
    env = {**make_home(tmp_path), "RUNBOOK_POSTGRES_DSN": f"postgresql://toiler:{secret}@127.0.0.1:9/omnihub"}
    for args in (["report"], ["add", "x", "--minutes", "5", "--operator", "alice"]):
        res = cli("toil", *args, env=env)
        assert res.returncode == 1, res.stderr
        assert "postgresql://127.0.0.1:9/omnihub" in res.stderr
        assert secret not in res.stderr + res.stdout and "toiler" not in res.stderr


def test_toil_with_a_password_dsn_that_works_shows_only_the_endpoint(fresh_db: str, tmp_path: Path) -> None:
    secret = "s3cret-pw-Toil"  # trust auth: the server ignores it
    dsn = fresh_db.replace("postgresql://postgres@", f"postgresql://postgres:{secret}@", 1)
    assert dsn != fresh_db and secret in dsn
    env = {**make_home(tmp_path), "RUNBOOK_POSTGRES_DSN": dsn}
    add = cli("toil", "add", "x", "--minutes", "5", "--operator", "alice", env=env)
    report = cli("toil", "report", env=env)
    as_json = cli("toil", "report", "--json", env=env)
    for res in (add, report, as_json):
        assert res.returncode == 0, res.stderr
        assert secret not in res.stdout + res.stderr


def test_toil_with_a_broken_config_exits_2(tmp_path: Path) -> None:
    env = {**make_home(tmp_path, toil_hours_per_week=0), "RUNBOOK_POSTGRES_DSN": "postgresql://127.0.0.1:9/x"}
    res = cli("toil", "report", env=env)
    assert res.returncode == 2 and "toil_hours_per_week must be" in res.stderr
    env = {**make_home(tmp_path, toil_categories=[]), "RUNBOOK_POSTGRES_DSN": "postgresql://127.0.0.1:9/x"}
    res = cli("toil", "add", "x", "--minutes", "5", "--operator", "a", env=env)
    assert res.returncode == 2 and "toil_categories must be a non-empty list" in res.stderr
    res = cli("toil", env=env)
    assert res.returncode == 2 and "add" in res.stderr and "report" in res.stderr


def test_a_report_before_any_entry_shows_empty_weeks_and_creates_nothing(fresh_db: str, tmp_path: Path) -> None:
    env = {**make_home(tmp_path), "RUNBOOK_POSTGRES_DSN": fresh_db}
    res = cli("toil", "report", "--weeks", "3", "--json", env=env)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert [w["minutes"] for w in report["weeks"]] == [0, 0, 0] and report["weeks_over_target"] == []
    assert report["weeks"][-1]["week"] == label(datetime.now(UTC))
    text = cli("toil", "report", env=env)
    assert text.returncode == 0 and "no toil logged in these weeks" in text.stdout
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT to_regclass('toil_entries')").fetchone() == (None,)


@pytest.mark.parametrize("words", [["toil", "--help"], ["toil", "add", "--help"], ["toil", "report", "--help"]])
def test_toil_help_pages(words: list[str]) -> None:
    res = cli(*words)
    assert res.returncode == 0 and res.stdout.startswith("usage: runbook toil"), res.stderr
