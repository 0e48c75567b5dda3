"""PostgreSQL over psycopg 3. The SQL every runbook runs lives here, once, one module per
subject: :mod:`.client` (connections, why one failed, health), :mod:`.activity` (sessions,
connection use, locks, replication), :mod:`.schema` (migrations, invalid indexes),
:mod:`.integrity` (orphans, row counts, checksums, amcheck), :mod:`.operator` (approval queue,
emergency controls, audit history), :mod:`.backup` (pg_dump, pg_restore, scratch databases) and
:mod:`.usage` (users, workflow outcomes, approvals pending, database size, for the reports) and
:mod:`.replication` (the regional-failover drill: readiness, markers, stop, promote).
"""

from __future__ import annotations

from runbook_lib.clients.audit import insert_audit
from runbook_lib.kernel.sources.postgres.client import (
    CONTROLS,
    NAME,
    ConnectFailed,
    Failure,
    Postgres,
    classify,
    set_control,
    text_of,
)

__all__ = [
    "CONTROLS",
    "NAME",
    "ConnectFailed",
    "Failure",
    "Postgres",
    "classify",
    "insert_audit",
    "set_control",
    "text_of",
]
