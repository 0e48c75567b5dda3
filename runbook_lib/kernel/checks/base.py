"""What every check shares: the result base class and the decorator that turns an unreachable
or unconfigured backend into an "unchecked" finding instead of an exception."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...errors import SourceError
from ..protocol import RunbookLike

R = TypeVar("R", bound="Result")


@dataclass
class Result:
    checked: bool = True
    reason: str = ""

    @classmethod
    def unchecked(cls: type[R], reason: str) -> R:
        return cls(checked=False, reason=reason)


def check(title: str, result: type[R], essential: bool = False) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Turn SourceError (not configured, unreachable, API error) into an unchecked finding.
    ``essential``: the runbook's diagnosis rests on this check; when every essential check of a
    run is unchecked, the record says "incomplete", never a green success."""

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(fn)
        def wrapper(rb: RunbookLike, *args: Any, **kwargs: Any) -> R:
            outer, rb.essential = rb.essential, essential or rb.essential
            try:
                return fn(rb, *args, **kwargs)
            except SourceError as exc:
                rb.unchecked(title, exc)
                return result.unchecked(str(exc))
            finally:
                rb.essential = outer

        return wrapper

    return decorate


class DrillSteps:
    """What a drill's steps share (the Q1 database restore, the failover, the environment
    restore): a step runs only while the drill may run and no earlier step failed; an error ends
    the drill's steps, never the notebook, and is a critical finding, so the drill always
    reaches its verdict and cleanup. A drill sets ``rb`` and ``blocked``; it may override
    :meth:`step_failed` (what the error means) and :meth:`step_timed` (how long a step took)."""

    rb: RunbookLike
    blocked: str
    failed: str = ""

    def step_failed(self, title: str, exc: Exception) -> str:
        """Remember the failure; returns the reason the finding shows."""
        self.failed = f"{title}: {exc}"
        return str(exc)

    def step_timed(self, key: str, started: float, ended: float) -> None:
        """A step's run time (monotonic clock); nothing by default."""


def drill_step(title: str, key: str | None = None) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorate a :class:`DrillSteps` method as one step; ``key`` names it in findings' details
    (default: the title)."""
    name = key or title

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(self: DrillSteps, *args: Any, **kwargs: Any) -> None:
            if self.blocked:
                self.rb.finding(title, "info", f"Not run: {self.blocked}.", drill_step=name)
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


def int_or_none(value: Any) -> int | None:
    """A count from a query or a DataFrame cell: None for NULL/NaN."""
    import pandas as pd

    return None if value is None or pd.isna(value) else int(value)
