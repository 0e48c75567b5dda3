"""Layered settings: the models (every field documented) and how they are loaded.

defaults.yaml < environments/<env>.yaml < RUNBOOK_* environment variables < explicit overrides.

Secrets come only from the environment or ``*_FILE`` paths (see :mod:`runbook_lib.core.credentials`).
Nothing is read at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from runbook_lib.core.credentials import (
    SECRET_ENV_MAP,
    URL_SECRETS,
    reject_short_secrets,
    reject_yaml_secrets,
    safe_endpoint,
    secret_from_env,
    secret_parts,
)
from runbook_lib.core.errors import ConfigError
from runbook_lib.core.signing import MAX_TTL_S

PACKAGE_HOME = Path(__file__).resolve().parents[2]  # runbook_lib/core/settings.py -> the project home


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class PrometheusSettings(_Section):
    url: str | None = None
    """Base URL of the Prometheus HTTP API (RUNBOOK_PROMETHEUS_URL); None: not configured."""
    timeout_s: float = 10.0
    """Client timeout per request; Prometheus is told to give up 0.5 s earlier."""
    verify_tls: bool = True
    """Verify the server's TLS certificate."""
    bearer_token: SecretStr | None = None
    """Bearer token for a protected Prometheus (RUNBOOK_PROMETHEUS_TOKEN[_FILE] only)."""
    external_urls: list[str] = Field(default_factory=list)
    """Other base URLs of the same Prometheus (its --web.external-url): triage runs a generatorURL's
    expression only when the URL points at ``url`` or one of these."""
    max_expression_chars: int = Field(default=2000, ge=1)
    """Longest expression triage takes from a generatorURL."""


class PostgresSettings(_Section):
    dsn: SecretStr | None = None
    """The OmniHub database, URL or key=value DSN (RUNBOOK_POSTGRES_DSN[_FILE]); may hold a password."""
    connect_timeout_s: float = 5.0
    """Seconds to wait for a connection."""
    statement_timeout_ms: int = 5000
    """Server-side statement_timeout for every runbook query."""
    lock_timeout_ms: int = 1000
    """Server-side lock_timeout: a diagnosis query never queues long behind the lock it diagnoses."""
    drill_dsn: SecretStr | None = None
    """The server where the DR drill creates (and drops) its scratch database, any database on it
    (RUNBOOK_POSTGRES_DRILL_DSN[_FILE]); None: the source's own server. Needs CREATEDB."""
    bin_dir: str | None = None
    """Where pg_dump and pg_restore live (the DR drill); default: the newest
    /usr/lib/postgresql/*/bin, then PATH. They must be at least the server's major version."""
    tables: list[str] = Field(default_factory=lambda: ["profiles", "workflows", "approval_queue", "audit_logs"])
    """The core tables whose row counts the integrity check and the DR drill compare."""
    append_only: list[str] = Field(default_factory=lambda: ["audit_logs"])
    """Tables that only ever grow: any drop in their row count is critical."""


class RedisSettings(_Section):
    url: SecretStr | None = None
    """redis:// URL (RUNBOOK_REDIS_URL[_FILE]); may hold a password."""
    timeout_s: float = 3.0
    """Connect and socket timeout."""


