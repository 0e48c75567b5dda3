"""Ethereum JSON-RPC providers: which answer, on which chain, how far behind the best one, and
the state of the primary (the provider the platform uses now), which leads the diagnosis.

:func:`providers` probes every configured provider once and classifies it (:func:`classify`:
``ok``, ``lagging``, ``syncing``, ``dead``, ``wrong_chain`` or ``unknown_chain``); the other
checks report from that one result, so every step speaks of the same moment.

When no ``blockchain.chain_id`` is set and the answering providers are split evenly between
chains, the expected chain is unknown: no block heights are compared (they may be of different
chains), every answering provider is ``unknown_chain``, none is healthy and no switch is
recommended.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from runbook_lib.kernel.checks.base import Result, check
from runbook_lib.kernel.protocol import RunbookLike

HEALTHY = "ok"


@dataclass
class ProviderState:
    name: str
    url: str
    primary: bool
    state: str  # ok / lagging / syncing / dead / wrong_chain / unknown_chain
    chain_id: int | None = None
    block: int | None = None
    lag: int | None = None
    latency_ms: float | None = None
    syncing: bool | None = None
    error_class: str | None = None
    error: str | None = None
    probe: dict[str, Any] = field(default_factory=dict)


@dataclass
class Providers(Result):
    states: list[ProviderState] = field(default_factory=list)
    primary: str | None = None
    expected_chain: int | None = None
    chain_source: str = ""  # "settings", "majority" or "" (no agreement)
    best: str | None = None  # the highest block on the expected chain
    best_block: int | None = None
    target: str | None = None  # the healthy provider to switch to

    @property
    def status(self) -> dict[str, str]:
        """Provider name -> state in this run's diagnosis."""
        return {s.name: s.state for s in self.states}

    def state_of(self, name: str | None) -> ProviderState | None:
        return next((s for s in self.states if s.name == name), None)

    @property
    def chain_unknown(self) -> bool:
        """No expected chain (no blockchain.chain_id, no majority) and the answering providers
        disagree: which of them reads the right network cannot be told."""
        answered = {s.chain_id for s in self.states if s.chain_id is not None}
        return self.expected_chain is None and len(answered) > 1

    @property
    def switch_recommended(self) -> bool:
        """The primary is unusable (or unknown) and a healthy provider exists."""
        primary = self.state_of(self.primary)
        unusable = primary is None or primary.state != HEALTHY
        return self.checked and unusable and self.target is not None and self.target != self.primary

    @property
    def switch_why(self) -> str:
        if not self.switch_recommended:
            return ""
        primary = self.state_of(self.primary)
        now = primary.state.replace("_", " ") if primary else "not a configured provider"
        return f"the primary {self.primary} is {now} and {self.target} is healthy"


# Dead providers whose server answered, with an error (a status, a body that is not JSON, a
# JSON-RPC error such as a rate limit): rpc_errors; the others (refused, DNS, timeout, TLS): rpc_down.
ANSWERS_WITH_ERRORS = ("http_status", "not_json", "jsonrpc")


@dataclass
class Named(Result):
    names: list[str] = field(default_factory=list)


# -- classification (pure) ------------------------------------------------------------------------------
def expected_chain(probes: list[dict[str, Any]], configured: int | None) -> tuple[int | None, str]:
    """The chain every provider should be on: the configured one, else the one most providers
    answer (none when they are split evenly)."""
    if configured is not None:
        return configured, "settings"
    counts = Counter(p["chain_id"] for p in probes if p.get("chain_id") is not None).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None, ""
    return counts[0][0], "majority"


