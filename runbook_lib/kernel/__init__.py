"""What runs inside the Jupyter kernel: the notebook API (:mod:`.notebook`), the diagnosis
checks (:mod:`.checks`), one client module per backend (:mod:`.sources`), the guarded
resolution options (:mod:`.actions`) and plots (:mod:`.plots`).

Kernel code imports only the shared top-level modules of ``runbook_lib`` (errors, settings,
alert models, catalog, the output contract, the SLO math and SLIs, PromQL quoting, the
Prometheus and RabbitMQ clients, the audit row), never the host side (cli, receiver, run, record).
"""
