"""Fault cases of the platform runbooks: service-down, high-latency, triage (by their alerts)
and deployment-failure (run by name: no alert routes to it), on the fake Kubernetes API
server's pods, events and rollout history, loopback health endpoints, and Prometheus data
written here (OpenMetrics, backfilled): ``up`` per job, request latency, database query time
and pod CPU.

The defects they were written for: service-down recommended a rollout restart for OOMKilled
pods and for pods no node could take (a restart cannot help either), and a Prometheus outage
made a record INCOMPLETE above its own critical findings."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from tests.faults.matrix import NAMESPACE, Bench, Case, Setup

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
OLD = NOW - timedelta(days=3)  # a rollout long before any alert: no suspect
RECENT = NOW - timedelta(minutes=15)  # 5 minutes before the alert (which starts 10 minutes ago)
POD_NAMES = [f"api-gateway-hash7-pod{i}" for i in range(3)]


# -- Prometheus data ---------------------------------------------------------------------------------
def _minutes(hours: float) -> Iterator[datetime]:
    start = NOW - timedelta(hours=hours)
    for i in range(int((hours + 0.5) * 60) + 1):
        yield start + timedelta(minutes=i)


# job -> (instances, how many are down, since when)
UP_JOBS: dict[str, tuple[int, int, datetime]] = {
    "oom-job": (3, 3, NOW - timedelta(minutes=9)),
    "sched-job": (3, 2, NOW - timedelta(minutes=9)),
    "crash-job": (3, 3, NOW - timedelta(minutes=8)),
    "pull-job": (3, 3, NOW - timedelta(minutes=12)),
    "wedged-job": (3, 3, NOW - timedelta(minutes=9)),
    "db-job": (3, 3, NOW - timedelta(minutes=9)),
}


def up_data(out: TextIO) -> None:
    """``up`` of each job in UP_JOBS over three hours: its first instances down since the given time."""
    out.write("# HELP up Whether the target answers its scrape.\n# TYPE up gauge\n")
    for job, (instances, down, since) in UP_JOBS.items():
        for i in range(instances):
            for t in _minutes(3):
                value = 0 if i < down and t >= since else 1
                out.write(f'up{{instance="10.1.0.{i + 1}:8080",job="{job}"}} {value} {t.timestamp():.0f}\n')


BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _cdf(x: float, median: float, sigma: float = 0.45) -> float:
    return 0.5 * (1 + math.erf(math.log(x / median) / (sigma * math.sqrt(2))))


def _histogram(out: TextIO, name: str, labels: str, median: Callable[[datetime], float], per_s: float) -> None:
    hist, count = [0.0] * len(BUCKETS), 0.0
    for t in _minutes(3):
        n = per_s * 60
        m = median(t)
        for i, le in enumerate(BUCKETS):
            hist[i] += n * _cdf(le, m)
        count += n
        ts = f"{t.timestamp():.0f}"
        for le, c in zip(BUCKETS, hist, strict=True):
            out.write(f'{name}_bucket{{{labels},le="{le}"}} {c:.1f} {ts}\n')
        out.write(f'{name}_bucket{{{labels},le="+Inf"}} {count:.1f} {ts}\n')
        out.write(f"{name}_count{{{labels}}} {count:.1f} {ts}\n")


def latency_data(slow_since: datetime, follows: str) -> Callable[[TextIO], None]:
    """Request latency whose slow endpoint slows down at ``slow_since``, with pod CPU (when
    ``follows`` is "cpu") or database query time (when "db") moving with it; the other flat."""

    def slow(t: datetime) -> bool:
        return t >= slow_since

    def write(out: TextIO) -> None:
        out.write("# HELP http_request_duration_seconds Request latency.\n")
        out.write("# TYPE http_request_duration_seconds histogram\n")
        for ep, normal, slowed in (("/api/v1/workflows/execute", 0.08, 1.6), ("/api/v1/approvals", 0.05, 0.05)):
            _histogram(
                out,
                "http_request_duration_seconds",
                f'endpoint="{ep}",job="api-gateway"',
                lambda t, normal=normal, slowed=slowed: slowed if slow(t) else normal,
                20.0,
            )
        out.write("# HELP omnihub_db_query_duration_seconds Database query time.\n")
        out.write("# TYPE omnihub_db_query_duration_seconds histogram\n")
        _histogram(
            out,
            "omnihub_db_query_duration_seconds",
            'job="api-gateway"',
            lambda t: 0.9 if follows == "db" and slow(t) else 0.01,
            40.0,
        )
        out.write("# HELP container_cpu_usage_seconds CPU seconds.\n# TYPE container_cpu_usage_seconds counter\n")
        for pod in POD_NAMES:
            acc = 0.0
            for t in _minutes(3):
                acc += (0.49 if follows == "cpu" and slow(t) else 0.2) * 60
                out.write(
                    f'container_cpu_usage_seconds_total{{container="api",namespace="{NAMESPACE}",pod="{pod}"}} '
                    f"{acc:.1f} {t.timestamp():.0f}\n"
                )

    return write


# -- what the records must show -------------------------------------------------------------------------
def _action(record: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((a for a in record["actions"] if a["name"] == name), None)


def no_restart(record: dict[str, Any]) -> list[str]:
    restart = _action(record, "restart")
    return ["a rollout restart is recommended"] if restart and restart.get("recommended") else []


def lever(*words: str) -> Callable[[dict[str, Any]], list[str]]:
    """The recommended action's reason names the real lever (every word in ``words``), and no
    restart is recommended."""

    def check(record: dict[str, Any]) -> list[str]:
        reason = (record["diagnosis"].get("recommended_action") or {}).get("reason", "")
        missing = [w for w in words if w.lower() not in reason.lower()]
        return no_restart(record) + ([f"the recommendation {reason!r} does not name {missing}"] if missing else [])

    return check


def also_rollout(record: dict[str, Any]) -> list[str]:
    causes = record["diagnosis"].get("causes") or []
    return no_restart(record) + (
        [] if "rollout" in causes else [f"the recent rollout is not among the causes {causes}"]
    )


def blind_but_critical(record: dict[str, Any]) -> list[str]:
    """Prometheus down: the health and pod findings lead, the up check is listed as partial."""
    d, problems = record["diagnosis"], no_restart(record)
    if d["incomplete"] or d["headline"].startswith("INCOMPLETE"):
        problems.append("INCOMPLETE above measured critical findings")
    if not d["headline"].startswith("CRITICAL"):
        problems.append(f"the headline does not lead with the critical finding: {d['headline']}")
    if "Scrape targets (up)" not in d["partial"] or "partial:" not in d["headline"]:
        problems.append(f"partial does not list the up check: {d['partial']}")
    up = next((f for f in record["findings"] if f["check"] == "Scrape targets (up)"), {})
    if up.get("verdict") != "unchecked" or "prometheus" not in up.get("summary", "").lower():
        problems.append(f"the up check does not say Prometheus could not be asked: {up.get('summary')}")
    if "dependency_down" in (d.get("causes") or []):
        problems.append("Prometheus (a backend of the runbook, not of the service) named as a cause")
    return problems


def restart_for_wedged(record: dict[str, Any]) -> list[str]:
    restart = _action(record, "restart")
    return [] if restart and restart.get("recommended") else ["wedged pods: the restart is not recommended"]


def scale_to(replicas: int) -> Callable[[dict[str, Any]], list[str]]:
    def check(record: dict[str, Any]) -> list[str]:
        params = (record["diagnosis"].get("recommended_action") or {}).get("params") or {}
        got = params.get("to_replicas")
        return [] if got == replicas else [f"scale to {got}, want {replicas}"]

    return check


def escalates_to(who: str) -> Callable[[dict[str, Any]], list[str]]:
    def check(record: dict[str, Any]) -> list[str]:
        action = record["diagnosis"].get("recommended_action") or {}
        problems = [] if who in action.get("title", "") else [f"escalates as {action.get('title')!r}, not to {who}"]
        if record["diagnosis"]["incomplete"]:
            problems.append("incomplete although the alert's expression was evaluated")
        return problems

    return check


# -- injections -------------------------------------------------------------------------------------
def _service_down(bench: Bench, job: str, rollout_at: datetime, break_pods: str, health: list[str]) -> Setup:
    """api-gateway rolled out at ``rollout_at``, its pods broken by the FakeKube method
    ``break_pods``, ``up`` of ``job`` from the shared data set, these health URLs."""
    kube = bench.kube()
    kube.add_api_gateway(NAMESPACE, rollout_at, cpu_usage="100m", error_lines=0)
    getattr(kube, break_pods)(NAMESPACE)
    urls = "\n".join(f"    - {u}" for u in health)
    return Setup(
        env={
            "RUNBOOK_PROMETHEUS_URL": bench.prometheus("up", up_data),
            "KUBECONFIG": bench.kubeconfig(kube),
            "RUNBOOK_KUBE_NAMESPACE": NAMESPACE,
        },
        parameters=f"service:\n  deployment: api-gateway\n  probe_timeout_s: 1\n  health_urls:\n{urls}\n",
        labels={"job": job, "instance": "10.1.0.1:8080"},
    )


def _refused_url(bench: Bench) -> str:
    return f"http://{bench.refused()}/healthz"


@contextlib.contextmanager
def oom_killed(bench: Bench, work: Path) -> Iterator[Setup]:
    """Every pod OOMKilled over and over, on a revision three days old."""
    yield _service_down(bench, "oom-job", OLD, "oom_kill_pods", [bench.health(503), _refused_url(bench)])


@contextlib.contextmanager
def unschedulable(bench: Bench, work: Path) -> Iterator[Setup]:
    """Two of three pods Pending: "0/3 nodes are available: 3 Insufficient memory."."""
    yield _service_down(bench, "sched-job", OLD, "unschedulable_pods", [bench.health(200), _refused_url(bench)])


@contextlib.contextmanager
def crash_after_rollout(bench: Bench, work: Path) -> Iterator[Setup]:
    """Revision 7 rolled out 5 minutes before the alert; its pods exit with an error at start."""
    yield _service_down(bench, "crash-job", RECENT, "crash_loop_pods", [_refused_url(bench)])


@contextlib.contextmanager
def image_pull(bench: Bench, work: Path) -> Iterator[Setup]:
    """Revision 7 (Recreate) rolled out 5 minutes before the alert; its image tag does not exist."""
    yield _service_down(bench, "pull-job", RECENT, "image_pull_pods", [_refused_url(bench)])


@contextlib.contextmanager
def wedged(bench: Bench, work: Path) -> Iterator[Setup]:
    """Every pod runs, no restarts, and fails its readiness probe; no recent rollout."""
    yield _service_down(bench, "wedged-job", OLD, "wedge_pods", [bench.health(503)])


@contextlib.contextmanager
def health_down_prometheus_down(bench: Bench, work: Path) -> Iterator[Setup]:
    """Prometheus does not answer (the runbook's own backend, not the service's); the three
    health URLs fail; of the pods one crash-loops, one was OOMKilled, one cannot be scheduled."""
    setup = _service_down(
        bench, "api-gateway", OLD, "crash_pods", [bench.health(503), bench.health(502), _refused_url(bench)]
    )
    setup.env["RUNBOOK_PROMETHEUS_URL"] = f"http://{bench.refused()}"
    yield setup


@contextlib.contextmanager
def database_down(bench: Bench, work: Path) -> Iterator[Setup]:
    """PostgreSQL does not accept connections; the service's pods crash at start (they cannot
    connect), on a revision three days old."""
    setup = _service_down(bench, "db-job", OLD, "crash_loop_pods", [_refused_url(bench)])
    setup.env["RUNBOOK_POSTGRES_DSN"] = f"postgresql://api@{bench.refused()}/omnihub"
    yield setup


def database_named(record: dict[str, Any]) -> list[str]:
    causes = record["diagnosis"].get("causes") or []
    problems = lever("PostgreSQL", "database-down")(record)
    rollback = _action(record, "rollback")
    if rollback and rollback.get("recommended"):
        problems.append("a rollback is recommended for a database outage")
    return problems + ([] if "dependency_down" in causes else [f"dependency_down is not among the causes {causes}"])


def _latency(bench: Bench, key: str, follows: str, cpu: str) -> Setup:
    url = bench.prometheus(key, latency_data(NOW - timedelta(minutes=40), follows))
    kube = bench.kube()
    kube.add_api_gateway(NAMESPACE, OLD, cpu_usage=cpu, error_lines=0)
    return Setup(
        env={"RUNBOOK_PROMETHEUS_URL": url, "KUBECONFIG": bench.kubeconfig(kube), "RUNBOOK_KUBE_NAMESPACE": NAMESPACE},
        parameters="service:\n  deployment: api-gateway\n",
    )


@contextlib.contextmanager
def latency_saturated(bench: Bench, work: Path) -> Iterator[Setup]:
    """The slow endpoint slowed down 40 minutes ago as the pods' CPU rose to their limit (480m of 500m)."""
    yield _latency(bench, "latency-cpu", "cpu", "480m")


