"""What a run is asked to do, and the checks that need no notebook machinery: which runbook an
alert routes to, and the parameters it gets (a runbook's own ones checked against the names its
parameters cell declares). Light on purpose: `runbook run` answers a mistake in its input before
papermill, nbconvert or a kernel is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from runbook_lib.core.contract import PARAMETERS, declared_parameters
from runbook_lib.core.errors import ConfigError, RunbookNotFound
from runbook_lib.core.settings import Settings
from runbook_lib.sre.alertmanager import Alert
from runbook_lib.sre.catalog import Catalog, Route


@dataclass
class RunRequest:
    alert: Alert | None
    slug: str | None = None
    mode: str = "diagnose"
    dry_run: bool = True
    operator: str = ""
    approve: list[str] = field(default_factory=list)
    record_id: str | None = None
    attempt: int = 1
    notes: list[str] = field(default_factory=list)
    origin: str = "cli"
    intake: dict[str, Any] | None = None
    # When set, do not execute: write a record with status "interrupted" saying why.
    skip_execution: str | None = None
    # Alerts of the same group and runbook this run also stands for (not run again).
    linked: list[dict[str, Any]] = field(default_factory=list)
    # A run-cap group's member alerts, as {alertname, severity}: only their SEV counts (the worst of
    # them and the alert is the record's); they are not linked alerts and are not listed as such.
    members: list[dict[str, Any]] = field(default_factory=list)
    # Earlier records of the same Alertmanager group (other runbooks).
    related: list[dict[str, Any]] = field(default_factory=list)
    # Values for parameters the runbook declares beyond the fixed ones (`runbook run --param`).
    extra: dict[str, Any] = field(default_factory=dict)
    # The kernel's whole environment (a DR drill's sub-run); None: this process's. Never recorded.
    environ: dict[str, str] | None = None


def pick_runbook(
    catalog: Catalog, settings: Settings, alert: Alert | None, slug: str | None
) -> tuple[str, Route | None]:
    """The runbook slug to run: the given one, or the alert's route (triage if none)."""
    route = catalog.route(alert.name, alert.annotations.get("runbook")) if alert else None
    if slug:
        if not catalog.has_notebook(slug):
            known = ", ".join(catalog.slugs())
            raise RunbookNotFound(f"no runbook {slug!r} in {settings.runbooks_path} (known: {known})")
        return slug, route
    if route is None:
        raise ConfigError("give a runbook SLUG or an --alert to route from")
    if not catalog.has_notebook(route.slug):
        raise RunbookNotFound(f"the {route.slug!r} runbook is missing from {settings.runbooks_path}")
    return route.slug, route


def parameters(catalog: Catalog, settings: Settings, request: RunRequest, slug: str) -> dict[str, Any]:
    """The values papermill injects: the contract's fixed names, then any of the runbook's own
    declared parameters the request sets (refused when the notebook does not declare it)."""
    params = {
        "alert": request.alert.to_param() if request.alert else {},
        "environment": settings.env,
        "mode": request.mode,
        "dry_run": bool(request.dry_run),
        "operator": request.operator,
        "approve": list(request.approve),
    }
    if request.extra:
        declared = declared_in(catalog, slug)
        own = sorted(k for k in declared if k not in PARAMETERS)
        for name in request.extra:
            if name in PARAMETERS:
                raise ConfigError(f"{name!r} is a fixed parameter: use its own option (--mode, --operator, ...)")
            if name not in declared:
                raise ConfigError(
                    f"runbook {slug!r} has no parameter {name!r}"
                    + (f" (its own parameters: {', '.join(own)})" if own else " (it declares none of its own)")
                )
        params.update(request.extra)
    return params


def declared_in(catalog: Catalog, slug: str) -> dict[str, Any]:
    """The parameters (and defaults) a runbook's cell tagged `parameters` declares (the notebook
    read as the JSON it is: no nbformat needed)."""
    try:
        nb = json.loads(catalog.notebook(slug).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"runbook {slug!r}: the notebook cannot be read ({type(exc).__name__})") from None
    for cell in nb.get("cells", []) if isinstance(nb, dict) else []:
        if cell.get("cell_type") == "code" and "parameters" in (cell.get("metadata") or {}).get("tags", []):
            source = cell.get("source", "")
            return declared_parameters("".join(source) if isinstance(source, list) else str(source))
    raise ConfigError(f"runbook {slug!r} has no cell tagged 'parameters'")
