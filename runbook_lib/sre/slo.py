"""Error-budget and burn-rate arithmetic from the SRE package. Pure functions, no I/O."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """'1h30m' -> 5400.0 seconds (Prometheus duration syntax)."""
    text = text.strip()
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_S[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r} (use e.g. 5m, 1h, 28d)")
    return total


def finite(value: float | None) -> float | None:
    """The value, or None for None, NaN and infinities (what Prometheus answers for 0/0)."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return value


def error_ratio(errors: float, total: float) -> float | None:
    """errors / total, or None when there was no traffic (a ratio of nothing is not 0)."""
    if total is None or errors is None or total <= 0 or math.isnan(total) or math.isnan(errors):
        return None
    return max(0.0, errors / total)


def error_budget(objective: float) -> float:
    """The allowed error ratio: 1 - objective (0.001 for 99.9 %)."""
    if not 0 < objective < 1:
        raise ValueError(f"objective must be between 0 and 1, got {objective}")
    return 1.0 - objective


def burn_rate(ratio: float | None, objective: float) -> float | None:
    """How many times faster than sustainable the budget burns (1.44 % at 99.9 % -> 14.4)."""
    if ratio is None:
        return None
    return ratio / error_budget(objective)


def budget_remaining(ratio_over_window: float | None, objective: float) -> float | None:
    """Share of the window's error budget left: 1 - consumed. Negative when overspent."""
    if ratio_over_window is None:
        return None
    return 1.0 - ratio_over_window / error_budget(objective)


def time_to_exhaustion(burn: float | None, remaining: float, window_s: float) -> float:
    """Seconds until the remaining budget is gone at this burn rate (inf when not burning)."""
    if burn is None or burn <= 0:
        return math.inf
    return max(0.0, remaining) * window_s / burn


@dataclass(frozen=True)
class BurnVerdict:
    verdict: str  # ok / warning / critical
    action: str


def burn_verdict(
    burn: float | None, tiers: tuple[Tier, ...] | None = None, window_s: float = 28 * 86400
) -> BurnVerdict:
    """A one-hour burn rate read against the burn-rate tiers (the catalog's table, computed for
    the SLO's period; default the Workbook's for 28 days): at or above the fastest page tier's
    rate it pages now (critical); at or above another tier's rate it pages or tickets if it
    holds for that tier's window (warning); below every tier it is within budget. What a burn
    rate means is computed from the period: a full budget over ``window_s`` lasts
    window_s / burn (14.4x over 28 days: about 47 hours)."""
    if burn is None:
        return BurnVerdict("unchecked", "no traffic in the window: burn rate undefined")
    tiers = tiers or tiers_for(f"{window_s / 86400:g}d")
    days = window_s / 86400
    lasts = f"a full {days:g}-day budget lasts {_span(window_s / burn)} at this burn" if burn > 0 else ""
    fastest = min(tiers, key=lambda t: parse_duration(t.long_window))
    if burn >= fastest.burn_rate:
        return BurnVerdict(
            "critical", f">= {fastest.name} (the {fastest.long_window} {fastest.severity} tier): {lasts}; respond now"
        )
    for tier in sorted(tiers, key=lambda t: -t.burn_rate):
        if tier is not fastest and burn >= tier.burn_rate:
            return BurnVerdict(
                "warning", f">= {tier.name}: {lasts}; a {tier.severity} if it holds for {tier.long_window}"
            )
    slowest = min(t.burn_rate for t in tiers)
    return BurnVerdict("ok", f"< {slowest:g}x: within budget")


def _span(seconds: float) -> str:
    """About how long, for people: '47 hours', '5 days'."""
    hours = seconds / 3600
    return f"about {hours:.0f} hours" if hours < 72 else f"about {hours / 24:.0f} days"


@dataclass(frozen=True)
class Band:
    name: str  # normal / caution / freeze / incident
    policy: str  # the package's text
    deploys: str  # what it means for deploys


BANDS = (
    (0.5, Band("normal", "normal operations, deploy freely", "deploy as usual")),
    (0.25, Band("caution", "caution: slow down deploys, prioritise reliability work", "fewer, smaller deploys")),
    (
        0.10,
        Band("freeze", "deploy freeze (emergency fixes only), all hands on reliability", "emergency fixes only"),
    ),
    (-math.inf, Band("incident", "full incident response, cancel all feature work", "no deploys but the fix")),
)


