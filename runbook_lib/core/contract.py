"""The contract between a runbook notebook and the host that runs it.

Papermill injects the parameters below (fixed names: nothing is ever named after an alert
label). Inside the kernel, findings and actions are displayed as outputs carrying their JSON
under their own MIME types; the host reads them back out of the executed notebook into
record.json. This module is the one place those names live.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The parameters cell of every runbook: these names, these safe defaults.
PARAMETERS: dict[str, Any] = {
    "alert": {},
    "environment": "local",
    "mode": "diagnose",
    "dry_run": True,
    "operator": "",
    "approve": [],
}
MODES = ("diagnose", "resolve")

# What a plan shows that is not a parameter of the change (how it is shown, whether it is needed).
PLAN_PRESENTATION = ("command", "sql", "noop", "would", "preview", "missing")


def approval_params(plan: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a planned change that an approval is given for: its public, scalar
    values (the revision to roll back to, the letters to replay), not how it is shown."""
    return {
        k: v
        for k, v in plan.items()
        if not str(k).startswith("_") and k not in PLAN_PRESENTATION and isinstance(v, str | int | float | bool)
    }


def pin(name: str, params: Mapping[str, Any]) -> str:
    """An approval bound to exactly these parameters, ``NAME:<digest>``: the guard runs NAME
    only while the fresh plan has the same :func:`approval_params` (a rollback approved "to
    revision 6" never rolls back to revision 5)."""
    import hashlib
    import json

    body = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{name}:{hashlib.sha256(body.encode()).hexdigest()[:24]}"


def approved(approve: Iterable[str], name: str, plan: Mapping[str, Any]) -> str | None:
    """None when ``approve`` approves option ``name`` with this plan; else why not. A plain
    ``NAME`` approves any plan of it (the CLI's --approve, on a plan shown to the operator); a
    pinned ``NAME:<digest>`` only the plan it was given for."""
    entries = set(approve)
    if name in entries:
        return None
    pins = {e for e in entries if e.startswith(name + ":")}
    if not pins:
        return f"not approved: add {name!r} to approve to run it"
    if pin(name, approval_params(plan)) in pins:
        return None
    return f"the plan of {name} changed since it was approved (its parameters now: {approval_params(plan)})"


def parameters_source() -> str:
    """The parameters cell of a runbook with the safe defaults, as source code."""
    return "\n".join(f"{name} = {value!r}" for name, value in PARAMETERS.items())


def declared_parameters(cell_source: str) -> dict[str, Any]:
    """The names and default values a notebook's parameters cell assigns (literals only)."""
    import ast

    values: dict[str, Any] = {}
    for node in ast.parse(cell_source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise ValueError(f"the parameters cell may only assign literals to names (line {node.lineno})")
        values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def extra_parameter_name(name: str) -> bool:
    """A runbook may declare parameters of its own after the fixed ones (a DR drill's backup
    file, the items an approval option acts on). Their names are fixed by the notebook, plain
    lowercase identifiers, and never one of the contract's."""
    return name.isidentifier() and name == name.lower() and not name.startswith("_") and name not in PARAMETERS


# The guarded resolution options, as an operator names them in ``approve`` / ``--approve``.
APPROVALS = (
    "rollback",
    "scale",
    "safe_mode",
    "terminate_idle",
    "cancel_blocker",
    "terminate_blocker",
    "record_baseline",
    "approve_items",
    "reject_items",
    "expire_items",
    "disable_kill_switch",
    "dr_drill",
    "dr_env_restore",
    "dr_failover",
    "restart",
    "dlq_replay",
    "switch_rpc_provider",
    "chaos",
)

# The pseudo-alert under which alerts beyond the receiver's run caps are grouped into one
# triage record (labels: alertname, severity, runbook_group="true"; annotations list them).
GROUP_ALERTNAME = "RunbookRunCapReached"

FINDING_MIME = "application/vnd.runbook.finding+json"
ACTION_MIME = "application/vnd.runbook.action+json"

VERDICTS = ("critical", "warning", "unchecked", "info", "ok")
VERDICT_LABEL = {
    "critical": "CRITICAL",
    "warning": "WARNING",
    "unchecked": "NOT CHECKED",
    "info": "INFO",
    "ok": "OK",
}


def worst_first(findings: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Findings ordered critical, warning, unchecked, info, ok (unknown verdicts last)."""
    rank = {v: i for i, v in enumerate(VERDICTS)}
    return sorted(findings, key=lambda f: rank.get(f.get("verdict", ""), len(rank)))


def jsonable(value: Any) -> Any:
    """Make details JSON-safe: timestamps as ISO text, NaN as None, sets as lists."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)
