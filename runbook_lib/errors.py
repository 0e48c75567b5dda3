"""One error hierarchy. Messages say what failed, where, and what to do; never a secret."""

from __future__ import annotations


class RunbookError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(RunbookError):
    """Settings, catalog or parameters are wrong; the message names the file and key."""


class AlertError(RunbookError):
    """An alert or webhook payload failed validation; the message names the field."""


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


class ActionRefused(RunbookError):
    """A guarded action was not allowed to change anything."""


class ArchiveError(RunbookError):
    """The record archive could not be written or read."""


class RunbookNotFound(RunbookError):
    """No notebook exists for the requested runbook slug."""