def policy_band(remaining: float | None) -> Band | None:
    """The package's error-budget policy band for the share of budget left: > 50 % normal,
    25-50 % caution, 10-25 % freeze, below 10 % incident. None without data."""
    if remaining is None:
        return None
    return next(band for floor, band in BANDS if remaining > floor)


def budget_policy(remaining: float | None) -> str:
    """The package's error-budget policy for the share of budget left."""
    band = policy_band(remaining)
    return band.policy if band else "unknown (no data)"


@dataclass(frozen=True)
class BudgetTier:
    """One row of the burn-rate table as the SRE Workbook defines it ("Alerting on SLOs"): the
    share of the SLO period's error budget spent within ``long_window`` that makes it ``action``
    (page: PagerDuty; ticket: Slack), the short window that must agree, and how long it must
    hold (``for_``, against flapping). The catalog's ``burn_rate_tiers`` lists them."""

    budget: float
    long_window: str
    short_window: str
    action: str  # page / ticket
    for_: str = "0s"


# The Workbook's table: 2 % of the budget in 1 h or 5 % in 6 h pages, 10 % in 1 d or 3 d tickets.
WORKBOOK_TABLE = (
    BudgetTier(0.02, "1h", "5m", "page", "2m"),
    BudgetTier(0.05, "6h", "30m", "page", "15m"),
    BudgetTier(0.10, "1d", "2h", "ticket", "1h"),
    BudgetTier(0.10, "3d", "6h", "ticket", "3h"),
)


@dataclass(frozen=True)
class Tier:
    """One multiwindow, multi-burn-rate alert (the SRE workbook's table): it fires when the
    burn rate over both the long and the short window is at least ``burn_rate``."""

    burn_rate: float
    long_window: str
    short_window: str
    severity: str  # page / ticket
    for_: str = "0s"

    @property
    def name(self) -> str:
        return f"{self.burn_rate:g}x"


def tiers_for(period: str, table: tuple[BudgetTier, ...] = WORKBOOK_TABLE) -> tuple[Tier, ...]:
    """The tiers of an SLO whose period is ``period``: burn rate = budget share x period / long
    window, so the factors follow the SLO's own period (28 d: 13.44x, 5.6x, 2.8x, 0.93x; 30 d:
    14.4x, 6x, 3x, 1x). Rounded to two decimals, as people say them."""
    period_s = parse_duration(period)
    return tuple(
        Tier(
            round(row.budget * period_s / parse_duration(row.long_window), 2),
            row.long_window,
            row.short_window,
            row.action,
            row.for_,
        )
        for row in table
    )


# The Workbook's table for a 28-day period: what the runbooks use where no catalog is at hand.
TIERS = tiers_for("28d")


def windows() -> list[str]:
    """Every window the tiers read, shortest first."""
    return sorted({w for t in TIERS for w in (t.long_window, t.short_window)}, key=parse_duration)


def firing_tiers(burns: dict[str, float | None], tiers: tuple[Tier, ...] = TIERS) -> list[Tier]:
    """The tiers whose long and short windows both burn at least their rate. A window with no
    data (None) never fires a tier."""
    fired = []
    for tier in tiers:
        long_burn, short_burn = burns.get(tier.long_window), burns.get(tier.short_window)
        if long_burn is not None and short_burn is not None and min(long_burn, short_burn) >= tier.burn_rate:
            fired.append(tier)
    return fired


def exhaustion_at_s(remaining: float | None, burn: float | None, window_s: float) -> float | None:
    """Seconds from now until the budget is gone at ``burn``: 0 when it already is, None when
    unknown or never at this rate. Below 1x a rolling window never runs out: at a steady burn b
    the window holds b of its budget spent, whatever is spent now ages out."""
    if remaining is None:
        return None
    if remaining <= 0:
        return 0.0
    if burn is None or burn < 1:
        return None
    left = time_to_exhaustion(burn, remaining, window_s)
    return None if math.isinf(left) else left
