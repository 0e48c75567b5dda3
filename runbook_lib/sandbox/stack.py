"""The whole loopback sandbox, started and stopped as one: Prometheus with a backfilled
incident (and the catalog's rules), optionally Alertmanager, a seeded PostgreSQL database,
local Redis, and the fake Kubernetes API from tests/fake_kube.py."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from ..catalog import Catalog
from ..monitoring import rules_yaml
from . import database, services
from .incident import Scenario, write_file

REDIS_URL = "redis://127.0.0.1:6379/0"


def load_fake_kube(home: Path) -> ModuleType:
    """tests/fake_kube.py from the checkout (the sandbox only runs from a checkout)."""
    path = home / "tests" / "fake_kube.py"
    if not path.exists():
        raise services.SandboxError(f"{path} not found: the sandbox runs from a source checkout")
    spec = importlib.util.spec_from_file_location("runbook_fake_kube", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Sandbox:
    def __init__(
        self, workdir: Path, home: Path, say: Callable[[str], None] = print, namespace: str = "omnihub-prod"
    ) -> None:
        self.workdir = workdir
        self.home = home
        self.say = say
        self.namespace = namespace
        self.scenario: Scenario | None = None
        self.prometheus: services.Service | None = None
        self.alertmanager: services.Service | None = None
        self.kube: Any = None
        self.kubeconfig: Path | None = None
        self.dbname: str | None = None
        self.dsn: str | None = None

    def __enter__(self) -> Sandbox:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start_prometheus(
        self, alertmanager_url: str | None = None, rules: bool = True, now: datetime | None = None
    ) -> str:
        now = now or datetime.now(UTC)
        self.scenario = Scenario.default(now)
        s = self.scenario
        om = self.workdir / "incident.om"
        n = write_file(s, om)
        self.say(
            f"incident: {s.history} of {s.job} traffic, {len(s.endpoints)} endpoints; 5xx spike on "
            f"{s.incident_endpoint} since {s.incident_start:%H:%M:%S} UTC ({n} samples)"
        )
        services.backfill(om, self.workdir / "tsdb")
        rule_files = []
        if rules:
            catalog = Catalog.load(self.home / "parameters" / "catalog.yaml", self.home / "runbooks")
            path = self.workdir / "rules.yml"
            path.write_text(rules_yaml(catalog, for_override="0s", interval="1s"))
            rule_files.append(path)
        self.prometheus = services.start_prometheus(
            self.workdir / "prometheus", self.workdir / "tsdb", rule_files, alertmanager_url
        )
        self.say(f"prometheus: {self.prometheus.url} (backfilled with promtool; catalog rules with for: 0s)")
        return self.prometheus.url

    def start_alertmanager(self, webhook_url: str, token: str) -> str:
        self.alertmanager = services.start_alertmanager(self.workdir / "alertmanager", webhook_url, token)
        self.say(f"alertmanager: {self.alertmanager.url} -> {webhook_url} (bearer auth)")
        return self.alertmanager.url

    def start_database(self, dbname: str = "runbook_sandbox") -> str:
        self.dsn = database.create_database(dbname)
        self.dbname = dbname
        self.say(f"postgresql: database {dbname} on 127.0.0.1:5432 (OmniHub schema + seed)")
        return self.dsn

    def start_kube(self, rollout_before_spike: timedelta = timedelta(minutes=4)) -> Path:
        module = load_fake_kube(self.home)
        self.kube = module.FakeKube()
        assert self.scenario and self.scenario.incident_start
        self.kube.add_api_gateway(self.namespace, self.scenario.incident_start - rollout_before_spike)
        self.kube.start()
        self.kubeconfig = self.kube.write_kubeconfig(self.workdir / "kubeconfig", self.namespace)
        self.say(f"kubernetes: fake API server {self.kube.url} (deployment/api-gateway, 3 revisions)")
        return self.kubeconfig

    def env(self) -> dict[str, str]:
        out = {"RUNBOOK_REDIS_URL": REDIS_URL, "RUNBOOK_KUBE_NAMESPACE": self.namespace}
        if self.prometheus:
            out["RUNBOOK_PROMETHEUS_URL"] = self.prometheus.url
        if self.dsn:
            out["RUNBOOK_POSTGRES_DSN"] = self.dsn
        if self.kubeconfig:
            out["KUBECONFIG"] = str(self.kubeconfig)
        return out

    def stop(self) -> None:
        for svc in (self.alertmanager, self.prometheus):
            if svc:
                svc.stop()
        if self.kube:
            self.kube.stop()
        if self.dbname:
            try:
                database.drop_database(self.dbname)
            except Exception as exc:
                self.say(f"could not drop database {self.dbname}: {exc}")
        self.alertmanager = self.prometheus = self.kube = None
        self.dbname = None