@contextlib.contextmanager
def latency_slow_database(bench: Bench, work: Path) -> Iterator[Setup]:
    """The slow endpoint slowed down 40 minutes ago as database query time rose; pods are idle."""
    yield _latency(bench, "latency-db", "db", "100m")


@contextlib.contextmanager
def unknown_alert(bench: Bench, work: Path) -> Iterator[Setup]:
    """An alert no catalog entry names, from our own Prometheus (its generatorURL's server is
    listed in prometheus.external_urls), its condition still true."""
    yield Setup(
        env={"RUNBOOK_PROMETHEUS_URL": bench.prometheus("up", up_data)},
        parameters="prometheus:\n  external_urls:\n    - http://127.0.0.1:9\n",
        labels={"team": "payments"},
    )


CASES = [
    Case(
        name="oom-killed",
        alertname="ServiceDown",
        runbook="service-down",
        cause="oom_killed",
        action="escalate",
        verdicts=("critical",),
        inject=oom_killed,
        what="every pod OOMKilled, no recent rollout",
        severity="critical",
        expect=lever("memory limit", "512Mi", "restart cannot help"),
    ),
    Case(
        name="unschedulable-memory",
        alertname="ServiceDown",
        runbook="service-down",
        cause="unschedulable",
        action="escalate",
        verdicts=("warning", "critical"),
        inject=unschedulable,
        what="2/3 pods Pending: Insufficient memory",
        severity="critical",
        expect=lever("Insufficient memory", "node pool", "requests"),
    ),
    Case(
        name="crash-loop-after-rollout",
        alertname="ServiceDown",
        runbook="service-down",
        cause="crash_loop",
        action="rollback",
        verdicts=("critical",),
        inject=crash_after_rollout,
        what="CrashLoopBackOff 5 min after revision 7",
        severity="critical",
        expect=also_rollout,
    ),
    Case(
        name="image-pull-new-revision",
        alertname="ServiceDown",
        runbook="service-down",
        cause="image_pull",
        action="rollback",
        verdicts=("critical",),
        inject=image_pull,
        what="ImagePullBackOff on revision 7 (Recreate)",
        severity="critical",
        expect=also_rollout,
    ),
    Case(
        name="health-down-prometheus-down",
        alertname="ServiceDown",
        runbook="service-down",
        cause="oom_killed",
        action="escalate",
        verdicts=("critical",),
        inject=health_down_prometheus_down,
        what="3/3 health URLs fail, pods OOMKilled/crashing, Prometheus refused",
        severity="critical",
        expect=blind_but_critical,
    ),
    Case(
        name="wedged-pods",
        alertname="ServiceDown",
        runbook="service-down",
        cause="probe_failing",
        action="restart",
        verdicts=("critical",),
        inject=wedged,
        what="pods running, readiness failing, no rollout",
        severity="critical",
        expect=restart_for_wedged,
    ),
    Case(
        name="database-down-pods-crash",
        alertname="ServiceDown",
        runbook="service-down",
        cause="crash_loop",
        action="escalate",
        verdicts=("critical",),
        inject=database_down,
        what="PostgreSQL refuses, pods crash at start",
        severity="critical",
        expect=database_named,
    ),
    Case(
        name="latency-cpu-saturation",
        alertname="HighLatency",
        runbook="high-latency",
        cause="saturation",
        action="scale",
        verdicts=("warning",),
        inject=latency_saturated,
        what="p95 up with pod CPU at its limit",
        expect=scale_to(5),
    ),
    Case(
        name="latency-slow-database",
        alertname="HighLatency",
        runbook="high-latency",
        cause="dependency_slow",
        action="escalate",
        verdicts=("warning",),
        inject=latency_slow_database,
        what="p95 up with database query time",
        expect=lever("database query time"),
    ),
    Case(
        name="unknown-alert",
        alertname="PaymentWebhookLag",
        runbook="triage",
        cause=None,
        action="escalate",
        verdicts=("warning",),
        inject=unknown_alert,
        what="an alert no catalog entry names, still true",
        expect=escalates_to("payments"),
    ),
]


