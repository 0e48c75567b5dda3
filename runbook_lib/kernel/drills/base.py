"""What every DR drill shares: one way to prepare (pre-drill checks, then the guard's decision),
steps that run only while the drill may run, one verdict and one cleanup that never raise.

A drill changes systems, so it runs only under the guard's conditions (``mode="resolve"``,
``dry_run=False``, an operator, its approval name in ``approve``); otherwise only its pre-drill
checks run and every step says "Not run". Its pre-drill checks tell two things apart:

- ``problems``: the drill's own means are missing (a tool too old, a role without CREATEDB): the
  guard refuses, nothing runs and there is no verdict;
- ``unready``: the system under test is not ready for a disaster (a standby that does not
  stream, a target that does not answer): the verdict is FAIL before anything is touched.

A subclass sets ``NAME`` (how the record names the drill: its verdict, and so the record's
headline, leads with it: "DR drill database-restore: PASS: ..."), ``ACTION``, ``TITLE`` (the
action), ``VERDICT`` (the verdict finding's title) and ``READINESS`` (the pre-drill finding's
title), and writes :meth:`readiness`, its steps (decorated with :func:`drill_step`),
:meth:`judge` and :meth:`undo`.

Steps that do not run (diagnose mode, a refused guard, an earlier step that failed) each say so
in their own cell, and the record gets ONE finding listing them (:data:`NOT_RUN_CHECK`), made
with the verdict.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import ConnectFailed

NOT_RUN = ("proposed", "dry_run", "refused", "unavailable")
NOT_RUN_CHECK = "Steps not run"  # the one finding that lists the steps that did not run


@dataclass
class Ready:
    """What a drill's pre-drill checks found (see the module's docstring)."""

    summary: str  # what was checked, said when nothing is wrong
    plan: dict[str, Any]  # at least "target" and "command"
    problems: list[str] = field(default_factory=list)
    unready: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Judgement:
    """A drill's measured outcome, for its verdict."""

    numbers: str  # "RPO 0.1 s (target 15 m), RTO 0.2 s (target 1 h)"
    reasons: list[str]  # why it failed; empty when it passed
    complete: bool  # every step that decides the verdict ran


