"""OmniHub executable runbooks: the helper library notebooks call, and the runner around them.

In a runbook notebook::

    import runbook_lib
    from runbook_lib import checks

    rb = runbook_lib.start(alert=alert, environment=environment, mode=mode,
                           dry_run=dry_run, operator=operator, approve=approve)

Two worlds share this package. ``kernel/`` runs inside the Jupyter kernel (the notebook API,
checks, sources, guarded actions); ``receiver/`` -> ``run/`` -> ``record/`` and ``cli/`` run in
host processes. The top-level modules are the shared foundations both may use. This module
is lazy: importing ``runbook_lib`` loads neither world, so a host process never imports kernel
code and a kernel never imports the receiver.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from runbook_lib.core.errors import (
    AlertError,
    ArchiveError,
    ConfigError,
    RunbookError,
    SourceError,
    SourceNotConfigured,
    SourceUnavailable,
)

if TYPE_CHECKING:
    from runbook_lib.kernel import checks, drills
    from runbook_lib.kernel.notebook import Runbook, start

__version__ = "0.1.0"
__all__ = [
    "AlertError",
    "ArchiveError",
    "ConfigError",
    "Runbook",
    "RunbookError",
    "SourceError",
    "SourceNotConfigured",
    "SourceUnavailable",
    "__version__",
    "checks",
    "drills",
    "start",
]

# name -> (module, attribute); attribute None means the module itself
_LAZY: dict[str, tuple[str, str | None]] = {
    "start": ("runbook_lib.kernel.notebook", "start"),
    "Runbook": ("runbook_lib.kernel.notebook", "Runbook"),
    "checks": ("runbook_lib.kernel.checks", None),
    "drills": ("runbook_lib.kernel.drills", None),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'runbook_lib' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
