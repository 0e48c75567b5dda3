"""Ethereum JSON-RPC providers over httpx: one call with its failure classified, and a probe of
one provider (chain id, head block with latency, sync state).

A provider's URL may hold ``{api_key}``, filled from the environment variable its
``api_key_env`` names; that variable's name must be one every record redacts
(:data:`runbook_lib.core.credentials.SECRET_ENV_NAME`). Everything shown (findings, errors, tables)
uses the URL with the placeholder, never the key. A URL that carries a key itself (a user-info
password, or a path segment or query value that looks like a key: a run of 20 or more letters,
digits, ``-`` and ``_`` mixing letters and digits) is refused, since it would be shown verbatim.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from runbook_lib.clients.prometheus import tls_context
from runbook_lib.core.credentials import MIN_SECRET_CHARS, SECRET_ENV_NAME, password_of
from runbook_lib.core.errors import ConfigError, SourceError, SourceNotConfigured
from runbook_lib.core.settings import RpcProvider, Settings

NAME = "Blockchain RPC"
PLACEHOLDER = "{api_key}"
# A run that looks like an API key or a project secret (Infura's 32 hex digits, Alchemy's keys).
KEY_RUN = re.compile(r"[A-Za-z0-9_-]{20,}")
# How a call failed: the transport (refused, dns, timeout, tls, unreachable), the HTTP layer
# (http_status, not_json) or the node (jsonrpc: an error object; bad_answer: a result that is
# not what the method returns).
ERROR_CLASSES = ("refused", "dns", "timeout", "tls", "unreachable", "http_status", "not_json", "jsonrpc", "bad_answer")


class RpcError(SourceError):
    """One failed JSON-RPC call. ``kind`` is one of :data:`ERROR_CLASSES`; the message names the
    provider by its shown URL (placeholder, never the key)."""

    def __init__(self, provider: str, kind: str, message: str, **detail: Any) -> None:
        super().__init__(f"{NAME} {provider}", message)
        self.provider = provider
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Endpoint:
    """One provider: ``url`` is what is shown (with the placeholder), ``target`` what is called."""

    name: str
    url: str
    target: str = field(repr=False)
    secret: str | None = field(default=None, repr=False)

    def scrub(self, text: str) -> str:
        """``text`` with the key (should a library echo the URL) put back as the placeholder."""
        return text.replace(self.secret, PLACEHOLDER) if self.secret else text


class Blockchain:
    def __init__(self, endpoints: list[Endpoint], timeout_s: float = 5.0) -> None:
        self.endpoints = {e.name: e for e in endpoints}
        self._ids = itertools.count(1)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            headers={"Content-Type": "application/json", "User-Agent": "omnihub-runbook"},
            verify=tls_context(True),
            follow_redirects=False,
        )

    @classmethod
    def from_settings(cls, settings: Settings, environ: dict[str, str] | None = None) -> Blockchain:
        cfg = settings.blockchain
        if not cfg.providers:
            raise SourceNotConfigured(NAME, f"set blockchain.providers in parameters/environments/{settings.env}.yaml")
        env = dict(os.environ if environ is None else environ)
        return cls([endpoint(p, env) for p in cfg.providers], cfg.timeout_s)

    def close(self) -> None:
        self._client.close()

    # -- one call ----------------------------------------------------------------------------------
    def call(self, provider: str, method: str, params: list[Any] | None = None) -> Any:
        """The ``result`` of one JSON-RPC call; :class:`RpcError` with its class otherwise."""
        ep = self._endpoint(provider)
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": list(params or [])}
        try:
            resp = self._client.post(ep.target, json=body)
        except httpx.HTTPError as exc:
            kind = transport_class(exc)
            raise _fail(ep, kind, f"{method} at {ep.url}: {_transport_text(kind, exc)}") from None
        return _result(ep, method, resp)

    # -- one provider --------------------------------------------------------------------------------
    def probe(self, provider: str) -> dict[str, Any]:
        """eth_chainId, eth_blockNumber (with its latency) and eth_syncing of one provider. The
        first failing call of the first two ends the probe (``error_class``, ``error``); a failing
        eth_syncing only leaves ``syncing`` unknown (``syncing_error``)."""
        ep = self._endpoint(provider)
        out: dict[str, Any] = {"provider": ep.name, "url": ep.url, "chain_id": None, "block": None}
        out.update(latency_ms=None, syncing=None, sync_current=None, sync_highest=None)
        out.update(error_class=None, error=None, syncing_error=None)
        try:
            out["chain_id"] = _quantity(ep, "eth_chainId", self.call(ep.name, "eth_chainId"))
            started = time.perf_counter()
            head = self.call(ep.name, "eth_blockNumber")
            out["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
            out["block"] = _quantity(ep, "eth_blockNumber", head)
        except RpcError as exc:
            return {**out, "error_class": exc.kind, "error": exc.reason, **exc.detail}
        try:
            out.update(_syncing(ep, self.call(ep.name, "eth_syncing")))
        except RpcError as exc:
            out["syncing_error"] = f"{exc.kind}: {exc.reason}"
        return out

    def probe_all(self) -> list[dict[str, Any]]:
        """Every provider probed at once (one slow provider costs one timeout, not one each), in
        configured order."""
        with ThreadPoolExecutor(max_workers=min(8, len(self.endpoints)) or 1) as pool:
            return list(pool.map(self.probe, self.endpoints))

    def _endpoint(self, provider: str) -> Endpoint:
        try:
            return self.endpoints[provider]
        except KeyError:
            raise SourceError(NAME, f"no provider named {provider!r} (known: {', '.join(self.endpoints)})") from None


# -- configuration -----------------------------------------------------------------------------------
def endpoint(provider: RpcProvider, environ: dict[str, str]) -> Endpoint:
    """The provider with its key filled in. Refuses a key in a variable records would not
    redact (ConfigError), a key that is not set (SourceNotConfigured), and a URL that carries
    a password or a raw key, or has a placeholder without a key variable (ConfigError)."""
    where = f"blockchain.providers[{provider.name}]"
    _check_url(where, provider.url)
    if password_of(provider.url):
        raise ConfigError(f"{where}.url contains a password; put the key in api_key_env and {PLACEHOLDER} in the url")
    carrier = _raw_key(provider.url)
    if carrier:
        raise ConfigError(
            f"{where}.url carries what looks like an API key in its {carrier}, which every record would show; "
            f"move the key to the environment variable api_key_env names and put {PLACEHOLDER} in its place"
        )
    if not provider.api_key_env:
        if PLACEHOLDER in provider.url:
            raise ConfigError(f"{where}.url has {PLACEHOLDER} but no api_key_env names the variable holding it")
        return Endpoint(provider.name, provider.url, provider.url)
    var = provider.api_key_env
    if not SECRET_ENV_NAME.search(var):
        raise ConfigError(
            f"{where}.api_key_env is {var!r}: records redact only variables whose name ends in API_KEY, TOKEN, "
            f"SECRET or PASSWORD; rename it (e.g. {var.upper()}_API_KEY)"
        )
    if PLACEHOLDER not in provider.url:
        raise ConfigError(f"{where}.url has no {PLACEHOLDER} for the key in {var}")
    key = (environ.get(var) or "").strip()  # not <var>_FILE: records redact the variable's value, not a file's
    if not key:
        raise SourceNotConfigured(NAME, f"{provider.name}'s API key: set {var}")
    if len(key) < MIN_SECRET_CHARS:
        raise ConfigError(f"{var}: a key shorter than {MIN_SECRET_CHARS} characters cannot be kept out of records")
    return Endpoint(provider.name, provider.url, provider.url.replace(PLACEHOLDER, key), key)


def _check_url(where: str, url: str) -> None:
    try:
        parsed = httpx.URL(url.replace(PLACEHOLDER, "key"))
    except httpx.InvalidURL as exc:
        raise ConfigError(f"{where}.url is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"{where}.url must be an http:// or https:// URL with a host")


def _raw_key(url: str) -> str | None:
    """Where the URL (outside its placeholder) holds something that looks like a key: "path",
    "query" or "user info"; None when nowhere."""
    try:
        parsed = httpx.URL(url.replace(PLACEHOLDER, "."))  # "." ends a run: the placeholder is no key
    except httpx.InvalidURL:  # the placeholder in the host, say
        parsed = httpx.URL(url.replace(PLACEHOLDER, "key"))
    parts = [
        ("user info", [parsed.username]),
        ("path", parsed.path.split("/")),
        ("query", [text for pair in parsed.params.multi_items() for text in pair]),
        ("fragment", [parsed.fragment]),
    ]
    for carrier, texts in parts:
        if any(_looks_like_key(text) for text in texts):
            return carrier
    return None


def _looks_like_key(text: str) -> bool:
    return any(re.search(r"[0-9]", run) and re.search(r"[A-Za-z]", run) for run in KEY_RUN.findall(text))


# -- classification ------------------------------------------------------------------------------------
def transport_class(exc: BaseException) -> str:
    """refused / dns / timeout / tls / unreachable, from httpx's exception and what caused it."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "refused"
        if isinstance(cause, socket.gaierror):
            return "dns"
        if isinstance(cause, ssl.SSLError):
            return "tls"
        if isinstance(cause, TimeoutError):
            return "timeout"
    text = " ".join(str(c) for c in _causes(exc)).lower()
    if "refused" in text:
        return "refused"
    if "name or service not known" in text or "name resolution" in text or "nodename nor servname" in text:
        return "dns"
    if "certificate" in text or "ssl" in text:
        return "tls"
    return "unreachable"


