"""Every hostile or careless pull request of `gate_corpus` is refused, located, never exit 3."""

from __future__ import annotations

import pytest

from tests.hostile.gate_corpus import CASES, Case, example_fleet, run_case, validate


def test_the_example_fleet_itself_is_valid() -> None:
    with example_fleet() as root:
        assert validate(root).code == 0


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_hostile_change_is_refused_with_a_location(case: Case) -> None:
    outcome = run_case(case)
    assert outcome.code == 1, outcome
    assert outcome.located, outcome.findings