class RabbitMQSettings(_Section):
    url: SecretStr | None = None
    """amqp:// URL with the vhost (RUNBOOK_RABBITMQ_URL[_FILE]); may hold a password."""
    timeout_s: float = 5.0
    """Connect and blocked-connection timeout."""
    dlq_queue: str = "dead_letter_queue"
    """The dead-letter queue the DLQBacklog alert watches."""
    sample_size: int = Field(default=200, ge=1, le=10000)
    """Dead letters peeked (and put back) to group by x-death reason and original queue."""
    max_replays: int = Field(default=3, ge=1)
    """A dead letter already replayed this often is refused by the replay tool (left in the DLQ)."""
    management_url: str | None = None
    """The broker's management API, e.g. http://rabbitmq:15672 (RUNBOOK_RABBITMQ_MANAGEMENT_URL),
    asked with the login of ``url``: a replay sends a dead letter back only to a queue the broker
    says dead-letters into that DLQ. None: ``dead_letter_sources`` says which queues."""
    dead_letter_sources: list[str] = Field(default_factory=list)
    """Without a management API: the queues that dead-letter into ``dlq_queue``, the only ones a
    replay sends dead letters back to (RUNBOOK_DLQ_SOURCES, comma-separated). Empty: nothing is
    replayed (the dry run says why)."""

    @field_validator("dead_letter_sources", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    depth_warn: int = 100
    """DLQ depth that the DLQBacklog alert fires above."""
    quiet_s: float = Field(default=600.0, gt=0)
    """No dead letter for this long (its x-death time), with consumers on the queue they came
    from: the consumer works again and the dlq-backlog runbook recommends a replay. Less: the
    consumer is taken as still failing, and replaying would only send them back."""


class RpcProvider(_Section):
    name: str
    """Short name, used in findings and by the switch-provider option."""
    url: str
    """JSON-RPC URL; may contain ``{api_key}``, filled from the variable named by api_key_env."""
    api_key_env: str | None = None
    """Environment variable holding the provider's API key (its name must end in API_KEY, TOKEN
    or SECRET so that every record redacts it)."""


class BlockchainSettings(_Section):
    providers: list[RpcProvider] = Field(default_factory=list)
    """Ethereum JSON-RPC providers, in order of preference."""
    primary: str | None = None
    """Name of the provider the platform uses now (switched by the runbook's guarded option)."""
    chain_id: int | None = None
    """Expected chain id; a provider on another chain is a finding."""
    timeout_s: float = 5.0
    """Per-call timeout."""
    block_lag_warn: int = 5
    """Blocks behind the best provider that make a provider lagging."""
    block_lag_critical: int = 30
    """Blocks behind that make it unusable."""


class KubernetesSettings(_Section):
    kubeconfig: str | None = None
    """Path of the kubeconfig (KUBECONFIG); no fallback to ~/.kube/config."""
    context: str | None = None
    """kubeconfig context to use (RUNBOOK_KUBE_CONTEXT); None: the current one."""
    namespace: str = "omnihub-prod"
    """Namespace of the OmniHub workloads (RUNBOOK_KUBE_NAMESPACE)."""
    timeout_s: float = 10.0
    """Read timeout per API call (connect timeout is at most 5 s)."""


class MetricNames(_Section):
    http_requests: str = "http_requests_total"
    """Counter of HTTP requests."""
    status_label: str = "status"
    """Label holding the HTTP status code."""
    endpoint_label: str = "endpoint"
    """Label holding the endpoint (route)."""
    error_status_regex: str = "5.."
    """Statuses that count as errors (a PromQL regex)."""
    job_label: str = "job"
    """Label naming the scrape job."""
    api_job: str = "api-gateway"
    """Job name of the API gateway."""
    latency_histogram: str = "http_request_duration_seconds"
    """Histogram of request durations (base name, without _bucket)."""
    version_label: str = "version"
    """Label carrying the release version (canary against stable)."""
    db_query_duration: str = "omnihub_db_query_duration_seconds"
    """Histogram of the application's database query durations (base name)."""
    pod_cpu: str = "container_cpu_usage_seconds_total"
    """cAdvisor CPU counter of the service's containers."""
    pod_label: str = "pod"
    """Label naming the pod in cAdvisor series."""
    queue_messages: str = "rabbitmq_queue_messages"
    """RabbitMQ exporter gauge of messages in a queue (label ``queue``)."""
    database_up: str = "pg_up"
    """postgres_exporter's gauge: 1 while it reaches the database (the database-availability SLI)."""
    workflows_total: str = "omnihub_workflows_total"
    """Counter of finished workflows by outcome (the workflow-success SLI)."""
    executions_total: str = "omnihub_executions_total"
    """Counter of finished executions by outcome (the execution-success SLI)."""
    outcome_label: str = "status"
    """Label holding a workflow's or execution's outcome."""
    failed_outcome: str = "failed"
    """The outcome that counts against the success SLOs."""
    emergency_control: str = "omnihub_emergency_control_enabled"
    """Gauge of each emergency control (label ``control``), 1 = on (the Operator dashboard)."""
    approvals_pending: str = "omnihub_approval_queue_pending"
    """Gauge of pending approvals (ApprovalQueueBacklog, dashboards)."""
    approval_oldest_pending: str = "omnihub_approval_oldest_pending_seconds"
    """Gauge: age of the oldest pending approval."""
    approvals_decided: str = "omnihub_approvals_decided_total"
    """Counter of approval decisions (label ``decision``)."""
    workflows_active: str = "omnihub_workflows_active"
    """Gauge of workflows by state (label ``state``)."""
    node_cpu: str = "node_cpu_seconds_total"
    """node_exporter's CPU time counter (label ``mode``)."""
    node_memory_available: str = "node_memory_MemAvailable_bytes"
    """node_exporter: available memory."""
    node_memory_total: str = "node_memory_MemTotal_bytes"
    """node_exporter: total memory."""
    kube_pod_info: str = "kube_pod_info"
    """kube-state-metrics: one series per pod."""
    volume_used: str = "kubelet_volume_stats_used_bytes"
    """kubelet: bytes used on a persistent volume claim."""
    volume_capacity: str = "kubelet_volume_stats_capacity_bytes"
    """kubelet: a persistent volume claim's capacity."""
    database_size: str = "pg_database_size_bytes"
    """postgres_exporter: database size."""
    pg_connections: str = "pg_stat_activity_count"
    """postgres_exporter: sessions (by state, application)."""
    pg_max_connections: str = "pg_settings_max_connections"
    """postgres_exporter: max_connections."""
    redis_memory_used: str = "redis_memory_used_bytes"
    """redis_exporter: memory used."""
    redis_memory_max: str = "redis_memory_max_bytes"
    """redis_exporter: maxmemory."""
    redis_hits: str = "redis_keyspace_hits_total"
    """redis_exporter: keyspace hits."""
    redis_misses: str = "redis_keyspace_misses_total"
    """redis_exporter: keyspace misses."""
    redis_commands: str = "redis_commands_processed_total"
    """redis_exporter: commands processed."""


class ServiceSettings(_Section):
    name: str = "api-gateway"
    """The service the HTTP runbooks diagnose."""
    deployment: str = "api-gateway"
    """Its Kubernetes deployment."""
    log_tail_lines: int = 200
    """Lines of each pod's log to scan for error patterns."""
    error_patterns: dict[str, str] = Field(default_factory=dict)
    """Pattern name -> Python regex counted in pod logs."""
    health_urls: list[str] = Field(default_factory=list)
    """URLs probed directly by service-down (each instance's health endpoint)."""
    probe_timeout_s: float = 3.0
    """Timeout of each health probe."""


class Thresholds(_Section):
    availability_objective: float = 0.999
    """The API availability SLO."""
    endpoint_dominance: float = 0.5
    """One endpoint with at least this share of the 5xx 'dominates'."""
    rollout_suspect_window_s: float = 1800
    """A rollout this long before the spike is a suspect."""
    spike_lookback_s: float = 10800
    """How far back to look for the start of the spike."""
    pod_cpu_saturation: float = 0.85
    """CPU usage / limit at or above this is saturated."""
    pod_memory_saturation: float = 0.9
    """Memory usage / limit at or above this is saturated."""
    redis_latency_warn_ms: float = 50
    """A slower Redis PING is a warning."""
    postgres_latency_warn_ms: float = 200
    """A slower PostgreSQL health query is a warning."""
    postgres_connections_warn: float = 0.8
    """Share of max_connections in use that is a warning (HighDatabaseConnections fires here)."""
    postgres_connections_critical: float = 0.95
    """Share of max_connections in use that is critical: new connections are about to fail."""
    postgres_idle_in_transaction_s: float = 300
    """A session idle in transaction longer than this holds locks and snapshots: flagged."""
    postgres_lock_wait_s: float = 30
    """A session waiting on a lock longer than this is blocked: flagged."""
    postgres_slow_query_s: float = 5
    """A statement running (or averaging) longer than this is slow (high-latency)."""
    latency_correlation: float = 0.8
    """Pearson correlation at or above which latency "follows" another signal."""
    postgres_ddl_s: float = 60
    """Schema changes (ALTER, CREATE INDEX, ...) running longer than this are flagged."""
    postgres_replication_lag_s: float = 30
    """A standby replaying more than this behind is lagging."""
    row_count_drop: float = 0.01
    """A table (not append-only) with this share fewer rows than its baseline is a warning; five
    times this share is critical."""
    approval_pending_warn: int = 50
    """Pending approvals above this are a backlog (ApprovalQueueBacklog fires here)."""
    approval_age_warn_s: float = 3600
    """A pending approval older than this has waited too long."""
    approval_expiry_s: float = 86400
    """A pending approval older than this should have expired; the expiry job is not keeping up."""
    dr_rpo_s: float = 900
    """DR drill target: at most this much data lost (failure time - backup time)."""
    dr_rto_s: float = 3600
    """DR drill target: restored and verified within this from the failure being declared."""


class KernelSettings(_Section):
    kernel_name: str = "python3"
    """Jupyter kernel that runs the runbooks."""
    cell_timeout_s: float = 120
    """Longest a single cell may run (RUNBOOK_CELL_TIMEOUT); then the record is timed_out."""
    start_timeout_s: float = 60
    """Longest a kernel may take to start."""
    warm_kernels: int = Field(default=1, ge=0, le=16)
    """Kernels kept forked and started ahead of time per worker (0: every run starts a cold kernel)."""
    warm_wait_s: float = Field(default=2.0, ge=0)
    """Longest a run waits for a warm kernel before it starts a cold one."""
    template_start_timeout_s: float = Field(default=60.0, gt=0)
    """Longest the kernel template may take to import everything and listen."""
    kernel_memory_mb: int | None = Field(default=4096, ge=256)
    """Address-space limit of each warm kernel (RLIMIT_AS); None: no limit."""


class ArchiveSettings(_Section):
    path: str = "executed"
    """Where records are archived (RUNBOOK_ARCHIVE): a directory (relative paths are under the
    project home), ``file:///absolute/path``, or ``s3://bucket/prefix`` (S3 or an S3-compatible
    store; several hosts may write one archive at once). Never with credentials in it."""
    endpoint: str | None = None
    """The S3 endpoint of an s3:// archive (RUNBOOK_ARCHIVE_ENDPOINT), e.g. http://minio:9000;
    None: botocore's AWS_ENDPOINT_URL, else AWS. Credentials come from the standard AWS variables
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE) or an instance role."""
    interactive_keep_days: float = Field(default=14.0, gt=0)
    """Working copies of `runbook open` that were archived (`runbook archive`) are removed after
    this many days; unarchived ones are kept and listed by `runbook open --list`."""

    @field_validator("path")
    @classmethod
    def _known_location(cls, value: str) -> str:
        archive_location(value)  # raises ValueError naming what is wrong (never a credential)
        return value

    @field_validator("endpoint")
    @classmethod
    def _plain_endpoint(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if "@" in parts.netloc:
            raise ValueError("must not contain credentials: give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http:// or https:// URL of the S3 service, e.g. http://127.0.0.1:9000")
        return value.strip()


# The local working directory of an archive in S3 (under the project home): runs stage here, and
# the receiver keeps its locks, its default journal and interactive notebooks here.
REMOTE_WORK_DIR = ".runbook"
S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def archive_location(raw: str) -> tuple[str, str]:
    """Where ``archive.path`` points: ``("local", the path as given)`` for a plain path or a
    ``file://`` URL, ``("s3", "s3://bucket/prefix")`` (normalised: no trailing slash, no empty
    segment) for S3. Raises ValueError saying what is wrong; the message never repeats a value
    that holds credentials."""
    text = raw.strip()
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if not scheme:
        if not text:
            raise ValueError("is empty: give a directory, file:///absolute/path or s3://bucket/prefix")
        return "local", raw
    name = scheme.group(1).lower()
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise ValueError(
            "must not contain credentials: give them in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, never in the URL"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{name}:// URL may have no query or fragment")
    if name == "file":
        path = unquote(parts.path)
        if parts.netloc not in ("", "localhost") or not path.startswith("/"):
            raise ValueError("a file:// URL names an absolute local path: file:///absolute/path")
        return "local", path
    if name == "s3":
        if not S3_BUCKET.fullmatch(parts.netloc):
            raise ValueError(f"{safe_endpoint(text)}: s3:// needs a bucket name (lowercase letters, digits, '.', '-')")
        segments = [s for s in parts.path.split("/") if s]
        if any(s in (".", "..") for s in segments):
            raise ValueError(f"{safe_endpoint(text)}: the prefix may not contain '.' or '..' segments")
        prefix = "/".join(segments)
        return "s3", f"s3://{parts.netloc}/{prefix}" if prefix else f"s3://{parts.netloc}"
    raise ValueError(f"{name}:// is not supported: use a directory, file:///absolute/path or s3://bucket/prefix")


class ReceiverSettings(_Section):
    host: str = "127.0.0.1"
    """Address `runbook serve` listens on."""
    port: int = 9095
    """Port `runbook serve` listens on."""
    workers: int = Field(default=2, ge=1, le=64)
    """Worker processes running diagnoses (RUNBOOK_WORKERS); local executor only."""
    executor: Literal["local", "celery"] = "local"
    """Who runs the diagnoses (RUNBOOK_EXECUTOR): "local", the receiver's own worker processes,
    or "celery", `runbook worker` processes anywhere, fed through the broker."""
    broker_url: SecretStr | None = None
    """The Celery broker, amqp://user:password@host:5672/vhost (RUNBOOK_BROKER_URL[_FILE]);
    needed by the celery executor and by `runbook worker`."""
    celery_queue: str = "runbook.runs"
    """The broker queue runs are sent to (durable; `runbook worker` consumes it)."""
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest webhook body accepted; larger is 413."""
    journal: str | None = None
    """Intake journal path (RUNBOOK_JOURNAL); None: <archive>/intake.sqlite3."""
    poll_interval_s: float = Field(default=0.02, gt=0)
    """How often an idle worker looks for a queued job (a lock-free read)."""
    max_attempts: int = Field(default=2, ge=1)
    """Runs of one job before an interruption gives an 'interrupted' record."""
    journal_busy_timeout_s: float = Field(default=5.0, gt=0)
    """A journal write waiting longer than this answers 503 (Alertmanager retries)."""
    max_runs_per_notification: int = Field(default=100, ge=1)
    """New firing alerts of one notification that get a run each; the rest are grouped."""
    max_runs_per_window: int = Field(default=1000, ge=1)
    """New firing alerts per ``run_window_s`` that get a run each; the rest are grouped."""
    run_window_s: float = Field(default=300, gt=0)
    """The window of ``max_runs_per_window``."""
    link_window_s: float = Field(default=600, ge=0)
    """Firing alerts of one Alertmanager group routed to the same runbook within this long are
    diagnosed by one run; the others are linked to its record (0: run each)."""
    token: SecretStr | None = None
    """Bearer token Alertmanager sends (RUNBOOK_WEBHOOK_TOKEN[_FILE])."""
    basic_user: str | None = None
    """Basic-auth user Alertmanager sends (RUNBOOK_WEBHOOK_USER)."""
    basic_password: SecretStr | None = None
    """Basic-auth password (RUNBOOK_WEBHOOK_PASSWORD[_FILE])."""
    broker_signing_key: SecretStr | None = None
    """Key the receiver and `runbook worker` sign and check every task and completion report on
    the broker with (RUNBOOK_BROKER_SIGNING_KEY[_FILE]; at least 32 characters, e.g. ``openssl
    rand -hex 32``); needed by the celery executor. Unsigned or altered messages are parked
    (``<celery_queue>.parked``), never run or believed: the broker's credentials alone cannot
    drive runs."""
    retry_max_s: float = Field(default=30.0, gt=0, le=600)
    """Longest pause between two tries of a job that met an environmental failure (RUNBOOK_RETRY_MAX_S);
    the pause starts at 1 s and doubles."""
    restart_worker_after: int = Field(default=5, ge=1)
    """Tries in a row that failed for a reason of the worker's own process (too many open files,
    out of memory) before the worker restarts itself (a fresh process frees what leaked)."""
    stuck_after_s: float = Field(default=1800.0, gt=0)
    """A job running (or sent to a worker) longer than this shows /healthz degraded: no run of
    the collection takes so long (each cell is cut at kernels.cell_timeout_s)."""

    @field_validator("broker_signing_key")
    @classmethod
    def _broker_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)")
        return value


class NotifySettings(_Section):
    slack_webhook_url: SecretStr | None = None
    """Slack incoming-webhook URL (RUNBOOK_SLACK_WEBHOOK_URL[_FILE]); None: no Slack messages."""
    pagerduty_url: str = "https://events.pagerduty.com/v2/enqueue"
    """PagerDuty Events v2 endpoint (RUNBOOK_PAGERDUTY_URL)."""
    pagerduty_routing_key: SecretStr | None = None
    """PagerDuty routing key (RUNBOOK_PAGERDUTY_ROUTING_KEY[_FILE]); None: no pages."""
    record_base_url: str | None = None
    """Base URL for record links in messages, e.g. http://runbooks.internal:9095 (RUNBOOK_RECORD_BASE_URL)."""
    page_incomplete: bool = False
    """Page PagerDuty even when the diagnosis is incomplete (no essential check could be made)."""
    link_signing_key: SecretStr | None = None
    """Key that signs the record links in Slack and PagerDuty messages, ``/r/<id>?exp=&sig=``
    (RUNBOOK_LINK_SIGNING_KEY[_FILE]; at least 32 characters, e.g. ``openssl rand -hex 32``): a
    browser opens that one record without the receiver's credentials until the link expires.
    None: messages link ``/records/<id>`` (credentials needed) and ``GET /r/...`` answers 404."""
    link_ttl_s: int = Field(default=7 * 86400, ge=60, le=MAX_TTL_S)
    """How long a signed record link stays valid, in seconds (7 days; at most 365 days)."""
    timeout_s: float = 5.0
    """Timeout per notification request."""

    @field_validator("link_signing_key")
    @classmethod
    def _signing_key_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)")
        return value


class IncidentSettings(_Section):
    """The human half of an incident: who escalates, the Slack and PagerDuty ways in, approvals."""

    escalation: Literal["auto", "receiver", "pagerduty", "off"] = "auto"
    """Who escalates an unacknowledged SEV-1/SEV-2 incident (RUNBOOK_ESCALATION): "receiver" runs
    the package's policy itself (durable timers in the journal, messages to Slack); "pagerduty":
    PagerDuty's escalation policy does, and its webhooks are chained as events, the receiver never
    escalates; "off": nobody (a test or a quiet environment); "auto": "pagerduty" when a PagerDuty
    routing key or webhook secret is set, else "receiver". Never both (Settings.escalation_mode)."""
    escalate_after_s: list[float] = Field(default_factory=lambda: [900.0, 1800.0])
    """When an unacknowledged incident escalates, from its alert's startsAt: 15 minutes to the
    secondary and the senior SRE, 30 minutes to the incident commander and the manager."""
    escalation_poll_s: float = Field(default=15.0, gt=0)
    """How often the receiver looks for a due escalation."""
    slack_signing_secret: SecretStr | None = None
    """The Slack app's signing secret (RUNBOOK_SLACK_SIGNING_SECRET[_FILE]): every request to
    ``POST /slack/actions`` must carry its v0 signature; None: the endpoint answers 404."""
    slack_response_hosts: list[str] = Field(default_factory=lambda: ["hooks.slack.com"])
    """Hosts a Slack interaction's ``response_url`` may point at; others are never called."""
    signature_window_s: int = Field(default=300, ge=30, le=900)
    """A signed Slack request older (or newer) than this is refused: Slack's 5-minute replay window."""
    pagerduty_webhook_secret: SecretStr | None = None
    """The PagerDuty v3 webhook subscription's secret (RUNBOOK_PAGERDUTY_WEBHOOK_SECRET[_FILE]);
    None: ``POST /pagerduty/webhook`` answers 404."""
    pagerduty_pages: bool = False
    """True where only this receiver pages PagerDuty (Alertmanager has no pagerduty_configs): it
    then also sends the resolve once every alert of the group has resolved, since nobody else
    would. False (the generated Alertmanager configuration pages PagerDuty itself, send_resolved)."""
    two_person: dict[str, bool] = Field(default_factory=dict)
    """Per action (approval name), whether a second, different person must approve it from chat;
    the default is on for the destructive ones (runbook_lib.sre.lifecycle.DESTRUCTIVE)."""
    two_person_window_s: float = Field(default=900.0, gt=0)
    """How long a first approval of a two-person action waits for the second."""
    dlq_replay_two_person_over: int = Field(default=100, ge=0)
    """A DLQ replay of more letters than this needs two people."""


class LinkSettings(_Section):
    prometheus_url: str | None = None
    """Prometheus as people reach it, for "open in Prometheus" links (RUNBOOK_PROMETHEUS_LINK_URL);
    None: prometheus.url."""
    grafana_url: str | None = None
    """Grafana's base URL (RUNBOOK_GRAFANA_URL); None: no Grafana links."""
    grafana_dashboard: str | None = "/d/omnihub-api-gateway"
    """Path of the dashboard records link to, on grafana_url."""
    alertmanager_url: str | None = None
    """Alertmanager as people reach it (RUNBOOK_ALERTMANAGER_URL). An alert's own links (its
    runbook_url and generatorURL) are clickable in a record only when they point at this, at
    Prometheus (prometheus.url, prometheus.external_urls, links.prometheus_url) or at
    monitoring.runbook_base_url; other hosts are shown as text."""


class GrowthRow(_Section):
    metric: str
    """What grows (the package's growth table)."""
    current: float
    """The package's figure for now."""
    six_months: float
    twelve_months: float
    trigger: str
    """When to scale, in the package's words."""


class CapacitySettings(_Section):
    lookback: str = "3d"
    """How much history the capacity report fits its trends to."""
    database_disk_bytes: float | None = None
    """Size of the database's volume; None: disk use is not projected."""
    cpu_trigger: float = 0.7
    """CPU use of the pods' limits at which to scale horizontally (the HPA's target)."""
    memory_trigger: float = 0.8
    """Memory use of the pods' limits at which to scale."""
    disk_trigger: float = 0.8
    """Database disk use at which to grow storage."""
    connections_trigger: float = 0.8
    """Share of max_connections at which to add a pooler or raise the limit."""
    hpa_min_replicas: int = 3
    """The package's HPA: minimum replicas."""
    hpa_max_replicas: int = 20
    """The package's HPA: maximum replicas."""
    growth: list[GrowthRow] = Field(default_factory=list)
    """The package's growth projections (parameters/defaults.yaml)."""


class MonitoringSettings(_Section):
    """What ``runbook generate`` writes into the Alertmanager configuration and the alert
    annotations. Endpoints and file paths only: secrets are read by Alertmanager from files."""

    runbook_base_url: str = "https://runbooks.omnihub.dev"
    """The receiver as people reach it: alerts' runbook_url is <this>/runbooks/<slug>."""
    receiver_url: str = "https://runbooks.omnihub.dev/alerts"
    """Where Alertmanager posts (the receiver's POST /alerts)."""
    receiver_token_file: str = "/etc/alertmanager/secrets/runbook-token"  # noqa: S105 (a path, not a secret)
    """Bearer token of the receiver, as a file Alertmanager reads."""
    pagerduty_routing_key_file: str = "/etc/alertmanager/secrets/pagerduty-routing-key"
    """PagerDuty Events v2 routing key, as a file."""
    slack_api_url_file: str = "/etc/alertmanager/secrets/slack-webhook-url"
    """Slack incoming-webhook URL, as a file."""
    slack_channel_critical: str = "#incidents"
    """Slack channel of critical alerts."""
    slack_channel_warning: str = "#alerts"
    """Slack channel of warnings."""
    email_to: str = "sre-team@omnihub.dev"
    """Who gets the daily digest of every alert."""
    email_from: str = "alertmanager@omnihub.dev"
    """The digest's sender."""
    smtp_smarthost: str = "smtp.omnihub.dev:587"
    """SMTP server (host:port) for the digest."""
    smtp_auth_password_file: str = "/etc/alertmanager/secrets/smtp-password"  # noqa: S105 (a path)
    """SMTP password, as a file (the login is email_from); no such file: no login."""
    smtp_require_tls: bool = True
    """``runbook digest --send`` upgrades the SMTP connection with STARTTLS (and refuses a server
    that does not offer it) before it logs in or sends; a smarthost on port 465 is TLS from the start."""
    digest_at: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    """UTC time of day (HH:MM) the daily digest is scheduled at (the CronJob's schedule); the
    digest's window ends at the latest such time, so each one covers one whole day."""


class Settings(_Section):
    env: str = "local"
    """Name of the environment file in parameters/environments/ (RUNBOOK_ENV)."""
    home: Path = PACKAGE_HOME
    """Project home holding parameters/ and runbooks/ (RUNBOOK_HOME)."""
    runbooks_dir: Path | None = None
    """Another runbook collection (RUNBOOK_RUNBOOKS_DIR); None: <home>/runbooks."""
    catalog_path: Path | None = None
    """Another catalog (RUNBOOK_CATALOG); None: <home>/parameters/catalog.yaml."""
    prometheus: PrometheusSettings = Field(default_factory=PrometheusSettings)
    """Prometheus endpoint."""
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    """PostgreSQL endpoint."""
    redis: RedisSettings = Field(default_factory=RedisSettings)
    """Redis endpoint."""
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    """Kubernetes API through a kubeconfig."""
    rabbitmq: RabbitMQSettings = Field(default_factory=RabbitMQSettings)
    """RabbitMQ (AMQP), for the dead-letter queue."""
    blockchain: BlockchainSettings = Field(default_factory=BlockchainSettings)
    """Ethereum JSON-RPC providers."""
    metrics: MetricNames = Field(default_factory=MetricNames)
    """Metric and label names the runbooks query."""
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    """The service the HTTP runbooks look at."""
    thresholds: Thresholds = Field(default_factory=Thresholds)
    """Where a measurement becomes a warning or critical finding."""
    kernels: KernelSettings = Field(default_factory=KernelSettings)
    """Notebook execution."""
    archive: ArchiveSettings = Field(default_factory=ArchiveSettings)
    """Where records are archived."""
    receiver: ReceiverSettings = Field(default_factory=ReceiverSettings)
    """The Alertmanager receiver."""
    notify: NotifySettings = Field(default_factory=NotifySettings)
    """Optional Slack/PagerDuty notifications."""
    incident: IncidentSettings = Field(default_factory=IncidentSettings)
    """Acknowledge, escalate, approve and resolve: Slack interactivity, PagerDuty webhooks."""
    links: LinkSettings = Field(default_factory=LinkSettings)
    """Where records and messages link to (Prometheus, Grafana)."""
    capacity: CapacitySettings = Field(default_factory=CapacitySettings)
    """The capacity report: triggers, the HPA's bounds, the package's growth table."""
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    """What the generated Alertmanager configuration and alert annotations point at."""

    @property
    def escalation_mode(self) -> str:
        """Who escalates here: incident.escalation, with "auto" resolved (PagerDuty configured:
        its escalation policy does; else this receiver)."""
        mode = self.incident.escalation
        if mode != "auto":
            return mode
        paged = self.notify.pagerduty_routing_key is not None or self.incident.pagerduty_webhook_secret is not None
        return "pagerduty" if paged else "receiver"

    @property
    def prometheus_link_base(self) -> str | None:
        return self.links.prometheus_url or self.prometheus.url

    @property
    def trusted_link_bases(self) -> list[str | None]:
        """Where an alert's own links may point and still be clickable (LinkSettings.alertmanager_url)."""
        return [
            self.prometheus.url,
            *self.prometheus.external_urls,
            self.links.prometheus_url,
            self.links.alertmanager_url,
            self.monitoring.runbook_base_url,
        ]

    # -- derived paths -------------------------------------------------------------------
    @property
    def parameters_dir(self) -> Path:
        return self.home / "parameters"

    @property
    def runbooks_path(self) -> Path:
        return self.runbooks_dir or (self.home / "runbooks")

    @property
    def catalog_file(self) -> Path:
        return self.catalog_path or (self.parameters_dir / "catalog.yaml")

    @property
    def archive_is_remote(self) -> bool:
        """The archive is in S3 (``s3://``), not in a local directory."""
        return archive_location(self.archive.path)[0] != "local"

    @property
    def archive_url(self) -> str:
        """The archive's location: its normalised ``s3://bucket/prefix``, or its local directory."""
        kind, where = archive_location(self.archive.path)
        return where if kind != "local" else str(self.archive_path)

    @property
    def archive_path(self) -> Path:
        """The archive's local directory: the archive itself when it is local; for an archive in
        S3, its local working directory ``<home>/.runbook`` (staging of runs in progress, the
        receiver's locks, its default journal ``intake.sqlite3``, interactive notebooks)."""
        kind, where = archive_location(self.archive.path)
        if kind != "local":
            return self.home / REMOTE_WORK_DIR
        p = Path(where).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def journal_path(self) -> Path:
        if self.receiver.journal:
            p = Path(self.receiver.journal).expanduser()
            return p if p.is_absolute() else self.home / p
        return self.archive_path / "intake.sqlite3"

    # -- secrets ---------------------------------------------------------------------------
    def secret_values(self) -> list[str]:
        """Every configured secret value, for redaction (longest first)."""
        found: set[str] = set()

        def visit(model: BaseModel, section: str) -> None:
            for name in type(model).model_fields:
                value = getattr(model, name)
                if isinstance(value, BaseModel):
                    visit(value, name)
                elif isinstance(value, SecretStr):
                    raw = value.get_secret_value()
                    found.update(secret_parts(raw, url_like=(section, name) in URL_SECRETS))
                elif isinstance(value, str) and name in (
                    "url",
                    "dsn",
                    "record_base_url",
                    "prometheus_url",
                    "grafana_url",
                    "alertmanager_url",
                    "management_url",
                ):
                    found.update(secret_parts(value, url_like=True))

        visit(self, "")
        return sorted((s for s in found if s), key=len, reverse=True)

    def describe(self, section: str) -> str:
        """A safe one-line description of a backend endpoint (never a password)."""
        value = getattr(self, section)
        raw = None
        for key in ("url", "dsn", "kubeconfig"):
            v = getattr(value, key, None)
            if v is not None:
                raw = v.get_secret_value() if isinstance(v, SecretStr) else str(v)
                break
        return safe_endpoint(raw) if raw else "not configured"


# Environment variables -> settings keys. Secret ones also accept <VAR>_FILE.
ENV_MAP: dict[str, tuple[str, ...]] = {
    "RUNBOOK_PROMETHEUS_URL": ("prometheus", "url"),
    "RUNBOOK_KUBE_NAMESPACE": ("kubernetes", "namespace"),
    "RUNBOOK_DLQ_QUEUE": ("rabbitmq", "dlq_queue"),
    "RUNBOOK_DLQ_SOURCES": ("rabbitmq", "dead_letter_sources"),
    "RUNBOOK_RABBITMQ_MANAGEMENT_URL": ("rabbitmq", "management_url"),
    "RUNBOOK_KUBE_CONTEXT": ("kubernetes", "context"),
    "KUBECONFIG": ("kubernetes", "kubeconfig"),
    "RUNBOOK_ARCHIVE": ("archive", "path"),
    "RUNBOOK_ARCHIVE_ENDPOINT": ("archive", "endpoint"),
    "RUNBOOK_CELL_TIMEOUT": ("kernels", "cell_timeout_s"),
    "RUNBOOK_WORKERS": ("receiver", "workers"),
    "RUNBOOK_WARM_KERNELS": ("kernels", "warm_kernels"),
    "RUNBOOK_RETRY_MAX_S": ("receiver", "retry_max_s"),
    "RUNBOOK_EXECUTOR": ("receiver", "executor"),
    "RUNBOOK_JOURNAL": ("receiver", "journal"),
    "RUNBOOK_WEBHOOK_USER": ("receiver", "basic_user"),
    "RUNBOOK_PAGERDUTY_URL": ("notify", "pagerduty_url"),
    "RUNBOOK_RECORD_BASE_URL": ("notify", "record_base_url"),
    "RUNBOOK_ESCALATION": ("incident", "escalation"),
    "RUNBOOK_PROMETHEUS_LINK_URL": ("links", "prometheus_url"),
    "RUNBOOK_GRAFANA_URL": ("links", "grafana_url"),
    "RUNBOOK_ALERTMANAGER_URL": ("links", "alertmanager_url"),
    "RUNBOOK_RUNBOOKS_DIR": ("runbooks_dir",),
    "RUNBOOK_CATALOG": ("catalog_path",),
}


# Sections renamed since a settings file may have been written: old name -> new name.
RENAMED_SECTIONS = {"engine": "kernels"}


def load_settings(
    env: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from the layers. ``environ`` defaults to ``os.environ`` (read now)."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("RUNBOOK_HOME") or PACKAGE_HOME).expanduser().resolve()
    env_name = env or environ.get("RUNBOOK_ENV") or "local"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", env_name):
        raise ConfigError(f"environment name {env_name!r} is not a plain name (letters, digits, -_.)")

    params = home / "parameters"
    data: dict[str, Any] = {}
    _merge(data, _read_yaml(params / "defaults.yaml", required=True))
    env_file = params / "environments" / f"{env_name}.yaml"
    if not env_file.exists():
        known = sorted(p.stem for p in (params / "environments").glob("*.yaml"))
        raise ConfigError(f"unknown environment {env_name!r}: no {env_file} (known: {', '.join(known)})")
    _merge(data, _read_yaml(env_file, required=True))
    reject_yaml_secrets(data, env_file)

    for var, path in ENV_MAP.items():
        if environ.get(var):
            _set(data, path, environ[var])
    for var, path in SECRET_ENV_MAP.items():
        value = secret_from_env(environ, var)
        if value is not None:
            _set(data, path, value)
    if overrides:
        for dotted, value in overrides.items():
            _set(data, tuple(dotted.split(".")), value)

    data["env"] = env_name
    data["home"] = home
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"setting {where}: {err['msg']} (check {env_file.name} and RUNBOOK_* variables)") from None
    reject_short_secrets(_configured_secrets(settings))
    return settings


def _read_yaml(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"missing settings file {path}")
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    for old, new in RENAMED_SECTIONS.items():  # an older file still loads
        if old in loaded:
            section = loaded.pop(old)
            if isinstance(section, Mapping) and isinstance(loaded.get(new), Mapping):
                loaded[new] = {**section, **loaded[new]}
            elif new not in loaded:
                loaded[new] = section
    return loaded


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def _set(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _configured_secrets(settings: Settings) -> list[tuple[str, str]]:
    out = []
    for var, (section, key) in SECRET_ENV_MAP.items():
        value = getattr(getattr(settings, section), key)
        if value is not None:
            out.append((var, value.get_secret_value()))
    return out
