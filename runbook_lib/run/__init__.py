"""Running a runbook (host side): route the alert to a notebook, execute it with papermill on a
kernel of its own, and hand the executed notebook to :mod:`runbook_lib.record`."""
