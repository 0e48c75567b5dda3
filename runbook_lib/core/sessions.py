"""Interactive sessions: what `runbook open` wrote, signed, so that neither the notebook nor the
kernel has to be trusted with it.

`runbook open` prepares a working copy and writes its **grant** beside it: the runbook and its
sha256 at opening, the operator, the mode, whether actions really run (``dry_run``), the actions
approved, the record it continues, and each cell's id and source hash. The grant is signed with a
key of the working directory (``.session-key``, mode 0600) and lives in ``.grants/`` there; the
same signed block goes into the notebook's metadata (``runbook_session``).

Inside a kernel started by that JupyterLab (the environment names the working directory,
``RUNBOOK_SESSION_DIR``; Jupyter names the notebook, ``JPY_SESSION_NAME``), the guard takes its
mode, dry_run, operator and approvals from the grant of the notebook it runs for, never from the
notebook's variables: ``mode = "resolve"`` typed into a cell unlocks nothing. A notebook without
a valid grant there only diagnoses. This guards against a notebook edit, not against the
operator's own account (which can run `runbook run --execute` anyway, audited).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SESSION_DIR_ENV = "RUNBOOK_SESSION_DIR"  # set by `runbook open` for the JupyterLab it starts
NOTEBOOK_ENV = "JPY_SESSION_NAME"  # set by jupyter_server for each kernel: the notebook's path
KEY_FILE = ".session-key"
GRANTS = ".grants"
METADATA_KEY = "runbook_session"


def canonical(data: Mapping[str, Any]) -> bytes:
    body = {k: v for k, v in data.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def key(work: Path, create: bool = False) -> bytes | None:
    """The working directory's signing key (made, 0600, when ``create``); None when there is none."""
    path = Path(work) / KEY_FILE
    if not path.exists():
        if not create:
            return None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def sign(data: Mapping[str, Any], secret: bytes) -> dict[str, Any]:
    return {**data, "sig": hmac.new(secret, canonical(data), hashlib.sha256).hexdigest()}


def valid(data: Any, secret: bytes | None) -> bool:
    if not isinstance(data, Mapping) or secret is None or not isinstance(data.get("sig"), str):
        return False
    return hmac.compare_digest(hmac.new(secret, canonical(data), hashlib.sha256).hexdigest(), data["sig"])


def grant_path(work: Path, notebook_name: str) -> Path:
    return Path(work) / GRANTS / f"{Path(notebook_name).name}.json"


def read_grant(work: Path, notebook_name: str) -> dict[str, Any] | None:
    """The signed grant of a working copy, or None (missing, unreadable, or its signature wrong)."""
    try:
        data = json.loads(grant_path(work, notebook_name).read_text())
    except (OSError, ValueError):
        return None
    return data if valid(data, key(work)) else None


def kernel_grant(environ: Mapping[str, str] | None = None) -> tuple[bool, dict[str, Any] | None]:
    """(whether this kernel runs in a `runbook open` session, the grant of its notebook or None)."""
    env = os.environ if environ is None else environ
    work = env.get(SESSION_DIR_ENV)
    if not work:
        return False, None
    name = env.get(NOTEBOOK_ENV) or ""
    return True, read_grant(Path(work), name) if name else None


def cell_hashes(cells: list[Any]) -> dict[str, str]:
    """Each cell's id and the sha256 of its source (what an archived session is compared with)."""
    out = {}
    for n, cell in enumerate(cells):
        source = cell.get("source") or ""
        text = "".join(source) if isinstance(source, list) else str(source)
        out[str(cell.get("id") or f"#{n}")] = hashlib.sha256(text.encode()).hexdigest()
    return out
