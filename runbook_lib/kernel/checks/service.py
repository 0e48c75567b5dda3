"""Is the service down, and why: the ``up`` history of its scrape targets, its pods (phase,
restarts, CrashLoopBackOff, OOMKilled), recent events (FailedScheduling, probe failures,
image pulls), and direct probes of its health URLs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from runbook_lib.core.present import ago, duration, iso
from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.probe import probe
from runbook_lib.sre.promql import label_name, selector

# Event reasons that explain a pod not serving, worst first (kubelet and scheduler names).
EVENT_REASONS = {
    "FailedScheduling": "the scheduler cannot place a pod",
    "OOMKilling": "the kernel killed a container for memory",
    "BackOff": "a container keeps crashing and is restarted with back-off",
    "Failed": "a container or image pull failed",
    "ErrImagePull": "the image cannot be pulled",
    "ImagePullBackOff": "the image cannot be pulled",
    "Unhealthy": "liveness or readiness probes fail",
    "FailedMount": "a volume cannot be mounted",
    "Evicted": "the node evicted the pod",
}
# Why a container is not running, as kubectl shows it, with what it usually means.
POD_REASONS = {
    "OOMKilled": "killed for exceeding its memory limit: raise the limit or find the leak",
    "CrashLoopBackOff": "the process exits right after start: read its last log lines (previous container)",
    "Error": "the process exited with an error",
    "ImagePullBackOff": "the image cannot be pulled: a wrong tag or registry credentials",
    "ErrImagePull": "the image cannot be pulled: a wrong tag or registry credentials",
    "CreateContainerConfigError": "a referenced ConfigMap or Secret is missing",
    "Unschedulable": "no node has room (requests too large, or nodes down)",
}


@dataclass
class Targets(Result):
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    down: list[str] = field(default_factory=list)
    total: int = 0
    down_since: dict[str, datetime] = field(default_factory=dict)


# What a pod's state says, as a cause code, strongest first: a crash loop of OOMKilled
# containers is a memory problem, a pod waiting on its image never ran at all.
CODE_ORDER = ("image_pull", "oom_killed", "unschedulable", "crash_loop", "probe_failing")
IMAGE_PULL = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName")


def pod_cause(waiting: str, last_exit: str, ready: bool) -> str | None:
    """The cause code one pod's state names (None: nothing wrong with it)."""
    waiting = waiting.removeprefix("Init:")
    if waiting in IMAGE_PULL:
        return "image_pull"
    if last_exit == "OOMKilled":  # even when running again: it will be killed again
        return "oom_killed"
    if waiting == "Unschedulable":
        return "unschedulable"
    if ready:
        return None
    if waiting in ("CrashLoopBackOff", "CreateContainerConfigError") or last_exit == "Error":
        return "crash_loop"
    return "probe_failing"  # running (or starting) and not ready: its readiness probe fails


