"""How a drill runs another runbook: in this process, through the runner (:mod:`runbook_lib.run`),
on a cold kernel of its own whose whole environment the drill gives, into an archive the drill
names. The one place the kernel side calls the host side, and the import contract says so.

The environment travels only to the sub-run's settings and its kernel: never into a parameter
(papermill writes parameters into the notebook) and never into the record; its secret-looking
values are redacted from the sub-run's record like the process's own.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runbook_lib.core.settings import load_settings
from runbook_lib.sre.alertmanager import parse_alert


@dataclass
class SubRun:
    record: dict[str, Any]  # record.json as archived
    location: str  # the record's folder (a path, or a URL)
    seconds: float

    @property
    def record_id(self) -> str:
        return str(self.record["id"])

    @property
    def succeeded(self) -> bool:
        """It ran to the end and its diagnosis is not incomplete (`runbook run`'s exit 0)."""
        verdict = (self.record.get("diagnosis") or {}).get("verdict")
        return self.record.get("status") == "succeeded" and verdict != "incomplete"

    @property
    def outcome(self) -> str:
        """What happened, in a few words: "succeeded", "diagnosis incomplete", "failed: ..."."""
        if self.succeeded:
            return "succeeded"
        if self.record.get("status") == "succeeded":
            return "diagnosis incomplete"
        failure = self.record.get("failed_cell") or {}
        return f"{self.record.get('status')}: {failure.get('ename', '')} {failure.get('evalue', '')}".strip()

    def html(self) -> Path:
        return Path(self.location) / "record.html"


def run_runbook(
    slug: str,
    environ: Mapping[str, str],
    *,
    env: str,
    alert: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> SubRun:
    """Run runbook ``slug`` in diagnose mode with settings and a kernel environment made from
    ``environ`` alone (RUNBOOK_ARCHIVE in it says where the record goes); the archived record."""
    from runbook_lib.run.request import RunRequest  # the host side, only when a drill runs one
    from runbook_lib.run.runner import Runner

    environ = dict(environ)
    settings = load_settings(env=env, environ=environ)
    started = time.monotonic()
    request = RunRequest(
        alert=parse_alert(alert) if alert else None,
        slug=slug,
        origin="drill",
        extra=dict(params or {}),
        environ=environ,
    )
    done = Runner(settings, environ=environ).run(request)
    return SubRun(done.record, done.location, time.monotonic() - started)