def classify(
    probes: list[dict[str, Any]], primary: str | None, configured_chain: int | None, lag_warn: int
) -> Providers:
    """Each probe's state, lag against the best provider on the expected chain, and the healthy
    provider to switch to (least lag, then lowest latency, then configured order). When the
    expected chain is unknown and the answering providers disagree, no heights are compared and
    no provider is healthy (``unknown_chain``)."""
    chain, source = expected_chain(probes, configured_chain)
    chains = {p["chain_id"] for p in probes if p.get("chain_id") is not None}
    unknown = chain is None and len(chains) > 1
    on_chain = (
        []
        if unknown
        else [p for p in probes if p.get("block") is not None and (chain is None or p["chain_id"] == chain)]
    )
    best = max(on_chain, key=lambda p: p["block"], default=None)  # max keeps the first of equals
    states = [_state(p, primary, chain, best["block"] if best else None, lag_warn, unknown) for p in probes]
    healthy = [s for s in states if s.state == HEALTHY]
    target = min(healthy, key=lambda s: (s.lag or 0, s.latency_ms or 0.0), default=None)
    return Providers(
        states=states,
        primary=primary,
        expected_chain=chain,
        chain_source=source,
        best=best["provider"] if best else None,
        best_block=best["block"] if best else None,
        target=target.name if target else None,
    )


def _state(
    p: dict[str, Any], primary: str | None, chain: int | None, best: int | None, lag_warn: int, unknown: bool = False
) -> ProviderState:
    lag = best - p["block"] if best is not None and p.get("block") is not None else None
    if p.get("error_class"):
        state = "dead"
    elif unknown:
        state, lag = "unknown_chain", None
    elif chain is not None and p["chain_id"] != chain:
        state, lag = "wrong_chain", None
    elif lag is not None and lag >= lag_warn:
        state = "lagging"
    elif p.get("syncing"):
        state = "syncing"
    else:
        state = HEALTHY
    return ProviderState(
        name=p["provider"],
        url=p["url"],
        primary=p["provider"] == primary,
        state=state,
        chain_id=p.get("chain_id"),
        block=p.get("block"),
        lag=lag,
        latency_ms=p.get("latency_ms"),
        syncing=p.get("syncing"),
        error_class=p.get("error_class"),
        error=p.get("error"),
        probe=p,
    )


# -- checks ----------------------------------------------------------------------------------------------
@check("Primary RPC provider", Providers, essential=True)
def providers(rb: RunbookLike) -> Providers:
    """Probe every provider (eth_chainId, eth_blockNumber with latency, eth_syncing), classify
    them, show them, and say what state the primary is in."""
    cfg = rb.settings.blockchain
    probes = rb.blockchain.probe_all()
    primary = cfg.primary or (cfg.providers[0].name if cfg.providers else None)
    rpc = classify(probes, primary, cfg.chain_id, cfg.block_lag_warn)
    rb.table(_frame(rpc), title="RPC providers")
    _primary_finding(rb, rpc, configured=cfg.primary is not None)
    return rpc


@check("Dead providers", Named)
def dead(rb: RunbookLike, rpc: Providers) -> Named:
    """One finding per provider that does not answer, with its error class."""
    if not rpc.checked:
        return Named.unchecked(rpc.reason)
    down = [s for s in rpc.states if s.state == "dead"]
    for s in down:
        rb.finding(
            "Dead providers",
            "critical" if s.primary else "warning",
            f"{_who(s)} is down ({s.error_class}): {s.error}.",
            role="cause",
            cause="rpc_errors" if s.error_class in ANSWERS_WITH_ERRORS else "rpc_down",
            provider=s.name,
            primary=s.primary,
            error_class=s.error_class,
            error=s.error,
            url=s.url,
            http_status=s.probe.get("http_status"),
            rpc_code=s.probe.get("rpc_code"),
        )
    if not down:
        rb.finding("Dead providers", "ok", f"All {len(rpc.states)} providers answer.", count=0)
    return Named(names=[s.name for s in down])


