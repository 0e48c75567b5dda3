"""Links people follow from a record or a message: a PromQL expression opened in Prometheus'
graph page over a time range, a Grafana dashboard over the same range. Only http(s) bases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode


def _base(url: str | None) -> str | None:
    if not url or not url.lower().startswith(("http://", "https://")):
        return None
    return url.rstrip("/")


def prometheus_graph(base: str | None, expr: str, end: datetime, range_s: float = 3 * 3600) -> str | None:
    """Prometheus' graph page showing ``expr`` for ``range_s`` up to ``end``."""
    root = _base(base)
    if root is None or not expr:
        return None
    hours = max(1, round(range_s / 3600))
    query = urlencode(
        {
            "g0.expr": expr,
            "g0.tab": "0",
            "g0.range_input": f"{hours}h",
            "g0.end_input": end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
        },
        quote_via=quote,
    )
    return f"{root}/graph?{query}"


def grafana(base: str | None, dashboard: str | None, end: datetime, range_s: float = 3 * 3600) -> str | None:
    """A Grafana dashboard (``dashboard`` is its path, e.g. /d/omnihub-api) over the same range."""
    root = _base(base)
    if root is None or not dashboard:
        return None
    start = end - timedelta(seconds=range_s)
    path = "/" + dashboard.lstrip("/")
    return f"{root}{path}?from={int(start.timestamp() * 1000)}&to={int(end.timestamp() * 1000)}"
