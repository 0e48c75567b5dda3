"""The cause vocabulary: every code a runbook can name is documented, the reference in
docs/runbooks.md is the module's, and no check names a code its runbook does not list."""

from __future__ import annotations

import re

from runbook_lib.sre import causes
from tests.helpers import HOME


def test_the_runbook_reference_publishes_the_vocabulary() -> None:
    doc = (HOME / "docs" / "runbooks.md").read_text()
    found = re.search(r"<!-- causes:begin[^>]*-->\n(.*?)\n<!-- causes:end -->", doc, re.S)
    assert found, "docs/runbooks.md has no causes section"
    assert found.group(1).strip() == causes.reference_markdown().strip(), "regenerate: runbook generate"


def test_every_code_a_check_names_is_in_the_vocabulary() -> None:
    named = set()
    for path in (HOME / "runbook_lib" / "kernel").rglob("*.py"):
        named |= set(re.findall(r"""\bcause\s*=\s*"([a-z_]+)\"""", path.read_text()))
        named |= set(re.findall(r"""\bcause(?:\s*=\s*cause)?\s+or\s+"([a-z_]+)\"""", path.read_text()))
    assert named, "no cause codes found: the pattern is wrong"
    assert named <= set(causes.CAUSES), f"undocumented codes: {sorted(named - set(causes.CAUSES))}"
    listed = {c for codes in causes.BY_RUNBOOK.values() for c in codes}
    assert listed <= set(causes.CAUSES), sorted(listed - set(causes.CAUSES))
    assert set(causes.CAUSES) <= listed, f"codes no runbook names: {sorted(set(causes.CAUSES) - listed)}"
