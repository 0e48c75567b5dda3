"""Reusable diagnosis checks: one function per job, shared by every runbook.

Each check takes the running runbook ``rb`` (:class:`~runbook_lib.kernel.protocol.RunbookLike`),
reads through ``rb.<source>``, shows its evidence, records findings and returns a small result
object. A backend that is not configured or not reachable never raises out of a check: the
check records an "unchecked" finding and returns a result with ``checked=False``, so the next
cell still runs. Shared pieces live in :mod:`.base`.
"""

from __future__ import annotations

from . import alerts, deps, http, kube
from .base import Result, check

__all__ = ["Result", "alerts", "check", "deps", "http", "kube"]
