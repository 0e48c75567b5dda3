"""Generic triage checks for an alert with no dedicated runbook."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from runbook_lib.core.links import server
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.sre.causes import CAUSES


@dataclass
class Reevaluation(Result):
    expr: str = ""
    origin: str = ""  # "generatorURL" or "catalog"
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    still_true: bool | None = None


@dataclass
class Firing(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    pointing: str | None = None  # another firing alert that points at a common cause
    runbook: str | None = None  # its runbook


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


def is_group(rb: RunbookLike) -> bool:
    """This run stands for a group of alerts over the receiver's run caps."""
    return rb.alert is not None and rb.alert.labels.get("runbook_group") == "true"


def grouped_alerts(rb: RunbookLike) -> None:
    """The alerts a group record stands for: a table of those listed, and a finding naming them."""
    assert rb.alert is not None
    try:
        listed = [str(x) for x in json.loads(rb.alert.annotations.get("grouped", "[]"))]
    except ValueError:
        listed = []
    table = pd.DataFrame({"alert [severity] fingerprint labels": listed})
    rb.table(table, title="Alerts grouped into this record", max_rows=200)
    rb.finding(
        "Routing",
        "warning",
        rb.alert.annotations.get("summary", "alerts grouped")
        + ". They were journaled, not dropped; look for a common cause (a deploy, a dependency) first.",
        listed=len(listed),
        description=rb.alert.annotations.get("description", ""),
    )


def routing(rb: RunbookLike) -> None:
    """Say why this alert came to triage (no dedicated runbook for it, or none written yet)."""
    if rb.alert is None:
        rb.finding("Routing", "info", "No alert given: an interactive triage run.")
        return
    if is_group(rb):
        grouped_alerts(rb)
        return
    route = rb.route
    if route.reason == "not in catalog":
        rb.finding(
            "Routing",
            "warning",
            f"No dedicated runbook for {rb.alert.name}: it is not in parameters/catalog.yaml. "
            f"Generic triage ran instead; add the alert and a runbook.",
            role="context",
            alertname=rb.alert.name,
            reason=route.reason,
        )
    elif route.slug == "triage":
        rb.finding(
            "Routing",
            "warning",
            f"No dedicated runbook for {rb.alert.name} yet ({route.reason}); generic triage ran instead.",
            role="context",
            alertname=rb.alert.name,
            reason=route.reason,
        )
    else:
        rb.finding("Routing", "info", f"{rb.alert.name} has its own runbook ({route.slug}); this is a triage run.")


def expression_source(rb: RunbookLike) -> tuple[str | None, str, str | None]:
    """(expression, where it came from, why it may not run). Only the catalog's expression, or the
    expression in a generatorURL that points at our own Prometheus (its configured URL or one of
    ``prometheus.external_urls``), is ever run, and only if it is at most
    ``prometheus.max_expression_chars`` long."""
    if rb.alert is None:
        return None, "", "no alert"
    if rb.alert.name in rb.catalog.alerts:  # the catalog is the source of truth
        return rb.catalog.alerts[rb.alert.name].expr, "catalog", None
    expr = expression_from_generator_url(rb.alert.generatorURL)
    if expr is None:
        return None, "", "The alert carries no generatorURL expression and is not in the catalog."
    cfg = rb.settings.prometheus
    ours = {server(u) for u in [cfg.url or "", *cfg.external_urls]} - {None}
    sender = server(rb.alert.generatorURL)
    origin = f"generatorURL ({sender[1]}:{sender[2]})" if sender else "generatorURL"
    if sender not in ours:
        known = ", ".join(f"{h}:{p}" for _s, h, p in sorted(ours)) or "none configured"
        return (
            expr,
            origin,
            f"The generatorURL points at {sender[1] if sender else 'an unknown server'}, not our Prometheus "
            f"({known}); its expression was not run. If it is the same server, add its URL to "
            f"prometheus.external_urls.",
        )
    if len(expr) > cfg.max_expression_chars:
        return (
            expr,
            origin,
            f"The expression is {len(expr)} characters long (limit {cfg.max_expression_chars}); not run.",
        )
    return expr, origin, None


@check("Alert expression now", Reevaluation, essential=True)
def reevaluate(rb: RunbookLike) -> Reevaluation:
    """Evaluate the alert's expression now, as an instant query with a server-side timeout, when
    :func:`expression_source` allows it; the finding says where the expression came from."""
    title = "Alert expression now"
    if is_group(rb):
        rb.finding(title, "info", "A group of alerts: no single expression to evaluate (see Routing).")
        return Reevaluation.unchecked("group")
    expr, origin, refused = expression_source(rb)
    if expr is None or refused:
        reason = "no expression" if expr is None else "not run"
        rb.finding(title, "unchecked", refused or "No alert to evaluate.", reason=reason, origin=origin, expr=expr)
        return Reevaluation.unchecked(reason)
    rb.note(f"Expression (from the {origin}): {expr}")
    rb.query_link(expr, "the alert's expression")
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
            role="symptom",
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
        return Firing(table=table)
    crit = int((table["severity"] == "critical").sum())
    # another alert whose runbook is about a dependency or a release points at a common cause
    routed = {n: rb.catalog.route(n, None).slug for n in names}
    pointing = [(n, routed[n], CAUSE_BY_RUNBOOK[routed[n]]) for n in names if routed[n] in CAUSE_BY_RUNBOOK]
    if pointing:
        name, slug, code = pointing[0]
        rb.finding(
            "Other alerts firing",
            "warning",
            f"{len(table)} other alerts firing ({crit} critical): {', '.join(names[:8])}. {name} points at a "
            f"common cause ({CAUSES[code]}): follow its runbook ({slug}) first.",
            role="cause",
            cause=code,
            alertnames=names,
            fingerprint=me,
            runbook=slug,
        )
        return Firing(table=table, pointing=name, runbook=slug)
    rb.finding(
        "Other alerts firing",
        "warning" if crit else "info",
        f"{len(table)} other alerts firing ({crit} critical): {', '.join(names[:8])}.",
        alertnames=names,
        fingerprint=me,
    )
    return Firing(table=table)


# Runbooks whose alert, firing beside an unknown one, names a likely common cause.
CAUSE_BY_RUNBOOK = {
    "database-down": "dependency_down",
    "blockchain-rpc-down": "dependency_down",
    "service-down": "dependency_down",
    "deployment-failure": "rollout",
}


def decision(rb: RunbookLike, expression: Reevaluation, others: Firing) -> None:
    """Triage's one recommendation: follow another firing alert's runbook when it points at a
    common cause; stand down when the condition no longer holds; else escalate to the team the
    alert's labels name."""
    owner = rb.labels.get("team") or rb.labels.get("service") or "the owning team (see the alert's labels)"
    if others.pointing:
        rb.escalate(
            f"{others.pointing} fires too: follow its runbook ({others.runbook}) first", to=f"{others.runbook} on-call"
        )
    elif expression.checked and not expression.still_true:
        rb.no_action("the alert's condition no longer holds; add the alert to the catalog with a runbook")
    else:
        held = "its condition still holds" if expression.checked else "its condition could not be re-evaluated"
        rb.escalate(f"no runbook for this alert and {held}", to=owner)
