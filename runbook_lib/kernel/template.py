"""The kernel template: a process that has already imported what every runbook needs and forks
one fresh, single-use Jupyter kernel per request (in the manner of multiprocessing's forkserver).

    python -m runbook_lib.kernel.template SOCKET

It listens on the unix socket SOCKET. Each request is one JSON line::

    {"connection_file": "/private/dir/kernel-<id>.json", "cwd": "/tmp/runbook-x", "memory_mb": 2048,
     "env": {"PATH": "...", ...}, "transport": "ipc"}

and gets one JSON line back: ``{"pid": 12345}`` or ``{"error": "..."}``. The child starts a new
session, takes ``env`` as its whole environment (settings are read from it when the runbook
starts), changes to ``cwd``, limits its address space, reseeds ``random`` and becomes an
IPKernel on the IPC sockets the connection file names. It serves exactly one run: the host
kills it afterwards. The template itself never runs notebook code, so every kernel starts from
the same clean state: nothing a run does (globals, imported or monkeypatched modules, the
working directory, the environment, threads) can reach the next one.

Rules for this module, all measured to matter: nothing here may create a ZMQ context or a
thread before forking; ``ipykernel.debugger`` (debugpy) is imported here, saving 190 ms per
kernel; IPython's history database is disabled (one SQLite file per kernel otherwise);
children are reaped automatically (SIGCHLD ignored).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import socket
import sys
import time
from typing import Any

from runbook_lib.core.process import die_with_parent, kill_group

PRELOAD = (
    "ipykernel.kernelapp",
    "ipykernel.ipkernel",
    "ipykernel.debugger",
    "IPython.core.interactiveshell",
    "pandas",
    "numpy",
    "matplotlib.pyplot",
    "httpx",
    "psycopg",
    "redis",
    "kubernetes.client",
    "kubernetes.client.api.apps_v1_api",  # the client imports its API classes lazily: 0.4 s each
    "kubernetes.client.api.core_v1_api",
    "kubernetes.client.api.custom_objects_api",
    "kubernetes.config",
    "runbook_lib.kernel.notebook",
    "runbook_lib.kernel.checks",
    "runbook_lib.kernel.actions",
    "runbook_lib.kernel.plots",
    "runbook_lib.clients.prometheus",
    "runbook_lib.kernel.sources.postgres",
    "runbook_lib.kernel.sources.redis",
    "runbook_lib.kernel.sources.kubernetes",
)
KERNEL_NICENESS = 5  # added to the worker's: the receiver answers Alertmanager first
KERNEL_ARGS = ["--HistoryManager.enabled=False", "--IPKernelApp.quiet=True"]


def preload() -> float:
    """Import everything a runbook uses; returns the seconds it took."""
    import importlib

    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]  # see runbook_lib.core.process
    t0 = time.monotonic()
    for name in PRELOAD:
        importlib.import_module(name)
    _first_use()
    # Everything imported is shared with the kernels copy-on-write; the collector must not walk
    # (and so write to, and so copy) those pages in every kernel: move them out of its reach.
    gc.collect()
    gc.freeze()
    return time.monotonic() - t0


def _first_use() -> None:
    """What the libraries do lazily on their first real use, done once here instead of in every
    kernel: httpx imports httpcore and builds a TLS context for its first client; pandas loads
    time-zone data and formatting code for its first tz-aware frame (150 ms); matplotlib loads
    its font list for its first figure (200 ms). No connection is opened, no thread started."""
    import io
    from datetime import UTC, datetime

    import matplotlib.pyplot as plt
    import pandas as pd

    from runbook_lib.clients.prometheus import Prometheus

    Prometheus("http://127.0.0.1:9").close()
    frame = pd.DataFrame([{"endpoint": "/x", "at": pd.Timestamp(datetime.now(UTC)), "value": 1.5, "n": 1, "ok": True}])
    frame = frame.merge(frame[["endpoint", "value"]].rename(columns={"value": "v2"}), on="endpoint", how="left")
    frame.sort_values("value").round({"value": 3}).to_string(index=False)
    frame.pivot_table(index="endpoint", columns="ok", values="n", aggfunc="sum").reset_index()
    frame.groupby("endpoint")["n"].sum()
    import matplotlib.dates as mdates

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot(frame["at"], frame["value"])
    ax.axhline(1.0, linestyle="--")
    ax.annotate("x", (0.0, 1.0), xycoords=("axes fraction", "data"), fontsize=7)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz="UTC"))
    ax.set_title("warm-up")
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png")
    plt.close(fig)


def serve(path: str) -> None:
    parent = os.getppid()
    if not die_with_parent(parent):  # the worker that started us is gone already
        return
    took = preload()
    os.nice(KERNEL_NICENESS)  # kernels yield the CPU to the receiver and its workers
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel children are reaped by the kernel
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(16)
    print(f"kernel template {os.getpid()}: ready in {took:.2f} s on {path}", file=sys.stderr, flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            pid = 0
            try:
                request = json.loads(conn.makefile("rb").readline())
                pid = os.fork()
                if pid == 0:
                    server.close()
                    conn.close()
                    _become_kernel(request)  # never returns
                reply: dict[str, Any] = {"pid": pid}
            except Exception as exc:
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(reply).encode() + b"\n")
            except OSError:  # the worker gave up waiting: nobody will use that kernel
                if pid:
                    kill_group(pid)


def _become_kernel(request: dict[str, Any]) -> None:
    code = 1
    try:
        os.setsid()
        die_with_parent()  # a kernel dies with its template, and so with its worker
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)  # the kernel's banner; its real output goes over IOPub
        env = request.get("env")
        if isinstance(env, dict):
            os.environ.clear()
            os.environ.update({str(k): str(v) for k, v in env.items()})
        os.chdir(request.get("cwd") or "/")
        memory_mb = request.get("memory_mb")
        if memory_mb:
            limit = int(memory_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        import random

        random.seed()  # a fork copies the PRNG state: every kernel would draw the same numbers
        from ipykernel.kernelapp import IPKernelApp

        app = IPKernelApp.instance()
        transport = ["--IPKernelApp.transport=ipc"]
        if request.get("transport") == "tcp":  # as the connection file says (a kernel manager's own, on loopback)
            transport = ["--IPKernelApp.transport=tcp", "--IPKernelApp.log_level=ERROR"]  # no "unencrypted" warning
        app.initialize(["-f", request["connection_file"], *KERNEL_ARGS, *transport])
        app.start()
        code = 0
    except BaseException as exc:
        print(f"forked kernel {os.getpid()} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        os._exit(code)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m runbook_lib.kernel.template SOCKET", file=sys.stderr)
        raise SystemExit(2)
    serve(sys.argv[1])
