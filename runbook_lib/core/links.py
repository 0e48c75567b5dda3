"""Links people follow from a record or a message: a PromQL expression opened in Prometheus'
graph page over a time range, a Grafana dashboard over the same range. Only http(s) bases."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlencode, urlsplit

# The generated Grafana dashboards (runbook_lib.monitoring.dashboards): file -> uid.
DASHBOARDS = {
    "slo.json": "omnihub-slo",
    "operator.json": "omnihub-operator",
    "infrastructure.json": "omnihub-infrastructure",
}


def _base(url: str | None) -> str | None:
    if not url or not url.lower().startswith(("http://", "https://")):
        return None
    return url.rstrip("/")


def server(url: str | None) -> tuple[str, str, int] | None:
    """(scheme, host, port) of a URL, the default port filled in; None when it is not http(s)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def alert_links(alert: dict, trusted_bases: Iterable[str | None]) -> list[dict[str, object]]:
    """The links an alert brings (its ``runbook_url`` annotation and its ``generatorURL``), each
    marked ``trusted`` only when its scheme, host and port are those of one of
    ``trusted_bases`` (our Prometheus, Alertmanager, runbook pages). Whoever can post an alert
    chooses these URLs: a record makes only trusted ones clickable and shows the rest as text."""
    ours = {server(base) for base in trusted_bases} - {None}
    found = [
        ("Runbook", (alert.get("annotations") or {}).get("runbook_url")),
        ("Alert source", alert.get("generatorURL")),
    ]
    return [
        {"title": title, "url": url, "from": "alert", "trusted": server(url) in ours}
        for title, url in found
        if isinstance(url, str) and url.strip()
    ]


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


def panel_id(title: str) -> int:
    """A generated dashboard panel's stable id, from its title alone (adding or reordering
    panels never moves another panel's link)."""
    return 100_000 + zlib.crc32(title.encode("utf-8")) % 900_000


def grafana_panel(
    base: str | None, dashboard_file: str, title: str, end: datetime, range_s: float = 3 * 3600
) -> str | None:
    """One panel of a generated dashboard, alone (``viewPanel``), over the same range."""
    uid = DASHBOARDS.get(dashboard_file)
    page = grafana(base, f"/d/{uid}", end, range_s) if uid else None
    return f"{page}&viewPanel={panel_id(title)}" if page else None
