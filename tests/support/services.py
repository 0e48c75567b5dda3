"""Test-only services on loopback: moto's S3 server, a RabbitMQ virtual host of the caller's
own, and `runbook worker` processes (the demo needs none of them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

from runbook_lib.core.errors import SandboxError
from runbook_lib.sandbox.services import Service, free_port, spawn


def start_s3(workdir: Path, timeout: float = 30.0) -> Service:
    """moto's S3-compatible server (from PyPI, moto[server]) on a free loopback port: a real
    S3 protocol peer for an archive at s3://. Any credentials are accepted; buckets live in memory."""
    import sys

    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    if moto is None:
        raise SandboxError("moto_server is missing from the virtualenv (pip install 'moto[server]')")
    port = free_port()
    return spawn("moto", [moto, "-H", "127.0.0.1", "-p", str(port)], workdir, port, "/", timeout)


def rabbitmqctl(*args: str) -> None:
    res = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0:
        raise SandboxError(f"rabbitmqctl {' '.join(args)}: {res.stdout}{res.stderr}")


@contextlib.contextmanager
def rabbitmq_vhost(prefix: str = "rbtest") -> Iterator[str]:
    """A RabbitMQ virtual host of the caller's own on 127.0.0.1:5672 (guest has all rights in
    it), deleted afterwards. Fails loudly when RabbitMQ is not listening."""
    with socket.socket() as s:
        s.settimeout(1)
        if s.connect_ex(("127.0.0.1", 5672)) != 0:
            raise SandboxError("RabbitMQ is not listening on 127.0.0.1:5672 (run scripts/services.sh)")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name)


def start_worker(workdir: Path, env: dict[str, str], name: str = "worker", timeout: float = 90.0) -> Service:
    """`runbook worker` (the celery executor's worker) as a subprocess, ready when its /healthz
    says it is consuming."""
    import sys

    port = free_port()
    argv = [str(Path(sys.executable).parent / "runbook"), "worker", "--health-host", "127.0.0.1"]
    argv += ["--health-port", str(port)]
    return spawn(name, argv, workdir, port, "/healthz", timeout, env=env)
