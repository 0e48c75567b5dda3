"""One module per backend. Each has timeouts and raises SourceUnavailable / SourceError.

Only ``sources/kubernetes.py`` imports ``kubernetes``, only ``sources/postgres/`` imports
psycopg, and so on. Modules are imported lazily by :mod:`runbook_lib.kernel.notebook`, so a notebook
only pays for the clients it uses.
"""
