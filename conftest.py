"""The project's root conftest: what the tests (tests/) and the runbooks under nbval (runbooks/)
share. One kernel template per test process (not in xdist's controller, which runs no test):
every run gets a kernel forked from it with the run's own environment (runbook_lib.run.pool),
and so does nbval, through the ``runbook-forked`` kernelspec (tests/support/forked_kernel.py,
``--nbval-kernel-name runbook-forked``)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from runbook_lib.run.pool import WarmKernels

HOME = Path(__file__).resolve().parent
POOL: list[WarmKernels] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.pluginmanager.hasplugin("dsession"):  # xdist's controller
        return
    from runbook_lib.core.settings import KernelSettings
    from runbook_lib.run.pool import WarmKernels

    pool = WarmKernels(KernelSettings(warm_kernels=1, warm_wait_s=60)).start()
    POOL.append(pool)
    spec = Path(tempfile.mkdtemp(prefix="rbtest-jupyter-")) / "kernels" / "runbook-forked"
    spec.mkdir(parents=True)
    launcher = HOME / "tests" / "support" / "forked_kernel.py"
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, str(launcher), "{connection_file}"],
                "display_name": "Python 3 (forked from the test session's kernel template)",
                "language": "python",
            }
        )
    )
    paths = (str(spec.parent.parent), os.environ.get("JUPYTER_PATH"))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in paths if p)
    os.environ["RUNBOOK_TEST_KERNEL_TEMPLATE"] = pool.socket_path


def pytest_sessionfinish(session: pytest.Session) -> None:
    while POOL:
        POOL.pop().close()
