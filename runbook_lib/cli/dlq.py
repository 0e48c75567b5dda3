"""Commands on the dead-letter queue: dlq replay."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from runbook_lib.cli.common import echo, settings_for
from runbook_lib.core.errors import EXIT_OK, EXIT_USAGE, ConfigError

REPLAY_DESCRIPTION = """\
Republish dead letters from a RabbitMQ dead-letter queue to the queue each one died in (its
latest x-death entry), through the default exchange, with publisher confirms: a dead letter is
acked only after the broker confirmed its republish. Properties and headers are kept; the
header x-replay-count is incremented.

Only queues that really dead-letter into this DLQ are replay targets, since anyone who can
publish writes x-death: with rabbitmq.management_url (RUNBOOK_RABBITMQ_MANAGEMENT_URL), the
queues whose x-dead-letter-exchange (argument or policy) is an exchange bound to the DLQ;
without it, --source (repeatable), else rabbitmq.dead_letter_sources (RUNBOOK_DLQ_SOURCES) for
rabbitmq.dlq_queue. A dead letter is refused, and stays in the queue, when it names any other
queue (not_a_dead_letter_source), was replayed --max-replays times already, has no x-death
header or a malformed one (its latest entry must name the queue, reason and exchange as strings
and its routing-keys as a non-empty list of strings), expired (its TTL ran out before a consumer
took it: likely stale; --include-expired replays those too), or its republish is unroutable
(mandatory) or nacked. A message that fails
again and comes back during the same run is left for the next run. A run stops when the queue
is empty or after --limit messages. Progress goes to stderr every 100 messages; the summary to
stdout (--json: the result as JSON).

The broker is RUNBOOK_RABBITMQ_URL[_FILE] (amqp://user:password@host:5672/vhost); messages name
it as amqp://host:port/vhost only. A real replay first writes an audit_logs row (outcome
started: who, which queue, how many) to RUNBOOK_POSTGRES_DSN and, when it ends, a second row
(succeeded or failed) with the counts and the exchanges and routing keys replayed to; without
PostgreSQL a real replay is refused. --dry-run needs neither the database nor --operator: it
peeks at the messages (each is put back) and says what a replay would do. On a quorum-queue
dead-letter queue every peek (a --dry-run, a refused message put back) counts against its
delivery-limit; give the DLQ delivery-limit: -1 or use a classic queue.

Interrupted (SIGKILL, lost connection, Ctrl-C): nothing is lost, since the broker requeues every
dead letter not yet acked. One message is in flight at a time: if its republish had reached the
destination but its ack had not reached the broker, it is in the destination AND back in the
dead-letter queue, and the next run replays it once more. At most one duplicate, never a loss. Run the same command again; the started audit row without
an outcome row marks the interrupted run."""

REPLAY_EPILOG = """\
exit codes: 0 done (refused messages are reported, and stay in the queue),
            1 the broker or PostgreSQL failed (the message says what was done),
            2 bad input or configuration: unknown queue, login or virtual host refused,
              RUNBOOK_RABBITMQ_URL or RUNBOOK_POSTGRES_DSN missing, no --operator

