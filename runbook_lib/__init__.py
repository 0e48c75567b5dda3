"""OmniHub executable runbooks: the helper library notebooks call, and the engine around them.

In a runbook notebook::

    import runbook_lib
    from runbook_lib import checks

    rb = runbook_lib.start(alert=alert, environment=environment, mode=mode,
                           dry_run=dry_run, operator=operator, approve=approve)
"""

from .errors import (
    ActionRefused,
    AlertError,
    ArchiveError,
    ConfigError,
    RunbookError,
    SourceError,
    SourceNotConfigured,
    SourceUnavailable,
)
from .notebook import Runbook, start

__version__ = "0.1.0"
__all__ = [
    "ActionRefused",
    "AlertError",
    "ArchiveError",
    "ConfigError",
    "Runbook",
    "RunbookError",
    "SourceError",
    "SourceNotConfigured",
    "SourceUnavailable",
    "__version__",
    "start",
]
