"""One error hierarchy. Messages say what failed, where, and what to do; never a secret.

Each class carries the exit code the ``runbook`` command ends with when it escapes a command,
so ``cli.main`` has one ``except RunbookError``: 2 for bad input or configuration (the
message names what to fix), 1 for everything that went wrong while doing the work.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INCOMPLETE = 3  # `runbook run`: the runbook ran, but its diagnosis could not be made


class RunbookError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = EXIT_FAILED
    label = "error"  # how the CLI introduces the message


class ConfigError(RunbookError):
    """Settings, catalog or parameters are wrong; the message names the file and key."""

    exit_code = EXIT_USAGE


class AlertError(RunbookError):
    """An alert or webhook payload failed validation; the message names the field."""

    exit_code = EXIT_USAGE


class RunbookNotFound(RunbookError):
    """No notebook exists for the requested runbook slug."""

    exit_code = EXIT_USAGE


class SourceError(RunbookError):
    """A backend answered, but with an error (bad query, API Status, SQL error)."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.reason = message


class SourceUnavailable(SourceError):
    """A backend could not be reached in time (refused, DNS, timeout)."""


class SourceNotConfigured(SourceUnavailable):
    """No endpoint is configured for this backend in this environment."""

    def __init__(self, source: str, how: str) -> None:
        super().__init__(source, f"not configured ({how})")
        self.how = how


class ArchiveError(RunbookError):
    """The record archive could not be written or read."""

    label = "archive error"


class ArchiveUnavailable(ArchiveError):
    """The archive cannot be used right now: its S3 endpoint is unreachable, credentials are
    missing or refused, the bucket is missing, or its lock was not obtained in time. Environmental
    (:mod:`.faults`): a worker keeps its job and retries once the storage is back."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RecordTaken(ArchiveError):
    """Another delivery of the same record uploaded its files first: this one overwrites
    nothing, and the record is the other's (adopted into the index if it is not there yet)."""


class Refused(RunbookError):
    """An incident action that cannot be taken now (the record is resolved, already acknowledged,
    the person may not approve); the message says why and what to do instead."""

    exit_code = EXIT_USAGE
    label = "refused"


class JournalError(RunbookError):
    """The intake journal could not be written (the webhook answers 503 so Alertmanager retries)."""

    label = "journal error"


class SandboxError(RunbookError):
    """The loopback sandbox (demo, tests) could not start or reach one of its services."""

    label = "sandbox error"
