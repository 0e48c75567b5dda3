"""The library's shape: what `runbook_lib` exports, that neither world imports the other, that
process setup runs before heavy imports, and that the custom import contracts can fail."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest

import runbook_lib
from tests.contracts import private_imports

PUBLIC_API = {
    "AlertError",
    "ArchiveError",
    "ConfigError",
    "Runbook",
    "RunbookError",
    "SourceError",
    "SourceNotConfigured",
    "SourceUnavailable",
    "__version__",
    "checks",
    "drills",
    "start",
}


HOST_PACKAGES = ("cli", "sandbox", "receiver", "web", "workers", "intake", "notify", "run", "record", "monitoring")


def loaded_after(code: str) -> list[str]:
    """runbook_lib modules (and a few heavy libraries) a fresh interpreter has loaded after ``code``."""
    probe = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_the_public_api_is_pinned() -> None:
    assert set(runbook_lib.__all__) == PUBLIC_API
    assert callable(runbook_lib.start) and runbook_lib.Runbook.__name__ == "Runbook"
    from runbook_lib import checks

    assert {"alerts", "deps", "http", "kube", "Result", "check"} <= set(dir(checks))
    with pytest.raises(AttributeError):
        runbook_lib.no_such_name  # noqa: B018


def test_host_processes_never_import_kernel_code() -> None:
    mods = loaded_after(
        "import runbook_lib, runbook_lib.cli, runbook_lib.cli.runs, runbook_lib.cli.records, runbook_lib.cli.serve,"
        " runbook_lib.receiver.app, runbook_lib.workers.supervisor, runbook_lib.run.runner, runbook_lib.record.archive.verify"
    )
    assert "runbook_lib.receiver.app" in mods and "runbook_lib.web.records" in mods
    assert [m for m in mods if m == "runbook_lib.kernel" or m.startswith("runbook_lib.kernel.")] == []


def test_a_kernel_never_imports_the_host_side() -> None:
    mods = loaded_after(
        "import runbook_lib\nfrom runbook_lib import checks, drills\nrb = runbook_lib.start()\nrb.actions\n"
        "import runbook_lib.clients.prometheus, runbook_lib.kernel.sources.postgres"
    )
    assert "runbook_lib.kernel.notebook" in mods and "runbook_lib.kernel.actions" in mods
    host = [f"runbook_lib.{p}" for p in HOST_PACKAGES]
    assert [m for m in mods if any(m == h or m.startswith(h + ".") for h in host)] == []


def test_a_worker_module_loads_no_notebook_machinery_before_process_setup() -> None:
    """The spawn start method imports the worker's module first: nbformat and jsonschema (and with
    them the slow rfc3987 grammar) must wait until worker_main has called process.prepare()."""
    mods = loaded_after("import runbook_lib.workers.jobs")
    assert "runbook_lib.workers.jobs" in mods
    assert not {"nbformat", "jsonschema", "papermill", "nbconvert"} & set(mods)


def make_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_private_name_contract_finds_a_private_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_package(
        tmp_path,
        {
            "pkgp/__init__.py": "",
            "pkgp/a.py": "_secret = 1\npublic = 2\n",
            "pkgp/b.py": "from .a import public\n\ndef f():\n    from .a import _secret\n    return _secret\n",
            "pkgp/c.py": "from pkgp.a import public as p\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = private_imports("pkgp", ["pkgp", "pkgp.a", "pkgp.b", "pkgp.c"])
    assert found == ["pkgp.b:4 imports _secret from pkgp.a"]


def test_the_cycle_contract_sees_imports_inside_functions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from importlinter.domain.contract import ContractCheck

    from tests.contracts import NoCycles

    make_package(
        tmp_path,
        {
            "pkgc/__init__.py": "",
            "pkgc/a.py": "from . import b\n",
            "pkgc/b.py": "def later():\n    from . import a\n    return a\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    graph = grimp.build_graph("pkgc", cache_dir=None)
    contract = NoCycles(name="t", session_options={}, contract_options={"package": "pkgc"})
    check: ContractCheck = contract.check(graph, verbose=False)
    assert not check.kept
    assert {frozenset(c) for c in check.metadata["cycles"]} == {frozenset({"pkgc.a", "pkgc.b"})}


# -- the project's own contracts catch what they are there to catch ---------------------------------
CONTRACTS = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["tool"][
    "importlinter"
]


def contract(name_start: str) -> Any:
    """The pyproject contract whose name starts with ``name_start``, as import-linter builds it."""
    from importlinter import configuration
    from importlinter.contracts.forbidden import ForbiddenContract
    from importlinter.contracts.independence import IndependenceContract
    from importlinter.contracts.layers import LayersContract

    from tests.contracts import ConfinedExternal, NoCycles, NoPrivateImports

    kinds = {
        "forbidden": ForbiddenContract,
        "layers": LayersContract,
        "independence": IndependenceContract,
        "confined": ConfinedExternal,
        "acyclic": NoCycles,
        "private": NoPrivateImports,
    }
    configuration.configure()  # import-linter's own adapters (its timer, its printer), as lint-imports sets them
    [spec] = [c for c in CONTRACTS["contracts"] if c["name"].startswith(name_start)]
    options = {k: v for k, v in spec.items() if k not in ("name", "type")}
    session = {"root_packages": [CONTRACTS["root_package"]], "include_external_packages": True}
    return kinds[spec["type"]](name=spec["name"], session_options=session, contract_options=options)


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        ("runbook_lib.kernel.checks.http", "runbook_lib.receiver.app", "The kernel side imports only"),
        ("runbook_lib.web.records", "runbook_lib.workers.jobs", "The web pages and the workers are independent"),
        ("runbook_lib.web.records", "runbook_lib.workers.jobs", "Host layers"),
        ("runbook_lib.kernel.checks.dlq", "psycopg", "psycopg only in"),
        ("runbook_lib.record.build", "runbook_lib.kernel.notebook", "The host side never imports kernel code"),
        ("runbook_lib.core.settings", "runbook_lib.sre.catalog", "core is the bottom"),
        ("runbook_lib.sre.slo", "runbook_lib.clients.prometheus", "The SRE domain does no I/O"),
        ("runbook_lib.intake.journal", "runbook_lib.notify.messages", "The journal and the notifications"),
        ("runbook_lib.run.runner", "kubernetes", "kubernetes only in its source"),
        ("runbook_lib.core.errors", "runbook_lib.cli", "No import cycles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(importer: str, imported: str, broken: str) -> None:
    """The code as it is keeps each contract; one import more, of the kind the contract forbids,
    breaks it (grimp's graph of the real package, with that one import added)."""
    checked = contract(broken)
    assert checked.check(grimp.build_graph("runbook_lib", include_external_packages=True), verbose=False).kept
    graph = grimp.build_graph("runbook_lib", include_external_packages=True)
    if imported not in graph.modules:
        graph.add_module(imported, is_squashed=True)
    graph.add_import(importer=importer, imported=imported, line_number=1, line_contents=f"import {imported}")
    assert not checked.check(graph, verbose=False).kept


MISTAKES = [
    ["run"],
    ["run", "high-error-rate", "--param", "no_such=1"],
    ["run", "--alert", "/nonexistent/alert.json"],
    ["run", "no-such-runbook"],
    ["run", "triage", "--mode", "resolve", "--execute"],
]


def test_a_mistake_in_the_input_is_answered_before_the_notebook_machinery_loads() -> None:
    """Users feel it: `runbook run` with bad input answers in well under a second, because it
    checks the input before papermill, nbconvert and jupyter_client are imported (one process
    tries every mistake in turn)."""
    probe = (
        "import json, sys\nfrom runbook_lib.cli import main\n"
        "for argv in json.loads(sys.argv[1]):\n"
        "    code = main(argv)\n"
        "    heavy = sorted(m for m in ('papermill', 'nbconvert', 'jupyter_client', 'nbformat') if m in sys.modules)\n"
        "    print(json.dumps([argv, code, heavy]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, json.dumps(MISTAKES)], capture_output=True, text=True, check=False
    )
    seen = [json.loads(line) for line in done.stdout.splitlines()]
    assert seen == [[argv, 2, []] for argv in MISTAKES], done.stderr
