"""A throwaway PostgreSQL cluster of its own (initdb, pg_ctl) on a free loopback port, for the
faults a shared server cannot show: a server that is stopped, that wants a password, that has
no connection slots left, or that is a standby in recovery (pg_basebackup -R).

Run as root (CI is), the cluster belongs to the ``postgres`` system user, as initdb requires.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from runbook_lib.core.errors import SandboxError

SUPERUSER = "postgres"


def bin_dir() -> Path:
    """The newest installed PostgreSQL server binaries (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else -1,
    )
    if not found:
        raise SandboxError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    return found[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """initdb -> start -> (stop / standby) -> remove. Password authentication on TCP."""

    def __init__(self, max_connections: int = 20, password: str | None = None, name: str = "primary") -> None:
        self.root = Path(tempfile.mkdtemp(prefix=f"rb-cluster-{name}-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.password = password or secrets.token_hex(12)
        self.max_connections = max_connections
        self.bin = bin_dir()
        self._owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
        if self._owner:
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)

    # -- lifecycle -----------------------------------------------------------------------------
    def init(self) -> Cluster:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._owner:
            os.chown(pwfile, self._owner.pw_uid, self._owner.pw_gid)
        self._tool(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )
        pwfile.unlink()
        self.configure(
            port=self.port,
            listen_addresses="'127.0.0.1'",
            max_connections=self.max_connections,
            superuser_reserved_connections=2,
            unix_socket_directories=f"'{self.root}'",
            fsync="off",
            wal_level="replica",
            max_wal_senders=4,
            shared_buffers="16MB",
        )
        with (self.data / "pg_hba.conf").open("a") as hba:
            hba.write("host replication all 127.0.0.1/32 scram-sha-256\n")
        return self

    def configure(self, **settings: object) -> None:
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def start(self) -> Cluster:
        self._tool("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w", "-t", "60", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._tool("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def remove(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def standby(self, host: str = "127.0.0.1", same_port: bool = False) -> Cluster:
        """A hot standby of this (running) cluster: pg_basebackup -R, on a port of its own (or,
        with ``same_port``, on this one's port at another loopback ``host``). In recovery for as
        long as it runs."""
        replica = Cluster(self.max_connections, self.password, name="standby")
        replica.host = host
        if same_port:
            replica.port = self.port
        env = {"PGPASSWORD": self.password}
        self._tool(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-D",
            str(replica.data),
            "-R",
            "--checkpoint=fast",
            "--wal-method=stream",
            env=env,
        )
        replica.configure(
            port=replica.port,
            listen_addresses=f"'{host}'",
            unix_socket_directories=f"'{replica.root}'",
            hot_standby="on",
        )
        if host != "127.0.0.1":
            with (replica.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {host}/32 scram-sha-256\n")
        return replica.start()

    # -- connecting -------------------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", password: str | None = None, user: str = SUPERUSER) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{user}:{pw}@{self.host}:{self.port}/{dbname}"

    def wait_accepting(self, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    # -- helpers --------------------------------------------------------------------------------
    def _tool(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        cmd = [str(self.bin / name), *args]
        if self._owner:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(
            cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False, timeout=120
        )
        if done.returncode != 0:
            log = (self.root / "log").read_text()[-2000:] if (self.root / "log").exists() else ""
            raise SandboxError(f"{name} failed (exit {done.returncode}): {done.stderr.strip()[-1000:]}\n{log}")


class Pair:
    """A primary and a hot standby streaming from it, shared by the tests of a session.
    :meth:`reset` puts back what a test changed (a stopped primary, a promoted or detached
    standby): the primary started again, a new standby taken from it."""

    def __init__(self, max_connections: int = 30) -> None:
        self.primary = Cluster(max_connections=max_connections, name="pair-primary").init().start()
        self.standby: Cluster | None = None
        self.rebuilds = 0
        try:
            self.reset()
        except BaseException:
            self.remove()
            raise

    def streaming(self) -> int:
        """Standbys streaming from the primary now (0 when the primary does not answer)."""
        try:
            with psycopg.connect(self.primary.dsn(), connect_timeout=2) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetchone()
        except psycopg.OperationalError:
            return 0
        return int(row[0]) if row else 0

    def reset(self) -> tuple[Cluster, Cluster]:
        if self.standby is not None and self.streaming() == 1 and self._standby_in_recovery():
            return self.primary, self.standby
        if self.standby is not None:
            self.standby.remove()
            self.standby = None
        try:
            self.primary.wait_accepting(timeout_s=1)
        except psycopg.OperationalError:
            self.primary.stop("immediate")
            self.primary.start()
            self.primary.wait_accepting()
        self.standby = self.primary.standby()
        self.standby.wait_accepting()
        deadline = time.monotonic() + 30
        while self.streaming() != 1:
            if time.monotonic() > deadline:
                raise SandboxError("the new standby is not streaming from the primary after 30 s")
            time.sleep(0.1)
        self.rebuilds += 1
        return self.primary, self.standby

    def _standby_in_recovery(self) -> bool:
        assert self.standby is not None
        try:
            with psycopg.connect(self.standby.dsn(), connect_timeout=2) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.OperationalError:
            return False
        return bool(row and row[0])

    def remove(self) -> None:
        if self.standby is not None:
            self.standby.remove()
        self.primary.remove()
