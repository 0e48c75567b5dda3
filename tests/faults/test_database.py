"""The fault matrix's data-layer cases (tests/faults/cases/database.py): each injected for real
on PostgreSQL, its record judged on cause, action, verdict bounds and the case's own expectations.

database-migration-failure and data-corruption are manual runbooks (no alert routes to them):
run_case names them, as on-call (or the migration job) runs them."""

from __future__ import annotations

import pytest

from tests.faults.cases.database import CASES
from tests.faults.matrix import Bench, Case, run_case

pytestmark = pytest.mark.services


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_record_names_the_cause_and_the_action(case: Case, bench: Bench) -> None:
    outcome = run_case(case, bench)
    assert outcome.right, outcome.explain()
