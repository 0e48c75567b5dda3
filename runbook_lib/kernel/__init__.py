"""What runs inside the Jupyter kernel: the notebook API (:mod:`.notebook`), the diagnosis
checks (:mod:`.checks`), one client module per backend (:mod:`.sources`), the guarded
resolution options (:mod:`.actions`), and pure helpers (:mod:`.slo`, :mod:`.promql`).

Kernel code imports only the shared top-level modules of ``runbook_lib`` (errors, settings,
alert models, catalog, the output contract), never the host side (cli, receiver, run, record).
"""
