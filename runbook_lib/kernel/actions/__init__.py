"""Guarded remediations. Runs inside the kernel.

Nothing here changes a system unless ALL of these hold:
  * mode == "resolve"        (automatic runs are always "diagnose")
  * dry_run is False
  * an operator identity is given
  * the action's name is in ``approve`` (so "Run All" in resolve mode cannot fire every option)
  * an ``audit_logs`` row was written first (no audit trail, no change)

Otherwise the action is shown as *proposed* / *dry_run* / *refused*, with the exact command or
SQL it would run. Every outcome is displayed with its own MIME type and lands in the record.

The guard is :mod:`.guard`; the options are grouped by what they touch: :mod:`.platform`
(Kubernetes deployments, safe mode), :mod:`.database` (sessions, the row-count baseline),
:mod:`.approvals` (approval items), :mod:`.controls` (emergency controls), :mod:`.blockchain` (the primary RPC provider) and
:mod:`.queue` (replaying dead letters).
"""

from __future__ import annotations

from runbook_lib.kernel.actions.approvals import ApprovalOptions
from runbook_lib.kernel.actions.blockchain import BlockchainOptions
from runbook_lib.kernel.actions.controls import ControlOptions
from runbook_lib.kernel.actions.database import DatabaseOptions
from runbook_lib.kernel.actions.guard import Option, Outcome
from runbook_lib.kernel.actions.platform import PlatformOptions
from runbook_lib.kernel.actions.queue import QueueOptions


class Actions(PlatformOptions, DatabaseOptions, ApprovalOptions, ControlOptions, BlockchainOptions, QueueOptions):
    """Every resolution option a runbook can offer: ``rb.actions.<option>(...)``."""


__all__ = ["Actions", "Option", "Outcome"]
