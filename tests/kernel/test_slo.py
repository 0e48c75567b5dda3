"""The SRE package's error-budget arithmetic."""

from __future__ import annotations

import math

import pytest

from runbook_lib import slo
from runbook_lib.present import duration


def test_package_example_1_44_percent_is_14_4x() -> None:
    assert slo.burn_rate(0.0144, 0.999) == pytest.approx(14.4)
    assert slo.burn_verdict(14.4).verdict == "critical"
    assert slo.burn_verdict(14.39).verdict == "warning"
    assert slo.burn_verdict(6.0).verdict == "warning"
    assert slo.burn_verdict(2.99).verdict == "ok"
    assert slo.burn_verdict(None).verdict == "unchecked"


def test_ratio_budget_and_exhaustion() -> None:
    assert slo.error_ratio(5, 1000) == 0.005
    assert slo.error_ratio(5, 0) is None  # no traffic is not "no errors"
    assert slo.budget_remaining(0.00025, 0.999) == pytest.approx(0.75)
    assert slo.budget_remaining(0.002, 0.999) == pytest.approx(-1.0)
    # at 14.4x a full 28-day budget lasts 28d / 14.4 = 46.7 hours
    assert slo.time_to_exhaustion(14.4, 1.0, 28 * 86400) == pytest.approx(28 * 86400 / 14.4)
    assert math.isinf(slo.time_to_exhaustion(0, 1.0, 100))
    with pytest.raises(ValueError):
        slo.error_budget(1.0)


def test_budget_policy_follows_the_package_table() -> None:
    assert slo.budget_policy(0.75).startswith("normal")
    assert slo.budget_policy(0.30).startswith("caution")
    assert slo.budget_policy(0.20).startswith("deploy freeze")
    assert slo.budget_policy(0.05).startswith("full incident")


def test_durations() -> None:
    assert slo.parse_duration("1h30m") == 5400
    assert slo.parse_duration("28d") == 28 * 86400
    for bad in ("", "5", "5x", "1h30", "5m) or vector(1"):
        with pytest.raises(ValueError):
            slo.parse_duration(bad)
    assert duration(5400) == "1h30m" and duration(42) == "42s" and duration(57000) == "15h50m"
    assert duration(0.31) == "0.3s" and duration(None) == "n/a" and duration(-5) == "n/a"