@dataclass
class Pods(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    not_ready: int = 0
    codes: dict[str, list[str]] = field(default_factory=dict)  # cause code -> pods, the leading code first
    cause: str | None = None  # the leading cause code
    resources: dict[str, dict[str, str]] = field(default_factory=dict)  # container -> limits and requests


@dataclass
class Events(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    reasons: dict[str, int] = field(default_factory=dict)
    scheduling: str = ""  # the newest FailedScheduling message: "0/3 nodes are available: 3 Insufficient memory."


@dataclass
class Probes(Result):
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    failing: list[str] = field(default_factory=list)


@check("Scrape targets (up)", Targets, essential=True)
def targets(rb: RunbookLike, job: str | None = None, lookback_s: float = 3 * 3600) -> Targets:
    """The ``up{job=...}`` history: which targets are down now, since when, all or some."""
    job = job or (rb.alert.labels.get(rb.metrics.job_label) if rb.alert else None) or rb.metrics.api_job
    expr = selector("up", **{label_name(rb.metrics.job_label): job})
    title = "Scrape targets (up)"
    history = rb.prometheus.query_range(expr, rb.now - timedelta(seconds=lookback_s), rb.now, step=15)
    rb.query_link(expr, f"up of job {job}", lookback_s)
    if history.empty or "instance" not in history:
        rb.finding(title, "unchecked", f"Prometheus has no up series for job {job!r}.", reason="no data", job=job)
        return Targets.unchecked("no data")
    rows, down_since, vanished = [], {}, []
    for instance, series in history.sort_values("timestamp").groupby("instance"):
        values = series["value"].tolist()
        stamps = series["timestamp"].tolist()
        if (rb.now - stamps[-1].to_pydatetime()).total_seconds() > 300:
            # no longer scraped at all: a pod replaced by a rollout or a scale-down, not a target down
            vanished.append(str(instance))
            continue
        since = _run_start(stamps, values) if values[-1] == 0 else None
        if since is not None:
            down_since[str(instance)] = since.to_pydatetime()
        rows.append(
            {
                "instance": instance,
                "up_now": values[-1] != 0,
                "down_since": ("at least since " if since == stamps[0] else "") + iso(since)
                if since is not None
                else "",
                "down_for": duration((rb.now - since.to_pydatetime()).total_seconds()) if since is not None else "",
                "up_share": round(float(pd.Series(values).mean()), 3),
            }
        )
    if not rows:
        rb.finding(
            title,
            "critical",
            f"No target of job {job} reports any more ({len(vanished)} stopped being scraped in the last "
            f"{duration(lookback_s)}): every instance is gone, or the scrape configuration lost them.",
            role="symptom",
            cause="instances_down",
            job=job,
            vanished=vanished,
            scope="all",
        )
        return Targets(history=history, down=vanished, total=len(vanished))
    table = pd.DataFrame(rows)
    rb.table(table, title=f"Targets of job {job} over the last {duration(lookback_s)}")
    down = [r["instance"] for r in rows if not r["up_now"]]
    result = Targets(history=history, down=down, total=len(rows), down_since=down_since)
    gone = f" ({len(vanished)} earlier targets stopped being scraped: replaced or scaled down.)" if vanished else ""
    if not down:
        rb.finding(
            title,
            "ok",
            f"All {len(rows)} targets of job {job} are up.{gone}",
            job=job,
            targets=len(rows),
            vanished=vanished,
        )
        return result
    first = min(down_since.values()) if down_since else None
    scope = "all" if len(down) == len(rows) else "some"
    summary = (
        f"{len(down)} of {len(rows)} targets of job {job} down ({', '.join(down)})"
        + (f", the first since {iso(first)} ({ago(first, rb.now)})" if first else "")
        + (
            ": the whole service is unreachable."
            if scope == "all"
            else ": the others still serve, with less capacity and more load each."
        )
        + gone
    )
    rb.finding(
        title,
        "critical" if scope == "all" else "warning",
        summary,
        role="symptom",
        cause="instances_down",
        job=job,
        down=down,
        scope=scope,
        total=len(rows),
        down_since={k: iso(v) for k, v in down_since.items()},
        vanished=vanished,
    )
    return result


def _run_start(stamps: list[pd.Timestamp], values: list[float]) -> pd.Timestamp:
    """When the final run of zeros began."""
    i = len(values) - 1
    while i > 0 and values[i - 1] == 0:
        i -= 1
    return stamps[i]


@check("Pods", Pods)
def pods(rb: RunbookLike, deployment: str | None = None) -> Pods:
    """Pod phase, readiness, restarts, and why a container is not running (the waiting reason)
    or how it last ended (OOMKilled, Error)."""
    name = deployment or rb.service.deployment
    table = rb.kubernetes.pod_states(name)
    title = "Pods"
    if table.empty:
        rb.finding(
            title, "critical", f"deployment/{name} has no pods at all.", role="cause", cause="instances_down", pods=0
        )
        return Pods(table=table, cause="instances_down", codes={"instances_down": []})
    shown = table.assign(age=table["age_s"].map(duration)).drop(columns=["age_s"])
    rb.table(shown, title=f"Pods of deployment/{name}, not ready first")
    reasons: dict[str, list[str]] = {}
    for _, row in table.iterrows():
        for reason in (row["waiting"], row["last_exit"]):
            if reason.removeprefix("Init:") in POD_REASONS:
                reasons.setdefault(reason, []).append(row["pod"])
    not_ready = int((~table["ready"]).sum())
    result = Pods(table=table, reasons=reasons, not_ready=not_ready)
    if not reasons and not not_ready:
        rb.finding(title, "ok", f"All {len(table)} pods of deployment/{name} are ready.", pods=len(table))
        return result
    order = list(POD_REASONS)
    worst = sorted(reasons, key=lambda r: (-len(reasons[r]), order.index(r.removeprefix("Init:"))))
    parts = [
        f"{r} ({len(reasons[r])}: {', '.join(reasons[r])}): "
        + ("an init container " if r.startswith("Init:") else "")
        + POD_REASONS[r.removeprefix("Init:")]
        for r in worst
    ]
    restarts = int(table["restarts"].sum())
    codes: dict[str, list[str]] = {}
    for _, row in table.iterrows():
        code = pod_cause(str(row["waiting"]), str(row["last_exit"]), bool(row["ready"]))
        if code:
            codes.setdefault(code, []).append(str(row["pod"]))
    ranked = sorted(codes, key=lambda c: (-len(codes[c]), CODE_ORDER.index(c)))
    result.codes = {c: codes[c] for c in ranked}
    result.cause = ranked[0] if ranked else None
    result.resources = _resources(rb, name)
    rb.finding(
        title,
        "critical" if not_ready == len(table) else "warning",
        f"{not_ready} of {len(table)} pods of deployment/{name} not ready"
        + (f" ({', '.join(f'{r} x{len(reasons[r])}' for r in worst)})" if worst else "")
        + f", {restarts} restarts. "
        + ("; ".join(parts) if parts else "No waiting or termination reason reported."),
        role="cause" if result.cause else "symptom",
        cause=result.cause,
        not_ready=not_ready,
        pods=len(table),
        restarts=restarts,
        reasons={r: reasons[r] for r in worst},
        top_reason=worst[0] if worst else None,
        codes=result.codes,
        resources=result.resources,
    )
    return result


def _resources(rb: RunbookLike, name: str) -> dict[str, dict[str, str]]:
    """Each container's limits and requests in the deployment's pod template (what a new pod gets)."""
    template = (rb.kubernetes.deployment(name).get("spec") or {}).get("template") or {}
    out = {}
    for c in (template.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        out[str(c.get("name"))] = {
            **{f"limit_{k}": str(v) for k, v in (res.get("limits") or {}).items()},
            **{f"request_{k}": str(v) for k, v in (res.get("requests") or {}).items()},
        }
    return out


@check("Recent events", Events)
def events(rb: RunbookLike, deployment: str | None = None) -> Events:
    """Warning events of the deployment, its ReplicaSets and pods, newest first."""
    name = deployment or rb.service.deployment
    table = rb.kubernetes.events(name)
    title = "Recent events"
    warnings = table[table["type"] == "Warning"] if not table.empty else table
    if warnings.empty:
        rb.finding(title, "ok", f"No warning events for deployment/{name} or its pods.")
        return Events(table=table)
    rb.table(warnings, title=f"Warning events for deployment/{name} and its pods, newest first")
    counts = warnings.groupby("reason")["count"].sum().sort_values(ascending=False)
    reasons = {str(k): int(v) for k, v in counts.items()}
    known = [r for r in EVENT_REASONS if r in reasons]
    listed = "; ".join(f"{r} x{reasons[r]} ({EVENT_REASONS[r]})" for r in known) or ", ".join(reasons)
    scheduling = warnings[warnings["reason"] == "FailedScheduling"]
    message = str(scheduling.iloc[0]["message"]) if not scheduling.empty else ""
    rb.finding(
        title,
        "warning",
        f"{int(counts.sum())} warning events: {listed}." + (f" Scheduler: {message}" if message else ""),
        reasons=reasons,
        newest=str(warnings.iloc[0]["message"]),
        scheduling=message,
    )
    return Events(table=table, reasons=reasons, scheduling=message)


@check("Health probes", Probes)
def health_probes(rb: RunbookLike, urls: list[str] | None = None) -> Probes:
    """GET each configured health URL directly: status and latency, or why there is no answer."""
    urls = list(urls or rb.service.health_urls)
    title = "Health probes"
    if not urls:
        rb.finding(title, "unchecked", "No health URLs configured (service.health_urls).", reason="not configured")
        return Probes.unchecked("not configured")
    rows = [probe(u, rb.service.probe_timeout_s) for u in urls]
    table = pd.DataFrame(rows)
    rb.table(table, title="Direct probes of the health URLs")
    failing = [r["url"] for r in rows if not r["ok"]]
    if not failing:
        slowest = max(rows, key=lambda r: r["latency_ms"])
        rb.finding(
            title,
            "ok",
            f"All {len(rows)} health URLs answer (slowest {slowest['latency_ms']:.0f} ms).",
            urls=len(rows),
        )
        return Probes(table=table)
    kinds = {r["url"]: r["failure"] + (f" {r['status']}" if r["status"] else "") for r in rows if not r["ok"]}
    rb.finding(
        title,
        "critical" if len(failing) == len(rows) else "warning",
        f"{len(failing)} of {len(rows)} health URLs fail: " + "; ".join(f"{u}: {k}" for u, k in kinds.items()) + ".",
        role="symptom",
        cause="instances_down",
        failing=kinds,
        urls=len(rows),
    )
    return Probes(table=table, failing=failing)


@dataclass
class Remedy:
    """What service-down recommends: ``option`` "rollback" or "restart" (a guarded option),
    "escalate" (no option here can help: ``why`` names the lever and ``to`` whom), or "none"."""

    option: str
    why: str
    to: str = ""


def remedy(
    pods: Pods,
    events: Events | None = None,
    probes: Probes | None = None,
    rollouts: Any = None,
    targets: Targets | None = None,
    dependencies: dict[str, Any] | None = None,
) -> Remedy:
    """The one lever for what the pods show. A rollout restart only replaces pods with the same
    revision on the same nodes: it helps wedged pods (running, failing their probes) and nothing
    else. OOMKilled pods hit the same memory limit again, unschedulable pods need the same room,
    a crash loop or a missing image is the revision's own: roll back when a rollout came shortly
    before, else escalate with the real lever. A dependency that is down (``dependencies``: name
    -> its health check's result) explains crashing or unready pods: escalate to its owner."""
    suspect = getattr(rollouts, "suspect", None)
    revision = f"revision {suspect['revision']} ({suspect['images']})" if suspect else ""
    code = pods.cause
    count = len(pods.codes.get(code, [])) if code else 0
    memory = ", ".join(f"{c} limit {r['limit_memory']}" for c, r in pods.resources.items() if r.get("limit_memory"))
    requests = ", ".join(
        f"{c} requests "
        + " and ".join(f"{r[k]} {k.removeprefix('request_')}" for k in sorted(r) if k.startswith("request_"))
        for c, r in pods.resources.items()
        if any(k.startswith("request_") for k in r)
    )
    if code == "oom_killed":
        if suspect:
            return Remedy(
                "rollback",
                f"{count} pod(s) OOMKilled since {revision} rolled out: it uses more memory than its limit"
                f"{f' ({memory})' if memory else ''}; roll back, then raise the limit or fix the leak. "
                "A restart cannot help: new pods hit the same limit.",
            )
        return Remedy(
            "escalate",
            f"{count} pod(s) OOMKilled at their memory limit{f' ({memory})' if memory else ''}: raise the memory "
            "limit in the deployment manifest through the normal deploy path, or find the leak. A restart "
            "cannot help: new pods hit the same limit.",
            "the API team",
        )
    if code == "unschedulable":
        why = (events.scheduling if events else "") or "no node has room for them"
        if suspect:
            return Remedy(
                "rollback",
                f"{count} pod(s) of {revision} cannot be scheduled ({why.rstrip('.')}): roll back to pods that "
                "fit, then add capacity or lower the requests. A restart cannot help.",
            )
        return Remedy(
            "escalate",
            f"{count} pod(s) cannot be scheduled: {why.rstrip('.')}. Add capacity (scale the node pool) or "
            f"lower the pods' requests{f' ({requests})' if requests else ''}. A restart cannot help: its new "
            "pods need the same room.",
            "the platform team",
        )
    down = [name for name, health in (dependencies or {}).items() if getattr(health, "up", None) is False]
    if down and not suspect and code not in ("oom_killed", "unschedulable", "image_pull"):
        names = " and ".join(down)
        return Remedy(
            "escalate",
            f"{names} {'is' if len(down) == 1 else 'are'} down and the service cannot serve without it: run "
            f"{'database-down' if 'PostgreSQL' in down else 'its runbook'} and page its owner; a restart or a "
            "rollback of this service cannot help.",
            "the database on-call" if "PostgreSQL" in down else "the platform on-call",
        )
    if code in ("image_pull", "crash_loop"):
        what = "cannot pull their image" if code == "image_pull" else "crash right after start (CrashLoopBackOff)"
        if suspect:
            return Remedy("rollback", f"{count} pod(s) of {revision} {what}: roll back to the previous revision.")
        lever = (
            "check the image tag and the registry credentials (imagePullSecrets)"
            if code == "image_pull"
            else "read the previous container's last lines (kubectl logs --previous): a restart runs the same crash"
        )
        return Remedy("escalate", f"{count} pod(s) {what}, with no recent rollout to undo: {lever}.", "the API team")
    if code == "probe_failing":
        if suspect:
            return Remedy("rollback", f"{count} pod(s) of {revision} run but fail their readiness probes: roll back.")
        return Remedy(
            "restart",
            f"{count} pod(s) run but fail their readiness probes (wedged), with no recent rollout: replace them.",
        )
    if code == "instances_down" and pods.checked and pods.table.empty:
        return Remedy(
            "escalate",
            "the deployment has no pods at all: check its replicas (scaled to 0?) and its ReplicaSet's events "
            "(quota, admission); a restart or a rollback creates no pods either.",
            "the platform team",
        )
    unreachable = bool((probes and probes.failing) or (targets and targets.down))
    if unreachable or code == "instances_down":
        if suspect:
            return Remedy("rollback", f"the instances stopped answering after {revision} rolled out: roll back.")
        if not pods.checked:
            return Remedy(
                "escalate",
                "the instances do not answer and their pods could not be checked (see Pods): look at "
                "kubectl get pods and events by hand before choosing a restart, a rollback or capacity.",
                "Senior SRE",
            )
        return Remedy(
            "escalate",
            "the instances do not answer while their pods look healthy: check the network path (service, "
            "ingress, network policy) and the dependencies.",
            "Senior SRE",
        )
    return Remedy("none", "the pods are ready and the health URLs answer")
