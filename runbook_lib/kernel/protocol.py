"""What checks and actions may use of a running runbook (``rb``), as a typed protocol.

:class:`runbook_lib.kernel.notebook.Runbook` implements it; checks and actions depend on this
protocol rather than on the notebook module, so nothing imports back into it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from runbook_lib.clients.prometheus import Prometheus
    from runbook_lib.clients.rabbitmq import RabbitMQ
    from runbook_lib.core.settings import MetricNames, ServiceSettings, Settings, Thresholds
    from runbook_lib.kernel.sources.blockchain import Blockchain
    from runbook_lib.kernel.sources.kubernetes import Kubernetes
    from runbook_lib.kernel.sources.postgres import Postgres
    from runbook_lib.kernel.sources.redis import Redis
    from runbook_lib.sre.alertmanager import Alert
    from runbook_lib.sre.catalog import Catalog, Route


class Gate(Protocol):
    """What checks may use of ``rb.actions`` (:class:`runbook_lib.kernel.actions.Actions`): the
    guard's conditions for a procedure spread over several cells, such as the DR drill."""

    def gate(
        self, name: str, title: str, target: str, plan: dict[str, Any], why: str = ""
    ) -> dict[str, Any] | None: ...
    def finish(
        self, name: str, title: str, target: str, plan: dict[str, Any], result: dict[str, Any], ok: bool, reason: str
    ) -> dict[str, Any]: ...


class RunbookLike(Protocol):
    settings: Settings
    alert: Alert | None
    mode: str
    dry_run: bool
    operator: str
    approve: set[str]
    now: datetime
    essential: bool
    current_step: str
    current_title: str

    @property
    def alertname(self) -> str: ...
    @property
    def catalog(self) -> Catalog: ...
    @property
    def route(self) -> Route | None: ...
    @property
    def service(self) -> ServiceSettings: ...
    @property
    def thresholds(self) -> Thresholds: ...
    @property
    def metrics(self) -> MetricNames: ...
    @property
    def prometheus(self) -> Prometheus: ...
    @property
    def postgres(self) -> Postgres: ...
    @property
    def redis(self) -> Redis: ...
    @property
    def kubernetes(self) -> Kubernetes: ...
    @property
    def rabbitmq(self) -> RabbitMQ: ...
    @property
    def blockchain(self) -> Blockchain: ...
    @property
    def actions(self) -> Gate: ...

    def finding(
        self,
        check: str,
        verdict: str,
        summary: str,
        *,
        role: str | None = None,
        cause: str | None = None,
        provisional: bool = False,
        **details: Any,
    ) -> dict[str, Any]: ...
    def claim_recommendation(self, name: str) -> str | None: ...
    def escalate(self, reason: str, to: str = "") -> dict[str, Any]: ...
    def no_action(self, reason: str) -> dict[str, Any]: ...
    def unchecked(self, check: str, error: BaseException | str) -> dict[str, Any]: ...
    def table(self, frame: pd.DataFrame, title: str | None = None, max_rows: int = 25) -> None: ...
    def note(self, text: str) -> None: ...
    def show(self, html: str, text: str) -> None: ...
    def image(self, png: bytes, alt: str) -> None: ...
    def query_link(
        self, expr: str, title: str, range_s: float = 3 * 3600, panel: tuple[str, str] | None = None
    ) -> None: ...
    def record_action(self, action: dict[str, Any]) -> dict[str, Any]: ...
