"""The chaos DR drill (SRE_PACKAGE.md Q4): a game day that also proves the runbooks.

For each fault the drill injects a real fault into one target its parameters name, runs the
runbook that fault's alert would run (through :mod:`.subrun`, diagnose mode, its record
archived next to the drill's), reads that record and decides whether the finding
that must name the cause names it; then it removes the fault. Five faults:

==================  ==========================  ==========================================  ===============
fault               how                         runbook: finding that must name the cause   removed by
==================  ==========================  ==========================================  ===============
pods deleted        DELETE every pod of the     service-down: "Pods", role cause,            (cannot be: the
                    deployment (Kubernetes API)  ``pods`` 0                                  controller's job)
network partition   a TCP proxy of the drill's   database-down: "PostgreSQL connection",     proxy stopped
                    in front of PostgreSQL,      ``failure`` refused (or timeout for
                    then cut                     ``partition="drop"``)
connection leak     N sessions idle in           high-database-connections: "Idle in         sessions closed
                    transaction under one        transaction", role cause, ``application``
                    application name
dead letters        messages published to the    dlq-backlog: "Consumer of the dead          the drill's
                    work queue and rejected      letters' queue", role cause, ``source``     messages taken
                    into the DLQ                 the work queue                              back
lagging RPC node    ``evm_mine`` N blocks on     blockchain-rpc-down: "Block lag", role      (cannot be:
                    one of the two nodes         cause, ``provider`` = the other node        blocks stay)
==================  ==========================  ==========================================  ===============

What each runbook must name can be overridden per runbook (``expect``). The drill touches only
what ``targets`` names: the deployment in its namespace, the database behind the DSN in the
environment variable it names (sessions of the drill's application name only), the two queues
in the vhost of the URL in the variable it names (messages carrying the drill's run tag only),
the two RPC nodes. DSN and URL are read from the environment so every record redacts them.

It runs the faults only with ``mode="resolve"``, ``dry_run=False``, an operator and ``chaos``
in ``approve``; otherwise it only checks that the targets are reachable. Every fault is
removed within its own step, and the last step removes whatever is left and says what could
not be undone; neither ever raises.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from runbook_lib.core.credentials import safe_endpoint
from runbook_lib.core.errors import SourceError
from runbook_lib.core.present import duration, esc
from runbook_lib.kernel.drills import injectors as faults
from runbook_lib.kernel.drills import subrun
from runbook_lib.kernel.drills.base import Drill, Judgement, Ready
from runbook_lib.kernel.drills.failover import redacted_env_name
from runbook_lib.kernel.protocol import RunbookLike
from runbook_lib.kernel.sources.postgres import Postgres

PARTITIONS = ("refuse", "drop")


@dataclass(frozen=True)
class Fault:
    key: str
    title: str
    slug: str
    finding: str  # the runbook's finding that must name the cause
    target: str  # the section of ``targets`` it needs


FAULTS = (
    Fault("pods_deleted", "Pods deleted", "service-down", "Pods", "kubernetes"),
    Fault("network_partition", "Network partition", "database-down", "PostgreSQL connection", "postgres"),
    Fault("connection_leak", "Connection leak", "high-database-connections", "Idle in transaction", "postgres"),
    Fault("dead_letters", "Dead letters", "dlq-backlog", "Consumer of the dead letters' queue", "rabbitmq"),
    Fault("lagging_rpc", "Lagging RPC node", "blockchain-rpc-down", "Block lag", "rpc"),
)
BY_KEY = {f.key: f for f in FAULTS}

# Scrubbed from the environment of every runbook the drill runs; the drill sets what each needs.
BACKEND_VARS = (
    "RUNBOOK_POSTGRES_DSN",
    "RUNBOOK_POSTGRES_DSN_FILE",
    "RUNBOOK_RABBITMQ_URL",
    "RUNBOOK_RABBITMQ_URL_FILE",
    "RUNBOOK_DLQ_QUEUE",
    "PGPASSWORD",
)


@dataclass
class Row:
    fault: str
    runbook: str
    injected: str = ""
    expected: dict[str, Any] = field(default_factory=dict)
    found: dict[str, Any] = field(default_factory=dict)
    cause_named: str = "not run"  # yes | no | not run
    named_by: str = ""
    time_to_record_s: float | None = None
    exit_code: int | None = None
    record: str = ""  # record.html, relative to the archive
    removed: str = ""
    error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # fault-specific details (the proxy's port)

    def public(self) -> dict[str, Any]:
        return self.extra | {
            "fault": self.fault,
            "runbook": self.runbook,
            "injected": self.injected,
            "cause_named": self.cause_named,
            "expected": self.expected,
            "found": self.found,
            "named_by": self.named_by,
            "time_to_record_s": self.time_to_record_s,
            "exit_code": self.exit_code,
            "record": self.record,
            "removed": self.removed,
            "error": self.error,
        }


def _fault(key: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Run one fault only when the drill may run and its target is given; any error is the
    row's (cause not named) and never ends the notebook. The fault is always removed."""
    spec = BY_KEY[key]

    def decorate(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def wrapper(self: Chaos) -> None:
            row = self.rows[key]
            if self.blocked:
                self.skip(spec.title, key)
                row.cause_named = "not run"
                return
            if spec.target not in self.targets:
                row.cause_named = "not run"
                row.error = f"no {spec.target!r} in targets"
                self.rb.finding(
                    spec.title, "info", f"Not run: targets names no {spec.target} (skipped).", drill_step=key
                )
                return
            self.started = time.monotonic()
            try:
                fn(self, row)
            except Exception as exc:  # a drill must reach its verdict and its cleanup
                row.cause_named = "no"
                row.error = f"{type(exc).__name__}: {exc}"
            finally:
                try:
                    row.removed = self._undo(key)
                except Exception as exc:
                    row.removed = f"NOT removed: {exc}"
            self._report(spec, row)

        return wrapper

    return decorate


@dataclass
class Chaos(Drill):
    raw_targets: dict[str, Any] | None = None
    raw_expect: dict[str, Any] | None = None
    partition_mode: str = "refuse"
    targets: dict[str, dict[str, Any]] = field(default_factory=dict)
    expect: dict[str, dict[str, Any]] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: f"chaos-{secrets.token_hex(4)}")
    rows: dict[str, Row] = field(default_factory=dict)
    home: Path | None = None  # a parameters/ copy of the drill's own, for the runbooks it runs
    proxy: faults.TcpProxy | None = None
    leaked: list[Any] = field(default_factory=list)
    undone: dict[str, str] = field(default_factory=dict)
    started: float = 0.0  # when the current fault's injection began (time to record counts from here)

    NAME = "DR drill chaos"
    ACTION = "chaos"
    TITLE = "DR drill: chaos game day"
    VERDICT = "DR chaos verdict"
    READINESS = "Readiness"

    # -- step 1 -------------------------------------------------------------------------------
    def readiness(self) -> Ready:
        """The targets are well formed and reachable; what each runbook must name. Any problem
        is the drill's FAIL before anything is touched."""
        rb = self.rb
        problems: list[str] = []
        given = self.targets = _normalise(self.raw_targets or {}, problems)
        partition = self.partition_mode
        if partition not in PARTITIONS:
            problems.append(f"partition must be one of {', '.join(PARTITIONS)}, not {partition!r}")
            partition = self.partition_mode = "refuse"
        reach: list[dict[str, Any]] = []
        for key, probe in (
            ("kubernetes", _reach_kube),
            ("postgres", _reach_postgres),
            ("rabbitmq", _reach_rabbitmq),
            ("rpc", _reach_rpc),
        ):
            if key not in given:
                reach.append({"target": key, "where": "(not in targets)", "state": "skipped: its fault does not run"})
                continue
            try:
                where, state = probe(self, given[key])
                reach.append({"target": key, "where": where, "state": state})
            except Exception as exc:
                problems.append(f"{key}: {exc}")
                reach.append({"target": key, "where": _where(given[key]), "state": f"NOT reachable: {exc}"})
        if not given and not problems:
            problems.append("targets names nothing: the drill touches only what targets lists")
        rb.table(pd.DataFrame(reach), title="The drill's targets (the only things it may touch)")
        expect = self.raw_expect or {}
        for spec in FAULTS:
            expected = _expected(spec, given, partition)
            unknown = set(expect.get(spec.slug) or {}) - set(expected)
            if unknown:
                problems.append(f"expect[{spec.slug!r}] names {sorted(unknown)}; it may set {sorted(expected)}")
            expected |= dict(expect.get(spec.slug) or {})
            self.expect[spec.slug] = expected
            self.rows[spec.key] = Row(spec.title, spec.slug, expected=dict(expected))
        unknown_slugs = set(expect) - {f.slug for f in FAULTS}
        if unknown_slugs:
            problems.append(f"expect names runbooks the drill does not run: {', '.join(sorted(unknown_slugs))}")
        plan = {
            "target": "chaos on " + (", ".join(_where(given[k]) for k in given) or "nothing"),
            "faults": [f"{f.title} -> {f.slug}" for f in FAULTS if f.target in given],
            "tag": self.tag,
            "partition": partition,
            "command": "; ".join(
                f"inject {f.title.lower()}, runbook run {f.slug}, remove it" for f in FAULTS if f.target in given
            ),
        }
        summary = (
            f"Every target answers ({', '.join(r['target'] for r in reach if not r['state'].startswith('skipped'))}); "
            f"faults to run: {', '.join(f.title.lower() for f in FAULTS if f.target in given)}"
        )
        details = {"targets": [dict(r) for r in reach], "expect": self.expect}
        return Ready(summary, plan, unready=problems, details=details)

    def begin(self) -> None:
        self.home = _own_parameters(self.rb, self.targets)

    # -- the faults ---------------------------------------------------------------------------
    @_fault("pods_deleted")
    def pods_deleted(self, row: Row) -> None:
        t = self.targets["kubernetes"]
        gone = faults.delete_pods(self.rb.kubernetes, t["namespace"], t["deployment"])
        row.injected = f"deleted {len(gone.pods)} pod(s) of {t['namespace']}/deployment/{t['deployment']}: " + (
            ", ".join(gone.pods) or "none"
        )
        self.result.setdefault("deleted_pods", []).extend(gone.pods)
        if not gone.pods:
            raise SourceError("Kubernetes", f"deployment/{t['deployment']} had no pods to delete: no fault injected")
        self._run(row, BY_KEY["pods_deleted"], {}, {})

    @_fault("network_partition")
    def network_partition(self, row: Row) -> None:
        dsn = self._dsn()
        parts = faults.conninfo(dsn)
        self.proxy = faults.TcpProxy(str(parts.get("host") or "127.0.0.1"), int(parts.get("port") or 5432)).start()
        row.extra["proxy_port"] = self.proxy.port
        proxied = faults.with_address(dsn, "127.0.0.1", self.proxy.port)
        Postgres(proxied, 3).row("SELECT 1 AS one")  # the path works through the proxy before the cut
        self.proxy.partition(self.partition_mode)
        row.injected = (
            f"proxy 127.0.0.1:{self.proxy.port} -> {safe_endpoint(dsn)} partitioned "
            f"({'port closed, connections reset' if self.partition_mode == 'refuse' else 'packets dropped'})"
        )
        self._run(row, BY_KEY["network_partition"], {"RUNBOOK_POSTGRES_DSN": proxied}, {})

    @_fault("connection_leak")
    def connection_leak(self, row: Row) -> None:
        t = self.targets["postgres"]
        dsn = self._dsn()
        self.leaked = faults.leak_connections(dsn, int(t["sessions"]), t["application"])
        time.sleep(1.2)  # idle longer than the idle_older_than_s the runbook is given
        row.injected = f"{len(self.leaked)} session(s) of {t['application']!r} left idle in transaction"
        self._run(row, BY_KEY["connection_leak"], {"RUNBOOK_POSTGRES_DSN": dsn}, {"idle_older_than_s": 1})

    @_fault("dead_letters")
    def dead_letters(self, row: Row) -> None:
        t = self.targets["rabbitmq"]
        url = self._amqp()
        ids = faults.dead_letter(url, t["work_queue"], t["dlq"], int(t["messages"]), self.tag)
        row.injected = f"{len(ids)} message(s) published to {t['work_queue']} and rejected into {t['dlq']}"
        env = {"RUNBOOK_RABBITMQ_URL": url, "RUNBOOK_DLQ_QUEUE": t["dlq"]}
        self._run(row, BY_KEY["dead_letters"], env, {"queue": t["dlq"]})

    @_fault("lagging_rpc")
    def lagging_rpc(self, row: Row) -> None:
        t = self.targets["rpc"]
        (name_a, url_a), (name_b, url_b) = t["nodes"]
        a, b = faults.block_number(url_a), faults.block_number(url_b)
        (ahead, ahead_url), (behind, _) = (
            ((name_b, url_b), (name_a, url_a)) if b >= a else ((name_a, url_a), (name_b, url_b))
        )
        head = faults.evm_mine(ahead_url, int(t["blocks"]))
        row.injected = f"mined {t['blocks']} block(s) on {ahead} (now block {head}); {behind} stays at {min(a, b)}"
        if row.expected.get("provider") is None:  # unless expect names one
            row.expected["provider"] = behind
        self.result["rpc_heights"] = {name_a: a, name_b: b, f"{ahead} after": head}
        self._run(row, BY_KEY["lagging_rpc"], {}, {})

    # -- running a runbook ------------------------------------------------------------------
    def _run(self, row: Row, spec: Fault, env_extra: dict[str, str], params: dict[str, Any]) -> None:
        """The fault's runbook through :mod:`.subrun`, its record in the drill's archive."""
        settings = self.rb.settings
        assert self.home is not None
        environ = {k: v for k, v in os.environ.items() if k not in BACKEND_VARS}
        environ |= {
            "RUNBOOK_HOME": str(self.home),
            "RUNBOOK_RUNBOOKS_DIR": str(settings.runbooks_path),
            "RUNBOOK_CATALOG": str(settings.catalog_file),
            "RUNBOOK_ARCHIVE": str(settings.archive_path),
        }
        if "kubernetes" in self.targets:
            environ["RUNBOOK_KUBE_NAMESPACE"] = self.targets["kubernetes"]["namespace"]
        environ |= env_extra
        started = self.started or time.monotonic()
        try:
            done = subrun.run_runbook(spec.slug, environ, env=settings.env, params=params)
        except Exception as exc:
            row.cause_named, row.error = "no", f"no record: {type(exc).__name__}: {str(exc)[:300]}"
            return
        row.time_to_record_s = round(time.monotonic() - started, 2)
        row.exit_code = 0 if done.succeeded else (3 if done.outcome == "diagnosis incomplete" else 1)
        try:
            row.record = str(done.html().relative_to(settings.archive_path))
        except ValueError:
            row.record = str(done.html())
        self._judge(row, spec, done.record)

    def _judge(self, row: Row, spec: Fault, record: dict[str, Any]) -> None:
        """Named when a finding ``spec.finding`` with role cause holds every expected detail."""
        found = [f for f in record.get("findings", []) if f.get("check") == spec.finding]
        keys = list(row.expected)
        for f in found:
            details = f.get("details") or {}
            if f.get("role") == "cause" and all(details.get(k) == v for k, v in row.expected.items()):
                row.cause_named, row.named_by = "yes", f"{spec.finding}: {f.get('summary', '')}"[:300]
                row.found = {k: details.get(k) for k in keys}
                return
        causes = [f for f in found if f.get("role") == "cause"] or found
        row.cause_named = "no"
        if causes:
            details = causes[0].get("details") or {}
            row.found = {k: details.get(k) for k in keys} | {"role": causes[0].get("role")}
            row.named_by = f"{spec.finding}: {causes[0].get('summary', '')}"[:300]
        else:
            row.named_by = f"no {spec.finding!r} finding in the record"

    def _report(self, spec: Fault, row: Row) -> None:
        named = row.cause_named == "yes"
        text = (
            f"{row.injected or 'fault not injected'}. {spec.slug} "
            + (
                f"named the cause in {duration(row.time_to_record_s)} ({row.named_by})"
                if named
                else f"did NOT name it: expected {row.expected}, found {row.found or 'nothing'}"
                + (f" ({row.error})" if row.error else "")
                + (f"; {row.named_by}" if row.named_by else "")
            )
            + f". Removal: {row.removed or 'n/a'}."
        )
        self.rb.finding(
            spec.title,
            "ok" if named else "critical",
            text,
            role=None if named else "cause",
            drill_step=spec.key,
            **row.public(),
        )

    # -- removing faults --------------------------------------------------------------------
    def _undo(self, key: str) -> str:
        if key == "pods_deleted":
            text = "cannot be undone here: deleted pods come back only through the deployment's controller"
        elif key == "network_partition":
            text = self._stop_proxy()
        elif key == "connection_leak":
            text = f"{faults.close_all(self.leaked)} session(s) closed"
        elif key == "dead_letters":
            t = self.targets["rabbitmq"]
            taken = faults.purge_tagged(self._amqp(), [t["dlq"], t["work_queue"]], self.tag)
            text = f"{sum(taken.values())} drill message(s) taken back ({', '.join(f'{q}: {n}' for q, n in taken.items())})"
        else:
            text = "cannot be undone: mined blocks stay (a node cannot un-mine); the nodes stay apart"
        self.undone[key] = text
        return text

    def _stop_proxy(self) -> str:
        if self.proxy is None:
            return "no proxy started"
        port = self.proxy.port
        self.proxy.stop()
        return f"proxy 127.0.0.1:{port} stopped" + (" (STILL LISTENING)" if self.proxy.listening() else ", port closed")

    # -- verdict ------------------------------------------------------------------------------
    def table(self) -> None:
        """The game day's table: fault, runbook, cause named, time to record, the record (linked)."""
        try:
            self._table()
        except Exception as exc:
            self.rb.note(f"The chaos table could not be shown: {exc}")

    def _table(self) -> None:
        rows = list(self.rows.values())
        frame = pd.DataFrame(
            [
                {
                    "fault injected": r.fault,
                    "runbook run": r.runbook,
                    "cause named": r.cause_named,
                    "time to record": duration(r.time_to_record_s) if r.time_to_record_s is not None else "",
                    "record": r.record,
                }
                for r in rows
            ]
        )
        text = "Chaos drill: faults and the runbooks that diagnosed them\n" + frame.to_string(index=False)
        head = "".join(f"<td><b>{esc(c)}</b></td>" for c in frame.columns)
        body = ""
        for r in rows:
            link = f'<a href="{esc(_relative_link(r.record))}">{esc(r.record)}</a>' if r.record else ""
            took = duration(r.time_to_record_s) if r.time_to_record_s is not None else ""
            body += (
                f"<tr><td>{esc(r.fault)}</td><td>{esc(r.runbook)}</td><td><b>{esc(r.cause_named)}</b></td>"
                f"<td>{esc(took)}</td><td>{link}</td></tr>"
            )
        html = (
            '<div class="rb-tablewrap"><b>Chaos drill: faults and the runbooks that diagnosed them</b>'
            f'<table class="rb-table"><tr class="rb-head">{head}</tr>{body}</table></div>'
        )
        self.rb.show(html, text)

    def judge(self) -> Judgement:
        """PASS when every fault that ran had its cause named."""
        rows = [r.public() for r in self.rows.values()]
        ran = [r for r in self.rows.values() if r.cause_named != "not run"]
        missed = [r for r in ran if r.cause_named != "yes"]
        skipped = [r.fault for r in self.rows.values() if r.cause_named == "not run"]
        reasons = [
            f"{r.runbook} did not name the cause of {r.fault}" + (f" ({r.error})" if r.error else "") for r in missed
        ]
        if not ran:
            reasons.append("no fault ran")
        slowest = max((r.time_to_record_s or 0.0 for r in ran), default=0.0)
        named = sum(r.cause_named == "yes" for r in ran)
        self.result.update(
            {
                "named": named,
                "faults_run": len(ran),
                "not_named": [r.runbook for r in missed],
                "skipped": skipped,
                "slowest_record_s": round(slowest, 2),
                "rows": rows,
            }
        )
        numbers = (
            f"{named} of {len(ran)} runbooks named the cause of their fault; slowest record {duration(slowest)}"
            + (f"; skipped (no target): {', '.join(skipped)}" if skipped else "")
        )
        return Judgement(numbers, reasons, complete=bool(ran))

    # -- cleanup ------------------------------------------------------------------------------
    def release(self) -> None:
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)

    def action_result(self) -> dict[str, Any]:
        return {k: v for k, v in self.result.items() if k != "rows"} | {
            "rows": [r.public() for r in self.rows.values()]
        }

    def undo(self) -> tuple[bool, str]:
        """Remove whatever is left (close sessions, stop the proxy, take back the drill's
        messages), check it, and say what cannot be undone."""
        removed = {
            k: v for k, v in self.undone.items() if k in ("network_partition", "connection_leak", "dead_letters")
        }
        left: list[str] = []
        done: dict[str, str] = {}
        for key in ("network_partition", "connection_leak", "dead_letters"):
            if BY_KEY[key].target not in self.targets:
                continue
            try:
                done[key] = self._undo(key)
            except Exception as exc:
                left.append(f"{BY_KEY[key].title}: {exc}")
        checks: dict[str, Any] = {}
        if "postgres" in self.targets:
            try:
                checks["leak_sessions_left"] = sum(
                    faults.sessions_of(self._dsn(), self.targets["postgres"]["application"]).values()
                )
            except Exception as exc:
                left.append(f"sessions could not be counted: {exc}")
            if self.proxy is not None:
                checks["proxy_listening"] = self.proxy.listening()
        if "rabbitmq" in self.targets:
            t = self.targets["rabbitmq"]
            try:
                checks["drill_messages_left"] = faults.count_tagged(self._amqp(), t["dlq"], self.tag)
            except Exception as exc:
                left.append(f"the DLQ could not be checked: {exc}")
        if checks.get("leak_sessions_left"):
            left.append(f"{checks['leak_sessions_left']} session(s) of the leak still open")
        if checks.get("proxy_listening"):
            left.append("the proxy still listens")
        if checks.get("drill_messages_left"):
            left.append(f"{checks['drill_messages_left']} drill message(s) still in the DLQ")
        permanent = []
        if "kubernetes" in self.targets and self.result.get("deleted_pods"):
            t = self.targets["kubernetes"]
            permanent.append(
                f"{len(self.result['deleted_pods'])} deleted pod(s) of {t['namespace']}/{t['deployment']} are not "
                "recreated by the drill (a real cluster's ReplicaSet does; a fake API server does not)"
            )
        if "rpc" in self.targets and self.result.get("rpc_heights"):
            permanent.append("the mined blocks stay: the RPC nodes remain apart (blocks cannot be un-mined)")
        self.result.update({"cleanup": checks, "left_behind": left, "not_undone": permanent})
        self.rb.finding(
            "Cleanup",
            "warning" if left else "ok",
            ("Left behind: " + "; ".join(left) + ". " if left else "Every removable fault is gone. ")
            + (
                "Removed in their steps: " + "; ".join(f"{BY_KEY[k].title.lower()}: {v}" for k, v in removed.items())
                if removed
                else "No removable fault was injected"
            )
            + ". Final sweep: "
            + (", ".join(f"{k.replace('_', ' ')} {v}" for k, v in checks.items()) or "nothing to check")
            + (". Not undone: " + "; ".join(permanent) if permanent else "")
            + ".",
            drill_step="cleanup",
            **checks,
            left_behind=left,
            not_undone=permanent,
        )
        return not left, (f"left behind: {'; '.join(left)}" if left else "")

    # -- secrets from the environment -------------------------------------------------------
    def _dsn(self) -> str:
        return os.environ[self.targets["postgres"]["dsn_env"]]

    def _amqp(self) -> str:
        return os.environ[self.targets["rabbitmq"]["url_env"]]


