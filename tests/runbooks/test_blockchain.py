"""blockchain-rpc-down against two real ganache nodes (tests/support/ganache.py), one mined
50 blocks ahead of the other, plus providers that fail in each way the runbook classifies: a
loopback port nobody listens on (refused), one that accepts and never answers (timeout), a wrong
path on a ganache node (HTTP 404), and a small loopback JSON-RPC server that answers with a
rate-limit error, another chain, or "still syncing". Then the guarded switch_rpc_provider
option on a temporary copy of parameters/, with its audit rows in a database of its own."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from runbook_lib.core.errors import ConfigError, SandboxError, SourceError, SourceNotConfigured
from runbook_lib.core.settings import BlockchainSettings, RpcProvider, load_settings
from runbook_lib.kernel.actions.blockchain import set_yaml_key, target_refusal
from runbook_lib.kernel.checks.blockchain import HEALTHY, classify
from runbook_lib.kernel.sources.blockchain import Blockchain, endpoint, transport_class
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox.services import Service, free_port
from tests.helpers import own_parameters
from tests.support import dbfaults, ganache

pytestmark = pytest.mark.services

SLUG = "blockchain-rpc-down"
KEY_VAR = "RUNBOOK_TEST_RPC_API_KEY"
KEY = "k3y-s3cret-value"
OPERATOR = "alice@omnihub.test"


# -- loopback backends ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nodes(ganache_pair: tuple[Service, Service]) -> Iterator[tuple[Service, Service]]:
    """node-a at block 5 and node-b at block 55, both chain 1337 (the session's pair, put back
    as it was afterwards)."""
    a, b = ganache_pair
    with ganache.kept(a.url, b.url):
        ganache.mine(b.url, 5 + 50 - ganache.block_number(b.url))
        assert (ganache.block_number(a.url), ganache.block_number(b.url)) == (5, 55)
        yield a, b


STUB_ANSWERS: dict[str, dict[str, Any]] = {
    "/wrong-chain": {"eth_chainId": "0x5", "eth_blockNumber": "0x37", "eth_syncing": False},
    "/close-behind": {"eth_chainId": "0x539", "eth_blockNumber": "0x35", "eth_syncing": False},
    "/syncing": {
        "eth_chainId": "0x539",
        "eth_blockNumber": "0x36",
        "eth_syncing": {"startingBlock": "0x0", "currentBlock": "0x36", "highestBlock": "0x40"},
    },
}


class StubRpc(BaseHTTPRequestHandler):
    """/rate-limited: a JSON-RPC error; /wrong-chain: chain 5; /syncing: chain 1337, block 54, syncing;
    /close-behind: chain 1337, block 53 (2 behind node-b: healthy)."""

    def do_POST(self) -> None:
        call = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/rate-limited":
            answer = {"error": {"code": -32005, "message": "daily request count exceeded, request rate limited"}}
        else:
            answer = {"result": STUB_ANSWERS[self.path][call["method"]]}
        data = json.dumps({"jsonrpc": "2.0", "id": call["id"], **answer}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def stub() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubRpc)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def hung() -> Iterator[int]:
    with dbfaults.silent_port() as port:
        yield port


def dead_port() -> int:
    port = free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the dead port must have nobody listening"
    return port


# -- a parameters/ of the test's own ----------------------------------------------------------------------
def providers_yaml(providers: list[dict[str, str]], primary: str, chain_id: int | None = 1337) -> str:
    rows = "\n".join(f"    - {json.dumps(p)}" for p in providers)
    return (
        "# Ethereum JSON-RPC providers of this test (loopback only).\n"
        "blockchain:\n"
        "  # best first\n"
        f"  providers:\n{rows}\n"
        f"  primary: {primary}   # the provider the platform uses now\n"
        f"  chain_id: {'null' if chain_id is None else chain_id}\n"
        "  timeout_s: 1  # the hung provider costs one second\n"
    )


@pytest.fixture
def params(tmp_path: Path, archive_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write the providers into a temporary copy of parameters/; returns the environment file."""
    env_file = own_parameters(tmp_path, monkeypatch)
    monkeypatch.setenv(KEY_VAR, KEY)
    original = env_file.read_text()

    def write(providers: list[dict[str, str]], primary: str, chain_id: int | None = 1337) -> Path:
        env_file.write_text(original + providers_yaml(providers, primary, chain_id))
        return env_file

    return write


