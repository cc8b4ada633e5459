"""A canary that turns bad after a long good start is dropped: the gates look at recent frames.

Real agent, real ONNX models in onnxruntime. The candidate's decision boundary is darker than
the serving model's, so both agree under bright light; when the lighting dims, the candidate
calls `ok` what the serving model calls `scratch`. Counted since activation, the long good
start would dilute that for hundreds of frames; over the rolling window it trips after a
tenth of a window of bad frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_puller.agent import Agent
from edge_puller.gatewindow import GATE_WINDOW
from linefleet_core.signing import SigningKey
from linefleet_core.wire import Event
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.integration

KEY = SigningKey.generate()
BRIGHT = np.full((48, 64, 3), 220, dtype=np.uint8)  # both models: ok
DIM = np.full((48, 64, 3), 100, dtype=np.uint8)  # serving: scratch, candidate: ok
MIN_AGREEMENT = 0.9  # line_doc's min_shadow_agreement


def test_canary_that_turns_bad_after_a_good_start_is_dropped(tmp_path: Path) -> None:
    serving = spec_for(tmp_path / "src", "inc", 1)
    candidate = spec_for(tmp_path / "src", "cand", 2, threshold=0.3)
    keys = {KEY.key_id: KEY.public}
    agent = Agent("plant", "dev-1", tmp_path / "state", keys, file_roots=[tmp_path / "src"])
    line = line_doc(serving, candidate=candidate, stage="canary", fraction=0.5)
    agent.offer_desired(desired(KEY, 1, line))
    for _ in range(4):
        agent.tick()

    good = 0
    for n in range(3 * GATE_WINDOW):  # a long good start: ~1.5 windows of candidate frames
        decision = agent.serve("cam-1", f"bright-{n}", BRIGHT)
        good += decision.decided_by == "candidate"
    assert good > GATE_WINDOW and agent.engine.lines()["plant/line-1"].candidate is not None

    bad = 0
    for n in range(2 * GATE_WINDOW):  # the lighting dims
        decision = agent.serve("cam-1", f"dim-{n}", DIM)
        bad += decision.candidate is not None
        if agent.engine.lines()["plant/line-1"].candidate is None:
            break
    # dropped on the first disagreement that takes the window's agreement below the gate
    first_below = next(
        k for k in range(GATE_WINDOW) if (GATE_WINDOW - k) / GATE_WINDOW < MIN_AGREEMENT
    )
    assert bad == first_below
    assert agent.engine.lines()["plant/line-1"].candidate is None
    after = agent.serve("cam-1", "dim-after", DIM)
    assert (after.decided_by, after.model, after.label) == ("serving", "inc@1", "scratch")

    agent.tick()  # the engine's decision becomes a local failure and an event
    assert candidate.artifact.sha256 in agent.state.failures
    events = []
    while (message := agent.outbox.first()) is not None:
        if message.topic.endswith("/events"):
            events.append(Event.model_validate(json.loads(message.payload)))
        agent.outbox.ack(message.id)
    rollback = [e for e in events if e.type == "rollback"]
    assert [(e.reason, e.line) for e in rollback] == [("min_shadow_agreement", "plant/line-1")]
    assert f"of the last {GATE_WINDOW} candidate frames" in rollback[0].message
