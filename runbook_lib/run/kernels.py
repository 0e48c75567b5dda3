"""Kernel management for runbook execution.

- :class:`IpcKernelManager`: IPC sockets instead of TCP ports (no port races between parallel
  runs, no "running over TCP without encryption" warning). When this process has warm kernels
  (:mod:`.pool`), it adopts a spare through :class:`ForkedKernel`; otherwise (or when none is
  ready within ``kernels.warm_wait_s``) it starts a cold kernel as usual.
- :class:`QuickClient`: knows a kernel is ready from one kernel_info round trip, instead of
  then draining IOPub for 0.2 s as jupyter_client's ``wait_for_ready`` does (nbclient matches
  outputs to its own requests, so stray startup messages cannot land in a cell).
- :func:`kernel_environment`: the next kernels start with an environment of the caller's (a DR
  drill runs a runbook against what it restored): a warm spare forked with it, or a cold kernel.
  nbclient may start the kernel on a thread of its own, so this is process-wide, under a lock:
  one such run at a time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.provisioning import LocalProvisioner
from traitlets import CaselessStrEnum, Type

from runbook_lib.run import pool

_environment: dict[str, str] | None = None
_environment_lock = threading.Lock()


@contextmanager
def kernel_environment(environ: Mapping[str, str] | None) -> Iterator[None]:
    """Kernels started inside this block get exactly ``environ`` (None: this process's own)."""
    global _environment
    if environ is None:
        yield
        return
    with _environment_lock:
        _environment = dict(environ)
        try:
            yield
        finally:
            _environment = None


class QuickClient(AsyncKernelClient):
    """Ready means: the kernel answered kernel_info on shell *and* its status message for that
    request arrived on IOPub, which proves our IOPub subscription is live (ZMQ drops what is
    published before a subscriber has joined, and a cell's outputs must not be lost). That takes
    milliseconds; jupyter_client's own wait_for_ready drains IOPub for a fixed 0.2 s instead."""

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout if timeout is not None else 60.0)
        while time.monotonic() < deadline:
            request = self.kernel_info()
            if await self._reply(request, deadline) and await self._iopub_echo(
                request, min(deadline, time.monotonic() + 0.5)
            ):
                return
            if not await self._async_is_alive():
                raise RuntimeError("the kernel died before it was ready")
        raise RuntimeError("the kernel was not ready in time")

    wait_for_ready = _async_wait_for_ready  # type: ignore[assignment]

    async def _reply(self, request: str, deadline: float) -> bool:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await self.shell_channel.get_msg(timeout=min(1.0, remaining))
            except Exception:  # queue.Empty: ask again (the kernel may have been starting)
                return False
            if msg["parent_header"].get("msg_id") == request:
                self._handle_kernel_info_reply(msg)
                return True
        return False

    async def _iopub_echo(self, request: str, deadline: float) -> bool:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                msg = await self.iopub_channel.get_msg(timeout=remaining)
            except Exception:
                return False
            if msg["parent_header"].get("msg_id") == request:
                return True
        return False


class ForkedKernel(LocalProvisioner):
    """Provisions a kernel that the kernel template forked ahead of time (a warm spare)."""

    spare: pool.Spare | None = None

    @property
    def has_process(self) -> bool:
        return self.spare is not None or super().has_process

    async def pre_launch(self, **kwargs: Any) -> dict[str, Any]:
        assert self.spare is not None
        km = self.parent
        km.connection_file = self.spare.connection_file  # the spare's: reconciled, not rewritten
        km.load_connection_file(self.spare.connection_file)
        self.connection_info = km.get_connection_info()
        for key in ("extra_arguments", "transport_encryption", "cwd"):
            kwargs.pop(key, None)
        return await super(LocalProvisioner, self).pre_launch(cmd=[], **kwargs)

    async def launch_kernel(self, cmd: list[str], **kwargs: Any) -> Any:
        assert self.spare is not None
        self.pid = self.pgid = self.spare.pid
        return self.connection_info

    async def poll(self) -> int | None:
        if self.spare is None:
            return 0
        return None if pool.alive(self.spare.pid) else 1

    async def wait(self) -> int | None:
        while await self.poll() is None:
            await asyncio.sleep(0.005)
        return 0

    async def send_signal(self, signum: int) -> None:
        if self.spare is None:
            return
        try:
            os.killpg(self.spare.pid, signum)
        except OSError:
            try:
                os.kill(self.spare.pid, signum)
            except ProcessLookupError:
                pass

    async def kill(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGKILL)
        for _ in range(200):  # the template reaps it at once; is_alive() then says so on the first look
            if not pool.alive(self.spare.pid if self.spare else 0):
                return
            await asyncio.sleep(0.005)

    async def terminate(self, restart: bool = False) -> None:
        await self.send_signal(signal.SIGTERM)

    async def cleanup(self, restart: bool = False) -> None:
        if self.spare is not None and not restart:
            self.spare.discard()
            self.spare = None


class IpcKernelManager(AsyncKernelManager):
    transport = CaselessStrEnum(["tcp", "ipc"], default_value="ipc", config=True)
    client_factory = Type(klass=AsyncKernelClient, default_value=QuickClient)  # type: ignore[assignment]

    async def _async_pre_start_kernel(self, **kw: Any) -> Any:
        if _environment is not None:  # a cold kernel gets it too
            kw["env"] = dict(_environment)
        warm = pool.active()
        if self.provisioner is None and warm is not None:
            spare = await asyncio.to_thread(warm.take, _environment)
            if spare is not None:
                self.provisioner = ForkedKernel(
                    kernel_id=self.kernel_id or "", kernel_spec=self.kernel_spec, parent=self
                )
                self.provisioner.spare = spare
        return await super()._async_pre_start_kernel(**kw)

    @property
    def warm(self) -> bool:
        return isinstance(self.provisioner, ForkedKernel)
