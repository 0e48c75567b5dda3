"""The README's examples work: every command of every ```sh block runs, as a user would type it
from the project root, against this session's services; every ```yaml block is what it claims
to be (Alertmanager's configuration passes amtool, the environment file loads as settings).

Substitutions, so that the examples read as they would in production and still run here:
``RECORD`` becomes the newest record id; ``/run/secrets/`` a directory holding a token; the
receiver listens on loopback at a free port. ``make demo`` is run by its own test below (it takes
a while, so it runs beside the others); ``make test`` is the command running this test, so it is
the one line not run again.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pika
import pytest
import yaml

from runbook_lib.core.settings import load_settings
from runbook_lib.sandbox.services import free_port
from tests.helpers import HOME, NAMESPACE, REDIS_URL

pytestmark = pytest.mark.services

README = (HOME / "README.md").read_text()
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.M | re.S)
NOT_HERE = {"make test": "this suite itself", "make demo": "test_make_demo_runs_the_chain (below)"}


def blocks(kind: str) -> list[str]:
    return [body for lang, body in FENCE.findall(README) if lang == kind]


def commands(block: str) -> list[str]:
    """The block's command lines: continuations joined, trailing comments dropped."""
    out, pending = [], ""
    for raw in block.splitlines():
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        code = _without_comment(line)
        if code:
            out.append(code)
    return out


def _without_comment(line: str) -> str:
    """The line up to a comment (a ``#`` outside quotes, after white space), kept as typed."""
    quote, prev = None, " "
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and prev.isspace():
            return line[:i].rstrip()
        prev = ch
    return line.rstrip()


def test_the_readme_has_the_two_commands_and_examples() -> None:
    shell = [c for b in blocks("sh") for c in commands(b)]
    assert shell[:2] == ["make demo", "make test"]
    assert sum(c.startswith("runbook ") for c in shell) >= 15
    assert commands('a "b # c" # d\nx \\\n  y  # z\n# only\n') == ['a "b # c"', "x y"]


@pytest.fixture
def readme_env(
    tmp_path: Path, prometheus: Any, fresh_db: str, fake_kube: tuple[Any, Path], vhost: str
) -> dict[str, str]:
    url = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    conn = pika.BlockingConnection(pika.URLParameters(url))
    conn.channel().queue_declare("dead_letter_queue")
    conn.close()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "runbook-token").write_text("readme-token-" + "x" * 24 + "\n")
    return {
        "PATH": f"{Path(__import__('sys').executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "RUNBOOK_ARCHIVE": str(tmp_path / "executed"),
        "RUNBOOK_PROMETHEUS_URL": prometheus.url,
        "RUNBOOK_POSTGRES_DSN": fresh_db,
        "RUNBOOK_REDIS_URL": REDIS_URL,
        "RUNBOOK_RABBITMQ_URL": url,
        "KUBECONFIG": str(fake_kube[1]),
        "RUNBOOK_KUBE_NAMESPACE": NAMESPACE,
        "SECRETS_DIR": str(secrets),
    }


def substituted(command: str, env: dict[str, str], port: int) -> str:
    if "RECORD" in command:
        listed = subprocess.run(
            ["runbook", "records", "--json"], capture_output=True, text=True, env=env, cwd=HOME, check=True
        )
        rows = json.loads(listed.stdout)  # newest first
        if command.startswith("runbook ack"):  # an incident: the newest record with an alert
            rows = [r for r in rows if r["alert"] != "-"]
        command = command.replace("RECORD", rows[0]["id"])
    command = command.replace("/run/secrets/", env["SECRETS_DIR"] + "/")
    if command.startswith("RUNBOOK_WEBHOOK_TOKEN_FILE=") or " runbook serve" in f" {command}":
        command = command.replace("--host 0.0.0.0", "--host 127.0.0.1") + f" --port {port}"
    return command


def test_every_readme_command_runs(readme_env: dict[str, str]) -> None:
    ran = []
    for block in blocks("sh"):
        for command in commands(block):
            if command in NOT_HERE:
                continue
            line = substituted(command, readme_env, free_port())
            if "runbook serve" in line:
                _serve(line, readme_env)
            else:
                done = subprocess.run(
                    ["bash", "-c", line], capture_output=True, text=True, env=readme_env, cwd=HOME, timeout=600
                )
                assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            ran.append(command)
    assert len(ran) >= 18, ran  # every runbook command of the README (make demo and make test aside)


def _serve(line: str, env: dict[str, str]) -> None:
    """A server command: it must come up and answer /healthz, then it is stopped."""
    port = int(line.rsplit("--port ", 1)[1])
    proc = subprocess.Popen(
        ["bash", "-c", line], env=env, cwd=HOME, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, f"{line} exited: {proc.stderr.read() if proc.stderr else ''}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503):
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"{line} never answered /healthz"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # bash and the receiver it started
        proc.wait(30)


def test_the_readme_alertmanager_configuration_passes_amtool(tmp_path: Path) -> None:
    [config] = [b for b in blocks("yaml") if "receivers:" in b]
    path = tmp_path / "alertmanager.yml"
    path.write_text(config)
    done = subprocess.run(["amtool", "check-config", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_readme_environment_file_loads_as_settings(tmp_path: Path) -> None:
    [env_yaml] = [b for b in blocks("yaml") if "prometheus:" in b and "receivers:" not in b]
    assert "password" not in env_yaml.lower()
    home = tmp_path / "home"
    (home / "parameters" / "environments").mkdir(parents=True)
    (home / "parameters" / "defaults.yaml").write_text((HOME / "parameters" / "defaults.yaml").read_text())
    (home / "parameters" / "environments" / "staging.yaml").write_text(env_yaml)
    settings = load_settings(env="staging", environ={"RUNBOOK_HOME": str(home)})
    assert settings.kubernetes.namespace == "omnihub-staging"
    assert settings.links.grafana_url == yaml.safe_load(env_yaml)["links"]["grafana_url"]