@check("Chain id", Named)
def chains(rb: RunbookLike, rpc: Providers) -> Named:
    """Providers on another chain than the configured one (or than most providers)."""
    if not rpc.checked:
        return Named.unchecked(rpc.reason)
    answered = {s.name: s.chain_id for s in rpc.states if s.chain_id is not None}
    if rpc.expected_chain is None and len(set(answered.values())) > 1:
        rb.finding(
            "Chain id",
            "warning",
            f"The providers disagree on the chain and no blockchain.chain_id is set: {_pairs(answered)}. "
            "No provider is taken as healthy and no switch is recommended until blockchain.chain_id is set.",
            chain_ids=answered,
        )
        return Named()
    wrong = [s for s in rpc.states if s.state == "wrong_chain"]
    for s in wrong:
        rb.finding(
            "Chain id",
            "critical" if s.primary else "warning",
            f"{_who(s)} is on chain {s.chain_id}, not {rpc.expected_chain} ({_chain_source(rpc)}).",
            role="cause",
            cause="rpc_wrong_chain",
            provider=s.name,
            primary=s.primary,
            chain_id=s.chain_id,
            expected_chain_id=rpc.expected_chain,
            expected_from=rpc.chain_source,
        )
    if not wrong and answered:
        rb.finding("Chain id", "ok", f"Every answering provider is on chain {rpc.expected_chain}.", chain_ids=answered)
    return Named(names=[s.name for s in wrong])


@check("Block lag", Named)
def lag(rb: RunbookLike, rpc: Providers) -> Named:
    """How many blocks each provider is behind the best one; providers still syncing."""
    if not rpc.checked:
        return Named.unchecked(rpc.reason)
    cfg = rb.settings.blockchain
    if rpc.chain_unknown:
        rb.finding(
            "Block lag",
            "info",
            "Not measured: the providers disagree on the chain and no blockchain.chain_id is set, so their "
            "block heights may be of different chains.",
            best_provider=None,
            best_block=None,
        )
        return Named()
    behind = [s for s in rpc.states if s.state in ("lagging", "syncing")]
    for s in behind:
        rb.finding(
            "Block lag",
            _lag_verdict(s, cfg.block_lag_critical),
            _lag_text(s, rpc),
            role="cause",
            cause="rpc_lagging",
            **_lag(s, rpc),
        )
    if not behind and rpc.best:
        rb.finding(
            "Block lag",
            "ok",
            f"Every provider on the chain is within {cfg.block_lag_warn} blocks of {rpc.best} (block {rpc.best_block}).",
            best_provider=rpc.best,
            best_block=rpc.best_block,
        )
    return Named(names=[s.name for s in behind])


def decision(rb: RunbookLike, rpc: Providers) -> None:
    """The record's one recommendation when Option 1 (switch provider) is not it: escalate when
    the primary is not healthy and no healthy provider can take over (the diagnosis says "none"
    by itself when nothing is wrong)."""
    if not rpc.checked or rpc.switch_recommended:
        return
    primary = rpc.state_of(rpc.primary)
    if primary is not None and primary.state == HEALTHY:
        return
    now = primary.state.replace("_", " ") if primary else "not a configured provider"
    rb.escalate(
        f"the primary {rpc.primary} is {now} and no healthy provider can take over: pause deposits and "
        "withdrawals, open a ticket with the provider",
        to="the blockchain team",
    )


# -- wording ----------------------------------------------------------------------------------------------
def _primary_finding(rb: RunbookLike, rpc: Providers, configured: bool) -> None:
    cfg = rb.settings.blockchain
    s = rpc.state_of(rpc.primary)
    advice = f" {rpc.target} is healthy: Option 1 switches to it." if rpc.switch_recommended else ""
    if s is None:
        known = ", ".join(x.name for x in rpc.states)
        rb.finding(
            "Primary RPC provider",
            "critical",
            f"blockchain.primary is {rpc.primary!r}, which is not a configured provider (known: {known}).{advice}",
            role="symptom",
            provider=rpc.primary,
            state="unknown",
        )
        return
    verdict = "ok" if s.state == HEALTHY else _primary_verdict(s, cfg.block_lag_critical)
    rb.finding(
        "Primary RPC provider",
        verdict,
        _primary_text(s, rpc) + ("" if configured else " (blockchain.primary is not set: the first provider)") + advice,
        role="symptom",
        provider=s.name,
        state=s.state,
        chain_id=s.chain_id,
        block=s.block,
        lag=s.lag,
        latency_ms=s.latency_ms,
        error_class=s.error_class,
        best_provider=rpc.best,
        best_block=rpc.best_block,
        switch_to=rpc.target if rpc.switch_recommended else None,
    )


