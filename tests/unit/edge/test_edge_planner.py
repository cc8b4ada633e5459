"""Table tests of the pure planner: (observed) -> steps."""

from __future__ import annotations

from dataclasses import replace

import pytest

from edge_puller.observed import Observed, Running, SpoolView
from edge_puller.planner import RETIRED_SPOOL_GRACE, fingerprint, plan
from edge_puller.state import ActiveLine, Failure
from edge_puller.steps import (
    Activate,
    DeleteSpool,
    Download,
    LoadAndSmokeTest,
    MarkApplied,
    MarkSpool,
    Prune,
    Report,
    Resume,
    Retire,
    Step,
    Unload,
    Verify,
    Wait,
)
from linefleet_core.wire import ModelSpec
from tests.support.wiremodels import candidate, gates, model_spec
from tests.unit.edge.helpers import target

L = "plant/line-1"


def _m(n: int) -> ModelSpec:
    return model_spec(f"m@{n}", f"{n:064x}", 100 * n, f"file:///m{n}", ("ok", "x"), (1, 3, 8, 8))


M1, M2, M3 = _m(1), _m(2), _m(3)
SHADOW = candidate(M3, "shadow")
CANARY = candidate(M3, "canary", 0.1)
FAIL = Failure("hash-mismatch", "sha256 differs", 1)
GATES = gates()


def _settled(observed: Observed) -> Observed:
    """The same observation with the engine running the active lines and the report sent."""
    running = {k: r for k, a in observed.active.items() if (r := Running.of(a)) is not None}
    settled = replace(observed, running=running)
    return replace(settled, reported=fingerprint(settled))


def _sha(*models: ModelSpec) -> frozenset[str]:
    return frozenset(m.artifact.sha256 for m in models)


CASES: list[tuple[str, Observed, list[Step]]] = [
    ("nothing held: only a first report", Observed(target=None), [Report()]),
    (
        "first desired state: download, verify, load, switch, applied",
        Observed(target=target(M1), reported="x"),
        [
            Download(M1),
            Verify(M1, resumed=False),
            LoadAndSmokeTest(M1),
            Activate(L, ActiveLine(M1, None, "a"), GATES),
            MarkApplied(1),
            Report(),
        ],
    ),
    (
        "complete part file: verify only",
        _settled(Observed(target=target(M1), partial={M1.artifact.sha256: M1.artifact.size})),
        [
            Verify(M1, resumed=True),
            LoadAndSmokeTest(M1),
            Activate(L, ActiveLine(M1, None, "a"), GATES),
            MarkApplied(1),
        ],
    ),
    (
        "interrupted download resumes",
        _settled(Observed(target=target(M1), partial={M1.artifact.sha256: 7})),
        [
            Download(M1),
            Verify(M1, resumed=True),
            LoadAndSmokeTest(M1),
            Activate(L, ActiveLine(M1, None, "a"), GATES),
            MarkApplied(1),
        ],
    ),
    (
        "converged: nothing to do",
        _settled(
            Observed(
                target=target(M1),
                active={L: ActiveLine(M1, None, "a")},
                stored=_sha(M1),
                loaded=_sha(M1),
                applied_generation=1,
            )
        ),
        [],
    ),
    (
        "upgrade: new model into the other slot, old one stays hot as standby",
        _settled(
            Observed(
                target=target(M2, previous=M1, generation=2),
                active={L: ActiveLine(M1, None, "a")},
                stored=_sha(M1, M2),
                loaded=_sha(M1),
                applied_generation=1,
            )
        ),
        [LoadAndSmokeTest(M2), Activate(L, ActiveLine(M1, M2, "b"), GATES), MarkApplied(2)],
    ),
    (
        "upgrade without a named previous keeps the old serving model as standby",
        _settled(
            Observed(
                target=target(M2, generation=2),
                active={L: ActiveLine(M1, None, "a")},
                stored=_sha(M1, M2),
                loaded=_sha(M1, M2),
                applied_generation=1,
            )
        ),
        [Activate(L, ActiveLine(M1, M2, "b"), GATES), MarkApplied(2)],
    ),
    (
        "rollback: a pointer swap to the loaded standby, nothing downloaded or loaded",
        _settled(
            Observed(
                target=target(M1, previous=M2, generation=3),
                active={L: ActiveLine(M1, M2, "b")},
                stored=_sha(M1, M2),
                loaded=_sha(M1, M2),
                applied_generation=2,
            )
        ),
        [Activate(L, ActiveLine(M1, M2, "a"), GATES), MarkApplied(3)],
    ),
    (
        "shadow candidate is staged after the serving model and switched in",
        _settled(
            Observed(
                target=target(M1, candidate=SHADOW, generation=2),
                active={L: ActiveLine(M1, None, "a")},
                stored=_sha(M1),
                loaded=_sha(M1),
                applied_generation=1,
            )
        ),
        [
            Download(SHADOW),  # the candidate's model, as the line names it
            Verify(SHADOW, resumed=False),
            LoadAndSmokeTest(SHADOW),
            Activate(L, ActiveLine(M1, None, "a", SHADOW), GATES),
            MarkApplied(2),
        ],
    ),
    (
        "failed candidate: the line runs without it, the generation still applies",
        _settled(
            Observed(
                target=target(M1, candidate=CANARY, generation=2),
                active={L: ActiveLine(M1, None, "a", CANARY)},
                stored=_sha(M1, M3),
                loaded=_sha(M1, M3),
                failures={M3.artifact.sha256: FAIL},
                applied_generation=1,
            )
        ),
        [
            Resume(L, ActiveLine(M1, None, "a")),  # stop running it at once
            Activate(L, ActiveLine(M1, None, "a"), GATES),
            MarkApplied(2),
        ],
    ),
    (
        "candidate dropped by the engine at runtime: persisted without it, never resumed",
        replace(
            _settled(
                Observed(
                    target=target(M1, candidate=CANARY, generation=2),
                    active={L: ActiveLine(M1, None, "a", CANARY)},
                    stored=_sha(M1, M3),
                    loaded=_sha(M1, M3),
                    failures={M3.artifact.sha256: FAIL},
                    applied_generation=2,
                )
            ),
            running={L: Running(M1.artifact.sha256)},  # the engine already runs without it
        ),
        [Activate(L, ActiveLine(M1, None, "a"), GATES), Report()],
    ),
    (
        "next tick: the failed candidate is unloaded and its file pruned",
        _settled(
            Observed(
                target=target(M1, candidate=CANARY, generation=2),
                active={L: ActiveLine(M1, None, "a")},
                stored=_sha(M1, M3),
                loaded=_sha(M1, M3),
                failures={M3.artifact.sha256: FAIL},
                applied_generation=2,
            )
        ),
        [Unload(M3.artifact.sha256), Prune(_sha(M1))],
    ),
    (
        "failed serving model: keep serving the old one and wait",
        _settled(
            Observed(
                target=target(M2, generation=2),
                active={L: ActiveLine(M1, None, "a")},
                stored=_sha(M1),
                loaded=_sha(M1),
                failures={M2.artifact.sha256: FAIL},
                applied_generation=1,
            )
        ),
        [Wait("plant/line-1: m@2 hash-mismatch: sha256 differs (waiting for a new desired state)")],
    ),
    (
        "after a restart: load and resume the active models first, then converge",
        replace(
            _settled(
                Observed(
                    target=target(M2, previous=M1, generation=2),
                    active={L: ActiveLine(M1, None, "a")},
                    stored=_sha(M1),
                    applied_generation=1,
                )
            ),
            running={},
        ),
        [
            LoadAndSmokeTest(M1),
            Resume(L, ActiveLine(M1, None, "a")),
            Download(M2),
            Verify(M2, resumed=False),
            LoadAndSmokeTest(M2),
            Activate(L, ActiveLine(M1, M2, "b"), GATES),
            MarkApplied(2),
            Report(),
        ],
    ),
    (
        "serving file lost while powered off: the standby inspects while it is fetched again",
        replace(
            _settled(
                Observed(
                    target=target(M2, previous=M1, generation=2),
                    active={L: ActiveLine(M1, M2, "b")},
                    stored=_sha(M1),
                    applied_generation=2,
                )
            ),
            running={},
        ),
        [
            LoadAndSmokeTest(M1),
            Resume(L, ActiveLine(M1, None, "a")),
            Download(M2),
            Verify(M2, resumed=False),
            LoadAndSmokeTest(M2),
            Report(),
        ],
    ),
    (
        "a line no longer served is retired and its models unloaded and pruned",
        _settled(
            Observed(
                target=target(M1, line="plant/line-2", generation=2),
                active={L: ActiveLine(M2, None, "a")},
                stored=_sha(M1, M2),
                loaded=_sha(M1, M2),
                applied_generation=1,
            )
        ),
        [
            Activate("plant/line-2", ActiveLine(M1, None, "a"), GATES),
            MarkApplied(2),
            Retire(L),
            Unload(M2.artifact.sha256),
            Prune(_sha(M1)),
        ],
    ),
]


