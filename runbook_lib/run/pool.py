"""Warm, single-use kernels for the host: a kernel template process (see
:mod:`runbook_lib.kernel.template`, started as a subprocess, never imported here) and a few
kernels forked from it ahead of time, so a run finds one already started.

Each spare is used by exactly one run and killed afterwards. ``take()`` never blocks for longer
than ``kernels.warm_wait_s``: without a spare (the template still importing, dead, or too slow)
the run falls back to a cold kernel. A template that dies is started again; a spare that died
is dropped. Connection files and IPC sockets live in a private (0700) directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.connect import write_connection_file

from runbook_lib.core.process import kill_group
from runbook_lib.core.settings import KernelSettings

log = logging.getLogger("runbook.kernels")
_active: WarmKernels | None = None


@dataclass
class Spare:
    pid: int
    connection_file: str
    cwd: str  # the kernel's own scratch directory
    born: float
    env_key: str = ""  # which environment it was forked with (:func:`env_key`)

    def discard(self) -> None:
        """Kill the kernel (if it still runs) and remove its files."""
        kill_group(self.pid)
        Path(self.connection_file).unlink(missing_ok=True)
        shutil.rmtree(self.cwd, ignore_errors=True)


def kernel_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a kernel gets: ``environ`` (default: this process's), matplotlib headless."""
    base = os.environ if environ is None else environ
    return {**base, "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def env_key(env: Mapping[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(env.items())).encode()).hexdigest()


def active() -> WarmKernels | None:
    """The warm kernels of this process, when it has them (set by :meth:`WarmKernels.start`)."""
    return _active


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


class WarmKernels:
    def __init__(self, cfg: KernelSettings) -> None:
        self.cfg = cfg
        remove_stale_dirs()
        self.dir = Path(tempfile.mkdtemp(prefix=f"runbook-kernels-{os.getpid()}-"))
        self.socket_path = str(self.dir / "template.sock")
        self.template: subprocess.Popen[bytes] | None = None
        self._spares: list[Spare] = []
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cold_starts = 0
        self.warm_starts = 0
        self._env = kernel_env()  # what the keeper forks spares with: the last environment asked for
        self.failing = False  # the template could not be started: runs go cold at once

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> WarmKernels:
        global _active
        if self.cfg.warm_kernels <= 0:
            return self  # every run starts a cold kernel
        self._thread = threading.Thread(target=self._keep_spares, name="warm-kernels", daemon=True)
        self._thread.start()
        _active = self
        return self

    def wait_ready(self, timeout: float) -> bool:
        """Wait until a spare kernel is started (True), or the template failed or ``timeout``
        passed (False: runs start cold meanwhile)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self._spares and not self.failing and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.5))
            return bool(self._spares)

    def activate(self) -> None:
        """Make these the warm kernels of this process (what :meth:`start` does)."""
        global _active
        _active = self

    def close(self) -> None:
        global _active
        if _active is self:
            _active = None
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
            spares, self._spares = self._spares, []
        for spare in spares:
            spare.discard()
        if self.template is not None and self.template.poll() is None:
            self.template.kill()
            self.template.wait(5)
        if self._thread is not None:
            self._thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- for runs --------------------------------------------------------------------------------
    def take(self, environ: Mapping[str, str] | None = None) -> Spare | None:
        """A started kernel nobody has used, forked with ``environ`` (default: this process's
        environment now), or None (then the run starts a cold kernel). Its working directory is a
        private scratch directory of its own, removed with it."""
        want = kernel_env(environ)
        key = env_key(want)
        deadline = time.monotonic() + (0.0 if self.failing else self.cfg.warm_wait_s)
        stale: list[Spare] = []
        with self._lock:
            if env_key(self._env) != key:  # from now on the keeper forks with this environment
                self._env = want
                stale, self._spares = (
                    [s for s in self._spares if s.env_key != key],
                    [s for s in self._spares if s.env_key == key],
                )
                self._lock.notify_all()
        for spare in stale:
            spare.discard()
        with self._lock:
            while not self._stop.is_set():
                while self._spares:
                    spare = self._spares.pop(0)
                    if spare.env_key != key:
                        stale.append(spare)
                        continue
                    if alive(spare.pid):
                        self._lock.notify_all()  # the keeper forks the next one
                        self.warm_starts += 1
                        return spare
                    spare.discard()
                    log.warning("spare kernel %s died before use; dropped", spare.pid)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._lock.wait(remaining)
        for spare in stale:
            spare.discard()
        self.cold_starts += 1
        return None

    # -- the keeper thread -----------------------------------------------------------------------
    def _keep_spares(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._ensure_template()
                with self._lock:
                    need = self.cfg.warm_kernels - len(self._spares)
                    env = self._env
                if need > 0:
                    spare = self._fork(env)
                    with self._lock:
                        if spare.env_key == env_key(self._env):
                            self._spares.append(spare)
                            spare = None
                        self._lock.notify_all()
                    if spare is not None:  # forked for an environment nobody asks for any more
                        spare.discard()
                    failures = 0
                    self.failing = False
                    continue
                with self._lock:
                    self._lock.wait(1.0)
                self._drop_dead()
            except Exception as exc:
                failures += 1
                self.failing = True
                delay = min(30.0, 0.5 * 2**failures)
                log.warning("warm kernels unavailable (%s); cold starts for %.0f s", exc, delay)
                self._stop.wait(delay)

    def _ensure_template(self) -> None:
        if self.template is not None and self.template.poll() is None:
            return
        if self.template is not None:
            log.warning("kernel template exited with %s; starting a new one", self.template.returncode)
        Path(self.socket_path).unlink(missing_ok=True)
        self.template = subprocess.Popen(
            [sys.executable, "-m", "runbook_lib.kernel.template", self.socket_path],
            env=kernel_env(),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.cfg.template_start_timeout_s
        while not os.path.exists(self.socket_path):
            if self.template.poll() is not None:
                raise RuntimeError(f"the kernel template exited with {self.template.returncode} while starting")
            if time.monotonic() > deadline or self._stop.is_set():
                self.template.kill()
                raise RuntimeError("the kernel template did not start in time")
            time.sleep(0.05)

    def _fork(self, env: dict[str, str]) -> Spare:
        name = f"kernel-{secrets.token_hex(8)}"
        connection_file = str(self.dir / f"{name}.json")
        write_connection_file(
            connection_file,
            transport="ipc",
            ip=str(self.dir / name),
            shell_port=1,
            iopub_port=2,
            stdin_port=3,
            hb_port=4,
            control_port=5,
            key=secrets.token_hex(32).encode(),
            kernel_name=self.cfg.kernel_name,
        )
        scratch = self.dir / f"{name}.cwd"
        scratch.mkdir(mode=0o700)
        request = {
            "connection_file": connection_file,
            "cwd": str(scratch),
            "memory_mb": self.cfg.kernel_memory_mb,
            "env": env,
        }
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(self.socket_path)
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = json.loads(sock.makefile("rb").readline() or b"{}")
        if "pid" not in reply:
            raise RuntimeError(f"the kernel template refused to fork: {reply.get('error', 'no answer')}")
        return Spare(int(reply["pid"]), connection_file, str(scratch), time.monotonic(), env_key(env))

    def _drop_dead(self) -> None:
        with self._lock:
            dead = [s for s in self._spares if not alive(s.pid)]
            self._spares = [s for s in self._spares if s not in dead]
        for spare in dead:
            spare.discard()
            log.warning("spare kernel %s died while waiting; replaced", spare.pid)


def remove_stale_dirs() -> None:
    """Kernel directories of workers that died without cleaning up (SIGKILL): their owner's pid,
    in the name, no longer exists."""
    for path in Path(tempfile.gettempdir()).glob("runbook-kernels-*-*"):
        owner = path.name.split("-")[2]
        if owner.isdigit() and not alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)
