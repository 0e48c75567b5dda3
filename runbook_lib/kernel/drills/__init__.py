"""The DR drills of SRE_PACKAGE.md's quarterly program. Unlike a check, a drill changes systems
(it stops a primary, restores into a scratch database, injects faults), so every drill runs only
under the guard's conditions and otherwise only checks that it could run.

:mod:`.base` is the framework every drill uses (pre-drill checks, steps, verdict, cleanup);
:mod:`.database` the backup-and-restore part two drills share; :mod:`.subrun` how a drill runs
another runbook; :mod:`.injectors` the chaos drill's fault injectors. The drills:
:mod:`.restore` (Q1, database restore), :mod:`.failover` (Q2, regional failover),
:mod:`.envrestore` (Q3, environment restore) and :mod:`.chaos` (Q4, chaos game day).
"""

from __future__ import annotations

from runbook_lib.kernel.drills import chaos, envrestore, failover, restore

__all__ = ["chaos", "envrestore", "failover", "restore"]
