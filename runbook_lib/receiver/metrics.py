"""The receiver's /metrics: counts that must survive restarts are read from the journal at
scrape time; answer latency, rejections and receipt-to-record times live in the process."""

from __future__ import annotations

import logging
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from runbook_lib.core.health import Health
from runbook_lib.intake.journal import Intake

log = logging.getLogger("runbook.receiver")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
RECORD_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)


class HealthCollector(Collector):
    """runbook_receiver_degraded{component}: 1 while the journal or the workers cannot do their job."""

    def __init__(self, health: Health) -> None:
        self.health = health

    def collect(self) -> Any:
        gauge = GaugeMetricFamily(
            "runbook_receiver_degraded",
            "1 while the receiver cannot journal notifications (component journal) or archive runs (workers).",
            labels=["component"],
        )
        gauge.add_metric(["journal"], 1 if self.health.is_degraded("journal") else 0)
        gauge.add_metric(["workers"], 1 if self.health.is_degraded("worker") else 0)
        yield gauge


class JournalCollector(Collector):
    """Counts that must survive restarts are read from the journal at scrape time."""

    def __init__(self, intake: Intake, executor: Any = None) -> None:
        self.intake = intake
        self.executor = executor  # the Supervisor (local) or the celery Dispatcher; None in tests

    def collect(self) -> Any:
        caps = GaugeMetricFamily(
            "runbook_run_cap",
            "New firing alerts that get a run of their own, per notification and per window.",
            labels=["kind"],
        )
        caps.add_metric(["per_notification"], self.intake.caps.per_notification)
        caps.add_metric([f"per_{self.intake.caps.window_s:g}s"], self.intake.caps.per_window)
        yield caps
        try:
            c = self.intake.counts()
        except Exception as exc:  # the journal cannot be read right now: /healthz says why
            log.warning("metrics: journal counts unavailable: %s", exc)
            return
        yield CounterMetricFamily(
            "runbook_notifications_received", "Notifications accepted and journaled.", value=c["notifications"]
        )
        yield CounterMetricFamily(
            "runbook_alerts_deduplicated",
            "Alerts that repeated a known (fingerprint, startsAt, status) and started no run.",
            value=c["deduplicated"],
        )
        yield CounterMetricFamily(
            "runbook_alerts_grouped",
            "Firing alerts over a run cap, journaled into a group job (one triage record lists them).",
            value=c["grouped"],
        )
        runs = CounterMetricFamily("runbook_runs", "Finished jobs by outcome.", labels=["status"])
        for outcome, n in sorted(c["outcomes"].items()):
            if outcome != "grouped":  # members of a group: no run of their own
                runs.add_metric([str(outcome)], n)
        yield runs
        running = c["states"].get("running", 0)
        in_broker = self.executor.waiting() if self.executor is not None else 0
        depth = GaugeMetricFamily(
            "runbook_queue_depth",
            "Jobs waiting for a worker (queued: in the journal, plus those sent to the broker that no worker "
            "has taken yet) or taken by a worker (running; with celery: sent to the broker).",
            labels=["state"],
        )
        depth.add_metric(["queued"], c["states"].get("queued", 0) + in_broker)
        depth.add_metric(["running"], running)
        yield depth
        if self.executor is not None:
            flight = GaugeMetricFamily(
                "runbook_runs_in_flight", "Runs a worker is executing now, by executor.", labels=["executor"]
            )
            flight.add_metric([self.executor.name], self.executor.in_flight(running))
            yield flight


class Metrics:
    def __init__(self, intake: Intake, health: Health, executor: Any = None) -> None:
        self.intake = intake
        self.registry = CollectorRegistry()
        self.registry.register(JournalCollector(intake, executor))
        self.registry.register(HealthCollector(health))
        self.rejected = Counter(
            "runbook_notifications_rejected", "Notifications refused, by reason.", ["reason"], registry=self.registry
        )
        self.answer = Histogram(
            "runbook_webhook_answer_seconds",
            "Time from request to the webhook's answer.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.to_record = Histogram(
            "runbook_receipt_to_record_seconds",
            "Time from a firing alert's receipt to its archived record.",
            buckets=RECORD_BUCKETS,
            registry=self.registry,
        )

    def watch_finished(self, stop: threading.Event, every_s: float = 0.5) -> None:
        """Observe receipt -> record for each job the workers finish (run in a thread)."""
        seq = max((r["finished_seq"] for r in self.intake.finished_since(0)), default=0)
        while not stop.wait(every_s):
            try:
                for row in self.intake.finished_since(seq):
                    seq = row["finished_seq"]
                    if row["outcome"] != "resolved" and row["finished_at"]:
                        self.to_record.observe(row["finished_at"] - row["received_at"])
            except Exception as exc:
                log.warning("metrics watcher: %s", exc)
