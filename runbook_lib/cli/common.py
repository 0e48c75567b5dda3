"""What every command shares: settings from --env, the alert input, one terminal output
function that neutralises control characters, and a plain table printer."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from runbook_lib.core.contract import VERDICTS, worst_first
from runbook_lib.core.errors import AlertError
from runbook_lib.core.present import finding_text, visible

MAX_ALERT_BYTES = 1_048_576


def settings_for(args: argparse.Namespace) -> Any:
    from runbook_lib.core.settings import load_settings

    return load_settings(env=args.env)


def read_alert_input(path: str, fingerprint: str | None) -> Any:
    """The alert from --alert FILE (or '-' for stdin): a webhook payload or one alert object."""
    from runbook_lib.sre.alertmanager import load_alert_text

    if path == "-":
        data = sys.stdin.buffer.read(MAX_ALERT_BYTES + 1)
        where = "stdin"
    else:
        try:
            with Path(path).open("rb") as fh:
                data = fh.read(MAX_ALERT_BYTES + 1)
        except OSError as exc:
            raise AlertError(f"--alert {path}: {exc.strerror}") from None
        where = path
    if len(data) > MAX_ALERT_BYTES:
        raise AlertError(f"--alert {where}: larger than {MAX_ALERT_BYTES} bytes")
    try:
        alert, _payload = load_alert_text(data, fingerprint)
    except AlertError as exc:
        raise AlertError(f"--alert {where}: {exc}") from None
    return alert


def echo(text: object = "", file: Any = None, flush: bool = False) -> None:
    """print() for text that may hold alert labels: control characters (terminal escape
    sequences) and bidi marks are shown as visible escapes instead of being obeyed."""
    print(visible(str(text)), file=file or sys.stdout, flush=flush)


def worst(findings: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    return worst_first(findings)[:n]


def finding_lines(findings: list[dict[str, Any]], indent: str = "  ") -> list[str]:
    return [indent + finding_text(f, step=False) for f in findings]


def verdict_counts(findings: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for f in findings:
        counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


def print_table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Rows in padded columns. On a terminal a row wider than it is cut at its end; into a pipe
    or a file (no width) every row is printed whole."""
    width = terminal_width()
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    echo("  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip())
    for r in rows:
        line = "  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns).rstrip()
        echo(line if width is None else _cut(line, max(width, 60)))


def terminal_width() -> int | None:
    """The width of the terminal stdout writes to (COLUMNS when set), or None when stdout is not
    a terminal: a pipe or a file has no width, so nothing is cut for it."""
    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return None
    return shutil.get_terminal_size((120, 20)).columns


def _cut(line: str, width: int) -> str:
    """A row no wider than the terminal, its column padding kept (cut at the end, marked "...")."""
    return line if len(line) <= width else line[: width - 3] + "..."
