"""Commands that start long-running things: serve (the Alertmanager receiver) and demo (the
loopback sandbox end to end)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        formatter_class=fmt,
        help="the Alertmanager webhook receiver: auto-run diagnoses",
        description="Receive Alertmanager webhook notifications (POST /alerts), journal each one durably\n"
        "(SQLite, WAL) before answering 200, and run the matching runbook in diagnose mode for each new\n"
        "alert on a pool of worker processes. Repeats of (fingerprint, startsAt, status) start no run;\n"
        "a resolved notification appends a 'resolved' event to the firing alert's record.\n\n"
        "Endpoints: POST /alerts, GET /healthz, GET /metrics, GET /records/{id}.\n\n"
        "Credentials (what Alertmanager's http_config sends): RUNBOOK_WEBHOOK_TOKEN[_FILE] for\n"
        "'authorization' (Bearer), and/or RUNBOOK_WEBHOOK_USER + RUNBOOK_WEBHOOK_PASSWORD[_FILE] for\n"
        "basic_auth. Without credentials the receiver refuses to start, unless --insecure-no-auth is\n"
        "given on a loopback address.",
    )
    p.add_argument("--host", default=None, help="address to listen on (default: receiver.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: receiver.port, 9095)")
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: receiver.workers / RUNBOOK_WORKERS)"
    )
    p.add_argument(
        "--executor",
        choices=("local", "celery"),
        default=None,
        help="who runs the diagnoses: 'local' worker processes of this receiver, or 'celery': `runbook worker`\n"
        "processes anywhere, fed through the broker at RUNBOOK_BROKER_URL, every task and report signed\n"
        "with RUNBOOK_BROKER_SIGNING_KEY (default: receiver.executor / RUNBOOK_EXECUTOR, local)",
    )
    p.add_argument("--insecure-no-auth", action="store_true", help="allow no credentials (loopback addresses only)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "worker",
        parents=[common],
        formatter_class=fmt,
        help="a Celery worker running diagnoses for `runbook serve --executor celery`",
        description="Consume runs from the broker (RUNBOOK_BROKER_URL, queue receiver.celery_queue) and execute\n"
        "each into a record in the archive (RUNBOOK_ARCHIVE: a path, file:// or s3:// URL), one at a time,\n"
        "with warm kernels. Start as many as you need, on any machine that reaches the broker, the\n"
        "archive and the backends; the receiver keeps the journal, deduplication and resolutions.\n\n"
        "A worker lost mid-run (kill -9, OOM, node gone) has its run redelivered by the broker to another\n"
        "worker and retried once; the record says so. SIGTERM finishes the current run, then exits.\n\n"
        "Only tasks signed with RUNBOOK_BROKER_SIGNING_KEY (the receiver's key, at least 32 characters)\n"
        "run; anything else is parked on <receiver.celery_queue>.parked with the reason. The worker says\n"
        "ready once its first warm kernel is up.",
    )
    p.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="serve GET /healthz on this port (200 while consuming; for Kubernetes probes)",
    )
    p.add_argument("--health-host", default="0.0.0.0", help="address of the /healthz server (default 0.0.0.0)")  # noqa: S104
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "demo",
        parents=[common],
        formatter_class=fmt,
        help="run the loopback chain end to end and print the record paths",
        description="The real chain on loopback: Prometheus (a synthetic incident backfilled by promtool, the\n"
        "catalog's alerting rules) -> Alertmanager -> `runbook serve` -> runbook notebooks -> records in\n"
        "the archive; then the burn-rate rule stops firing and the resolution is chained onto its record.\n"
        "Backends: a seeded PostgreSQL database, local Redis, a fake Kubernetes API. Prints the HTML\n"
        "record paths (the HighErrorBudgetBurnRate one first) and stops everything it started.\n"
        "--direct skips Prometheus rules/Alertmanager/receiver and runs the sample alert through the runner.",
    )
    p.add_argument("--direct", action="store_true", help="runner only: no Alertmanager, no receiver")
    p.add_argument("--workdir", type=Path, default=None, help="sandbox working directory (default .sandbox/)")
    p.add_argument(
        "--alert", type=Path, default=None, help="alert payload (default examples/alerts/high-error-rate.json)"
    )
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from runbook_lib.core.settings import load_settings
    from runbook_lib.sandbox.demo import run_chain, run_direct

    home = load_settings(env=args.env).home
    workdir = (args.workdir or home / ".sandbox").resolve()
    if args.direct:
        return run_direct(home, workdir, args.alert or home / "examples" / "alerts" / "high-error-rate.json", args.env)
    return run_chain(home, workdir, args.env)


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args: argparse.Namespace) -> int:
    import sys

    import uvicorn

    from runbook_lib.core.credentials import safe_endpoint
    from runbook_lib.core.errors import ConfigError
    from runbook_lib.core.settings import load_settings
    from runbook_lib.intake.locks import receiver_locks
    from runbook_lib.receiver.app import create_app
    from runbook_lib.receiver.auth import auth_configured
    from runbook_lib.workers import Executor
    from runbook_lib.workers.celery_executor import broker_url
    from runbook_lib.workers.supervisor import Supervisor

    overrides: dict[str, Any] = {}
    if args.workers is not None:
        overrides["receiver.workers"] = args.workers
    if args.executor is not None:
        overrides["receiver.executor"] = args.executor
    settings = load_settings(env=args.env, overrides=overrides)
    celery = settings.receiver.executor == "celery"
    logging.getLogger("runbook").setLevel(logging.INFO)  # one structured line per notification
    host = args.host or settings.receiver.host
    port = args.port if args.port is not None else settings.receiver.port
    has_auth = auth_configured(settings)
    if not has_auth:
        if not args.insecure_no_auth:
            raise ConfigError(
                "no webhook credentials configured: set RUNBOOK_WEBHOOK_TOKEN (or _FILE), or RUNBOOK_WEBHOOK_USER with "
                "RUNBOOK_WEBHOOK_PASSWORD (or _FILE); --insecure-no-auth is accepted on loopback addresses only"
            )
        if not _is_loopback(host):
            raise ConfigError(f"--insecure-no-auth only works on a loopback address, not {host}")
    if celery:
        from runbook_lib.workers.celery_executor import Dispatcher

        broker = safe_endpoint(broker_url(settings))  # refuses to start without a broker
    with receiver_locks(settings):
        if celery:
            executor: Executor = Dispatcher(settings)
            runs = f"celery executor: runs go to `runbook worker` processes via {broker}"
        else:
            executor = Supervisor(settings, args.env, overrides, settings.receiver.workers)
            runs = f"{settings.receiver.workers} workers"
        app = create_app(settings, require_auth=has_auth, executor=executor)
        auth = "bearer/basic auth" if has_auth else "NO AUTH (loopback only)"
        escalation = {
            "receiver": "escalation: this receiver (15/30 min, Slack)",
            "pagerduty": "escalation: PagerDuty's policy (its webhooks at /pagerduty/webhook)",
            "off": "escalation: OFF",
        }[settings.escalation_mode]
        slack = "Slack buttons on" if settings.incident.slack_signing_secret else "Slack buttons off"
        print(
            f"runbook serve: http://{host}:{port}/alerts ({auth}); {runs}; "
            f"journal {settings.journal_path}; archive {settings.archive_url}; {escalation}; {slack}",
            file=sys.stderr,
            flush=True,
        )
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, timeout_graceful_shutdown=30)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import sys

    from runbook_lib.core import process
    from runbook_lib.core.credentials import safe_endpoint
    from runbook_lib.core.settings import load_settings
    from runbook_lib.workers.celery_executor import broker_url, run_worker

    settings = load_settings(env=args.env)
    broker = safe_endpoint(broker_url(settings))  # a clear error before anything starts
    process.prepare()
    logging.getLogger("runbook").setLevel(logging.INFO)  # one structured line per run
    print(
        f"runbook worker: consuming {settings.receiver.celery_queue} at {broker}; archive {settings.archive_url}"
        + (f"; /healthz on {args.health_host}:{args.health_port}" if args.health_port is not None else ""),
        file=sys.stderr,
        flush=True,
    )
    return run_worker(settings, args.health_host, args.health_port)
