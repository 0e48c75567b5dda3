"""The fault matrix's queue, workflow and RPC cases (tests/faults/cases/workflows.py): each injected for real, its
record judged on cause, action and verdict bounds."""

from __future__ import annotations

import pytest

from tests.faults.cases.workflows import CASES
from tests.faults.matrix import Bench, Case, run_case

pytestmark = pytest.mark.services


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_record_names_the_cause_and_the_action(case: Case, bench: Bench) -> None:
    outcome = run_case(case, bench)
    assert outcome.right, outcome.explain()
