"""Generic triage checks for an alert with no dedicated runbook."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from ..protocol import RunbookLike
from .base import Result, check


@dataclass
class Reevaluation(Result):
    expr: str = ""
    origin: str = ""  # "generatorURL" or "catalog"
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    still_true: bool | None = None


@dataclass
class Firing(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)


def expression_from_generator_url(url: str) -> str | None:
    """The PromQL in a Prometheus generatorURL (``...?g0.expr=...``). The URL is never fetched:
    only the expression is taken, and it is evaluated against the configured Prometheus."""
    if not url:
        return None
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        return None
    values = query.get("g0.expr") or []
    expr = values[0].strip() if values else ""
    return expr or None


def routing(rb: RunbookLike) -> None:
    """Say why this alert came to triage (no dedicated runbook for it, or none written yet)."""
    if rb.alert is None:
        rb.finding("Routing", "info", "No alert given: an interactive triage run.")
        return
    route = rb.route
    if route.reason == "not in catalog":
        rb.finding(
            "Routing",
            "warning",
            f"No dedicated runbook for {rb.alert.name}: it is not in parameters/catalog.yaml. "
            f"Generic triage ran instead; add the alert and a runbook.",
            alertname=rb.alert.name,
            reason=route.reason,
        )
    elif route.slug == "triage":
        rb.finding(
            "Routing",
            "warning",
            f"No dedicated runbook for {rb.alert.name} yet ({route.reason}); generic triage ran instead.",
            alertname=rb.alert.name,
            reason=route.reason,
        )
    else:
        rb.finding("Routing", "info", f"{rb.alert.name} has its own runbook ({route.slug}); this is a triage run.")


@check("Alert expression now", Reevaluation)
def reevaluate(rb: RunbookLike) -> Reevaluation:
    """Evaluate the alert's expression now: from the catalog when the alert is in it, else from
    its generatorURL (only the expression is taken; it runs against our Prometheus, with a
    server-side timeout)."""
    title = "Alert expression now"
    expr, origin = None, ""
    if rb.alert is not None and rb.alert.name in rb.catalog.alerts:  # the catalog is the source of truth
        expr, origin = rb.catalog.alerts[rb.alert.name].expr, "catalog"
    elif rb.alert is not None:
        expr, origin = expression_from_generator_url(rb.alert.generatorURL), "generatorURL"
    if expr is None:
        rb.finding(
            title,
            "unchecked",
            "The alert carries no generatorURL expression and is not in the catalog.",
            reason="no expression",
        )
        return Reevaluation.unchecked("no expression")
    rb.note(f"Expression (from the {origin}): {expr}")
    frame = rb.prometheus.query(expr, rb.now)
    result = Reevaluation(expr=expr, origin=origin, frame=frame, still_true=not frame.empty)
    rb.table(frame, title="Series the expression returns now")
    if frame.empty:
        rb.finding(
            title,
            "ok",
            "The expression returns nothing now: the condition has cleared (or the data stopped).",
            expr=expr,
            origin=origin,
            series=0,
        )
    else:
        sev = rb.alert.severity if rb.alert else ""
        rb.finding(
            title,
            "critical" if sev == "critical" else "warning",
            f"The condition still holds for {len(frame)} series (e.g. value {frame['value'].iloc[0]:.4g}).",
            expr=expr,
            origin=origin,
            series=len(frame),
        )
    return result


@check("Other alerts firing", Firing)
def firing_now(rb: RunbookLike) -> Firing:
    """Alerts Prometheus has firing now, besides this one: a wider incident shows here."""
    alerts = rb.prometheus.alerts()
    me = rb.alert.fingerprint if rb.alert else None
    rows = []
    for a in alerts:
        labels = a.get("labels", {})
        if a.get("state") != "firing":
            continue
        if rb.alert and labels == rb.alert.labels:
            continue
        rows.append(
            {
                "alertname": labels.get("alertname", "?"),
                "severity": labels.get("severity", ""),
                "active_since": a.get("activeAt", ""),
                "value": a.get("value", ""),
                "labels": ", ".join(
                    f"{k}={v}" for k, v in sorted(labels.items()) if k not in ("alertname", "severity")
                ),
            }
        )
    table = pd.DataFrame(rows, columns=["alertname", "severity", "active_since", "value", "labels"])
    rb.table(table, title="Other alerts firing in Prometheus now")
    names = sorted(set(table["alertname"]))
    if table.empty:
        rb.finding("Other alerts firing", "ok", "No other alert is firing: this one stands alone.")
    else:
        crit = int((table["severity"] == "critical").sum())
        rb.finding(
            "Other alerts firing",
            "warning" if crit else "info",
            f"{len(table)} other alerts firing ({crit} critical): {', '.join(names[:8])}.",
            alertnames=names,
            fingerprint=me,
        )
    return Firing(table=table)
