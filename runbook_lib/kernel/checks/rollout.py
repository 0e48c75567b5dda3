"""A failing deployment: is the rollout stuck (ProgressDeadlineExceeded), what changed between
the new ReplicaSet and the previous one (image, environment), and does the new version (the
canary) fail or slow down more than the stable one, by the version label."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from runbook_lib.core.present import percent
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.sre import slo
from runbook_lib.sre.promql import label_name, selector

MIN_CANARY_REQUESTS = 100  # fewer requests than this over the window cannot show a difference


@dataclass
class Status(Result):
    stuck: bool = False
    status: dict[str, Any] = field(default_factory=dict)


@dataclass
class Changes(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    new_image: str | None = None
    old_image: str | None = None
    env_changed: list[str] = field(default_factory=list)


@dataclass
class Canary(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    canary: str | None = None
    stable: str | None = None
    worse: bool = False


@check("Rollout status", Status, essential=True)
def status(rb: RunbookLike, deployment: str | None = None) -> Status:
    """What ``kubectl rollout status`` would say, with the Progressing condition's reason."""
    name = deployment or rb.service.deployment
    st = rb.kubernetes.rollout_status(name)
    rb.table(pd.DataFrame(st["conditions"]), title=f"Conditions of deployment/{name}")
    counts = f"{st['updated']}/{st['desired']} updated, {st['ready']} ready, {st['unavailable']} unavailable"
    title = "Rollout status"
    details = {k: v for k, v in st.items() if k != "conditions"}
    if st["deadline_exceeded"]:
        message = next((c["message"] for c in st["conditions"] if c["type"] == "Progressing"), "")
        rb.finding(
            title,
            "critical",
            f"deployment/{name} is stuck: ProgressDeadlineExceeded after {st['progress_deadline_s']}s ({counts}). "
            f"{message}",
            role="symptom",
            cause="rollout_stuck",
            **details,
        )
        return Status(stuck=True, status=st)
    done = st["observed"] and st["updated"] == st["desired"] == st["ready"] and not st["unavailable"]
    rb.finding(
        title,
        "ok" if done else "warning",
        f"deployment/{name} {'is rolled out' if done else 'is rolling out'} ({counts})"
        + (", paused" if st["paused"] else "")
        + ".",
        **details,
    )
    return Status(stuck=False, status=st)


@check("What the new revision changed", Changes)
def changes(rb: RunbookLike, deployment: str | None = None) -> Changes:
    """The new ReplicaSet against the previous one: images and environment variables."""
    name = deployment or rb.service.deployment
    diff = rb.kubernetes.replica_set_diff(name)
    table = pd.DataFrame(diff["changes"], columns=["container", "what", "name", "from", "to"])
    title = "What the new revision changed"
    span = f"revision {diff['from_revision']} -> {diff['to_revision']}"
    if table.empty:
        rb.finding(title, "info", f"{span}: same images and environment (a restart, or a change elsewhere).")
        return Changes(table=table)
    rb.table(table, title=f"deployment/{name}: {span}")
    images = table[table["what"] == "image"]
    env = table[table["what"] == "env"]["name"].tolist()
    result = Changes(table=table, env_changed=env)
    parts = []
    if not images.empty:
        result.old_image, result.new_image = str(images.iloc[0]["from"]), str(images.iloc[0]["to"])
        parts.append(f"image {result.old_image} -> {result.new_image}")
    if env:
        parts.append(f"environment: {', '.join(env)}")
    rb.finding(
        title,
        "info",
        f"{span} changed {'; '.join(parts)}.",
        from_revision=diff["from_revision"],
        to_revision=diff["to_revision"],
        old_image=result.old_image,
        new_image=result.new_image,
        env_changed=env,
    )
    return result


