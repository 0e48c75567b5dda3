"""The ``runbook`` command: one module per command group (:mod:`.runs`, :mod:`.records`,
:mod:`.serve`, :mod:`.dlq`, :mod:`.slo`, :mod:`.generate`); :mod:`.common` holds what they share."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from runbook_lib.core import process
from runbook_lib.core.errors import EXIT_USAGE, RunbookError
from runbook_lib.core.sessions import SESSION_DIR_ENV

DESCRIPTION = """\
OmniHub executable runbooks. Every alert's runbook is a parameterised Jupyter notebook;
`run` executes it with the alert's context and archives the executed notebook, rendered to
HTML, as a hash-chained incident record under the archive (executed/ by default).

Settings come from parameters/defaults.yaml < parameters/environments/<env>.yaml <
RUNBOOK_* environment variables (RUNBOOK_PROMETHEUS_URL, RUNBOOK_POSTGRES_DSN, RUNBOOK_REDIS_URL,
KUBECONFIG, RUNBOOK_KUBE_NAMESPACE, RUNBOOK_ARCHIVE, ...). Secrets only from the environment
or *_FILE paths."""

EPILOG = """\
exit codes: 0 success, 1 the runbook failed / timed out / verification failed,
            2 bad input or configuration (the message names what is wrong),
            3 `run`: the runbook ran but its diagnosis is incomplete (no essential check could be made)

examples:
  runbook list
  runbook run --alert payload.json                 # route by alertname, diagnose only
  runbook run high-error-rate --alert - < alert.json
  runbook open high-error-rate --alert payload.json # prepare and open in JupyterLab
  runbook records && runbook show 20261126T1403
  runbook dlq replay --queue dead_letter_queue --dry-run
  runbook slo                                      # every SLO's budget, burn rate and band now
  runbook digest --print                           # the daily email: every alert that fired, the budgets
  runbook generate --check                         # monitoring/ up to date with the catalog?
  runbook ack 20261126T1403 --operator "Avery Example" # acknowledge; also assign, update, resolve, reopen
  runbook report 20261126T1403                     # the incident report of a record, attached to the archive
  runbook oncall --weeks 4                         # who is primary, secondary, manager; the next 4 weeks
  runbook toil add "deployed by hand" --minutes 10 --category manual-deploy
  runbook drills                                   # the DR drill calendar: next due, verdicts, overdue
  runbook verify"""


def main(argv: Sequence[str] | None = None) -> int:
    process.prepare()
    # Set by `runbook open` for the kernels of its JupyterLab only; a `runbook run` typed in that
    # JupyterLab's terminal runs with its own parameters, not under a notebook's grant.
    os.environ.pop(SESSION_DIR_ENV, None)
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    # Everything after the first `--` belongs to the program a command hands over to (Jupyter).
    # argparse cannot take that as a positional after an optional one: it binds an empty list
    # there as soon as it meets the slug, then rejects what follows `--`.
    passed = words[words.index("--") + 1 :] if "--" in words else None
    args = parser.parse_args(words[: words.index("--")] if passed is not None else words)
    if passed is not None:
        if not hasattr(args, "passthrough"):
            parser.error("arguments after `--` are only taken by `runbook open` (for Jupyter)")
        args.passthrough = passed
    process.setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except RunbookError as exc:
        print(f"runbook: {exc.label}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("runbook: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`runbook records | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def build_parser() -> argparse.ArgumentParser:
    from runbook_lib.cli import digest, dlq, drills, generate, incident, oncall, records, report, runs, serve, slo, toil

    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="runbook", description=DESCRIPTION, epilog=EPILOG, formatter_class=fmt)
    parser.add_argument("-v", "--verbose", action="store_true", help="log more on stderr")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log more on stderr")
    common.add_argument(
        "--env",
        metavar="ENV",
        help="settings environment: parameters/environments/ENV.yaml (default: $RUNBOOK_ENV or local)",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in (runs, records, incident, serve, dlq, slo, digest, generate, report, oncall, toil, drills):
        group.add_parsers(sub, common, fmt)
    return parser
