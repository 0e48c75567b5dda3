"""On-call's own session as evidence: `runbook open` prepares a working copy with a signed grant
(:mod:`runbook_lib.core.sessions`), and `runbook archive` chains the worked notebook into the
archive as a record of its own (origin "interactive"), under the same redaction, sanitising and
CSP as every automatic record, with an event on the record it continued.

What the record says about the session: the operator, the runbook and its sha256 at opening, the
record it continued, which cells on-call added or changed against what was opened (marked in the
rendered page), the actions the session ran and the audit rows that operator wrote meanwhile.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat

from runbook_lib.core import sessions
from runbook_lib.core.contract import declared_parameters
from runbook_lib.core.errors import Refused
from runbook_lib.core.layout import is_record_id
from runbook_lib.core.present import iso
from runbook_lib.core.settings import Settings
from runbook_lib.core.shapes import Record
from runbook_lib.record.archive import Archive
from runbook_lib.record.archive.storage import sha256_file
from runbook_lib.record.build import SCHEMA, ArchivedRecord, collect, versions, write_record
from runbook_lib.record.diagnosis import diagnose
from runbook_lib.run.runner import redactor_for
from runbook_lib.sre.catalog import Catalog

log = logging.getLogger("runbook.interactive")
AUTHORITY = ("mode", "dry_run", "operator", "approve")


def grant_session(
    path: Path,
    settings: Settings,
    *,
    runbook: str,
    operator: str,
    mode: str,
    dry_run: bool,
    approve: list[str],
    continued: str | None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Sign what `runbook open` decided for the working copy at ``path`` into its metadata and
    its grant file (beside it, in ``.grants/``); the notebook's parameters cell says the same
    (with ``extra``: the runbook's own parameters given with --param)."""
    nb = nbformat.read(str(path), as_version=4)
    values = {**(extra or {}), "mode": mode, "dry_run": dry_run, "operator": operator, "approve": approve}
    _set_parameters(nb, values)
    catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
    source = catalog.notebook(runbook) if catalog.has_notebook(runbook) else None
    grant = {
        "id": uuid.uuid4().hex[:16],
        "origin": "interactive",
        "notebook": path.name,
        "runbook": runbook,
        "runbook_sha256": sha256_file(source) if source else None,
        "environment": settings.env,
        "operator": operator,
        "mode": mode,
        "dry_run": dry_run,
        "approve": sorted(set(approve)),
        "continued": continued,
        "prepared_at": iso(datetime.now(UTC)),
        "cells": sessions.cell_hashes(nb.cells),
    }
    signed = sessions.sign(grant, sessions.key(path.parent, create=True) or b"")
    nb.metadata[sessions.METADATA_KEY] = signed
    nbformat.write(nb, str(path))
    _write_grant(path.parent, path.name, signed)
    return signed


def _write_grant(work: Path, name: str, grant: dict[str, Any]) -> None:
    target = sessions.grant_path(work, name)
    target.parent.mkdir(mode=0o700, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps(grant, indent=2, sort_keys=True))
    tmp.replace(target)


