"""Clients both worlds use, one per backend: Prometheus (httpx, results as DataFrames), RabbitMQ
(pika: depth, peek, replay), the audit_logs row and the toil log (psycopg). The kernel's own
sources (:mod:`runbook_lib.kernel.sources`) wrap the backends only runbooks read."""