def _causes(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in seen:
        seen.append(node)
        node = node.__cause__ or node.__context__
    return seen


def _transport_text(kind: str, exc: httpx.HTTPError) -> str:
    said = {
        "refused": "connection refused",
        "dns": "the host name does not resolve",
        "timeout": f"no answer in time ({type(exc).__name__})",
        "tls": "TLS handshake failed",
    }
    return said.get(kind, f"unreachable ({type(exc).__name__}: {exc})")


def _fail(ep: Endpoint, kind: str, message: str, **detail: Any) -> RpcError:
    """The classified failure, its message scrubbed of the key (an answer may echo the URL)."""
    return RpcError(ep.name, kind, ep.scrub(message), **detail)


def _result(ep: Endpoint, method: str, resp: httpx.Response) -> Any:
    """The JSON-RPC result of an HTTP answer, or the classified failure."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if resp.status_code >= 400:
        said = _error_text(body) or _snippet(resp)
        raise _fail(
            ep, "http_status", f"{method} at {ep.url}: HTTP {resp.status_code}: {said}", http_status=resp.status_code
        )
    if not isinstance(body, dict):
        raise _fail(ep, "not_json", f"{method} at {ep.url}: HTTP {resp.status_code}, not JSON-RPC: {_snippet(resp)}")
    if body.get("error") is not None:
        code = body["error"].get("code") if isinstance(body["error"], dict) else None
        raise _fail(ep, "jsonrpc", f"{method} at {ep.url}: JSON-RPC error {_error_text(body)}", rpc_code=code)
    if "result" not in body:
        raise _fail(ep, "not_json", f"{method} at {ep.url}: an answer without result or error")
    return body["result"]


def _error_text(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return str(error)[:200] if error else ""
    return f"{error.get('code', '?')}: {str(error.get('message', ''))[:200]}"


def _snippet(resp: httpx.Response) -> str:
    return repr(resp.text[:120].strip().replace("\n", " "))


def _quantity(ep: Endpoint, method: str, value: Any) -> int:
    """A JSON-RPC quantity ("0x539") as an int."""
    try:
        return int(str(value), 16)
    except ValueError:
        raise _fail(ep, "bad_answer", f"{method} at {ep.url} returned {str(value)[:40]!r}, not a quantity") from None


def _syncing(ep: Endpoint, value: Any) -> dict[str, Any]:
    """eth_syncing: false, or an object with currentBlock and highestBlock."""
    if value is False:
        return {"syncing": False}
    if isinstance(value, dict):
        current, highest = value.get("currentBlock"), value.get("highestBlock")
        return {
            "syncing": True,
            "sync_current": _quantity(ep, "eth_syncing", current) if current is not None else None,
            "sync_highest": _quantity(ep, "eth_syncing", highest) if highest is not None else None,
        }
    raise _fail(ep, "bad_answer", f"eth_syncing at {ep.url} returned {str(value)[:40]!r}")
