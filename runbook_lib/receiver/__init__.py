"""The Alertmanager receiver (host side). An alert travels: :mod:`.app` (validate, persist)
-> :mod:`.intake` (the durable journal) -> :mod:`.worker` (claims a job, runs the engine)
-> :mod:`runbook_lib.run` -> :mod:`runbook_lib.record`; :mod:`.supervisor` keeps the workers
alive and :mod:`.notify` tells Slack/PagerDuty."""
