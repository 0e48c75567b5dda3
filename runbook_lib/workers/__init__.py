"""Who runs the diagnoses the journal holds. Two executors, one job model (:mod:`.jobs`):

- ``local``: worker processes of `runbook serve` (:mod:`.local`), kept alive by
  :mod:`.supervisor`;
- ``celery``: `runbook worker` processes anywhere, fed through the broker (:mod:`.celery_executor`).

Both offer the receiver the same few answers (:class:`Executor`): start, stop, how many workers
are alive, how many runs wait and how many are in flight.
"""

from __future__ import annotations

from typing import Protocol

from runbook_lib.core.health import Health


class Executor(Protocol):
    """What the receiver asks of whoever runs its jobs."""

    name: str
    health: Health

    def start(self) -> None: ...

    def stop(self, timeout: float = 30.0) -> None: ...

    def alive(self) -> int:
        """Workers able to take a run now."""
        ...

    def waiting(self) -> int:
        """Runs handed over but not started."""
        ...

    def in_flight(self, running: int) -> int:
        """Runs executing now (``running``: the journal's count)."""
        ...
