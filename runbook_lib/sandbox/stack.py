"""The whole loopback sandbox, started and stopped as one: Prometheus with a backfilled
incident (and the catalog's rules), optionally Alertmanager, a seeded PostgreSQL database,
local Redis, and the fake Kubernetes API (:mod:`.fake_kube`)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from runbook_lib.monitoring.rules import rules_yaml
from runbook_lib.sandbox import database, services
from runbook_lib.sandbox.fake_kube import FakeKube
from runbook_lib.sandbox.incident import Scenario, write_file
from runbook_lib.sre.catalog import Catalog

REDIS_URL = "redis://127.0.0.1:6379/0"


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
        # Chosen up front: the receiver must know Prometheus' URL before Prometheus (which needs
        # Alertmanager, which needs the receiver) is started.
        self.prometheus_port = services.free_port()

    def __enter__(self) -> Sandbox:
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def prepare_incident(self, now: datetime | None = None) -> Scenario:
        """Generate the synthetic incident and backfill it into a TSDB with promtool."""
        self.scenario = s = Scenario.default(now or datetime.now(UTC))
        om = self.workdir / "incident.om"
        n = write_file(s, om)
        services.backfill(om, self.workdir / "tsdb")
        self.say(
            f"incident: {s.history} of {s.job} traffic over {len(s.endpoints)} endpoints, 5xx spike on "
            f"{s.incident_endpoint} since {s.incident_start:%H:%M:%S} UTC; {n} samples backfilled with promtool"
        )
        return s

    @property
    def rules_path(self) -> Path:
        return self.workdir / "rules.yml"

    def write_rules(self, drop: tuple[str, ...] = ()) -> Path:
        """The catalog's alerting rules with for: 0s (backfilled incidents fire at once). Alerts in
        ``drop`` get an expression that is never true, which resolves them on the next reload."""
        import yaml

        catalog = Catalog.load(self.home / "parameters" / "catalog.yaml", self.home / "runbooks")
        doc = yaml.safe_load(rules_yaml(catalog, for_override="0s", interval="1s"))
        for rule in doc["groups"][0]["rules"]:
            if rule["alert"] in drop:
                rule["expr"] = "vector(0) > 1"
        self.rules_path.write_text(yaml.safe_dump(doc, sort_keys=False, width=120))
        return self.rules_path

    def reload_prometheus(self) -> None:
        import httpx

        assert self.prometheus
        httpx.post(f"{self.prometheus.url}/-/reload", timeout=10).raise_for_status()

    def start_prometheus(self, alertmanager_url: str | None = None, rules: bool = True) -> str:
        if self.scenario is None:
            self.prepare_incident()
        rule_files = [self.write_rules()] if rules else []
        self.prometheus = services.start_prometheus(
            self.workdir / "prometheus", self.workdir / "tsdb", rule_files, alertmanager_url, port=self.prometheus_port
        )
        self.say(f"prometheus: {self.prometheus.url}" + (" (catalog rules, for: 0s)" if rules else ""))
        return self.prometheus.url

    def start_alertmanager(self, webhook_url: str, token: str) -> str:
        self.alertmanager = services.start_alertmanager(self.workdir / "alertmanager", webhook_url, token)
        self.say(f"alertmanager: {self.alertmanager.url} -> {webhook_url} (bearer auth)")
        return self.alertmanager.url

    def start_database(self, dbname: str | None = None) -> str:
        """A database of this run's own (default ``runbook_demo_<pid>_<hex>``: two demos on one
        server never touch each other's), seeded; dropped by :meth:`stop`. Databases of demos
        killed before they cleaned up are dropped first."""
        for gone in database.drop_leftovers():
            self.say(f"postgresql: dropped {gone}, left by a demo that did not finish")
        dbname = dbname or database.run_name()
        self.dsn = database.create_database(dbname)
        self.dbname = dbname
        self.say(f"postgresql: database {dbname} on 127.0.0.1:5432 (OmniHub schema + seed)")
        return self.dsn

    def start_kube(self, rollout_before_spike: timedelta = timedelta(minutes=4)) -> Path:
        self.kube = FakeKube()
        if self.scenario is None:
            self.prepare_incident()
        assert self.scenario and self.scenario.incident_start
        self.kube.add_api_gateway(self.namespace, self.scenario.incident_start - rollout_before_spike)
        self.kube.start()
        self.kubeconfig = self.kube.write_kubeconfig(self.workdir / "kubeconfig", self.namespace)
        self.say(f"kubernetes: fake API server {self.kube.url} (deployment/api-gateway, 3 revisions)")
        return self.kubeconfig

    def env(self) -> dict[str, str]:
        out = {"RUNBOOK_REDIS_URL": REDIS_URL, "RUNBOOK_KUBE_NAMESPACE": self.namespace}
        if self.scenario is not None:
            out["RUNBOOK_PROMETHEUS_URL"] = f"http://127.0.0.1:{self.prometheus_port}"
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
