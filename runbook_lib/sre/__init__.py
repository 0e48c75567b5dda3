"""The SRE package's domain, pure (no I/O): the alert catalog and Alertmanager's models, SLOs,
SLIs as PromQL, PromQL quoting, incident SEV levels and deadlines, the on-call rotation and the
DR drill calendar."""
