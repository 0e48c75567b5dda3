"""The names of the recorded series, shared by the rules that write them and the dashboards
that read them (Sloth's naming)."""

from __future__ import annotations

from runbook_lib.sre import slo


def sli_record(window: str) -> str:
    """The error ratio recorded over ``window``: slo:sli_error:ratio_rate5m, ..._rate4w."""
    return f"slo:sli_error:ratio_rate{window}"


def period_name(window: str) -> str:
    """The period window as Sloth (and Prometheus) write it: 28d -> 4w, 30d stays 30d."""
    seconds = slo.parse_duration(window)
    week = 7 * 86400
    return f"{int(seconds // week)}w" if seconds % week == 0 else window