# -- deployment-failure: no alert routes to it (the deploy pipeline or on-call runs it by name) ---------
def _stuck(bench: Bench, how: str) -> Setup:
    kube = bench.kube()
    kube.add_api_gateway(NAMESPACE, RECENT, cpu_usage="100m", error_lines=0)
    getattr(kube, how)(NAMESPACE)
    return Setup(
        env={
            "RUNBOOK_PROMETHEUS_URL": f"http://{bench.refused()}",  # no canary traffic to compare
            "KUBECONFIG": bench.kubeconfig(kube),
            "RUNBOOK_KUBE_NAMESPACE": NAMESPACE,
        },
        parameters="service:\n  deployment: api-gateway\n",
    )


@contextlib.contextmanager
def rollout_stuck(bench: Bench, work: Path) -> Iterator[Setup]:
    """Revision 7 changed the image and environment; its rollout passed its progress deadline."""
    yield _stuck(bench, "break_rollout")


@contextlib.contextmanager
def rollout_image_pull(bench: Bench, work: Path) -> Iterator[Setup]:
    """Revision 7's image cannot be pulled: its one new pod waits in ImagePullBackOff, revision 6 serves on."""
    yield _stuck(bench, "image_pull_rollout")


def stuck_rollback(record: dict[str, Any]) -> list[str]:
    plan = (_action(record, "rollback") or {}).get("plan") or {}
    return [] if plan.get("to_revision") == 6 else [f"the rollback goes to {plan.get('to_revision')}, not 6"]


# deployment-failure is started by the deploy pipeline (a "manual" runbook: run_case names it)
CASES += [
    Case(
        name="deployment-stuck",
        alertname="DeployPipelineRolloutFailed",
        runbook="deployment-failure",
        cause="rollout_stuck",
        action="rollback",
        verdicts=("critical",),
        inject=rollout_stuck,
        what="ProgressDeadlineExceeded, pods fine",
        expect=stuck_rollback,
    ),
    Case(
        name="deployment-image-pull",
        alertname="DeployPipelineRolloutFailed",
        runbook="deployment-failure",
        cause="image_pull",
        action="rollback",
        verdicts=("critical",),
        inject=rollout_image_pull,
        what="new revision ImagePullBackOff, rollout stuck",
        expect=stuck_rollback,
    ),
]
