"""runbook digest: the daily email of every alert that fired, resolved or not, and the error
budgets (:mod:`runbook_lib.notify.digest`); sent once per run, scheduled by cron or a CronJob."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from runbook_lib.cli.common import echo, settings_for
from runbook_lib.core.errors import EXIT_OK, ConfigError

DESCRIPTION = """\
Build the alert digest: one email listing every alert that fired in the window (24 h by
default) from the incident-record archive (RUNBOOK_ARCHIVE), resolved or still firing, one line
per alert (fingerprint) with its SEV, when it first fired, when it resolved, how long it fired,
its diagnosis headline and a link to its record (notify.record_base_url); then every SLO's error
budget as `runbook slo` measures it (Prometheus not configured or down: said in the mail). A
plain-text part and an HTML alternative.

The window ends at the latest --at time (default monitoring.digest_at, 08:00 UTC) at or before
now, so a run at 08:00 or a retry at 09:10 covers the same day, and consecutive days are covered
end to end. `--at now` ends it now.

--send sends it once, over SMTP to monitoring.smtp_smarthost (host:port; port 465 is implicit
TLS, otherwise STARTTLS when monitoring.smtp_require_tls, the default), from
monitoring.email_from to monitoring.email_to (comma-separated), logging in as email_from only
when monitoring.smtp_auth_password_file exists. The command does not schedule anything: run it
daily from cron at digest_at, or apply deploy/kubernetes/digest.yaml (a CronJob at 08:00 UTC).
--print writes the whole email to stdout and sends nothing."""

EPILOG = """\
exit codes: 0 sent (or printed), 1 the SMTP server could not be reached or refused the mail,
            2 bad input or configuration (an address, the smarthost, --since, --at)

examples:
  runbook digest --print                          # the digest of the day that ended at 08:00 UTC
  runbook digest --print --at now --since 6h      # the last six hours, up to now
  runbook digest --send                           # what the CronJob runs daily at 08:00 UTC
  # crontab (UTC):  0 8 * * *  runbook digest --send"""


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "digest",
        parents=[common],
        formatter_class=fmt,
        help="the daily email of every alert that fired, and the error budgets",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--send", action="store_true", help="send it over SMTP (monitoring.smtp_smarthost)")
    how.add_argument("--print", action="store_true", help="write the email to stdout; send nothing")
    p.add_argument(
        "--since",
        metavar="DURATION",
        default="24h",
        help="how far back the window reaches from its end (default 24h; e.g. 12h, 2d)",
    )
    p.add_argument(
        "--at",
        metavar="HH:MM",
        help="the window ends at the latest HH:MM UTC (or 'now'); default monitoring.digest_at",
    )
    p.set_defaults(func=cmd_digest)


def cmd_digest(args: argparse.Namespace) -> int:
    from runbook_lib.notify import digest
    from runbook_lib.sre.slo import parse_duration

    try:
        since_s = parse_duration(args.since)
    except ValueError as exc:
        raise ConfigError(f"--since: {exc}") from None
    if since_s <= 0:
        raise ConfigError("--since: must be longer than 0")
    settings = settings_for(args)
    at = args.at or settings.monitoring.digest_at
    if args.at is not None:
        digest.parse_at(args.at)  # a bad --at is a usage error before anything is read
    if args.send:  # bad addresses or smarthost: exit 2 before the archive is read
        digest.recipients(settings)
        digest.smarthost(settings.monitoring.smtp_smarthost)
    now = datetime.now(UTC)
    built = digest.build(settings, digest.window_end(at, now), timedelta(seconds=since_s))
    msg = digest.message(settings, built, now)
    if args.print:
        sys.stdout.write(msg.as_string())
        sys.stdout.flush()
        return EXIT_OK
    sent = digest.send(settings, msg)
    echo(
        f"sent: the digest of {len(built.lines)} alert(s), {built.firing} still firing "
        f"({built.start:%Y-%m-%d %H:%M} to {built.end:%Y-%m-%d %H:%M} UTC), to {', '.join(sent)} "
        f"through {settings.monitoring.smtp_smarthost}"
    )
    return EXIT_OK
