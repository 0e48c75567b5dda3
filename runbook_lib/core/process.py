"""Setting up a host process (the CLI, the receiver, a worker): call :func:`prepare` first,
before anything heavy is imported, then :func:`setup_logging` once settings are known.

Kept free of heavy imports itself: it must run before nbformat and jsonschema load.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

NOISY_LOGGERS = ("papermill", "traitlets", "httpx", "kubernetes", "urllib3")


def prepare() -> None:
    """Process-wide guards that must be in place before heavy imports.

    jsonschema (imported by nbformat) loads rfc3987_syntax when it is installed (JupyterLab's
    extras bring it), which compiles a grammar at import: 1.1 s of every process start on this
    machine. Notebook validation never uses its IRI format checks, so our processes skip it."""
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr, every line passed through redaction of the environment's secrets."""
    from runbook_lib.core.credentials import environment_secrets
    from runbook_lib.core.redact import RedactingFilter, Redactor

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(Redactor(environment_secrets())))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def die_with_parent(parent: int | None = None) -> bool:
    """Ask Linux to SIGKILL this process when its parent dies (PR_SET_PDEATHSIG). Returns False
    when the parent is already gone (``parent``: the pid it should still have)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass
    return parent is None or os.getppid() == parent


def kill_group(pid: int) -> None:
    """SIGKILL a process and its group (a kernel and whatever it started); gone already is fine."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