def run(**request: Any) -> Any:
    result = Runner(load_settings()).run(RunRequest(alert=None, slug=SLUG, **request))
    assert result.status == "succeeded", result.record.get("failed_cell")
    return result


def findings(record: dict[str, Any], check: str) -> dict[str, dict[str, Any]]:
    """The check's findings by provider."""
    return {f["details"].get("provider"): f for f in record["findings"] if f["check"] == check}


def action(record: dict[str, Any]) -> dict[str, Any]:
    return next(a for a in record["actions"] if a["name"] == "switch_rpc_provider")


def audit_rows(dsn: str) -> list[tuple[str, str, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT actor, action, resource_id, outcome FROM audit_logs"
            " WHERE action = 'runbook.switch_rpc_provider' ORDER BY id"
        ).fetchall()


# -- the diagnosis ---------------------------------------------------------------------------------------
def test_names_the_lagging_and_the_dead_providers_and_never_shows_the_key(nodes, stub, hung, params) -> None:
    a, b = nodes
    env_file = params(
        [
            {"name": "node-a", "url": f"{a.url}/"},
            {"name": "node-b", "url": f"{b.url}/?apikey={{api_key}}", "api_key_env": KEY_VAR},
            {"name": "dead", "url": f"http://127.0.0.1:{dead_port()}/"},
            {"name": "hung", "url": f"http://127.0.0.1:{hung}/"},
            {"name": "wrong-path", "url": f"{b.url}/v3/not-here"},
            {"name": "rate-limited", "url": f"{stub}/rate-limited"},
            {"name": "other-chain", "url": f"{stub}/wrong-chain"},
            {"name": "catching-up", "url": f"{stub}/syncing"},
        ],
        primary="node-a",
    )
    before = env_file.read_bytes()
    result = run()
    record = result.record

    primary = findings(record, "Primary RPC provider")["node-a"]
    assert primary["verdict"] == "critical" and primary["role"] == "symptom"
    assert primary["details"]["state"] == "lagging" and primary["details"]["lag"] == 50
    assert primary["details"]["switch_to"] == "node-b"
    assert record["findings"][0]["check"] == "Primary RPC provider", "the primary's state leads"

    lagging = findings(record, "Block lag")
    assert lagging["node-a"]["role"] == "cause" and lagging["node-a"]["verdict"] == "critical"
    d = lagging["node-a"]["details"]
    assert (d["lag"], d["block"], d["best_block"], d["best_provider"]) == (50, 5, 55, "node-b")
    assert "node-a (primary) is 50 blocks behind node-b" in lagging["node-a"]["summary"]
    assert lagging["catching-up"]["details"]["state"] == "syncing" and lagging["catching-up"]["verdict"] == "warning"
    assert lagging["catching-up"]["details"]["sync_highest"] == 64
    assert "node-b" not in lagging, "the best provider does not lag"

    down = findings(record, "Dead providers")
    assert all(f["role"] == "cause" for f in down.values())
    classes = {name: f["details"]["error_class"] for name, f in down.items()}
    assert classes == {"dead": "refused", "hung": "timeout", "wrong-path": "http_status", "rate-limited": "jsonrpc"}
    assert "dead is down (refused)" in down["dead"]["summary"]
    assert down["wrong-path"]["details"]["http_status"] == 404
    assert down["rate-limited"]["details"]["rpc_code"] == -32005 and "rate limited" in down["rate-limited"]["summary"]

    chain = findings(record, "Chain id")["other-chain"]
    assert chain["role"] == "cause" and chain["details"]["chain_id"] == 5
    assert chain["details"]["expected_chain_id"] == 1337

    diagnosis = record["diagnosis"]
    assert diagnosis["verdict"] == "critical" and not diagnosis["incomplete"]
    assert diagnosis["headline"].startswith("CRITICAL — The platform's provider node-a (primary) is lagging")
    assert "likely cause: node-a (primary) is 50 blocks behind node-b (block 5 against 55)" in diagnosis["headline"]
    assert "recommended: Option 1 — Switch the primary RPC provider" in diagnosis["headline"]
    switch = action(record)
    assert switch["status"] == "proposed" and switch["recommended"] is True and switch["plan"]["to"] == "node-b"
    codes = {(f["check"], f["details"].get("provider")): f.get("cause") for f in record["findings"] if f.get("cause")}
    assert codes == {
        ("Block lag", "node-a"): "rpc_lagging",
        ("Block lag", "catching-up"): "rpc_lagging",
        ("Dead providers", "dead"): "rpc_down",
        ("Dead providers", "hung"): "rpc_down",
        ("Dead providers", "wrong-path"): "rpc_errors",
        ("Dead providers", "rate-limited"): "rpc_errors",
        ("Chain id", "other-chain"): "rpc_wrong_chain",
    }
    assert diagnosis["cause_code"] == "rpc_lagging" and diagnosis["recommended_action"]["name"] == "switch_rpc_provider"
    assert [a["name"] for a in record["actions"] if a["recommended"]] == ["switch_rpc_provider"], "one recommendation"

    files = {name: (result.path / name).read_text() for name in ("record.json", "record.html", "notebook.ipynb")}
    for name, text in files.items():
        assert KEY not in text, name
        assert "[REDACTED]" not in text, f"{name}: the key was written and only caught by redaction"
    assert "/?apikey={api_key}" in files["record.html"], "the URL is shown with its placeholder"
    assert env_file.read_bytes() == before, "a diagnosis changes nothing"


# -- the guarded option ---------------------------------------------------------------------------------------
def test_switch_rpc_provider_guard_matrix(nodes, params, fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = nodes
    monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", fresh_db)
    env_file = params(
        [
            {"name": "node-a", "url": f"{a.url}/"},
            {"name": "node-b", "url": f"{b.url}/?apikey={{api_key}}", "api_key_env": KEY_VAR},
            {"name": "dead", "url": f"http://127.0.0.1:{dead_port()}/"},
        ],
        primary="node-a",
    )
    before = env_file.read_bytes()
    execute = {"mode": "resolve", "dry_run": False, "operator": OPERATOR}

    dry = action(run(mode="resolve").record)
    assert dry["status"] == "dry_run" and "+  primary: node-b   # the provider" in dry["plan"]["diff"]
    assert action(run(**execute).record)["status"] == "refused", "not approved"
    to_dead = action(run(**execute, approve=["switch_rpc_provider"], extra={"to_provider": "dead"}).record)
    assert to_dead["status"] == "refused" and "dead is dead in this run's diagnosis" in to_dead["reason"]
    assert env_file.read_bytes() == before and audit_rows(fresh_db) == [], "refused and dry runs change nothing"

    done = action(run(**execute, approve=["switch_rpc_provider"]).record)
    assert done["status"] == "done" and done["result"] == {
        "file": "parameters/environments/local.yaml",
        "primary": "node-b",
        "previous": "node-a",
    }
    old, new = before.decode().splitlines(), env_file.read_text().splitlines()
    changed = [(o, n) for o, n in zip(old, new, strict=True) if o != n]
    assert changed == [
        (
            "  primary: node-a   # the provider the platform uses now",
            "  primary: node-b   # the provider the platform uses now",
        )
    ]
    assert [(r[0], r[2], r[3]) for r in audit_rows(fresh_db)] == [
        (OPERATOR, "local:node-b", "started"),
        (OPERATOR, "local:node-b", "succeeded"),
    ]

    after = run().record
    primary = findings(after, "Primary RPC provider")["node-b"]
    assert primary["verdict"] == "ok" and primary["details"]["state"] == "ok"
    assert action(after)["recommended"] is False, "nothing to switch away from"


def test_a_healthy_primary_is_not_switched_unless_a_provider_is_named(
    nodes, stub, params, fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close-behind (primary) is 2 blocks behind node-b: healthy. Approved, without to_provider,
    the option does nothing; naming node-b still switches."""
    _a, b = nodes
    monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", fresh_db)
    env_file = params(
        [{"name": "close-behind", "url": f"{stub}/close-behind"}, {"name": "node-b", "url": f"{b.url}/"}],
        primary="close-behind",
    )
    before = env_file.read_bytes()
    execute = {"mode": "resolve", "dry_run": False, "operator": OPERATOR, "approve": ["switch_rpc_provider"]}

    record = run(**execute).record
    primary = findings(record, "Primary RPC provider")["close-behind"]
    assert primary["verdict"] == "ok" and primary["details"]["lag"] == 2 and primary["details"]["switch_to"] is None
    kept = action(record)
    assert kept["status"] == "skipped" and kept["recommended"] is False, kept["reason"]
    assert kept["plan"]["noop"] is True and kept["plan"]["to"] is None
    assert kept["plan"]["note"] == "the primary close-behind is healthy" and "diff" not in kept["plan"]
    assert "the primary close-behind is healthy" in kept["title"] + kept["command"]
    assert env_file.read_bytes() == before and audit_rows(fresh_db) == [], "nothing written"

    named = action(run(**execute, extra={"to_provider": "node-b"}).record)
    assert named["status"] == "done" and named["result"]["primary"] == "node-b", named["reason"]
    assert "primary: node-b   # the provider the platform uses now" in env_file.read_text()
    assert [(r[2], r[3]) for r in audit_rows(fresh_db)] == [("local:node-b", "started"), ("local:node-b", "succeeded")]


def test_providers_split_between_chains_without_chain_id_are_never_healthy(
    nodes, stub, params, fresh_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """node-a (chain 1337, block 5, primary) and other-chain (chain 5, block 55), no
    blockchain.chain_id: their heights are not compared and other-chain is not a switch target."""
    a, _b = nodes
    monkeypatch.setenv("RUNBOOK_POSTGRES_DSN", fresh_db)
    env_file = params(
        [{"name": "node-a", "url": f"{a.url}/"}, {"name": "other-chain", "url": f"{stub}/wrong-chain"}],
        primary="node-a",
        chain_id=None,
    )
    before = env_file.read_bytes()
    record = run().record
    primary = findings(record, "Primary RPC provider")["node-a"]
    assert primary["details"]["state"] == "unknown_chain" and primary["details"]["switch_to"] is None
    assert primary["details"]["lag"] is None and primary["verdict"] == "warning"
    assert "disagree on the chain" in primary["summary"]
    lag = findings(record, "Block lag")[None]
    assert lag["verdict"] == "info" and "Not measured" in lag["summary"]
    assert "Block lag" not in {f["check"] for f in record["findings"] if f.get("role") == "cause"}
    proposed = action(record)
    assert proposed["recommended"] is False and proposed["plan"]["to"] is None

    execute = {"mode": "resolve", "dry_run": False, "operator": OPERATOR, "approve": ["switch_rpc_provider"]}
    forced = action(run(**execute, extra={"to_provider": "other-chain"}).record)
    assert forced["status"] == "refused" and "disagree on the chain" in forced["reason"], forced["reason"]
    assert "blockchain.chain_id" in forced["reason"]
    default = action(run(**execute).record)
    assert default["status"] == "refused" and "disagree on the chain" in default["reason"], default["reason"]
    assert env_file.read_bytes() == before and audit_rows(fresh_db) == [], "nothing written"


# -- pure pieces, no runner -------------------------------------------------------------------------------------
def test_set_yaml_key_changes_one_line_and_keeps_the_rest() -> None:
    text = "# top\nblockchain:\n  # which one\n  primary: a  # now\n  chain_id: 1\nother: {x: 1}  # keep\n"
    assert set_yaml_key(text, "blockchain", "primary", "b") == text.replace("primary: a  # now", "primary: b  # now")
    crlf = text.replace("\n", "\r\n")
    assert set_yaml_key(crlf, "blockchain", "primary", "b") == crlf.replace("primary: a", "primary: b")
    assert set_yaml_key("blockchain:\n  chain_id: 1\n", "blockchain", "primary", "b") == (
        "blockchain:\n  primary: b\n  chain_id: 1\n"
    )
    assert set_yaml_key("x: 1", "blockchain", "primary", "yes") == 'x: 1\nblockchain:\n  primary: "yes"\n'
    with pytest.raises(SourceError, match="not a block mapping"):
        set_yaml_key("blockchain: {primary: a}\n", "blockchain", "primary", "b")
    with pytest.raises(SourceError, match="without changing something else"):
        set_yaml_key("blockchain:\n  primary: >\n    a\n", "blockchain", "primary", "b")


def test_api_keys_come_only_from_variables_records_redact() -> None:
    keyed = RpcProvider(name="infura", url="https://mainnet.infura.io/v3/{api_key}", api_key_env="INFURA_API_KEY")
    ep = endpoint(keyed, {"INFURA_API_KEY": KEY})
    assert ep.url == keyed.url and ep.target.endswith(KEY) and KEY not in repr(ep)
    assert ep.scrub(f"GET {ep.target} failed") == f"GET {keyed.url} failed"
    with pytest.raises(SourceNotConfigured, match="set INFURA_API_KEY"):
        endpoint(keyed, {})
    with pytest.raises(ConfigError, match="records redact only"):
        endpoint(keyed.model_copy(update={"api_key_env": "INFURA_KEY"}), {"INFURA_KEY": KEY})
    with pytest.raises(ConfigError, match="no api_key_env"):
        endpoint(keyed.model_copy(update={"api_key_env": None}), {})
    with pytest.raises(ConfigError, match="contains a password"):
        endpoint(RpcProvider(name="x", url="https://user:hunter22@rpc.example/"), {})
    with pytest.raises(ConfigError, match="http:// or https://"):
        endpoint(RpcProvider(name="x", url="ws://127.0.0.1:8546/"), {})
    with pytest.raises(SourceNotConfigured, match="blockchain.providers"):
        Blockchain.from_settings(load_settings(environ={}))


RAW_KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("url", "carrier"),
    [
        (f"https://mainnet.infura.io/v3/{RAW_KEY}", "path"),
        (f"https://eth.example/rpc?apikey={RAW_KEY}", "query"),
        (f"https://eth.example/rpc?network=mainnet&key=Ab_{RAW_KEY}-z", "query"),
        (f"https://eth.example/v3/{RAW_KEY}?apikey={{api_key}}", "path"),
        (f"https://eth.example/%30%31{RAW_KEY}", "path"),
        (f"https://{RAW_KEY}@eth.example/", "user info"),
    ],
)
def test_a_url_carrying_a_raw_key_is_refused_without_showing_it(url: str, carrier: str) -> None:
    settings = load_settings(environ={})
    provider = RpcProvider(name="infura", url=url, api_key_env="INFURA_API_KEY" if "{api_key}" in url else None)
    configured = settings.model_copy(update={"blockchain": BlockchainSettings(providers=[provider])})
    with pytest.raises(ConfigError) as exc:
        Blockchain.from_settings(configured, {"INFURA_API_KEY": KEY})
    said = str(exc.value)
    assert "blockchain.providers[infura].url" in said and f"in its {carrier}" in said
    assert "api_key_env" in said and "{api_key}" in said
    assert RAW_KEY not in said and RAW_KEY[:20] not in said and url not in said


def test_urls_without_a_raw_key_are_accepted() -> None:
    settings = load_settings(environ={})
    providers = [
        RpcProvider(name="infura", url="https://mainnet.infura.io/v3/{api_key}", api_key_env="INFURA_API_KEY"),
        RpcProvider(
            name="alchemy", url="https://eth-mainnet.g.alchemy.com/v2/{api_key}", api_key_env="ALCHEMY_API_KEY"
        ),
        RpcProvider(name="query", url="https://eth.example/rpc?apikey={api_key}&chain=1", api_key_env="Q_API_KEY"),
        RpcProvider(name="ankr", url="https://rpc.ankr.com/eth"),
        RpcProvider(name="local", url="http://127.0.0.1:8545/v3/not-here?network=mainnet-archive"),
        RpcProvider(name="long-words", url="https://eth.example/ethereum-mainnet-archive-node/"),
    ]
    configured = settings.model_copy(update={"blockchain": BlockchainSettings(providers=providers)})
    keys = {"INFURA_API_KEY": KEY, "ALCHEMY_API_KEY": KEY, "Q_API_KEY": KEY}
    client = Blockchain.from_settings(configured, keys)
    try:
        assert list(client.endpoints) == [p.name for p in providers]
        assert client.endpoints["query"].target == f"https://eth.example/rpc?apikey={KEY}&chain=1"
    finally:
        client.close()


def test_transport_failures_are_classified_from_their_cause() -> None:
    def raised(cause: BaseException, exc: httpx.HTTPError) -> httpx.HTTPError:
        try:
            try:
                raise cause
            except BaseException as inner:
                raise exc from inner
        except httpx.HTTPError as outer:
            return outer

    assert transport_class(raised(socket.gaierror(-2, "Name or service not known"), httpx.ConnectError("x"))) == "dns"
    assert transport_class(raised(ConnectionRefusedError(111, "refused"), httpx.ConnectError("x"))) == "refused"
    assert transport_class(httpx.ReadTimeout("slow")) == "timeout"
    assert transport_class(raised(OSError(113, "No route to host"), httpx.ConnectError("x"))) == "unreachable"


def test_the_chain_is_the_configured_one_else_the_majority() -> None:
    def probe(name: str, chain: int, block: int) -> dict[str, Any]:
        return {"provider": name, "url": name, "chain_id": chain, "block": block, "latency_ms": 1.0}

    three = [probe("a", 1, 10), probe("b", 1, 12), probe("c", 5, 99)]
    rpc = classify(three, "a", None, lag_warn=5)
    assert (rpc.expected_chain, rpc.best, rpc.status) == (1, "b", {"a": "ok", "b": "ok", "c": "wrong_chain"})
    assert rpc.target == "b" and rpc.switch_recommended is False, "a is 2 behind: healthy"
    assert classify(three, "a", 5, lag_warn=5).status == {"a": "wrong_chain", "b": "wrong_chain", "c": "ok"}
    assert classify(three[1:], "b", None, lag_warn=5).expected_chain is None, "an even split names no chain"
    assert (
        target_refusal("c", ["a", "b", "c"], rpc)
        == "c is wrong chain in this run's diagnosis; switch only to a healthy provider"
    )
    assert target_refusal("b", ["a", "b", "c"], rpc) is None
    assert "not a configured provider" in (target_refusal("z", ["a", "b", "c"], rpc) or "")


def test_providers_on_different_chains_without_a_chain_id_are_not_compared() -> None:
    """b (chain 1, block 12, primary) and c (chain 5, block 99), no blockchain.chain_id: c's
    height says nothing about b, and c may read another network."""
    b = {"provider": "b", "url": "b", "chain_id": 1, "block": 12, "latency_ms": 1.0}
    c = {"provider": "c", "url": "c", "chain_id": 5, "block": 99, "latency_ms": 1.0}
    dead = {"provider": "d", "url": "d", "chain_id": None, "block": None, "error_class": "refused", "error": "x"}
    rpc = classify([b, c, dead], "b", None, lag_warn=5)
    assert rpc.expected_chain is None and rpc.chain_unknown
    assert rpc.status == {"b": "unknown_chain", "c": "unknown_chain", "d": "dead"}
    assert HEALTHY not in rpc.status.values() and rpc.target is None and rpc.best is None
    assert all(s.lag is None for s in rpc.states)
    assert rpc.switch_recommended is False and rpc.switch_why == ""
    refused = target_refusal("c", ["b", "c", "d"], rpc) or ""
    assert "disagree on the chain" in refused and "blockchain.chain_id" in refused
    assert "disagree on the chain" in (target_refusal(None, ["b", "c", "d"], rpc) or "")
    agreed = classify([b, c], "b", 1, lag_warn=5)
    assert agreed.status == {"b": "ok", "c": "wrong_chain"} and target_refusal("b", ["b", "c"], agreed) is None
    assert not agreed.chain_unknown and agreed.switch_recommended is False


def test_a_missing_ganache_names_the_bootstrap_script(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ganache, "GANACHE", tmp_path / "no-ganache")
    with pytest.raises(SandboxError, match=r"scripts/bootstrap\.sh"):
        ganache.start_ganache(tmp_path)


def test_the_sandbox_nodes_are_where_they_were_mined(nodes) -> None:
    a, b = nodes
    assert (ganache.block_number(a.url), ganache.block_number(b.url)) == (5, 55)
    assert ganache.rpc(a.url, "eth_chainId") == ganache.rpc(b.url, "eth_chainId") == "0x539"
