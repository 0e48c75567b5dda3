"""Kernel manager for runbook execution: IPC transport on this machine instead of TCP ports
(no port races under parallel runs, no 'running over TCP without encryption' warning)."""

from __future__ import annotations

from jupyter_client.manager import AsyncKernelManager
from traitlets import CaselessStrEnum


class IpcKernelManager(AsyncKernelManager):
    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
