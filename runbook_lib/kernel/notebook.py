"""What a runbook notebook calls. Runs inside the kernel.

    rb = runbook_lib.start(alert=alert, environment=environment, mode=mode,
                           dry_run=dry_run, operator=operator, approve=approve)
    rb.step(1, "Identify which endpoints are failing")
    errors = checks.http.errors_by_endpoint(rb)

``rb.finding()`` emits a machine-readable finding (its own MIME type) that the runner reads
back into record.json; ``rb.table()`` shows a DataFrame; ``rb.prometheus`` / ``rb.postgres`` /
``rb.redis`` / ``rb.kubernetes`` are the configured clients (created on first use);
``rb.actions`` holds the guarded remediations.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, cast

from runbook_lib.core import present, sessions
from runbook_lib.core.contract import ACTION_MIME, FINDING_MIME, MODES, VERDICTS, jsonable, worst_first
from runbook_lib.core.errors import RunbookError, SourceError, SourceNotConfigured, SourceUnavailable
from runbook_lib.core.links import grafana_panel, prometheus_graph
from runbook_lib.core.settings import Settings, load_settings
from runbook_lib.core.shapes import Finding, Role, Verdict
from runbook_lib.sre import causes
from runbook_lib.sre.alertmanager import Alert, parse_alert
from runbook_lib.sre.catalog import Catalog, Route

if TYPE_CHECKING:
    import pandas as pd

    from runbook_lib.clients.prometheus import Prometheus
    from runbook_lib.clients.rabbitmq import RabbitMQ
    from runbook_lib.kernel.actions import Actions
    from runbook_lib.kernel.sources.blockchain import Blockchain
    from runbook_lib.kernel.sources.kubernetes import Kubernetes
    from runbook_lib.kernel.sources.postgres import Postgres
    from runbook_lib.kernel.sources.redis import Redis


def start(
    alert: Mapping[str, Any] | None = None,
    environment: str = "local",
    mode: str = "diagnose",
    dry_run: bool = True,
    operator: str = "",
    approve: Iterable[str] = (),
    settings: Settings | None = None,
) -> Runbook:
    """Begin a runbook: validate the parameters, load settings, show what this run is."""
    if mode not in MODES:
        raise RunbookError(f"mode must be one of {MODES}, got {mode!r}")
    settings = settings or load_settings(env=environment)
    parsed = parse_alert(dict(alert)) if alert else None
    rb = Runbook(
        settings,
        parsed,
        mode=mode,
        dry_run=bool(dry_run),
        operator=str(operator or "").strip(),
        approve=approve,
    )
    rb.show_context()
    return rb


class Runbook:
    def __init__(
        self,
        settings: Settings,
        alert: Alert | None,
        mode: str = "diagnose",
        dry_run: bool = True,
        operator: str = "",
        approve: Iterable[str] = (),
    ) -> None:
        self.settings = settings
        self.alert = alert
        # what the caller asked for; in a `runbook open` session the grant decides (see authority)
        self._asked: dict[str, Any] = {
            "mode": mode,
            "dry_run": dry_run,
            "operator": operator,
            "approve": {str(a) for a in (approve or ())},
        }
        self.now = datetime.now(UTC)
        self.findings: list[Finding] = []
        self.actions_taken: list[dict[str, Any]] = []
        self.current_step: str = ""
        self.current_title: str = ""
        self.essential = False  # inside a check the runbook's diagnosis depends on
        self.recommended: str | None = None  # the one option (or decision) this run recommends
        self._clients: dict[str, Any] = {}

    # -- authority: what this run may change -------------------------------------------------
    def authority(self) -> dict[str, Any]:
        """mode, dry_run, operator and approve as the guard must read them. Outside an
        interactive session: what the run was started with (papermill's parameters). In a kernel
        of a `runbook open` session: what `runbook open` granted this notebook, read from its
        signed grant at every call (:mod:`runbook_lib.core.sessions`); without a valid grant,
        diagnose only. Reassigning ``mode`` or ``dry_run`` in a cell changes neither."""
        interactive, grant = sessions.kernel_grant()
        if not interactive:
            return self._asked
        if grant is None:
            return {"mode": "diagnose", "dry_run": True, "operator": "", "approve": set(), "session": None}
        return {
            "mode": grant.get("mode", "diagnose"),
            "dry_run": bool(grant.get("dry_run", True)),
            "operator": str(grant.get("operator") or ""),
            "approve": {str(a) for a in grant.get("approve") or []},
            "session": grant.get("id"),
        }

    @property
    def mode(self) -> str:
        return str(self.authority()["mode"])

    @mode.setter
    def mode(self, value: str) -> None:
        self._asked["mode"] = value  # in a session the grant still decides

    @property
    def dry_run(self) -> bool:
        return bool(self.authority()["dry_run"])

    @dry_run.setter
    def dry_run(self, value: bool) -> None:
        self._asked["dry_run"] = bool(value)

    @property
    def operator(self) -> str:
        return str(self.authority()["operator"])

    @operator.setter
    def operator(self, value: str) -> None:
        self._asked["operator"] = str(value)

    @property
    def approve(self) -> set[str]:
        return set(self.authority()["approve"])

    @approve.setter
    def approve(self, value: Iterable[str]) -> None:
        self._asked["approve"] = {str(a) for a in value}

    # -- context ------------------------------------------------------------------------------
    @property
    def labels(self) -> dict[str, str]:
        return dict(self.alert.labels) if self.alert else {}

    @property
    def alertname(self) -> str:
        return self.alert.name if self.alert else "(no alert: interactive run)"

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.load(self.settings.catalog_file, self.settings.runbooks_path)

    @property
    def route(self) -> Route | None:
        return self.catalog.route(self.alert.name, self.alert.annotations.get("runbook")) if self.alert else None

    @property
    def service(self) -> Any:
        return self.settings.service

    @property
    def thresholds(self) -> Any:
        return self.settings.thresholds

    @property
    def metrics(self) -> Any:
        return self.settings.metrics

    def show_context(self) -> None:
        backends = {
            "Prometheus": self.settings.describe("prometheus"),
            "PostgreSQL": self.settings.describe("postgres"),
            "Redis": self.settings.describe("redis"),
            "Kubernetes": (
                f"{self.settings.kubernetes.kubeconfig} (namespace {self.settings.kubernetes.namespace})"
                if self.settings.kubernetes.kubeconfig
                else "not configured"
            ),
        }
        info = {
            "alert": self.alertname,
            "status": self.alert.status if self.alert else "",
            "severity": self.alert.severity if self.alert else "",
            "starts_at": present.iso(self.alert.startsAt) if self.alert else "",
            "fingerprint": self.alert.fingerprint if self.alert else "",
            "environment": self.settings.env,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "operator": self.operator or "(none)",
            "evaluated_at": present.iso(self.now),
        }
        interactive, grant = sessions.kernel_grant()
        if interactive:  # where mode, dry_run and operator came from
            info["session"] = (
                f"granted by `runbook open` (session {grant.get('id')})"
                if grant
                else "no grant from `runbook open` for this notebook: diagnose only"
            )
        rows = [(k, v) for k, v in info.items()] + [(f"backend: {k}", v) for k, v in backends.items()]
        html = present.table_html(["", ""], rows, title="Run context")
        text = "\n".join(f"{k:>22}: {v}" for k, v in rows)
        self._display({"text/html": html, "text/plain": text})

    # -- steps and findings --------------------------------------------------------------------
    def step(self, number: int | str, title: str) -> None:
        """Mark the start of a diagnosis step; findings after this carry its label."""
        self.current_step = f"Step {number}" if isinstance(number, int) else str(number)
        self.current_title = title

    def finding(
        self,
        check: str,
        verdict: str,
        summary: str,
        *,
        role: str | None = None,
        cause: str | None = None,
        provisional: bool = False,
        **details: Any,
    ) -> Finding:
        """Record one finding. verdict: critical / warning / unchecked / info / ok. ``role``:
        "symptom" (what is broken) or "cause" (why), which the record's headline is built from, or
        "context" (about the run, not the system: never evidence for or against the diagnosis);
        a cause names its code from :mod:`runbook_lib.sre.causes` (``cause=``). ``provisional``:
        measured on too little data, so never louder than a warning (a critical verdict is
        lowered, and the summary says why). Findings made inside an essential check (see
        checks.base.check) are marked essential: a run where every essential check went
        unchecked, and nothing measured points anywhere, is incomplete."""
        if verdict not in VERDICTS:
            raise RunbookError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
        if cause is not None and not causes.known(cause):
            raise RunbookError(f"cause {cause!r} is not in the vocabulary (runbook_lib.sre.causes)")
        if provisional and verdict == "critical":
            verdict = "warning"
            summary = f"{summary} (provisional: capped at warning until enough of the window has data)"
        f: Finding = {
            "step": self.current_step,
            "check": check,
            "verdict": cast(Verdict, verdict),  # checked against VERDICTS above
            "summary": summary,
            "details": jsonable(details),
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        if role:
            f["role"] = cast(Role, role)
        if cause:
            f["cause"] = cause
        if provisional:
            f["provisional"] = True
        if self.essential:
            f["essential"] = True
        self.findings.append(f)
        self._display({FINDING_MIME: f, "text/html": present.finding_html(f), "text/plain": present.finding_text(f)})
        return f

    def unchecked(self, check: str, error: BaseException | str) -> Finding:
        """A check that could not run: backend not configured, unreachable, or erroring."""
        if isinstance(error, SourceNotConfigured):
            summary = f"{error.source}: not configured ({error.how})"
            reason = "not configured"
        elif isinstance(error, SourceError):
            summary = str(error)
            reason = "unreachable" if isinstance(error, SourceUnavailable) else "error"
        else:
            summary, reason = str(error), "error"
        return self.finding(check, "unchecked", summary, reason=reason)

    def table(self, frame: pd.DataFrame, title: str | None = None, max_rows: int = 25) -> None:
        """Show a DataFrame (first ``max_rows`` rows) in a form the record keeps."""
        shown = frame.head(max_rows)
        note = f"{len(frame) - max_rows} more rows not shown" if len(frame) > max_rows else ""
        if frame.empty:
            note = "no rows"
        html = present.table_html(
            [str(c) for c in shown.columns], shown.itertuples(index=False, name=None), title, note
        )
        text = (f"{title}\n" if title else "") + (shown.to_string(index=False) if not frame.empty else "(no rows)")
        self._display({"text/html": html, "text/plain": text})

    def image(self, png: bytes, alt: str) -> None:
        """Show a PNG (a plot) in the notebook and the record."""
        self._display({"image/png": base64.b64encode(png).decode("ascii"), "text/plain": f"[{alt}]"})

    def query_link(
        self, expr: str, title: str, range_s: float = 3 * 3600, panel: tuple[str, str] | None = None
    ) -> None:
        """ "Open in Prometheus" for a query this runbook ran, over ``range_s`` up to now; with
        ``panel`` (dashboard file, panel title) and links.grafana_url set, the matching panel of
        the generated Grafana dashboard too."""
        urls = [("open in Prometheus", prometheus_graph(self.settings.prometheus_link_base, expr, self.now, range_s))]
        if panel:
            found = grafana_panel(self.settings.links.grafana_url, panel[0], panel[1], self.now, range_s)
            urls.append((f"Grafana: {panel[1]}", found))
        shown = [(label, url) for label, url in urls if url]
        if shown:
            anchors = " · ".join(f'<a href="{present.esc(url)}">{present.esc(label)}</a>' for label, url in shown)
            html = f'<div class="rb-note">{anchors}: {present.esc(title)}</div>'
            self._display({"text/html": html, "text/plain": "; ".join(f"{label}: {url}" for label, url in shown)})

    def show(self, html: str, text: str) -> None:
        """Show HTML built with :mod:`runbook_lib.core.present` (values escaped there), with its text
        form, as an output the record keeps."""
        self._display({"text/html": html, "text/plain": text})

    def note(self, text: str) -> None:
        self._display({"text/html": present.note_html(text), "text/plain": text})

    def summary(self) -> None:
        """Show the findings so far, worst first (the record's summary is built the same way)."""
        rows = worst_first(self.findings)
        html = "".join(present.finding_html(f) for f in rows) or present.note_html("no findings")
        text = "\n".join(present.finding_text(f) for f in rows) or "no findings"
        self._display({"text/html": f"<div><b>Summary of findings</b>{html}</div>", "text/plain": text})

    def claim_recommendation(self, name: str) -> str | None:
        """Make ``name`` this run's recommendation; None when it is, else the option already
        recommended (a record recommends one thing: the first the runbook recommends)."""
        if self.recommended is None or self.recommended == name:
            self.recommended = name
            return None
        return self.recommended

    def escalate(self, reason: str, to: str = "") -> dict[str, Any]:
        """Recommend escalating instead of a guarded option: nothing here can fix what was
        found (``reason`` says why, ``to`` whom)."""
        return self._decision("escalate", f"Escalate{f' to {to}' if to else ''}", reason)

    def no_action(self, reason: str) -> dict[str, Any]:
        """Recommend doing nothing (``reason``: nothing is wrong, or it already recovered)."""
        return self._decision("none", "No action", reason)

    def _decision(self, name: str, title: str, reason: str) -> dict[str, Any]:
        """A decision stands only as the record's one recommendation: when a guarded option was
        already recommended, nothing is recorded (an empty dict is returned)."""
        if self.claim_recommendation(name) is not None:
            return {}
        action = {
            "name": name,
            "step": self.current_step,
            "step_title": self.current_title,
            "title": title,
            "target": "",
            "command": "",
            "recommended": True,
            "why": reason,
            "mode": self.mode,
            "dry_run": self.dry_run,
            "operator": self.operator,
            "audit_ids": [],
            "plan": None,
            "result": None,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "status": "proposed",
            "reason": "a decision for people; nothing is changed",
        }
        return self.record_action(action)

    def record_action(self, action: dict[str, Any]) -> dict[str, Any]:
        """Emit one resolution option's outcome (from :mod:`.actions`) into the notebook and the record."""
        action = jsonable(action)
        self.actions_taken.append(action)
        self._display(
            {ACTION_MIME: action, "text/html": present.action_html(action), "text/plain": present.action_text(action)}
        )
        return action

    @staticmethod
    def _display(bundle: dict[str, Any]) -> None:
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                display(bundle, raw=True)
                return
        except ImportError:
            pass
        print(bundle.get("text/plain", ""))

    # -- backends (created on first use) --------------------------------------------------------
    def _client(self, key: str, factory: Any) -> Any:
        if key not in self._clients:
            self._clients[key] = factory(self.settings)
        return self._clients[key]

    @property
    def prometheus(self) -> Prometheus:
        from runbook_lib.clients.prometheus import Prometheus

        return self._client("prometheus", Prometheus.from_settings)

    @property
    def postgres(self) -> Postgres:
        from runbook_lib.kernel.sources.postgres import Postgres

        return self._client("postgres", Postgres.from_settings)

    @property
    def redis(self) -> Redis:
        from runbook_lib.kernel.sources.redis import Redis

        return self._client("redis", Redis.from_settings)

    @property
    def kubernetes(self) -> Kubernetes:
        from runbook_lib.kernel.sources.kubernetes import Kubernetes

        return self._client("kubernetes", Kubernetes.from_settings)

    @property
    def rabbitmq(self) -> RabbitMQ:
        from runbook_lib.clients.rabbitmq import RabbitMQ

        return self._client("rabbitmq", RabbitMQ.from_settings)

    @property
    def blockchain(self) -> Blockchain:
        from runbook_lib.kernel.sources.blockchain import Blockchain

        return self._client("blockchain", Blockchain.from_settings)

    @cached_property
    def actions(self) -> Actions:
        from runbook_lib.kernel.actions import Actions

        return Actions(self)
