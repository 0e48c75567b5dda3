"""runbook generate: monitoring/ (rules, Alertmanager, dashboards) from the catalog, and the
cause vocabulary's reference in docs/runbooks.md."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from runbook_lib.cli.common import echo, settings_for

DESCRIPTION = """\
Write monitoring/ from parameters/catalog.yaml and the settings (`monitoring:` in
parameters/defaults.yaml): Prometheus recording rules for every SLO's error ratio at each
burn-rate window, the multiwindow burn-rate alerts (14.4x 1h/5m and 6x 6h/30m page, 3x 1d/2h
and 1x 3d/6h ticket), the package's alerts with their runbook and runbook_url, the
Alertmanager configuration (critical: PagerDuty + Slack + the runbook receiver; warning: Slack
+ the receiver; a daily email digest; secrets only by *_file), and the SLO, Operator and
Infrastructure Grafana dashboards; and the cause codes per runbook (runbook_lib/sre/causes.py)
into docs/runbooks.md. The files are committed; --check (CI) fails when they differ from a
fresh generation."""

EPILOG = """\
exit codes: 0 written (or up to date with --check), 1 --check found stale files, 2 bad configuration

examples:
  runbook generate              # after changing the catalog or the monitoring settings
  runbook generate --check      # is monitoring/ what the catalog says?"""


def add_parsers(sub: Any, common: argparse.ArgumentParser, fmt: type[argparse.HelpFormatter]) -> None:
    p = sub.add_parser(
        "generate",
        parents=[common],
        formatter_class=fmt,
        help="write monitoring/ (rules, alertmanager.yml, dashboards) from the catalog",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if monitoring/ is not up to date")
    p.add_argument("--out", metavar="DIR", help="write here instead of <home>/monitoring")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from runbook_lib.monitoring import rules as monitoring
    from runbook_lib.sre.catalog import Catalog

    settings = settings_for(args)
    catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
    root = Path(args.out) if args.out else settings.home / "monitoring"
    files = monitoring.generate(catalog, settings)
    if args.check:
        stale = monitoring.stale(root, files)
        if not args.out and causes_reference(settings.home / "docs" / "runbooks.md"):
            stale.append("../docs/runbooks.md (the cause vocabulary)")
        for rel in stale:
            echo(f"stale: {root / rel}")
        if stale:
            echo(f"{len(stale)} of {len(files)} generated files are not up to date: run `runbook generate`")
            return 1
        echo(f"monitoring/ is up to date ({len(files)} files)")
        return 0
    changed = monitoring.write(root, files)
    for path in changed:
        echo(f"wrote {path}")
    echo(f"{len(changed)} of {len(files)} files changed under {root}")
    if not args.out and causes_reference(settings.home / "docs" / "runbooks.md", write=True):
        echo(f"wrote {settings.home / 'docs' / 'runbooks.md'} (the cause vocabulary)")
    return 0


BEGIN, END = "<!-- causes:begin", "<!-- causes:end -->"


def causes_reference(doc: Path, write: bool = False) -> bool:
    """The cause vocabulary (runbook_lib.sre.causes) between the markers of docs/runbooks.md:
    True when it differs from the module's (and, with ``write``, after writing it)."""
    from runbook_lib.sre.causes import reference_markdown

    if not doc.is_file():
        return False
    text = doc.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return False
    head = text.index("-->", start) + 3
    fresh = text[:head] + "\n" + reference_markdown().strip() + "\n" + text[end:]
    if fresh == text:
        return False
    if write:
        doc.write_text(fresh)
    return True