@dataclass
class Drill:
    rb: RunbookLike
    plan: dict[str, Any] = field(default_factory=dict, kw_only=True)
    unready: list[str] = field(default_factory=list, kw_only=True)
    blocked: str = field(default="", kw_only=True)  # why steps do not run (diagnose mode, a failed step, ...)
    failed: str = field(default="", kw_only=True)  # the first step that failed: "Restore: ..."
    reasons: list[str] = field(default_factory=list, kw_only=True)  # every step that failed
    result: dict[str, Any] = field(default_factory=dict, kw_only=True)
    not_run: list[tuple[str, str]] = field(default_factory=list, kw_only=True)  # (step, why) not run

    NAME: ClassVar[str] = "DR drill"
    ACTION: ClassVar[str]
    TITLE: ClassVar[str]
    VERDICT: ClassVar[str]
    READINESS: ClassVar[str] = "Pre-drill checks"

    # -- preparing ------------------------------------------------------------------------
    def readiness(self) -> Ready:
        """Check, changing nothing, what the drill needs. May raise SourceError (unchecked)."""
        raise NotImplementedError

    def begin(self) -> None:
        """Called once the guard lets the drill run (before the first step); nothing by default."""

    def ready(self) -> Self:
        """The pre-drill checks, their finding, then the guard's decision. Never raises."""
        rb = self.rb
        try:
            found = self.readiness()
        except (SourceError, ConnectFailed) as exc:
            rb.unchecked(self.READINESS, exc)
            self.blocked = "the pre-drill checks could not be made"
            self.plan = {"status": "unavailable", "target": "?"}
            return self
        self.unready = list(found.unready)
        self.plan = {**found.plan, "missing": "; ".join([*found.problems, *found.unready])}
        details = {"drill_step": "readiness", **found.details, "problems": [*found.problems, *found.unready]}
        if found.unready:
            rb.finding(
                self.READINESS,
                "critical",
                f"Not ready, the drill will not touch anything: {'; '.join(found.unready)}.",
                role="cause",
                **details,
            )
        else:
            problems = f" Problems: {'; '.join(found.problems)}." if found.problems else ""
            rb.finding(
                self.READINESS,
                "warning" if found.problems else "ok",
                found.summary.rstrip(".") + "." + problems,
                **details,
            )
        gated = rb.actions.gate(self.ACTION, self.TITLE, self.plan["target"], self.plan)
        self.plan["status"] = gated["status"] if gated is not None else "running"
        if found.unready:
            self.blocked = f"not ready (see {self.READINESS})"
        elif gated is not None:
            self.blocked = f"{gated['status']}: {gated['reason']}"
        else:
            self.begin()
        return self

    @property
    def ran(self) -> bool:
        """The guard let the drill run and its pre-drill checks passed."""
        return not self.unready and self.plan.get("status") not in NOT_RUN

    # -- steps ------------------------------------------------------------------------------
    def step_failed(self, title: str, exc: Exception) -> str:
        """Remember a step's failure; returns the reason its finding shows."""
        reason = str(exc) if isinstance(exc, SourceError | StepFailed) else f"{type(exc).__name__}: {exc}"
        self.failed = self.failed or f"{title}: {reason}"
        self.reasons.append(f"{title}: {reason}")
        return reason

    def step_timed(self, key: str, started: float, ended: float) -> None:
        """A step's run time (monotonic clock); nothing by default."""

    # -- the verdict ----------------------------------------------------------------------
    def judge(self) -> Judgement:
        """What the steps measured, for the verdict."""
        raise NotImplementedError

    def skip(self, title: str, key: str) -> None:
        """A step that does not run: said in its cell, listed in the one :data:`NOT_RUN_CHECK` finding."""
        self.not_run.append((title, self.blocked))
        self.rb.note(f"{title}: not run: {self.blocked}.")

    def steps_not_run(self) -> None:
        """The one finding listing the steps that did not run, and why (nothing when all ran)."""
        if not self.not_run:
            return
        why = list(dict.fromkeys(reason for _, reason in self.not_run))
        steps = [title for title, _ in self.not_run]
        self.rb.finding(
            NOT_RUN_CHECK,
            "info",
            f"Not run ({'; '.join(why)}): {', '.join(steps)}.",
            drill_step="not run",
            steps=steps,
            reasons=why,
        )

    def verdict(self) -> None:
        """PASS (ok) or FAIL (critical), leading with the drill's name; "not run" when the guard
        stopped it. The steps that did not run are listed first, in one finding. Never raises."""
        rb = self.rb
        self.steps_not_run()
        try:
            if self.unready:
                self.result.update({"drill_verdict": "FAIL", "reasons": list(self.unready)})
                rb.finding(
                    self.VERDICT,
                    "critical",
                    f"{self.NAME}: FAIL: the drill did not start, nothing was touched: {'; '.join(self.unready)}.",
                    role="symptom",
                    drill_step="verdict",
                    **self.result,
                )
                return
            if not self.ran:
                rb.finding(
                    self.VERDICT,
                    "info",
                    f"{self.NAME}: not run ({self.blocked}): no verdict.",
                    role="symptom",
                    drill_step="verdict",
                )
                return
            judged = self.judge()
            reasons = [*self.reasons, *judged.reasons]
            passed = not reasons and judged.complete
            if not reasons and not judged.complete:
                reasons.append("not every step ran")
            self.result.update({"drill_verdict": "PASS" if passed else "FAIL", "reasons": reasons})
            rb.finding(
                self.VERDICT,
                "ok" if passed else "critical",
                f"{self.NAME}: {self.result['drill_verdict']}: {judged.numbers}"
                + ("." if passed else f"; {'; '.join(reasons)}."),
                role="symptom",
                drill_step="verdict",
                **self.result,
            )
        except Exception as exc:
            self.failed = self.failed or f"verdict: {exc}"
            rb.finding(
                self.VERDICT, "critical", f"{self.NAME}: FAIL: the verdict could not be made: {exc}", role="symptom"
            )

    # -- cleaning up --------------------------------------------------------------------------
    def undo(self) -> tuple[bool, str]:
        """Remove what the drill made and show it (a "Cleanup" finding): (nothing left behind,
        a note for the action's reason)."""
        raise NotImplementedError

    def release(self) -> None:
        """Free what the drill holds for itself whatever happened (temporary files); nothing by default."""

    def action_result(self) -> dict[str, Any]:
        """What the drill's action record keeps of the result."""
        return self.result

    def cleanup(self) -> None:
        """Undo what the drill made, whatever happened before, and record its action. Never raises."""
        try:
            if not self.ran:
                self.rb.note("Cleanup: nothing to clean up, the drill did not run.")  # the verdict says so already
                return
            clean, note = self.undo()
            verdict = self.result.get("drill_verdict", "FAIL")
            self.rb.actions.finish(
                self.ACTION,
                self.TITLE,
                self.plan["target"],
                self.plan,
                self.action_result(),
                ok=clean and not self.failed,
                reason=f"drill ran: {verdict}"
                + (f" ({'; '.join(self.reasons)})" if self.reasons else "")
                + (f"; {note}" if note else ""),
            )
        except Exception as exc:
            self.rb.finding("Cleanup", "critical", f"Cleanup did not complete: {exc}", drill_step="cleanup")
        finally:
            self.release()


class StepFailed(Exception):
    """A step ran and found the system wrong: the message is the reason."""


def drill_step(title: str, key: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a :class:`Drill` method as one step: it runs only while the drill may run and no
    earlier step failed; an error ends the drill's steps (never the notebook) and is a critical
    finding, so the drill always reaches its verdict and cleanup. ``key`` names it in findings'
    details (default: the title)."""
    name = key or title

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(self: Drill, *args: Any, **kwargs: Any) -> None:
            if self.blocked:
                self.skip(title, name)
                return
            started = time.monotonic()
            try:
                fn(self, *args, **kwargs)
            except Exception as exc:  # a drill must always reach its verdict and cleanup
                reason = self.step_failed(title, exc)
                self.blocked = f"{title} failed"
                self.rb.finding(title, "critical", f"Failed: {reason}", role="cause", drill_step=name, error=reason)
            finally:
                self.step_timed(name, started, time.monotonic())

        return wrapper

    return decorate
