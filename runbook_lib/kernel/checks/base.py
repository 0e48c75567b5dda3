"""What every check shares: the result base class and the decorator that turns an unreachable
or unconfigured backend into an "unchecked" finding instead of an exception."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from runbook_lib.core.errors import SourceError
from runbook_lib.kernel.protocol import RunbookLike

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
