"""The fault matrix: realistic faults, each injected for real (PostgreSQL, RabbitMQ, Prometheus
data, the fake Kubernetes API server, ganache, loopback health endpoints), and what the record
of the alert's runbook must then say: the cause code, the one recommended action, and the
verdict's bounds ("never CRITICAL on provisional data", "never INCOMPLETE while a critical
finding exists").

A :class:`Case` declares the fault and the expectations; its ``inject`` is a context manager
that makes the fault on the servers of a :class:`Bench` (shared by every case of a module, or by
the whole benchmark) and yields the :class:`Setup` of the run: environment variables (secrets
and URLs, as production passes them), parameters YAML, runbook parameters, alert labels.
:func:`run_case` runs the alert through the real runner, in this process, and judges the record.

The same cases run as tests (tests/faults/test_*.py, one module per area, so xdist spreads
them) and as a benchmark that prints one table (``python -m benchmarks.faults``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from runbook_lib.core.settings import load_settings
from runbook_lib.run.request import RunRequest
from runbook_lib.run.runner import Runner
from runbook_lib.sandbox import database, services
from runbook_lib.sandbox.fake_kube import FakeKube
from runbook_lib.sre import causes
from runbook_lib.sre.alertmanager import parse_alert
from runbook_lib.sre.catalog import Catalog
from tests.helpers import HOME, alert_payload

NAMESPACE = "omnihub-faults"
VERDICTS = ("critical", "warning", "info", "ok", "incomplete")


@dataclass
class Setup:
    """What one run of a case gets: environment variables (secrets and URLs, as production
    passes them), YAML appended to the case's environment file, the runbook's own parameters,
    extra alert labels and when the alert started."""

    env: dict[str, str] = field(default_factory=dict)
    parameters: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None


Inject = Callable[["Bench", Path], AbstractContextManager[Setup]]
# More a case's record must show, beyond cause, action and verdict (the defect the case was
# written for: "the terminate SQL names only that application"): the problems found, or none.
Expect = Callable[[dict[str, Any]], list[str]]


@dataclass(frozen=True)
class Case:
    """One fault and what its record must say.

    ``cause``: the diagnosis's leading cause code (None: the record names no cause code).
    ``action``: diagnosis.recommended_action.name: an option's approval name, "none" or
    "escalate". ``verdicts``: the verdicts the record may have (its bounds)."""

    name: str
    alertname: str
    runbook: str
    cause: str | None
    action: str
    verdicts: tuple[str, ...]
    inject: Inject
    what: str  # the fault, in a few words, for the table
    severity: str = "warning"
    expect: Expect | None = None

    def __post_init__(self) -> None:
        assert set(self.verdicts) <= set(VERDICTS), self.verdicts
        if self.cause is not None:
            assert self.cause in causes.BY_RUNBOOK.get(self.runbook, ()), (self.name, self.cause)


@dataclass
class Outcome:
    case: Case
    record: dict[str, Any]
    seconds: float
    environ: dict[str, str] = field(default_factory=dict)  # the run's environment, to run it again

    @property
    def diagnosis(self) -> dict[str, Any]:
        return self.record["diagnosis"]

    @property
    def runbook_right(self) -> bool:
        return self.record["runbook"] == self.case.runbook

    @property
    def cause_right(self) -> bool:
        return self.diagnosis.get("cause_code") == self.case.cause

    @property
    def action_right(self) -> bool:
        return (self.diagnosis.get("recommended_action") or {}).get("name") == self.case.action

    @property
    def verdict_in_bounds(self) -> bool:
        return self.diagnosis["verdict"] in self.case.verdicts

    def __post_init__(self) -> None:
        # judged now, while the archive (a temporary one in the benchmark) still holds the files
        self.problems: list[str] = self.case.expect(self.record) if self.case.expect else []

    @property
    def right(self) -> bool:
        return (
            self.runbook_right
            and self.cause_right
            and self.action_right
            and self.verdict_in_bounds
            and not self.problems
        )

    def explain(self) -> str:
        """Why a case failed, with the record's first screen."""
        d = self.diagnosis
        lines = [
            f"case {self.case.name} ({self.case.what}): runbook {self.record['runbook']} (want {self.case.runbook})",
            f"  cause {d.get('cause_code')!r} (want {self.case.cause!r}); causes {d.get('causes')}",
            f"  action {(d.get('recommended_action') or {}).get('name')!r} (want {self.case.action!r})",
            f"  verdict {d['verdict']!r} (allowed {self.case.verdicts})",
            f"  headline: {d['headline']}",
        ]
        lines += [f"  expected: {p}" for p in self.problems]
        lines += [f"  {f['verdict']:<9} {f['check']}: {f['summary']}"[:300] for f in self.record["findings"]]
        lines += [
            f"  action {a['name']} {a.get('status')} recommended={a.get('recommended')}" for a in self.record["actions"]
        ]
        return "\n".join(lines)


