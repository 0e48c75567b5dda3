"""The fault matrix's platform cases (tests/faults/cases/platform.py): service-down,
high-latency and triage by their alerts, deployment-failure as the deploy pipeline starts it; each injected for real,
its record judged on cause, action, verdict bounds and the case's own expectation."""

from __future__ import annotations

import pytest

from tests.faults.cases.platform import CASES
from tests.faults.matrix import Bench, Case, run_case

pytestmark = pytest.mark.services


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_the_record_names_the_cause_and_the_action(case: Case, bench: Bench) -> None:
    outcome = run_case(case, bench)
    print(f"\n{case.name}: {outcome.seconds:.1f} s; {outcome.diagnosis['headline']}")
    assert outcome.right, outcome.explain()
