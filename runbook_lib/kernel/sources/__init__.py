"""One module per backend. Each has timeouts and raises SourceUnavailable / SourceError.
Prometheus and RabbitMQ have theirs at the top (:mod:`runbook_lib.clients.prometheus`,
:mod:`runbook_lib.clients.rabbitmq`): host commands (``runbook slo``, ``runbook dlq``) use them too.

Only ``sources/kubernetes.py`` imports ``kubernetes``, only ``sources/postgres/`` imports
psycopg, and so on. Modules are imported lazily by :mod:`runbook_lib.kernel.notebook`, so a notebook
only pays for the clients it uses.
"""
