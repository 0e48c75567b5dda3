"""Papermill execution of a runbook into an archived incident record. Runs in the host process.

One run: route the alert to a notebook -> execute it (:mod:`.execute`) with the parameters
injected under fixed names -> build the record from the executed notebook, redact, render,
archive (:mod:`runbook_lib.record.build`). A notebook that raises or times out still produces
a record.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from runbook_lib.core.contract import GROUP_ALERTNAME, MODES
from runbook_lib.core.credentials import environment_secrets
from runbook_lib.core.environmental import environmental
from runbook_lib.core.errors import ConfigError, RunbookError
from runbook_lib.core.layout import new_record_id
from runbook_lib.core.links import alert_links, grafana, prometheus_graph
from runbook_lib.core.present import when
from runbook_lib.core.redact import Redactor
from runbook_lib.core.settings import Settings
from runbook_lib.core.shapes import Record
from runbook_lib.record.archive import archive_for
from runbook_lib.record.archive.storage import sha256_file
from runbook_lib.record.build import SCHEMA, ArchivedRecord, collect, versions, write_record
from runbook_lib.record.diagnosis import diagnose
from runbook_lib.run.execute import Execution, execute
from runbook_lib.run.request import RunRequest, parameters, pick_runbook
from runbook_lib.sre import incident, oncall
from runbook_lib.sre.alertmanager import Alert
from runbook_lib.sre.catalog import TRIAGE, Catalog, Route

KEEP_UNWRITTEN = 4  # finished runs kept for a retry of their write (each holds its notebook in memory)


def redactor_for(settings: Settings, environ: Mapping[str, str] | None = None) -> Redactor:
    """What every record is redacted with: the settings' secrets and the environment's
    (``environ``, default this process's)."""
    return Redactor([*settings.secret_values(), *environment_secrets(environ)])


class Runner:
    def __init__(self, settings: Settings, environ: Mapping[str, str] | None = None) -> None:
        """``environ``: where secrets to redact are found besides the settings (default: this
        process's environment)."""
        self.settings = settings
        self.catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
        self.archive = archive_for(settings)
        self.redactor = redactor_for(settings, environ)
        # Finished runs whose archive write met an environmental failure (full disk, archive
        # down), by record id: a retry of the same record writes these, it does not run again.
        self._unwritten: dict[str, tuple[Any, Record]] = {}

    def _incident(self, alert: dict[str, Any] | None, linked: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The SEV level and deadlines (the worst of the alert and the alerts linked to this run),
        and who was on call when the alert fired, with the on-call overrides stored in PostgreSQL
        applied. Overrides that cannot be read leave the plain rotation and say so in
        ``on_call_error``: the run goes on."""
        found = incident.for_alert(alert, self.catalog.sev1, members=linked)
        if found is None or not alert:
            return found
        fired = when(alert.get("startsAt"))
        overrides: list[oncall.Override] = []
        path = oncall.roster_path(self.settings.home)
        if fired and path.is_file():
            from runbook_lib.clients.oncall_overrides import overrides_at

            try:
                overrides = overrides_at(self.settings, oncall.Roster.load(path), fired)
            except Exception as exc:  # whatever it is, the record is written; the reason goes in it
                found["on_call_error"] = f"on-call overrides not read, the plain rotation is shown: {exc}"[:300]
        try:
            found["on_call"] = oncall.on_call_at(self.settings.home, fired, overrides) if fired else None
        except ConfigError as exc:
            found["on_call"] = None
            found["on_call_error"] = str(exc)[:300]
        return found

    # -- routing ------------------------------------------------------------------------------
    def pick_runbook(self, alert: Alert | None, slug: str | None) -> tuple[str, Route | None]:
        """The runbook slug to run (see :func:`.request.pick_runbook`)."""
        return pick_runbook(self.catalog, self.settings, alert, slug)

    def parameters(self, request: RunRequest, slug: str) -> dict[str, Any]:
        """The values papermill injects (see :func:`.request.parameters`)."""
        return parameters(self.catalog, self.settings, request, slug)

    # -- interactive preparation ----------------------------------------------------------------
    def prepare(self, request: RunRequest, out_dir: Path | None = None) -> Path:
        """Inject parameters without executing (papermill prepare_only), for JupyterLab."""
        import papermill as pm

        slug, _ = self.pick_runbook(request.alert, request.slug)
        out_dir = out_dir or (self.settings.archive_path / "interactive")
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{slug}-{secrets.token_hex(3)}.ipynb"  # never another's
        pm.execute_notebook(
            str(self.catalog.notebook(slug)),
            str(out),
            parameters=self.parameters(request, slug),
            prepare_only=True,
            progress_bar=False,
            kernel_name=self.settings.kernels.kernel_name,
        )
        return out

    # -- execution --------------------------------------------------------------------------------
    def run(
        self, request: RunRequest, progress: bool = False, say: Callable[[str], None] | None = None
    ) -> ArchivedRecord:
        step_say = say
        say = say or (lambda _msg: None)
        if request.mode not in MODES:
            raise RunbookError(f"mode must be one of {MODES}, got {request.mode!r}")
        slug, route = self.pick_runbook(request.alert, request.slug)
        record_id = request.record_id or new_record_id(slug)
        staging = self.archive.staging_dir(record_id)
        kept = self._unwritten.pop(record_id, None) if request.record_id else None
        if kept is not None:
            nb, record = kept
            say(f"record {record_id}: the run finished before; writing it again")
        else:
            params = self.parameters(request, slug)
            started = datetime.now(UTC)
            say(f"running {slug} for {request.alert.name if request.alert else 'no alert'} -> record {record_id}")
            source = self.catalog.notebook(slug)
            done = execute(
                source,
                params,
                self.settings.kernels,
                progress=progress,
                skip=request.skip_execution,
                say=step_say,
                environ=request.environ,
            )
            nb, record = done.nb, self._record(request, record_id, slug, route, source, params, started, done)
        try:
            return write_record(self.archive, self.redactor, staging, nb, record, say)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)  # a retry starts clean; nothing half-written stays
            reason = environmental(exc)
            if reason and request.record_id:  # a retry of this record id writes this run, not another
                notes = record.setdefault("notes", [])
                if not any(n.startswith("archived on a later try") for n in notes):
                    notes.append(f"archived on a later try: the first write met '{reason}'; the run was not repeated")
                self._unwritten[record_id] = (nb, record)
                while len(self._unwritten) > KEEP_UNWRITTEN:
                    self._unwritten.pop(next(iter(self._unwritten)))
            raise

    def _links(self, alert: dict[str, Any], route: Route | None, started: datetime) -> list[dict[str, Any]]:
        """Where a person goes next: the alert's own links (marked trusted or not), the alert's
        expression in Prometheus, the service's dashboard."""
        links = alert_links(alert, self.settings.trusted_link_bases)
        expr = route.spec.expr if route is not None and route.spec is not None else None
        graph = prometheus_graph(self.settings.prometheus_link_base, expr or "", started)
        if graph:
            links.append({"title": "Prometheus: the alert's expression, last 3h", "url": graph})
        board = grafana(self.settings.links.grafana_url, self.settings.links.grafana_dashboard, started)
        if board:
            links.append({"title": "Grafana dashboard", "url": board})
        return links

    def _record(
        self,
        request: RunRequest,
        record_id: str,
        slug: str,
        route: Route | None,
        source: Path,
        params: dict[str, Any],
        started: datetime,
        done: Execution,
    ) -> Record:
        findings, actions = collect(done.nb)
        diagnosis = diagnose(findings, actions, runbook=slug, record_id=record_id, environment=self.settings.env)
        notes = list(request.notes)
        if route is not None and slug == TRIAGE and route.slug == TRIAGE and route.alertname != GROUP_ALERTNAME:
            notes.append(f"no dedicated runbook for {route.alertname} ({route.reason}); triage ran")
        if done.error_text:
            notes.append(f"execution error: {done.error_text.splitlines()[0][:300]}")
        return {
            "schema": SCHEMA,
            "id": record_id,
            "runbook": slug,
            "runbook_sha256": sha256_file(source),
            "environment": self.settings.env,
            "origin": request.origin,
            "mode": request.mode,
            "alert": params["alert"],
            "parameters": {k: v for k, v in params.items() if k != "alert"},
            "route": {"alertname": route.alertname, "slug": route.slug, "reason": route.reason} if route else None,
            "started_at": started.isoformat(timespec="milliseconds"),
            "ended_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "duration_s": round(done.duration_s, 3),
            "status": done.status,
            "failed_cell": done.failure,
            "diagnosis": diagnosis,
            # the run of an approved fix is evidence on its incident's timeline, not an incident of its own
            "incident": None
            if request.origin == "approval"
            else self._incident(params["alert"], [*request.linked, *request.members]),
            "linked_alerts": request.linked,
            "related_records": request.related,
            "links": self._links(params["alert"], route, started),
            "findings": findings,
            "actions": actions,
            "unchecked": [{"check": f["check"], "why": f["summary"]} for f in findings if f["verdict"] == "unchecked"],
            "attempt": request.attempt,
            "notes": notes,
            "intake": request.intake,
            "versions": versions(),
            "timings": {"execute_s": round(done.duration_s, 3)},
        }
