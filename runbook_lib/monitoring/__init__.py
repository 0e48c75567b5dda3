"""Monitoring as code, generated from the catalog (host only): Prometheus recording rules,
burn-rate and package alerts, Alertmanager's configuration (:mod:`.rules`) and the three Grafana
dashboards (:mod:`.dashboards`)."""
