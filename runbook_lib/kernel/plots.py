"""Time-series plots for records: one call from any check. Runs inside the kernel.

matplotlib (Agg) is imported and warmed up by the kernel template, so a plot costs about
30 ms instead of 300 ms; a cold kernel imports it with its first plot only (0.7 s that a run
without a graph never pays). The PNG is sized to read at phone width (the page scales it down).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from runbook_lib.kernel.protocol import RunbookLike

LINE, THRESHOLD, MARKER = "#2f6db5", "#b3261e", "#6b6b73"
SERIES = ("#2f6db5", "#e08a00", "#2e8b57", "#8e44ad", "#6b6b73")  # several lines in one graph


def timeseries(
    rb: RunbookLike,
    frame: pd.DataFrame,
    title: str,
    *,
    percent: bool = False,
    thresholds: Mapping[str, float] | None = None,
    markers: Mapping[str, datetime] | None = None,
) -> bool:
    """Plot ``frame`` (columns timestamp, value; with a ``series`` column, one labelled line per
    series) with dashed horizontal ``thresholds`` and vertical ``markers`` (a spike start, a
    rollout), and show it in the record. Returns False (and shows nothing) when there is nothing
    to plot."""
    if frame.empty or "timestamp" not in frame or "value" not in frame:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    data = frame.sort_values("timestamp")
    scale = 100.0 if percent else 1.0
    fig, ax = plt.subplots(figsize=(6.4, 2.6), dpi=110)
    if "series" in data:
        for (name, part), color in zip(data.groupby("series", sort=False), SERIES, strict=False):
            ax.plot(part["timestamp"], part["value"] * scale, color=color, linewidth=1.4, label=str(name))
        ax.legend(fontsize=7, loc="upper left", frameon=False)
    else:
        ax.plot(data["timestamp"], data["value"] * scale, color=LINE, linewidth=1.6)
    for label, value in (thresholds or {}).items():
        ax.axhline(value * scale, color=THRESHOLD, linestyle="--", linewidth=1)
        ax.annotate(
            label, (0.005, value * scale), xycoords=("axes fraction", "data"), fontsize=7, color=THRESHOLD, va="bottom"
        )
    start, end = data["timestamp"].iloc[0], data["timestamp"].iloc[-1]
    for label, moment in (markers or {}).items():
        if moment is not None and start <= pd.Timestamp(moment) <= end:
            ax.axvline(moment, color=MARKER, linestyle=":", linewidth=1.2)
            ax.annotate(
                label,
                (moment, 0.98),
                xycoords=("data", "axes fraction"),
                fontsize=7,
                color=MARKER,
                rotation=90,
                ha="right",
                va="top",
            )
    ax.set_title(title, fontsize=9, loc="left", y=1.0)  # a fixed y: no automatic placement (15 ms)
    ax.set_ylabel("%" if percent else "", fontsize=8)
    ax.tick_params(labelsize=7)
    long_range = (end - start) > pd.Timedelta(days=1)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M" if long_range else "%H:%M", tz="UTC"))
    ax.set_xlabel("UTC", fontsize=7)
    ax.grid(alpha=0.25)
    fig.subplots_adjust(left=0.08, right=0.985, top=0.89, bottom=0.18)  # tight_layout measures text: 30 ms
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    rb.image(buf.getvalue(), f"graph: {title}")
    return True
