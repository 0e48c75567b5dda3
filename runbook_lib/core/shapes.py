"""The shapes of what crosses module boundaries: a finding and an action (emitted in the kernel,
read back from the executed notebook by the host), an action's plan, the diagnosis and the
record (record.json). TypedDicts, because these travel as JSON: in notebook outputs, in
record.json, in the index, in messages. ``total=False`` marks keys that some carry and some not.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

Verdict = Literal["critical", "warning", "unchecked", "info", "ok"]
Role = Literal["symptom", "cause", "context"]  # context: about the run, not the system
ActionStatus = Literal["proposed", "dry_run", "refused", "unavailable", "skipped", "done", "failed"]


class Finding(TypedDict):
    """One machine-readable finding (``rb.finding``)."""

    step: str | None  # "Step 1", "Option 2", or None before the first step
    check: str
    verdict: Verdict
    summary: str
    details: dict[str, Any]  # JSON values; a cause names itself here (details.failure, .application ...)
    at: str  # ISO 8601 UTC
    role: NotRequired[Role]
    cause: NotRequired[str]  # a cause finding's code (runbook_lib.sre.causes)
    provisional: NotRequired[bool]  # measured on too little data: never louder than a warning
    essential: NotRequired[bool]  # made inside an essential check
    cell: NotRequired[int]  # the notebook cell it came from (added by the host)


class Plan(TypedDict, total=False):
    """What an option would do, worked out before it does anything."""

    command: str  # the exact call or SQL, literals included
    sql: str
    noop: bool  # already in the desired state
    missing: str  # what the operator has not given yet (refused until then)
    status: str  # a procedure's (a drill's) state: running, proposed, refused ...
    target: str
    note: str


class Action(TypedDict):
    """One resolution option as it ended (``rb.actions.<option>``)."""

    name: str  # its approval name
    step: str | None
    step_title: str | None
    title: str
    target: str
    command: str
    recommended: bool | None
    why: str
    mode: str
    dry_run: bool
    operator: str
    audit_ids: list[int]
    plan: dict[str, Any] | None
    result: dict[str, Any] | None
    at: str
    status: NotRequired[ActionStatus]
    reason: NotRequired[str]
    cell: NotRequired[int]


class RecommendedAction(TypedDict):
    """The one thing the record recommends: a guarded option with its parameters and the exact
    command, or "none" / "escalate" with the reason."""

    name: str  # an option's approval name, "none" or "escalate"
    title: str
    params: dict[str, Any]
    command: str  # the guarded command that does it (runbook run ... --approve NAME), audited
    reason: str
    performs: NotRequired[str]  # what that option runs underneath (kubectl ..., SQL), to read, not to paste


class Diagnosis(TypedDict):
    """What a record says first (record/diagnosis.py)."""

    verdict: str  # a Verdict, or "incomplete"
    incomplete: bool
    symptom: str | None
    cause: str | None
    recommended: str | None
    checked: int
    unchecked: int
    headline: str
    cause_code: NotRequired[str | None]  # the leading cause's code
    causes: NotRequired[list[str]]  # every measured cause's code, most important first
    recommended_action: NotRequired[RecommendedAction]
    partial: NotRequired[list[str]]  # checks that could not be made beside a measured problem
    provisional: NotRequired[bool]  # the leading finding stands on too little data


class Record(TypedDict, total=False):
    """record.json: one archived run of a runbook."""

    schema: int
    id: str
    runbook: str
    runbook_sha256: str
    environment: str
    origin: str  # cli, receiver, celery, demo, drill, ...
    mode: str
    alert: dict[str, Any]
    parameters: dict[str, Any]
    route: dict[str, Any] | None
    started_at: str
    ended_at: str
    duration_s: float
    status: str  # succeeded / failed / timed_out / interrupted
    failed_cell: dict[str, Any] | None
    diagnosis: Diagnosis
    incident: dict[str, Any] | None
    linked_alerts: list[dict[str, Any]]
    related_records: list[dict[str, Any]]
    links: list[dict[str, Any]]
    findings: list[Finding]
    actions: list[Action]
    unchecked: list[dict[str, str]]
    attempt: int
    notes: list[str]
    intake: dict[str, Any] | None
    versions: dict[str, str]
    timings: dict[str, float]
    files: dict[str, str]  # sha256 of notebook.ipynb and record.html
    events: list[dict[str, Any]]  # added when loaded: the chained events about it
    dir: str  # added when loaded: where its folder is