def _primary_verdict(s: ProviderState, lag_critical: int) -> str:
    if s.state in ("dead", "wrong_chain"):
        return "critical"
    if s.state == "unknown_chain":
        return "warning"
    return _lag_verdict(s, lag_critical)


def _primary_text(s: ProviderState, rpc: Providers) -> str:
    """What the platform suffers from its provider's state (the cause findings say why)."""
    who = f"The platform's provider {s.name} (primary)"
    if s.state == "dead":
        return f"{who} is down ({s.error_class}): every call through it fails."
    if s.state == "wrong_chain":
        return f"{who} is on chain {s.chain_id}, not {rpc.expected_chain}: it reads another network."
    if s.state == "unknown_chain":
        return (
            f"{who} is on chain {s.chain_id}, but the providers disagree on the chain and no blockchain.chain_id "
            "is set: whether it reads the right network cannot be told."
        )
    if s.state == "lagging":
        return f"{who} is lagging: what it reads is {s.lag} blocks old."
    if s.state == "syncing":
        return f"{who} is still syncing: its head may be stale ({_lag_words(s, rpc)})."
    return f"{who} is healthy: chain {s.chain_id}, block {s.block} ({_lag_words(s, rpc)}), {s.latency_ms:g} ms."


def _lag_verdict(s: ProviderState, lag_critical: int) -> str:
    if s.primary and s.lag is not None and s.lag >= lag_critical:
        return "critical"
    return "warning"


def _lag_text(s: ProviderState, rpc: Providers) -> str:
    if s.state == "syncing":
        return (
            f"{_who(s)} is still syncing (eth_syncing: block {s.probe.get('sync_current')} "
            f"of {s.probe.get('sync_highest')}); {_lag_words(s, rpc)}."
        )
    return f"{_who(s)} is {s.lag} blocks behind {rpc.best} (block {s.block} against {rpc.best_block})."


def _lag_words(s: ProviderState, rpc: Providers) -> str:
    if s.name == rpc.best:
        return "the highest block"
    return f"{s.lag} behind {rpc.best}" if s.lag is not None else "lag unknown"


def _lag(s: ProviderState, rpc: Providers) -> dict[str, Any]:
    return {
        "provider": s.name,
        "primary": s.primary,
        "state": s.state,
        "block": s.block,
        "lag": s.lag,
        "best_provider": rpc.best,
        "best_block": rpc.best_block,
        "sync_current": s.probe.get("sync_current"),
        "sync_highest": s.probe.get("sync_highest"),
    }


def _who(s: ProviderState) -> str:
    return f"{s.name} (primary)" if s.primary else s.name


def _pairs(chain_ids: dict[str, int | None]) -> str:
    return ", ".join(f"{name} {cid}" for name, cid in chain_ids.items())


def _chain_source(rpc: Providers) -> str:
    return "blockchain.chain_id" if rpc.chain_source == "settings" else "the chain most providers are on"


def _frame(rpc: Providers) -> pd.DataFrame:
    rows = [
        {
            "provider": s.name + (" (primary)" if s.primary else ""),
            "state": s.state,
            "chain_id": s.chain_id,
            "block": s.block,
            "lag": s.lag,
            "latency_ms": s.latency_ms,
            "syncing": s.syncing,
            "error_class": s.error_class or "",
            "url": s.url,
            "error": (s.error or s.probe.get("syncing_error") or "")[:160],
        }
        for s in rpc.states
    ]
    return pd.DataFrame(rows)