@check("Canary against stable", Canary, essential=True)
def canary(rb: RunbookLike, changed: Changes | None = None, window: str = "15m") -> Canary:
    """Error ratio and p95 latency per version label; the canary is the version of the new
    image (its tag) when it is one of the labels, else the version with the least traffic."""
    slo.parse_duration(window)
    m = rb.metrics
    version, status_label = label_name(m.version_label), label_name(m.status_label)
    scope = {label_name(m.job_label): m.api_job, version: ("!=", "")}  # this service's versioned traffic only
    errors = selector(m.http_requests, **scope, **{status_label: ("=~", m.error_status_regex)})
    every = selector(m.http_requests, **scope)
    bucket = selector(f"{m.latency_histogram}_bucket", **scope)
    prom = rb.prometheus
    rps = prom.query(f"sum by ({version}) (rate({every}[{window}]))", rb.now)
    title = "Canary against stable"
    if rps.empty or version not in rps or rps[version].nunique() < 2:
        rb.finding(
            title,
            "unchecked",
            f"Traffic carries fewer than two values of the {version} label over {window}: no canary to compare.",
            reason="no versions",
        )
        return Canary.unchecked("no versions")
    err = prom.query(f"sum by ({version}) (rate({errors}[{window}]))", rb.now)
    rb.query_link(
        f"sum by ({version}) (rate({errors}[{window}])) / sum by ({version}) (rate({every}[{window}]))",
        "error ratio per version",
    )
    p95 = prom.query(f"histogram_quantile(0.95, sum by (le, {version}) (rate({bucket}[{window}])))", rb.now)
    table = rps.set_index(version)[["value"]].rename(columns={"value": "requests_per_s"})
    table["error_ratio"] = (err.set_index(version)["value"] if not err.empty else 0.0) / table["requests_per_s"]
    table["p95_s"] = p95.set_index(version)["value"] if not p95.empty and version in p95 else float("nan")
    table = table.fillna({"error_ratio": 0.0}).reset_index().rename(columns={version: "version"})
    tag = (changed.new_image or "").rpartition(":")[2] if changed else ""
    by_tag = tag in set(table["version"])
    canary_v = tag if by_tag else str(table.sort_values("requests_per_s").iloc[0]["version"])
    table["role"] = ["canary" if v == canary_v else "stable" for v in table["version"]]
    rb.table(table.round(5), title=f"Per version over {window}")
    can = table[table["role"] == "canary"].iloc[0]
    stable = table[table["role"] == "stable"].sort_values("requests_per_s", ascending=False).iloc[0]
    budget = slo.error_budget(rb.thresholds.availability_objective)
    requests = float(can["requests_per_s"]) * slo.parse_duration(window)
    enough = requests >= MIN_CANARY_REQUESTS  # 1 error in 3 requests says nothing
    worse_errors = enough and can["error_ratio"] > max(2 * stable["error_ratio"], budget)
    worse_latency = enough and bool(can["p95_s"] > 1.5 * stable["p95_s"]) if can["p95_s"] == can["p95_s"] else False
    result = Canary(table=table, canary=canary_v, stable=str(stable["version"]), worse=bool(worse_errors and by_tag))
    summary = (
        f"canary {canary_v}: {percent(can['error_ratio'])} errors, p95 {can['p95_s']:.2f}s; stable "
        f"{stable['version']}: {percent(stable['error_ratio'])} errors, p95 {stable['p95_s']:.2f}s"
    )
    details = {
        "canary": canary_v,
        "stable": str(stable["version"]),
        "canary_error_ratio": float(can["error_ratio"]),
        "stable_error_ratio": float(stable["error_ratio"]),
        "canary_p95_s": float(can["p95_s"]),
        "stable_p95_s": float(stable["p95_s"]),
        "canary_requests": round(requests),
        "canary_from": "image tag" if by_tag else "least traffic",
    }
    if worse_errors or worse_latency:
        what = "fails more" if worse_errors else "is slower"
        who = "The new version" if by_tag else f"Version {canary_v} (the one with the least traffic)"
        advice = "roll back (Option 1)" if by_tag else "check it is the new release before rolling back"
        rb.finding(
            title,
            "critical" if worse_errors and by_tag else "warning",
            f"{who} {what} than the stable one ({summary}): {advice}.",
            role="cause",
            cause="canary_worse",
            **details,
        )
    elif not enough:
        rb.finding(
            title,
            "info",
            f"Too little canary traffic to compare ({round(requests)} requests in {window}, fewer than "
            f"{MIN_CANARY_REQUESTS}): {summary}.",
            **details,
        )
    else:
        rb.finding(title, "ok", f"The new version does as well as the stable one ({summary}).", **details)
    return result