examples:
  runbook dlq replay --queue dead_letter_queue --dry-run
  runbook dlq replay --queue dead_letter_queue --source orders --source payments --operator alice
  runbook dlq replay --queue dead_letter_queue --limit 100 --operator alice
  runbook dlq replay --queue dead_letter_queue --operator alice --json"""

PROGRESS_EVERY = 100


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "dlq",
        parents=[common],
        formatter_class=fmt,
        help="the RabbitMQ dead-letter queue: replay dead letters",
        description="Tools for the RabbitMQ dead-letter queue (the dlq-backlog runbook diagnoses it).",
    )
    p.set_defaults(func=lambda _args: _usage(p))
    commands = p.add_subparsers(title="commands", metavar="COMMAND")
    r = commands.add_parser(
        "replay",
        parents=[common],
        formatter_class=fmt,
        help="republish dead letters to where they came from (audited)",
        description=REPLAY_DESCRIPTION,
        epilog=REPLAY_EPILOG,
    )
    r.add_argument("--queue", metavar="Q", required=True, help="the dead-letter queue to replay from")
    r.add_argument("--limit", metavar="N", type=_positive, help="replay at most N messages (default: all)")
    r.add_argument(
        "--max-replays",
        metavar="N",
        type=_positive,
        help="refuse messages already replayed N times (default: rabbitmq.max_replays, 3)",
    )
    r.add_argument(
        "--source",
        metavar="QUEUE",
        action="append",
        default=[],
        help="a queue that dead-letters into --queue (repeatable): the only replay targets, without a\n"
        "management API (with one: narrows what the broker says)",
    )
    r.add_argument(
        "--include-expired",
        action="store_true",
        help="replay expired (TTL) dead letters too (by default they stay: their TTL ran out, they are\nlikely stale)",
    )
    r.add_argument("--dry-run", action="store_true", help="change nothing: say what would be replayed")
    r.add_argument(
        "--operator",
        metavar="NAME",
        default=os.environ.get("RUNBOOK_OPERATOR", ""),
        help="your identity for audit_logs (default: $RUNBOOK_OPERATOR); required unless --dry-run",
    )
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=cmd_replay)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def cmd_replay(args: argparse.Namespace) -> int:
    from runbook_lib.clients.rabbitmq import RabbitMQ

    settings = settings_for(args)
    if settings.rabbitmq.url is None:
        raise ConfigError("RabbitMQ is not configured: set RUNBOOK_RABBITMQ_URL (or RUNBOOK_RABBITMQ_URL_FILE)")
    max_replays = args.max_replays or settings.rabbitmq.max_replays
    operator = args.operator.strip()
    if not args.dry_run:
        _require_audit(settings, operator)
    mq = RabbitMQ.from_settings(settings)
    sources = mq.sources(settings, args.queue, args.source)
    if not sources.queues and not args.dry_run:
        raise ConfigError(
            f"no queue is known to dead-letter into {args.queue} ({sources.how}): nothing would be replayed. "
            "Set RUNBOOK_RABBITMQ_MANAGEMENT_URL, or name them with --source QUEUE (or RUNBOOK_DLQ_SOURCES)"
        )
    if args.dry_run:
        result = mq.replay(
            args.queue,
            sources,
            limit=args.limit,
            max_replays=max_replays,
            dry_run=True,
            include_expired=args.include_expired,
        )
    else:
        trail = AuditTrail(settings, operator, args.queue, mq.where)
        depth = mq.depth(args.queue)  # an unknown queue stops here, before any audit row or change
        trail.started(limit=args.limit, max_replays=max_replays, depth=depth, include_expired=args.include_expired)
        result = trail.around(
            lambda: mq.replay(
                args.queue,
                sources,
                limit=args.limit,
                max_replays=max_replays,
                include_expired=args.include_expired,
                progress=_progress_printer(),
                progress_every=PROGRESS_EVERY,
            )
        )
    echo(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return EXIT_OK


def _require_audit(settings: Any, operator: str) -> None:
    if not operator:
        raise ConfigError("a replay needs --operator NAME (or $RUNBOOK_OPERATOR) for the audit log; or use --dry-run")
    if settings.postgres.dsn is None:
        raise ConfigError(
            "a replay writes an audit_logs row first, and PostgreSQL is not configured: set RUNBOOK_POSTGRES_DSN "
            "(or RUNBOOK_POSTGRES_DSN_FILE); --dry-run works without it. Nothing was replayed."
        )


def _progress_printer() -> Any:
    started = time.monotonic()

    def show(result: Any, expected: int) -> None:
        rate = result.considered / max(time.monotonic() - started, 1e-6)
        echo(
            f"runbook: dlq replay: {result.considered}/{expected} handled, {result.replayed} replayed, "
            f"{result.refused_total} refused ({rate:.0f} msg/s)",
            file=sys.stderr,
            flush=True,
        )

    return show


class AuditTrail:
    """The two audit_logs rows of one replay run: ``started`` before anything changes (no row,
    no replay), then ``succeeded`` or ``failed`` with what was done."""

    ACTION = "runbook.dlq_replay"

    def __init__(self, settings: Any, operator: str, queue: str, where: str) -> None:
        self.dsn = settings.postgres.dsn.get_secret_value()
        self.timeout_s = settings.postgres.connect_timeout_s
        self.operator = operator
        self.queue = queue
        self.details: dict[str, Any] = {"tool": "runbook dlq replay", "environment": settings.env, "from": where}

    def started(self, **plan: Any) -> None:
        from runbook_lib.clients.rabbitmq import replay_command

        command = replay_command(
            self.queue, plan["limit"], plan["max_replays"], self.operator, bool(plan.get("include_expired"))
        )
        self.details = {**self.details, "command": command, **plan}
        self._write("started", self.details)

    def around(self, replay: Any) -> Any:
        """Run ``replay`` and write its outcome row, also when it fails part-way."""
        from runbook_lib.clients.rabbitmq import ReplayInterrupted
        from runbook_lib.core.errors import RunbookError

        try:
            result = replay()
        except ReplayInterrupted as exc:
            self._write("failed", {**self.details, "result": exc.result.to_dict(), "error": str(exc)}, str(exc))
            raise
        except RunbookError as exc:
            self._write("failed", {**self.details, "result": None, "error": str(exc)}, str(exc))
            raise
        except KeyboardInterrupt:
            said = "interrupted (Ctrl-C): the broker requeued every dead letter not yet acked"
            self._write("failed", {**self.details, "result": None, "error": said}, said)
            raise
        self._write("succeeded", {**self.details, "result": result.to_dict(), "error": None}, result.summary())
        return result

    def _write(self, outcome: str, details: dict[str, Any], done: str = "nothing was replayed") -> None:
        from runbook_lib.clients.audit import write_row

        write_row(
            self.dsn,
            self.timeout_s,
            done=done,
            actor=self.operator,
            action=self.ACTION,
            resource_type="rabbitmq_queue",
            resource_id=self.queue,
            outcome=outcome,
            details=details,
        )
