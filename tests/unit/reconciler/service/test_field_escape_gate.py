"""The field escape gate: judged on the lower 95% bound of the audit estimate, so it breaks on
evidence, not on a high rate over too few samples; a broken gate makes the line's device
Degraded in status."""

from __future__ import annotations

import pytest

from linefleet_core.catalogue import Rate
from linefleet_core.conditions import ConditionType, Reason
from linefleet_core.floors import rate
from reconciler.service.fleetstatus import fleet_status
from reconciler.service.healthgates import FIELD_ESCAPE, field_escape_violation
from reconciler.service.observed import Observations

from .test_fleetstatus import NOW, desired, report


@pytest.mark.parametrize(
    ("count", "of", "limit", "broken"),
    [
        (1, 10, 0.05, False),  # 10% observed, but ten samples do not show it is above 5%
        (1, 40, 0.05, False),
        (0, 200, 0.05, False),
        (3, 20, 0.05, True),  # lower bound 0.052
        (1, 2, 0.05, True),  # lower bound 0.094: one defect in two is evidence
        (10, 40, 0.05, True),  # lower bound 0.142
        (10, 40, 0.3, False),
        (10, 40, None, False),  # no limit set: off
    ],
)
def test_the_gate_breaks_only_when_the_lower_bound_is_past_the_limit(
    count: int, of: int, limit: float | None, broken: bool
) -> None:
    estimate = rate(count, of)
    found = field_escape_violation(estimate, limit)
    assert (found is not None) == broken
    if found is not None:
        assert (found.gate, found.value, found.threshold) == (FIELD_ESCAPE, estimate.low, limit)
        assert found.render() == f"lower bound of {FIELD_ESCAPE}: {estimate.low:.3g} > {limit:.3g}"


def test_no_estimate_breaks_nothing() -> None:
    assert field_escape_violation(None, 0.01) is None
    assert field_escape_violation(rate(0, 0), 0.01) is None


def test_a_broken_field_gate_makes_the_lines_device_degraded() -> None:
    doc = desired()
    line = doc.spec.lines[0].line
    obs = Observations()
    obs.ingest(f"linefleet/v1/{doc.site}/{doc.device}/reported", report(doc), NOW, live=False)
    key = f"{doc.site}/{doc.device}"

    def condition(escapes: dict[str, Rate], limit: float | None) -> tuple[str, str]:
        dev = fleet_status(
            {key: doc}, obs, NOW, field_escapes=escapes, max_field_escape_rate=limit
        ).devices[0]
        return dev.condition.type.value, dev.condition.reason

    assert condition({}, 0.05) == (ConditionType.SYNCED.value, Reason.APPLIED)
    assert condition({line: rate(10, 40)}, None) == (ConditionType.SYNCED.value, Reason.APPLIED)
    assert condition({line: rate(1, 40)}, 0.05) == (ConditionType.SYNCED.value, Reason.APPLIED)
    assert condition({line: rate(10, 40)}, 0.05) == (
        ConditionType.DEGRADED.value, Reason.HEALTH_GATE,
    )  # fmt: skip
    assert condition({"elsewhere/line-9": rate(10, 40)}, 0.05)[0] == ConditionType.SYNCED.value
