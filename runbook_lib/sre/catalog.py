"""The alert catalog (parameters/catalog.yaml): alerts, SLOs, and alertname -> runbook routing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.core.errors import ConfigError
from runbook_lib.sre.slo import WORKBOOK_TABLE, BudgetTier, Tier, parse_duration, tiers_for

TRIAGE = "triage"
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SEVERITIES = ("critical", "warning", "info")


RUNBOOK_KINDS = ("fallback", "drill", "report", "checklist", "manual")


@dataclass(frozen=True)
class AlertSpec:
    name: str
    severity: str
    runbook: str
    expr: str
    for_: str
    summary: str
    description: str = ""
    service: str = ""  # the service it is about: Alertmanager groups and inhibits by it
    slo: str = ""  # the SLO it guards, if any: one page per SLO whichever of its alerts fires first


@dataclass(frozen=True)
class SLOSpec:
    name: str
    service: str
    objective: float
    window: str
    sli: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    alertname: str
    slug: str
    reason: str  # "catalog", "not in catalog", "runbook not written yet"
    spec: AlertSpec | None


class Catalog:
    def __init__(self, alerts: list[AlertSpec], slos: list[SLOSpec], runbooks_dir: Path) -> None:
        self.alerts = {a.name: a for a in alerts}
        self.slos = slos
        self.runbooks_dir = runbooks_dir
        # runbooks no alert routes to: slug -> (kind, how it is reached)
        self.kinds: dict[str, tuple[str, str]] = {}
        # critical alerts that are SEV-1 (the rest of the critical ones are SEV-2)
        self.sev1: set[str] = set()
        # the burn-rate table every SLO's tiers are computed from (slo.tiers_for)
        self.tiers: tuple[BudgetTier, ...] = WORKBOOK_TABLE

    def tiers_of(self, spec: SLOSpec) -> tuple[Tier, ...]:
        """The burn-rate tiers of one SLO, their factors from its own period."""
        return tiers_for(spec.window, self.tiers)

    @classmethod
    def load(cls, path: Path, runbooks_dir: Path) -> Catalog:
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read catalog {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"catalog {path} is not valid YAML: {exc}") from None
        alerts = []
        for i, item in enumerate(raw.get("alerts") or []):
            where = f"{path.name}: alerts[{i}]"
            try:
                spec = AlertSpec(
                    name=str(item["name"]),
                    severity=str(item["severity"]),
                    runbook=str(item["runbook"]),
                    expr=str(item["expr"]).strip(),
                    for_=str(item.get("for", "0s")),
                    summary=str(item["summary"]),
                    description=str(item.get("description", "")),
                    service=str(item.get("service", "")),
                    slo=str(item.get("slo", "")),
                )
            except (KeyError, TypeError) as exc:
                raise ConfigError(f"{where}: missing field {exc}") from None
            if spec.severity not in SEVERITIES:
                raise ConfigError(f"{where} ({spec.name}): severity must be one of {SEVERITIES}")
            if not SLUG.fullmatch(spec.runbook):
                raise ConfigError(f"{where} ({spec.name}): runbook slug {spec.runbook!r} is not a-z0-9-")
            if not re.fullmatch(r"\d+[smhd]", spec.for_):
                raise ConfigError(f"{where} ({spec.name}): for {spec.for_!r} is not a duration like 5m")
            alerts.append(spec)
        names = [a.name for a in alerts]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ConfigError(f"{path.name}: alert names appear twice: {sorted(dupes)}")
        slos = []
        for item in raw.get("slos") or []:
            known = {"name", "service", "objective", "window", "sli"}
            slos.append(
                SLOSpec(
                    name=str(item["name"]),
                    service=str(item["service"]),
                    objective=float(item["objective"]),
                    window=str(item["window"]),
                    sli=str(item["sli"]),
                    extra={k: v for k, v in item.items() if k not in known},
                )
            )
        wrong = [f"{a.name} (slo {a.slo})" for a in alerts if a.slo and a.slo not in {s.name for s in slos}]
        if wrong:
            raise ConfigError(f"{path.name}: alerts name SLOs that are not in slos: {wrong}")
        catalog = cls(alerts, slos, runbooks_dir)
        sev1 = raw.get("sev1") or []
        unknown = [n for n in sev1 if n not in catalog.alerts or catalog.alerts[n].severity != "critical"]
        if unknown:
            raise ConfigError(f"{path.name}: sev1 lists alerts that are not critical alerts of the catalog: {unknown}")
        catalog.sev1 = set(sev1)
        if raw.get("burn_rate_tiers"):
            catalog.tiers = _tiers(raw["burn_rate_tiers"], path.name)
        for slug, item in (raw.get("runbooks") or {}).items():
            kind = str((item or {}).get("kind", ""))
            if not SLUG.fullmatch(str(slug)) or kind not in RUNBOOK_KINDS:
                raise ConfigError(f"{path.name}: runbooks.{slug}: kind must be one of {RUNBOOK_KINDS}")
            catalog.kinds[str(slug)] = (kind, str((item or {}).get("reached_by", "")))
        return catalog

    def notebook(self, slug: str) -> Path:
        return self.runbooks_dir / f"{slug}.ipynb"

    def has_notebook(self, slug: str) -> bool:
        return bool(SLUG.fullmatch(slug)) and self.notebook(slug).is_file()

    def route(self, alertname: str, hint: str | None = None) -> Route:
        """The runbook for an alertname. An alert not in the catalog may name one in its
        ``runbook`` annotation (the generated burn-rate alerts do); only a runbook that a catalog
        alert already routes to is taken, so an alert cannot pick a drill or a report."""
        spec = self.alerts.get(alertname)
        if spec is None:
            if hint and hint in {a.runbook for a in self.alerts.values()} and self.has_notebook(hint):
                return Route(alertname, hint, "runbook annotation", None)
            return Route(alertname, TRIAGE, "not in catalog", None)
        if not self.has_notebook(spec.runbook):
            return Route(alertname, TRIAGE, f"runbook {spec.runbook!r} not written yet", spec)
        return Route(alertname, spec.runbook, "catalog", spec)

    def slugs(self) -> list[str]:
        """Runbook notebooks on disk (templates, starting with '_', excluded)."""
        return sorted(p.stem for p in self.runbooks_dir.glob("*.ipynb") if not p.stem.startswith("_"))


def _tiers(rows: Any, where: str) -> tuple[BudgetTier, ...]:
    """burn_rate_tiers: [{budget, long, short, action, for}], checked."""
    out = []
    for i, row in enumerate(rows if isinstance(rows, list) else []):
        try:
            tier = BudgetTier(
                float(row["budget"]), str(row["long"]), str(row["short"]), str(row["action"]), str(row.get("for", "0s"))
            )
            long_s, short_s = parse_duration(tier.long_window), parse_duration(tier.short_window)
            parse_duration(tier.for_)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: burn_rate_tiers[{i}]: {exc}") from None
        if not 0 < tier.budget <= 1 or tier.action not in ("page", "ticket") or short_s >= long_s:
            raise ConfigError(
                f"{where}: burn_rate_tiers[{i}]: budget must be in (0, 1], action page or ticket, short < long"
            )
        out.append(tier)
    if not out:
        raise ConfigError(f"{where}: burn_rate_tiers must be a non-empty list")
    return tuple(out)