def _set_parameters(nb: nbformat.NotebookNode, values: dict[str, Any]) -> None:
    """Rewrite these names in the injected-parameters cell (a record's notebook continued in
    resolve mode reads as what it now is; the grant is what the guard believes either way)."""
    cell = next((c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return
    lines = [ln for ln in str(cell.source).splitlines() if not re.match(rf"^({'|'.join(values)})\s*=", ln)]
    lines += [f"{name} = {value!r}" for name, value in values.items()]
    cell.source = "\n".join(lines) + "\n"


def verify_copy(path: Path) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """The working copy and its grant; Refused (exit 2) for a file `runbook open` did not
    prepare, one whose origin metadata was altered, or one already archived."""
    try:
        nb = nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise Refused(f"{path}: no such file") from None
    except (OSError, ValueError, nbformat.reader.NotJSONError) as exc:
        raise Refused(f"{path}: not a notebook ({type(exc).__name__})") from None
    meta = nb.metadata.get(sessions.METADATA_KEY)
    if not isinstance(meta, dict):
        raise Refused(f"{path.name} was not prepared by `runbook open` (no {sessions.METADATA_KEY} metadata)")
    grant = sessions.read_grant(path.parent, path.name)
    if not sessions.valid(meta, sessions.key(path.parent)) or grant is None or grant.get("sig") != meta.get("sig"):
        if grant is not None and grant.get("archived") and _same_session(meta, grant):
            raise Refused(f"{path.name} is archived already, as record {grant['archived']}")
        raise Refused(
            f"{path.name}: its origin metadata ({sessions.METADATA_KEY}) does not match what `runbook open` "
            "signed: it was altered, or the file was moved out of its working directory"
        )
    if grant.get("archived"):
        raise Refused(f"{path.name} is archived already, as record {grant['archived']}")
    return nb, grant


def _same_session(meta: dict[str, Any], grant: dict[str, Any]) -> bool:
    return {k: v for k, v in meta.items() if k not in ("sig", "archived")} == {
        k: v for k, v in grant.items() if k not in ("sig", "archived")
    }


def session_record_id(grant: dict[str, Any]) -> str:
    """The record id a session is archived under: fixed by the session (its start and id), so a
    second archive of the same session can never make a second record."""
    start = datetime.fromisoformat(str(grant["prepared_at"]).replace("Z", "+00:00"))
    return f"{start:%Y%m%dT%H%M%SZ}-{grant['runbook']}-{grant['id'][:8]}"


def changes(nb: nbformat.NotebookNode, grant: dict[str, Any]) -> dict[str, list[int]]:
    """Indices of the cells on-call added or changed against the copy `runbook open` prepared
    (cells are known by their ids), and how many it removed. Each is marked in its metadata."""
    opened: dict[str, str] = grant.get("cells") or {}
    now = sessions.cell_hashes(nb.cells)
    added, changed = [], []
    for index, (cell_id, digest) in enumerate(now.items()):
        if cell_id not in opened:
            added.append(index)
            nb.cells[index].metadata["runbook_session_change"] = "added"
        elif opened[cell_id] != digest:
            changed.append(index)
            nb.cells[index].metadata["runbook_session_change"] = "changed"
    return {"added": added, "changed": changed, "removed": [len(set(opened) - set(now))]}


def describe(ch: dict[str, list[int]]) -> str:
    """'on-call added 3 cells, changed 1' (and removed)."""
    removed = ch["removed"][0] if ch.get("removed") else 0
    parts = [f"added {_cells(len(ch['added']))}"]
    if ch["changed"]:
        parts.append(f"changed {len(ch['changed'])}")
    if removed:
        parts.append(f"removed {removed}")
    return "on-call " + ", ".join(parts)


def _cells(n: int) -> str:
    return f"{n} cell" + ("" if n == 1 else "s")


def archive_session(settings: Settings, archive: Archive, path: Path) -> ArchivedRecord:
    """Chain an interactively worked copy into the archive as a record (see the module)."""
    nb, grant = verify_copy(path)
    record_id = session_record_id(grant)
    if not is_record_id(record_id):
        raise Refused(f"{path.name}: the session's runbook name {grant.get('runbook')!r} cannot name a record")
    if archive.is_indexed(record_id):
        raise Refused(f"{path.name} is archived already, as record {record_id}")
    continued = grant.get("continued")
    if continued and not archive.is_indexed(continued):
        raise Refused(f"{path.name} continues record {continued}, which is not in {archive.location}")
    ended = datetime.now(UTC)
    ch = changes(nb, grant)
    findings, actions = collect(nb)
    params = _parameters(nb)
    errors = [i for i, c in enumerate(nb.cells) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    audit, audit_note = _audit_rows(settings, grant, ended)
    summary = describe(ch)
    notes = [f"interactive session of {grant['operator'] or 'no operator'}: {summary}"]
    if audit_note:
        notes.append(audit_note)
    if errors:
        notes.append(f"cells that ended in an error: {', '.join(str(i) for i in errors[:20])}")
    record: Record = {
        "schema": SCHEMA,
        "id": record_id,
        "runbook": grant["runbook"],
        "runbook_sha256": grant.get("runbook_sha256") or "",
        "environment": grant.get("environment") or settings.env,
        "origin": "interactive",
        "mode": grant["mode"],
        "alert": params.get("alert") or {},
        "parameters": {k: v for k, v in params.items() if k != "alert"},
        "route": None,
        "started_at": grant["prepared_at"],
        "ended_at": ended.isoformat(timespec="milliseconds"),
        "duration_s": round(
            (ended - datetime.fromisoformat(grant["prepared_at"].replace("Z", "+00:00"))).total_seconds(), 3
        ),
        "status": "failed" if errors else "succeeded",
        "failed_cell": {"index": errors[0], "ename": "error", "evalue": "an interactive cell raised"}
        if errors
        else None,
        "diagnosis": diagnose(
            findings, actions, runbook=grant["runbook"], record_id=record_id, environment=settings.env
        ),
        "incident": None,  # the session is evidence on its incident, not a new one
        "linked_alerts": [],
        "related_records": [{"record_id": continued, "alertname": "", "relation": "continued"}] if continued else [],
        "links": [],
        "findings": findings,
        "actions": actions,
        "unchecked": [{"check": f["check"], "why": f["summary"]} for f in findings if f["verdict"] == "unchecked"],
        "attempt": 1,
        "notes": notes,
        "intake": None,
        "versions": versions(),
        "timings": {},
    }
    record["session"] = {  # type: ignore[typeddict-unknown-key]
        "id": grant["id"],
        "operator": grant["operator"],
        "prepared_at": grant["prepared_at"],
        "continued": continued,
        "dry_run": grant["dry_run"],
        "approve": grant["approve"],
        "summary": summary,
        **ch,
        "audit_rows": audit,
    }
    staging = archive.staging_dir(record_id)
    try:
        done = write_record(archive, redactor_for(settings), staging, nb, record)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if continued:
        archive.append_event(
            continued,
            "continued",
            {
                "by": grant["operator"],
                "record": record_id,
                "session": grant["id"],
                "summary": summary,
                "at": iso(ended),
            },
        )
    _write_grant(
        path.parent, path.name, sessions.sign({**grant, "archived": record_id}, sessions.key(path.parent) or b"")
    )
    return done


def _parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    cell = next((c for c in nb.cells if "injected-parameters" in c.get("metadata", {}).get("tags", [])), None)
    if cell is None:
        return {}
    try:
        return declared_parameters(str(cell.source))
    except (ValueError, SyntaxError):
        return {}


def _audit_rows(settings: Settings, grant: dict[str, Any], ended: datetime) -> tuple[list[dict[str, Any]], str]:
    """audit_logs rows of the session's window written by its operator (with a note when they
    could not be read)."""
    if settings.postgres.dsn is None:
        return [], "audit_logs not read: RUNBOOK_POSTGRES_DSN is not set"
    from runbook_lib.clients.audit import rows_between

    start = datetime.fromisoformat(grant["prepared_at"].replace("Z", "+00:00")) - timedelta(seconds=1)
    try:
        rows = rows_between(
            settings.postgres.dsn.get_secret_value(), start, ended, 500, settings.postgres.connect_timeout_s
        )
    except Exception as exc:  # the record is still written, saying why the rows are missing
        return [], f"audit_logs not read: {type(exc).__name__}"
    mine = [r for r in rows if r.get("actor") == grant["operator"]]
    return [{**r, "created_at": iso(r["created_at"])} for r in mine], ""


def working_copies(work: Path) -> list[dict[str, Any]]:
    """Every working copy in ``work``: name, runbook, operator, mode, prepared, archived (or None)."""
    out = []
    for path in sorted(work.glob("*.ipynb")):
        grant = sessions.read_grant(work, path.name)
        out.append(
            {
                "path": str(path),
                "runbook": (grant or {}).get("runbook", "?"),
                "operator": (grant or {}).get("operator", ""),
                "mode": (grant or {}).get("mode", ""),
                "prepared": (grant or {}).get("prepared_at", ""),
                "archived": (grant or {}).get("archived"),
                "granted": grant is not None,
            }
        )
    return out


def prune(work: Path, keep_days: float, now: float | None = None) -> list[Path]:
    """Remove archived working copies (and their grants) older than ``keep_days``; unarchived
    ones are never removed (`runbook open --list` shows them)."""
    moment = time.time() if now is None else now
    removed = []
    for row in working_copies(work):
        path = Path(row["path"])
        if row["archived"] and moment - path.stat().st_mtime > keep_days * 86400:
            path.unlink(missing_ok=True)
            sessions.grant_path(work, path.name).unlink(missing_ok=True)
            removed.append(path)
    return removed
