"""Local Ethereum nodes for the blockchain-rpc-down runbook: ganache (npm, installed into
``.tools/`` by scripts/bootstrap.sh) on a free 127.0.0.1 port, waited for until it answers
JSON-RPC, mined to a given height with ``evm_mine``, stopped with ``Service.stop()``.

Nothing is mined unless asked (no transactions, no instamine), so a node stays at the height
it was given: two nodes mined 5 and 55 blocks are exactly 50 apart.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from runbook_lib.core.errors import SandboxError
from runbook_lib.core.settings import PACKAGE_HOME
from runbook_lib.sandbox.services import Service, free_port, wait_for

GANACHE = PACKAGE_HOME / ".tools" / "node_modules" / ".bin" / "ganache"


def ganache_binary() -> Path:
    """The ganache command scripts/bootstrap.sh installs; SandboxError naming it when missing."""
    if not GANACHE.exists():
        raise SandboxError(
            f"ganache not found at {GANACHE}: run scripts/bootstrap.sh (npm install ganache into .tools/)"
        )
    if not shutil.which("node"):
        raise SandboxError("ganache needs Node.js (`node` on PATH): run scripts/bootstrap.sh")
    return GANACHE


def start_ganache(workdir: Path, chain_id: int = 1337, blocks: int = 0, timeout: float = 30.0) -> Service:
    """A ganache node on a free loopback port with ``chain_id``, mined to block ``blocks``."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"ganache-{port}.log"
    argv = [
        str(ganache_binary()),
        *("--server.host", "127.0.0.1", "--server.port", str(port), "--server.ws", "false"),
        *("--chain.chainId", str(chain_id), "--wallet.deterministic", "--logging.quiet"),
    ]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    svc = Service(f"ganache-{port}", proc, port, workdir, log_path)
    try:
        wait_for(f"ganache on {svc.url}", lambda: _answers(svc), timeout, svc)
        if blocks:
            mine(svc.url, blocks)
    except BaseException:
        svc.stop()
        raise
    return svc


def rpc(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call to a sandbox node; SandboxError on any failure."""
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params or [])}
    try:
        answer = httpx.post(url, json=body, timeout=timeout).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SandboxError(f"{method} at {url} failed: {type(exc).__name__}: {exc}") from None
    if "error" in answer:
        raise SandboxError(f"{method} at {url}: {answer['error'].get('message')}")
    return answer["result"]


def mine(url: str, blocks: int) -> int:
    """Mine ``blocks`` empty blocks; the new head's number."""
    rpc(url, "evm_mine", [{"blocks": blocks}], timeout=60.0)
    return block_number(url)


@contextmanager
def kept(*urls: str) -> Iterator[None]:
    """Whatever is mined inside the block is undone afterwards (evm_snapshot, evm_revert): a
    module can set the heights it needs on nodes the whole session shares."""
    snaps = [(url, rpc(url, "evm_snapshot")) for url in urls]
    try:
        yield
    finally:
        for url, snap in snaps:
            if not rpc(url, "evm_revert", [snap]):
                raise SandboxError(f"{url} could not revert to snapshot {snap}")


def block_number(url: str) -> int:
    return int(rpc(url, "eth_blockNumber"), 16)


def _answers(svc: Service) -> bool:
    if not svc.alive():
        raise SandboxError(f"{svc.name} exited with {svc.proc.returncode} at start:\n{svc.log_tail()}")
    try:
        rpc(svc.url, "eth_chainId", timeout=1.0)
    except SandboxError:
        return False
    return True
