"""Three import-linter contract types import-linter does not ship (used from pyproject.toml):

- ``acyclic``: no import cycle between the package's modules, counting imports made inside
  functions and under TYPE_CHECKING as well as module-level ones (grimp records them all);
- ``private``: no module imports another module's private name (``from .x import _y``);
- ``confined``: a third-party package is imported only where a contract allows it.
"""

from __future__ import annotations

import ast
import importlib.util
from fnmatch import fnmatch
from pathlib import Path

import grimp
from importlinter import Contract, ContractCheck, fields, output


def _modules(graph: grimp.ImportGraph, package: str) -> list[str]:
    return sorted({package, *graph.find_descendants(package)})


class NoCycles(Contract):
    type_name = "acyclic"
    package = fields.StringField()

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        package = str(self.package)
        cycles: dict[frozenset[str], tuple[str, ...]] = {}
        for module in _modules(graph, package):
            for imported in sorted(graph.find_modules_directly_imported_by(module)):
                if imported == module or not imported.startswith(package):
                    continue
                back = graph.find_shortest_chain(importer=imported, imported=module)
                if back:
                    cycle = (module, *back)
                    cycles.setdefault(frozenset(cycle), cycle)
        return ContractCheck(kept=not cycles, metadata={"cycles": sorted(cycles.values())})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for cycle in check.metadata["cycles"]:
            output.print_error(" -> ".join(cycle), bold=False)
            output.new_line()


def private_imports(package: str, modules: list[str]) -> list[str]:
    """``importer:line imports _name from module`` for every private name imported across modules."""
    found = []
    for module in modules:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue
        is_package = spec.submodule_search_locations is not None
        tree = ast.parse(Path(spec.origin).read_text(), spec.origin)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _resolve(module, is_package, node)
            if not target.startswith(package) or target == module:
                continue
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{module}:{node.lineno} imports {alias.name} from {target}")
    return found


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


class NoPrivateImports(Contract):
    type_name = "private"
    package = fields.StringField()

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        found = private_imports(str(self.package), _modules(graph, str(self.package)))
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["found"]:
            output.print_error(line, bold=False)
            output.new_line()


class ConfinedExternal(Contract):
    """``confined``: one third-party package (``external``) is imported only by the modules of
    ``package`` that ``allowed`` names (fnmatch patterns: ``runbook_lib.kernel.sources.postgres*``).
    Needs ``include_external_packages = true`` so that grimp sees imports of outside packages."""

    type_name = "confined"
    package = fields.StringField()
    external = fields.StringField()
    allowed = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        external, patterns = str(self.external), [str(p) for p in self.allowed]
        if external not in graph.modules:
            return ContractCheck(kept=True, metadata={"found": []})
        found = sorted(
            importer
            for importer in graph.find_modules_that_directly_import(external)
            if importer.startswith(str(self.package)) and not any(fnmatch(importer, p) for p in patterns)
        )
        return ContractCheck(kept=not found, metadata={"found": found, "external": external})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for module in check.metadata["found"]:
            output.print_error(f"{module} imports {check.metadata['external']}", bold=False)
            output.new_line()
