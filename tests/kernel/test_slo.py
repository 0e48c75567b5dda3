"""The SRE package's error-budget arithmetic: examples from the package, then properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_lib.core.present import duration
from runbook_lib.sre import slo


def test_package_example_1_44_percent_is_14_4x() -> None:
    assert slo.burn_rate(0.0144, 0.999) == pytest.approx(14.4)
    # read against the 28-day tiers (2 % of the budget in 1 h pages: 13.44x; 5 % in 6 h: 5.6x;
    # 10 % in 1 d: 2.8x; 10 % in 3 d: 0.93x)
    assert slo.burn_verdict(14.4).verdict == slo.burn_verdict(13.44).verdict == "critical"
    assert slo.burn_verdict(13.43).verdict == "warning" and "page if it holds for 6h" in slo.burn_verdict(6).action
    assert slo.burn_verdict(2.8).verdict == "warning" and "ticket if it holds for 1d" in slo.burn_verdict(2.8).action
    assert slo.burn_verdict(0.92).verdict == "ok"
    assert slo.burn_verdict(None).verdict == "unchecked"
    # the table decides: a 30-day SLO pages from 14.4x
    assert slo.burn_verdict(14.0, slo.tiers_for("30d"), window_s=30 * 86400).verdict == "warning"


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


def test_below_1x_a_rolling_window_never_runs_out() -> None:
    # `runbook slo` once printed "EXHAUSTED 2026-12-26" for a steady 0.6x
    assert slo.exhaustion_at_s(0.5, 0.6, 28 * 86400) is None
    assert slo.exhaustion_at_s(0.5, 0.999, 28 * 86400) is None
    assert slo.exhaustion_at_s(0.5, 2.0, 28 * 86400) == pytest.approx(0.5 * 28 * 86400 / 2.0)
    assert slo.exhaustion_at_s(-0.1, 0.6, 28 * 86400) == 0.0  # already gone is gone


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


def test_a_duration_never_reads_as_another() -> None:
    # 3 h 0 min 32 s once read "3h32s", which on-call reads as 3 h 32 min
    assert duration(3 * 3600 + 32) == "3h00m"
    assert duration(3 * 3600 + 5 * 60 + 7) == "3h05m"
    assert duration(86400 + 59) == "1d00h" and duration(61) == "1m01s" and duration(3600) == "1h"


def test_what_a_burn_rate_means_is_computed_from_the_slo_window() -> None:
    # 14.4x spends a 28-day budget in 28 * 24 / 14.4 = 46.7 hours, not "about 2 hours"
    assert "about 47 hours" in slo.burn_verdict(14.4, window_s=28 * 86400).action
    assert "about 5 days" in slo.burn_verdict(6.0, window_s=28 * 86400).action  # 112 h
    assert "about 9 days" in slo.burn_verdict(3.0, window_s=28 * 86400).action  # 224 h
    assert "about 50 hours" in slo.burn_verdict(14.4, window_s=30 * 86400).action


# -- properties (hypothesis) ----------------------------------------------------------------------

objectives = st.floats(min_value=0.9, max_value=0.99999)
ratios = st.floats(min_value=0.0, max_value=1.0)
shares = st.floats(min_value=-5.0, max_value=1.0)
burns = st.floats(min_value=0.0, max_value=1000.0)


@given(ratios, objectives)
def test_burn_rate_is_the_ratio_over_the_budget_and_budget_left_is_one_minus_it(ratio: float, objective: float) -> None:
    burn = slo.burn_rate(ratio, objective)
    assert burn == pytest.approx(ratio / (1 - objective))
    # the budget left over a window is 1 - the burn over that window
    assert slo.budget_remaining(ratio, objective) == pytest.approx(1 - burn)


@given(shares, shares)
def test_the_policy_band_never_improves_as_the_budget_shrinks(a: float, b: float) -> None:
    order = ["incident", "freeze", "caution", "normal"]
    low, high = sorted((a, b))
    assert order.index(slo.policy_band(low).name) <= order.index(slo.policy_band(high).name)


@given(shares)
def test_the_policy_band_matches_the_package_table(remaining: float) -> None:
    name = slo.policy_band(remaining).name
    expected = (
        "normal" if remaining > 0.5 else "caution" if remaining > 0.25 else "freeze" if remaining > 0.10 else "incident"
    )
    assert name == expected


@given(st.floats(min_value=0.0, max_value=1.0), st.floats(min_value=0.01, max_value=1000.0))
def test_exhaustion_spends_exactly_what_is_left(remaining: float, burn: float) -> None:
    window = 28 * 86400
    left = slo.exhaustion_at_s(remaining, burn, window)
    if remaining == 0:
        assert left == 0
        return
    if burn < 1:  # a rolling window never runs out below 1x
        assert left is None
        return
    # burning at `burn` spends burn/window of the budget per second
    assert left * burn / window == pytest.approx(remaining)


@given(st.floats(min_value=-5.0, max_value=0.0))
def test_an_overspent_budget_is_exhausted_now_and_no_burn_never_exhausts(remaining: float) -> None:
    assert slo.exhaustion_at_s(remaining, 3.0, 86400) == 0
    assert slo.exhaustion_at_s(0.5, 0.0, 86400) is None
    assert slo.exhaustion_at_s(None, 3.0, 86400) is None


@given(st.dictionaries(st.sampled_from(["5m", "30m", "1h", "2h", "6h", "1d", "3d"]), burns))
def test_a_tier_fires_exactly_when_both_its_windows_burn_at_its_rate(measured: dict[str, float]) -> None:
    table = {(13.44, "1h", "5m"), (5.6, "6h", "30m"), (2.8, "1d", "2h"), (0.93, "3d", "6h")}  # the Workbook's, 28 d
    fired = {(t.burn_rate, t.long_window, t.short_window) for t in slo.firing_tiers(measured)}
    expected = {
        (rate, long_w, short_w)
        for rate, long_w, short_w in table
        if long_w in measured and short_w in measured and measured[long_w] >= rate and measured[short_w] >= rate
    }
    assert fired == expected


@given(burns)
def test_a_steady_burn_fires_every_tier_at_or_below_it(burn: float) -> None:
    steady = dict.fromkeys(slo.windows(), burn)
    assert {t.burn_rate for t in slo.firing_tiers(steady)} == {r for r in (13.44, 5.6, 2.8, 0.93) if burn >= r}


def test_tier_factors_follow_the_slo_period() -> None:
    """The Workbook's table is a budget share per window; the burn rate follows from the
    period: 14.4 / 6 / 3 / 1 is the 30-day answer, a 28-day SLO pages at 13.44x."""
    assert [t.burn_rate for t in slo.tiers_for("28d")] == [13.44, 5.6, 2.8, 0.93]
    assert [t.burn_rate for t in slo.tiers_for("30d")] == [14.4, 6.0, 3.0, 1.0]
    assert [t.for_ for t in slo.tiers_for("28d")] == ["2m", "15m", "1h", "3h"]
    assert [t.severity for t in slo.tiers_for("7d")] == ["page", "page", "ticket", "ticket"]