# -- step 1 ----------------------------------------------------------------------------------------
def prepare(
    rb: RunbookLike, targets: dict[str, Any] | None, expect: dict[str, Any] | None = None, partition: str = "refuse"
) -> Chaos:
    """Step 1, changing nothing: the targets are well formed and reachable (the deployment and
    its pods, the database, both queues, both RPC nodes); then the guard's decision."""
    return Chaos(rb, raw_targets=targets, raw_expect=expect, partition_mode=partition).ready()


# -- targets ---------------------------------------------------------------------------------------
def _normalise(raw: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if not isinstance(raw, dict):
        problems.append("targets must be a dict")
        return out
    known = {"kubernetes", "postgres", "rabbitmq", "rpc"}
    for key in sorted(set(raw) - known):
        problems.append(f"targets[{key!r}] is not a target the drill knows ({', '.join(sorted(known))})")
    if k := raw.get("kubernetes"):
        if not k.get("namespace") or not k.get("deployment"):
            problems.append("targets['kubernetes'] needs namespace and deployment")
        out["kubernetes"] = {"namespace": str(k.get("namespace", "")), "deployment": str(k.get("deployment", ""))}
    if p := raw.get("postgres"):
        var = str(p.get("dsn_env") or "")
        if not var or not os.environ.get(var):
            problems.append(f"targets['postgres']['dsn_env']: the environment variable {var or '(none)'} is not set")
        elif not redacted_env_name(var):
            problems.append(f"{var}: its name must end in _SECRET, _PASSWORD or _TOKEN so records redact the DSN")
        out["postgres"] = {
            "dsn_env": var,
            "application": str(p.get("application") or "chaos-drill-leak"),
            "sessions": int(p.get("sessions") or 10),
        }
    if r := raw.get("rabbitmq"):
        var = str(r.get("url_env") or "")
        if not var or not os.environ.get(var):
            problems.append(f"targets['rabbitmq']['url_env']: the environment variable {var or '(none)'} is not set")
        elif not redacted_env_name(var):
            problems.append(f"{var}: its name must end in _SECRET, _PASSWORD or _TOKEN so records redact the URL")
        if not r.get("work_queue"):
            problems.append("targets['rabbitmq'] needs work_queue (the queue whose rejects go to the DLQ)")
        out["rabbitmq"] = {
            "url_env": var,
            "dlq": str(r.get("dlq") or "dead_letter_queue"),
            "work_queue": str(r.get("work_queue") or ""),
            "messages": int(r.get("messages") or 20),
        }
    if c := raw.get("rpc"):
        urls = c.get("urls") or []
        if not isinstance(urls, list | tuple) or len(urls) != 2:
            problems.append("targets['rpc']['urls'] must list exactly two node URLs")
            urls = list(urls)[:2] + [""] * (2 - len(list(urls)[:2]))
        names = list(c.get("names") or ["rpc-1", "rpc-2"])[:2]
        out["rpc"] = {
            "nodes": list(zip(names, [str(u) for u in urls], strict=False)),
            "blocks": int(c.get("blocks") or 50),
        }
    return out


def _expected(spec: Fault, given: dict[str, dict[str, Any]], partition: str) -> dict[str, Any]:
    if spec.key == "pods_deleted":
        return {"pods": 0}
    if spec.key == "network_partition":
        return {"failure": "refused" if partition == "refuse" else "timeout"}
    if spec.key == "connection_leak":
        return {"application": given.get("postgres", {}).get("application", "chaos-drill-leak")}
    if spec.key == "dead_letters":
        return {"source": given.get("rabbitmq", {}).get("work_queue", "")}
    return {"provider": None}  # lagging_rpc: known once the drill has seen which node is behind


def _where(t: dict[str, Any]) -> str:
    if "deployment" in t:
        return f"{t['namespace']}/deployment/{t['deployment']}"
    if "dsn_env" in t:
        return safe_endpoint(os.environ.get(t["dsn_env"], "")) or f"${t['dsn_env']}"
    if "url_env" in t:
        where = safe_endpoint(os.environ.get(t["url_env"], "")) or f"${t['url_env']}"
        return f"{where} queues {t['work_queue']}, {t['dlq']}"
    return " and ".join(f"{n} {u}" for n, u in t.get("nodes", []))


def _reach_kube(drill: Chaos, t: dict[str, Any]) -> tuple[str, str]:
    pods = faults.pod_names(drill.rb.kubernetes, t["namespace"], t["deployment"])
    return _where(t), f"deployment readable, {len(pods)} pod(s)"


def _reach_postgres(drill: Chaos, t: dict[str, Any]) -> tuple[str, str]:
    cfg = drill.rb.settings.postgres
    pg = Postgres(os.environ[t["dsn_env"]], cfg.connect_timeout_s, cfg.statement_timeout_ms, cfg.lock_timeout_ms)
    row = pg.row("SELECT current_setting('max_connections')::int AS max, count(*) AS used FROM pg_stat_activity")
    return pg.where, f"answers; {row['used']} of {row['max']} connections in use"


def _reach_rabbitmq(drill: Chaos, t: dict[str, Any]) -> tuple[str, str]:
    url = os.environ[t["url_env"]]
    dlq, work = faults.queue_depth(url, t["dlq"]), faults.queue_depth(url, t["work_queue"])
    return _where(t), f"answers; {t['dlq']} holds {dlq}, {t['work_queue']} holds {work}"


def _reach_rpc(drill: Chaos, t: dict[str, Any]) -> tuple[str, str]:
    heights = {name: faults.block_number(url) for name, url in t["nodes"]}
    return _where(t), "answers; blocks " + ", ".join(f"{n} {h}" for n, h in heights.items())


def _own_parameters(rb: RunbookLike, given: dict[str, dict[str, Any]]) -> Path:
    """A copy of parameters/ whose environment file points the runbooks at the targets: the
    deployment (service.deployment, no health URLs), the two RPC nodes as the only providers
    (the first is the primary)."""
    home = Path(tempfile.mkdtemp(prefix="rb-chaos-home-"))
    shutil.copytree(rb.settings.parameters_dir, home / "parameters")
    env_file = home / "parameters" / "environments" / f"{rb.settings.env}.yaml"
    data = yaml.safe_load(env_file.read_text()) if env_file.is_file() else {}
    data = data if isinstance(data, dict) else {}
    if "kubernetes" in given:
        service = data.setdefault("service", {}) or {}
        service.update({"deployment": given["kubernetes"]["deployment"], "health_urls": []})
        data["service"] = service
        data.setdefault("kubernetes", {})["namespace"] = given["kubernetes"]["namespace"]
    if "rpc" in given:
        nodes = given["rpc"]["nodes"]
        data["blockchain"] = {
            "providers": [{"name": n, "url": u} for n, u in nodes],
            "primary": nodes[0][0],
            "chain_id": None,
            "timeout_s": 3,
        }
    env_file.write_text(yaml.safe_dump(data, sort_keys=False))
    return home


def _relative_link(record: str) -> str:
    """From the drill's record.html (<archive>/YYYY/MM/DD/<id>/) to a record under the same archive."""
    return record if record.startswith("/") else "../../../../" + record
