"""Start and stop loopback instances of Prometheus and Alertmanager (Debian's binaries).

Each instance gets a free port on 127.0.0.1, its own working directory and log file, and is
stopped (SIGTERM, then SIGKILL) by ``stop()``. Nothing listens beyond loopback.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from runbook_lib.core.errors import SandboxError


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if not path:
        raise SandboxError(f"{name} not found: install Debian's {package} (make bootstrap does it)")
    return path


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_for(what: str, check: Callable[[], Any], timeout: float, svc: Service | None = None) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (and the
    service's log tail) when ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    tail = f"\n{svc.name} log:\n{svc.log_tail(30)}" if svc else ""
    raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}{tail}")


def spawn(
    name: str,
    argv: list[str],
    workdir: Path,
    port: int,
    ready_path: str,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Service:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    log = log_path.open("ab")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
        start_new_session=True,
        env={**os.environ, **env} if env is not None else None,
    )
    log.close()
    svc = Service(name, proc, port, workdir, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SandboxError(f"{name} exited with {proc.returncode} at start:\n{svc.log_tail()}")
        try:
            if httpx.get(f"{svc.url}{ready_path}", timeout=1.0).status_code == 200:
                return svc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    svc.stop()
    raise SandboxError(f"{name} not ready on {svc.url} within {timeout:.0f}s:\n{svc.log_tail()}")


def backfill(openmetrics: Path, tsdb: Path) -> None:
    """promtool tsdb create-blocks-from openmetrics FILE DIR."""
    promtool = need_binary("promtool", "prometheus")
    tsdb.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(openmetrics), str(tsdb)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if res.returncode != 0:
        raise SandboxError(f"promtool backfill failed: {res.stderr.strip()[-2000:]}")


def start_prometheus(
    workdir: Path,
    tsdb: Path,
    rule_files: list[Path] | None = None,
    alertmanager_url: str | None = None,
    evaluation_interval: str = "1s",
    resend_delay: str = "1s",
    port: int | None = None,
) -> Service:
    binary = need_binary("prometheus", "prometheus")
    port = port or free_port()
    config: dict[str, Any] = {
        "global": {"evaluation_interval": evaluation_interval, "scrape_interval": "15s"},
        "rule_files": [str(p) for p in rule_files or []],
        "scrape_configs": [],
    }
    if alertmanager_url:
        hostport = alertmanager_url.split("://", 1)[-1].rstrip("/")
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [hostport]}]}]}
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "prometheus.yml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    argv = [
        binary,
        f"--config.file={cfg_path}",
        f"--storage.tsdb.path={tsdb}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        f"--rules.alert.resend-delay={resend_delay}",
        "--web.enable-lifecycle",
        "--storage.tsdb.retention.time=30d",
    ]
    return spawn("prometheus", argv, workdir, port, "/-/ready")


def start_alertmanager(
    workdir: Path,
    webhook_url: str,
    bearer_token: str | None = None,
    group_wait: str = "1s",
    group_interval: str = "2s",
    repeat_interval: str = "1h",
    port: int | None = None,
    config: dict[str, Any] | None = None,
) -> Service:
    """Alertmanager on loopback: a one-route configuration sending everything to
    ``webhook_url``, or ``config`` as given (e.g. the generated one, pointed at loopback)."""
    binary = need_binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = port or free_port()
    webhook: dict[str, Any] = {"url": webhook_url, "send_resolved": True, "max_alerts": 0}
    if bearer_token:
        token_file = workdir / "webhook-token"
        workdir.mkdir(parents=True, exist_ok=True)
        token_file.write_text(bearer_token)
        os.chmod(token_file, 0o600)
        webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}}
    default = {
        "route": {
            "receiver": "runbooks",
            "group_by": [],  # the demo's alerts are one incident: one group, one story
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": repeat_interval,
        },
        "receivers": [{"name": "runbooks", "webhook_configs": [webhook]}],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    cfg_path = workdir / "alertmanager.yml"
    cfg_path.write_text(yaml.safe_dump(config if config is not None else default, sort_keys=False))
    argv = [
        binary,
        f"--config.file={cfg_path}",
        f"--storage.path={workdir / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        f"--web.external-url=http://127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return spawn("alertmanager", argv, workdir, port, "/-/ready")


def start_receiver(
    workdir: Path,
    env: dict[str, str],
    port: int | None = None,
    workers: int | None = None,
    timeout: float = 60.0,
    extra_args: list[str] | None = None,
) -> Service:
    """`runbook serve` as a subprocess (the same command operators run), ready on /healthz."""
    import sys

    port = port or free_port()
    argv = [str(Path(sys.executable).parent / "runbook"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        argv += ["--workers", str(workers)]
    argv += extra_args or []
    return spawn("receiver", argv, workdir, port, "/healthz", timeout, env=env)