@pytest.mark.parametrize(
    ("observed", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_plan(observed: Observed, expected: list[Step]) -> None:
    assert plan(observed) == expected


def test_plan_is_pure_and_deterministic() -> None:
    observed = Observed(
        target=target(M2, previous=M1, candidate=CANARY), partial={M3.artifact.sha256: 5}
    )
    assert plan(observed) == plan(observed)


NOW = 1_800_000_000.0
OLD = "plant/line-old"


@pytest.mark.parametrize(
    ("spool", "expected"),
    [
        (SpoolView(pending=3), [MarkSpool(OLD, retired=True)]),
        (SpoolView(pending=3, retired_at=NOW - 60), [MarkSpool(OLD, retired=True)]),  # restart
        (SpoolView(pending=3, retired_at=NOW - 60, loaded=True), []),  # uploading: wait
        (SpoolView(pending=0, retired_at=NOW - 60, loaded=True), [DeleteSpool(OLD, left=0)]),
        (
            SpoolView(pending=3, retired_at=NOW - RETIRED_SPOOL_GRACE, loaded=True),
            [DeleteSpool(OLD, left=3)],
        ),
    ],
    ids=["just retired", "after a restart", "draining", "drained", "grace period over"],
)
def test_the_spool_of_a_line_no_longer_served(spool: SpoolView, expected: list[Step]) -> None:
    observed = _settled(
        Observed(
            target=target(M1),
            active={L: ActiveLine(M1, None, "a")},
            stored=_sha(M1),
            loaded=_sha(M1),
            applied_generation=1,
            spools={OLD: spool, L: SpoolView(pending=5, loaded=True)},
            now=NOW,
        )
    )
    assert plan(observed) == expected


def test_a_line_served_again_gets_its_spool_back() -> None:
    observed = _settled(
        Observed(
            target=target(M1),
            active={L: ActiveLine(M1, None, "a")},
            stored=_sha(M1),
            loaded=_sha(M1),
            applied_generation=1,
            spools={L: SpoolView(pending=2, retired_at=NOW - 5, loaded=True)},
            now=NOW,
        )
    )
    assert plan(observed) == [MarkSpool(L, retired=False)]
