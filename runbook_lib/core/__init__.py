"""The bottom layer, shared by both worlds (host processes and the kernel): the error hierarchy,
the environmental-fault classification, layered settings, where secrets come from and how they
are redacted, signed links, the notebook contract, one way to present a finding, links to
Prometheus and Grafana, the archive's layout, process setup and health. Nothing here imports the
SRE domain, a client or either world."""
