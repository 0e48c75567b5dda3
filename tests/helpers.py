"""What tests share besides fixtures: constants, payload builders, the `runbook` command (in this
process, or as a real subprocess where the process itself is the subject), and a temporary
database."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from runbook_lib.sandbox import database

HOME = Path(__file__).resolve().parent.parent
NAMESPACE = "omnihub-prod"
REDIS_URL = "redis://127.0.0.1:6379/0"


@contextmanager
def temp_database(tag: str) -> Iterator[str]:
    """A database of this run's own with the OmniHub schema and seed; dropped afterwards."""
    name = f"rbtest_{os.getpid()}_{tag}_{uuid.uuid4().hex[:6]}"
    dsn = database.create_database(name)
    try:
        yield dsn
    finally:
        database.drop_database(name)


def scratch_databases(server_dsn: str) -> set[str]:
    """The DR drills' scratch databases on a server now (conftest ``drill_server``: each test
    process drills on a server of its own)."""
    import psycopg

    with psycopg.connect(server_dsn) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rb_drill_%'")}


def row_counts(dsn: str) -> dict[str, int]:
    """Every user table of a database and its rows (to show a drill left the source untouched)."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        names = [r[0] for r in conn.execute("SELECT relname FROM pg_stat_user_tables ORDER BY relname").fetchall()]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}


def own_parameters(tmp_path: Path, environ: Any, extra_yaml: str = "") -> Path:
    """Point RUNBOOK_HOME at a copy of parameters/ (the real runbooks stay), with
    ``extra_yaml`` appended to environments/local.yaml; returns that file. ``environ`` is
    pytest's monkeypatch."""
    home = tmp_path / "home"
    shutil.copytree(HOME / "parameters", home / "parameters")
    environ.setenv("RUNBOOK_HOME", str(home))
    environ.setenv("RUNBOOK_RUNBOOKS_DIR", str(HOME / "runbooks"))
    env_file = home / "parameters" / "environments" / "local.yaml"
    env_file.write_text(env_file.read_text() + extra_yaml)
    return env_file


def alert_payload(
    alertname: str = "HighErrorBudgetBurnRate",
    starts_at: datetime | None = None,
    labels: dict[str, str] | None = None,
    status: str = "firing",
    fingerprint: str | None = None,
    severity: str = "critical",
) -> dict[str, Any]:
    starts = (starts_at or datetime.now(UTC) - timedelta(minutes=10)).isoformat().replace("+00:00", "Z")
    lab = {"alertname": alertname, "severity": severity, **(labels or {})}
    alert = {
        "status": status,
        "labels": lab,
        "annotations": {"summary": f"{alertname} summary", "description": "test alert"},
        "startsAt": starts,
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9/graph?g0.expr=vector%281%29&g0.tab=1",
        "fingerprint": fingerprint or uuid.uuid4().hex[:16],
    }
    return {
        "version": "4",
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "runbooks",
        "groupLabels": {"alertname": alertname},
        "commonLabels": dict(lab),
        "commonAnnotations": dict(alert["annotations"]),
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert],
    }


@contextmanager
def posts_received() -> Iterator[tuple[str, list[tuple[str, dict[str, Any]]]]]:
    """A loopback stand-in for Slack, PagerDuty or a response_url: (its base URL, every
    (path, JSON body) POSTed to it, in order). Answers 200."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[tuple[str, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


@dataclass
class Ran:
    """What a command did: its exit code and what it printed."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def cli(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Ran:
    """The `runbook` command's own ``main(argv)``, in this process: what a user types, with the
    test's environment plus ``env`` for this call only, ``input`` on stdin. Runs start on the
    session's warm kernels. Use :func:`runbook_cli` where the process is the subject (the entry
    point, signals, a command that hands the terminal to another program)."""
    from runbook_lib.cli import main

    saved_env = dict(os.environ)
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    out, err = (io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True) for _ in range(2))
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode("utf-8")), encoding="utf-8")
    saved_stdin = sys.stdin
    os.environ.update({"COLUMNS": "120", **(env or {})})  # as a subprocess without a terminal sees it
    try:
        sys.stdin = stdin
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse: --help, usage errors
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    finally:
        sys.stdin = saved_stdin
        os.environ.clear()
        os.environ.update(saved_env)
        root.handlers[:], root.level = saved_handlers, saved_level
    return Ran(list(args), code, _text(out), _text(err))


def _text(stream: io.TextIOWrapper) -> str:
    stream.flush()
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", errors="replace")


def runbook_cli(
    *args: str, env: dict[str, str] | None = None, input: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """The real `runbook` command, in a subprocess, with the test's environment."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [str(Path(sys.executable).parent / "runbook"), *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        check=False,
    )


def load_record(html_path: str | Path) -> dict[str, Any]:
    return json.loads((Path(str(html_path).strip()).parent / "record.json").read_text())


def html_tags(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """Every start tag and its attributes, as a browser's parser sees them."""
    from html.parser import HTMLParser

    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collect().feed(html)
    return found


def unreachable_kubeconfig(path: Path, address: str = "127.0.0.1:9", namespace: str = "omnihub-prod") -> Path:
    """A kubeconfig whose API server (``address``, default the discard port) refuses connections."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://{address}"}}],
                "users": [{"name": "u", "user": {"token": "unreachable-token"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u", "namespace": namespace}}],
                "current-context": "x",
            }
        )
    )
    return path
