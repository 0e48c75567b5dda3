"""The loopback sandbox for demos and tests: a synthetic incident backfilled into a real
Prometheus (promtool), Alertmanager, a seeded OmniHub schema in PostgreSQL. Dev tooling:
nothing here runs in production."""
