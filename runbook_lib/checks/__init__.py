"""Reusable diagnosis checks: one function per job, shared by every runbook.

Each check takes the ``rb`` object, reads through ``rb.<source>``, shows its evidence,
records findings and returns a small result object. A backend that is not configured or
not reachable never raises out of a check: the check records an "unchecked" finding and
returns a result with ``checked=False``, so the next cell still runs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import SourceError

R = TypeVar("R", bound="Result")


@dataclass
class Result:
    checked: bool = True
    reason: str = ""

    @classmethod
    def unchecked(cls: type[R], reason: str) -> R:
        return cls(checked=False, reason=reason)


def check(title: str, result: type[R]) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Turn SourceError (not configured, unreachable, API error) into an unchecked finding."""

    def decorate(fn: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(fn)
        def wrapper(rb: Any, *args: Any, **kwargs: Any) -> R:
            try:
                return fn(rb, *args, **kwargs)
            except SourceError as exc:
                rb.unchecked(title, exc)
                return result.unchecked(str(exc))

        return wrapper

    return decorate


from . import alerts, deps, http, kube  # noqa: E402

__all__ = ["Result", "alerts", "check", "deps", "http", "kube"]
