"""`runbook slo` against a real Prometheus holding a known answer: three days of traffic failing
exactly 0.06 % of requests. By hand: the 99.9 % SLO's budget is 0.1 %, so 0.06 / 0.1 = 60 % of
it is spent, 40 % is left: the caution band (25-50 %); every window burns at 0.6x."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runbook_lib.sandbox import services
from tests.helpers import cli
from tests.support.traffic import write_steady

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def steady(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("steady")
    write_steady(work / "steady.om", datetime.now(UTC), error_ratio=0.0006)
    services.backfill(work / "steady.om", work / "tsdb")
    prom = services.start_prometheus(work, work / "tsdb")
    yield prom.url
    prom.stop()


def test_runbook_slo_matches_the_hand_computed_budget_and_band(steady: str, tmp_path: Path) -> None:
    res = cli("slo", "--json", env={"RUNBOOK_PROMETHEUS_URL": steady})
    assert res.returncode == 0, res.stderr
    slos = {s["slo"]: s for s in json.loads(res.stdout)["slos"]}
    api = slos["api-availability"]
    assert api["budget_remaining"] == pytest.approx(0.40, abs=0.001)  # within 0.1 percentage point
    assert api["error_ratio"] == pytest.approx(0.0006, abs=0.000001)
    assert api["band"] == "caution" and api["action"].startswith("caution")
    for window in ("1h", "6h", "3d"):
        assert api["burn_rates"][window] == pytest.approx(0.6, abs=0.01)
    assert api["firing"] == []  # 0.6x fires no tier (the lowest is 1x)
    assert api["provisional"] is True and 70 <= api["data_hours"] <= 74
    # the other SLOs have no series here: said, not guessed
    assert slos["workflow-success"]["budget_remaining"] is None and slos["workflow-success"]["problem"]

    table = cli("slo", env={"RUNBOOK_PROMETHEUS_URL": steady})
    assert table.returncode == 0, table.stderr
    line = next(x for x in table.stdout.splitlines() if x.startswith("api-availability"))
    assert "40.0%*" in line and "caution" in line and "0.6x" in line
    assert "CAUTION: caution: slow down deploys" in table.stdout


def test_runbook_slo_says_what_is_wrong(tmp_path: Path) -> None:
    bad = cli("slo", "--window", "fortnight", env={"RUNBOOK_PROMETHEUS_URL": "http://127.0.0.1:9"})
    assert bad.returncode == 2 and "--window" in bad.stderr
    down = cli("slo", env={"RUNBOOK_PROMETHEUS_URL": "http://127.0.0.1:9"})
    assert down.returncode == 1 and "unreachable" in down.stderr
