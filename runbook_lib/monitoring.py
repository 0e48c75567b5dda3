"""Monitoring as code, generated from the catalog: Prometheus alerting rules (more to come:
Alertmanager routes, dashboards)."""

from __future__ import annotations

from typing import Any

import yaml

from .catalog import Catalog

RUNBOOK_URL = "https://runbooks.omnihub.dev/{slug}"


def prometheus_rules(catalog: Catalog, for_override: str | None = None, interval: str = "30s") -> dict[str, Any]:
    """The catalog's alerts as one Prometheus rule group. ``for_override`` replaces every
    ``for`` (the sandbox uses 0s so backfilled incidents fire at once)."""
    rules = []
    for spec in catalog.alerts.values():
        rules.append(
            {
                "alert": spec.name,
                "expr": spec.expr,
                "for": for_override if for_override is not None else spec.for_,
                "labels": {"severity": spec.severity},
                "annotations": {
                    "summary": spec.summary,
                    "description": spec.description,
                    "runbook_url": RUNBOOK_URL.format(slug=spec.runbook),
                },
            }
        )
    return {"groups": [{"name": "omnihub_slo", "interval": interval, "rules": rules}]}


def rules_yaml(catalog: Catalog, for_override: str | None = None, interval: str = "30s") -> str:
    return yaml.safe_dump(prometheus_rules(catalog, for_override, interval), sort_keys=False, width=120)