class Bench:
    """The servers cases share, made on first use and removed by :meth:`close`: a home with its
    own parameters/ (each case gets an environment file there), an archive, Prometheus servers
    by data set, scratch databases, own PostgreSQL clusters, RabbitMQ virtual hosts, fake
    Kubernetes API servers and loopback health endpoints."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.home = work / "home"
        shutil.copytree(HOME / "parameters", self.home / "parameters")
        self.archive = work / "executed"
        self._prometheus: dict[str, services.Service] = {}
        self._cleanups: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # -- servers -----------------------------------------------------------------------------
    def prometheus(self, key: str, write: Callable[[TextIO], None]) -> str:
        """The URL of a Prometheus holding the data ``write`` produces (OpenMetrics, without the
        final ``# EOF``), one per ``key``: cases sharing a data set share the server."""
        with self._lock:
            if key not in self._prometheus:
                folder = self.work / f"prometheus-{key}"
                folder.mkdir(parents=True)
                data = folder / "data.om"
                with data.open("w") as out:
                    write(out)
                    out.write("# EOF\n")
                services.backfill(data, folder / "tsdb")
                self._prometheus[key] = services.start_prometheus(folder, folder / "tsdb")
            return self._prometheus[key].url

    def database(self) -> str:
        """A scratch database with the OmniHub schema and seed, on the machine's PostgreSQL."""
        name = f"rbfault_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        dsn = database.create_database(name)
        self._cleanups.append(lambda: database.drop_database(name))
        return dsn

    def cluster(self, **kw: Any) -> Any:
        """A PostgreSQL cluster of its own (initdb, its own port), removed at the end."""
        from tests.support.cluster import Cluster

        cluster = Cluster(name="fault", **kw).init().start()
        self._cleanups.append(cluster.remove)
        return cluster

    def vhost(self) -> str:
        """The amqp:// URL of a RabbitMQ virtual host of its own."""
        from tests.support.services import rabbitmq_vhost

        ctx = rabbitmq_vhost("rbfault")
        name = ctx.__enter__()
        self._cleanups.append(lambda: ctx.__exit__(None, None, None))
        return f"amqp://guest:guest@127.0.0.1:5672/{name}"

    def kube(self) -> FakeKube:
        fake = FakeKube()
        fake.start()
        self._cleanups.append(fake.stop)
        return fake

    def kubeconfig(self, fake: FakeKube) -> str:
        return str(fake.write_kubeconfig(self.work / f"kubeconfig-{uuid.uuid4().hex[:8]}", NAMESPACE))

    def health(self, status: int) -> str:
        """A loopback health endpoint answering ``status``."""

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._cleanups.append(lambda: (server.shutdown(), server.server_close()))
        return f"http://127.0.0.1:{server.server_address[1]}/healthz"

    def refused(self) -> str:
        """An address where nothing listens."""
        return f"127.0.0.1:{services.free_port()}"

    def close(self) -> None:
        for svc in self._prometheus.values():
            svc.stop()
        for cleanup in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                cleanup()


def environ_for(bench: Bench, setup: Setup) -> dict[str, str]:
    """The run's whole environment: this process's, without any RUNBOOK_ or backend variable
    the machine may have set, plus the case's."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNBOOK_", "AWS_")) and k not in ("KUBECONFIG", "PGPASSWORD")
    }
    return {
        **base,
        "RUNBOOK_HOME": str(bench.home),
        "RUNBOOK_RUNBOOKS_DIR": str(HOME / "runbooks"),
        "RUNBOOK_ARCHIVE": str(bench.archive),
        **setup.env,
    }


def run_case(case: Case, bench: Bench) -> Outcome:
    """Inject the case's fault, run its alert through the runner, judge the record."""
    (bench.work / "cases").mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=bench.work / "cases"))  # a case may run twice
    with case.inject(bench, work) as setup:
        env_name = f"fault-{case.name}"
        base = (bench.home / "parameters" / "environments" / "local.yaml").read_text()
        (bench.home / "parameters" / "environments" / f"{env_name}.yaml").write_text(base + "\n" + setup.parameters)
        environ = environ_for(bench, setup)
        settings = load_settings(env=env_name, environ=environ)
        starts = setup.starts_at or datetime.now(UTC) - timedelta(minutes=10)
        payload = alert_payload(case.alertname, starts_at=starts, labels=setup.labels, severity=case.severity)
        # a runbook no alert routes to (the catalog's "manual" ones: a deploy pipeline, a failed
        # migration job or on-call start it) is named, as they do; every other case is routed
        catalog = Catalog.load(settings.catalog_file, settings.runbooks_path)
        by_hand = catalog.kinds.get(case.runbook, ("", ""))[0] == "manual"
        request = RunRequest(
            alert=parse_alert(payload["alerts"][0]),
            slug=case.runbook if by_hand else None,
            extra=setup.extra,
            environ=environ,
        )
        t0 = time.monotonic()
        result = Runner(settings, environ).run(request)
        seconds = time.monotonic() - t0
    assert result.status == "succeeded", (case.name, result.record.get("failed_cell"))
    # where the record was archived, for a case that reads its record.html (in memory only)
    return Outcome(case, {**result.record, "_path": str(result.path)}, seconds, environ)


@contextlib.contextmanager
def nothing(setup: Setup) -> Iterator[Setup]:
    """For a case whose fault lives entirely in its servers: yield the setup."""
    yield setup
