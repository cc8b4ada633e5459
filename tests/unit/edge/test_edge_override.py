"""Inspector overrides on the device: the recent decisions, validation, and what gets queued."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_puller.agent import Agent
from edge_puller.outbox import Outbox
from edge_puller.override import OverrideRequest, queue_override
from edge_puller.recent import lookup
from linefleet_core.errors import PermanentError, UsageError
from linefleet_core.signing import SigningKey
from linefleet_core.wire import Event, EventType, decode_frame
from tests.unit.edge.documents import LINE, TAXONOMY, desired, line_doc
from tests.unit.edge.helpers import spec_for

KEY = SigningKey.generate()
BRIGHT = np.full((48, 64, 3), 220, dtype=np.uint8)
DARK = np.full((48, 64, 3), 30, dtype=np.uint8)


def _agent(tmp_path: Path, recent_frames: int = 100) -> Agent:
    keys = {KEY.key_id: KEY.public}
    src = tmp_path / "src"
    state = tmp_path / "state"
    agent = Agent("plant", "dev-1", state, keys, file_roots=[src], recent_frames=recent_frames)
    agent.offer_desired(desired(KEY, 3, line_doc(spec_for(src, "inc", 1))))
    for _ in range(3):
        agent.tick()
    return agent


def _drain(outbox: Outbox) -> list[tuple[str, bytes]]:
    found = []
    while (message := outbox.first()) is not None:
        found.append((message.topic.rsplit("/", 1)[1], message.payload))
        outbox.ack(message.id)
    return found


def test_override_queues_the_frame_then_the_event_with_the_next_seq(tmp_path: Path) -> None:
    agent = _agent(tmp_path)
    agent.serve("cam-1", "f-bright", BRIGHT)
    agent.serve("cam-1", "f-dark", DARK)
    agent.recent.flush()
    before = agent.outbox.counter("event_seq")
    _drain(agent.outbox)

    request = OverrideRequest("f-bright", "dent", "insp-7", note="dent near the rim")
    done = queue_override(agent.state_dir, request)  # the agent's outbox stays open meanwhile

    assert done.seq == before + 1
    (frame_channel, frame), (event_channel, body) = _drain(agent.outbox)
    assert (frame_channel, event_channel) == ("frames", "events")
    meta, jpeg = decode_frame(frame)  # checks size and sha256
    assert jpeg[:2] == b"\xff\xd8"  # the pixels, as JPEG
    assert (meta.frame_id, meta.line, meta.model, meta.predicted) == (
        "f-bright", LINE, "inc@1", "ok",
    )  # fmt: skip
    event = Event.model_validate(json.loads(body))
    assert (event.type, event.seq, event.line, event.generation) == (
        EventType.INSPECTION_OVERRIDE.value, done.seq, LINE, 3,
    )  # fmt: skip
    assert {k: event.details[k] for k in ("camera", "model", "predicted", "label")} == {
        "camera": "cam-1", "model": "inc@1", "predicted": "ok", "label": "dent",
    }  # fmt: skip
    assert event.details["frame_sha256"] == meta.sha256
    assert event.details["taxonomy"] == TAXONOMY["ref"]
    assert (event.details["inspector"], event.details["note"]) == ("insp-7", "dent near the rim")
    agent.emit("activation", "test", "after the override")  # the agent continues the sequence
    (_, after), *_ = _drain(agent.outbox)
    assert json.loads(after)["seq"] == done.seq + 1


@pytest.mark.parametrize(
    ("request_", "error", "says"),
    [
        (OverrideRequest("f-bright", "rust", "insp-7"), PermanentError, "not a class of"),
        (OverrideRequest("f-bright", "ok", "insp-7"), PermanentError, "nothing to correct"),
        (OverrideRequest("f-never", "dent", "insp-7"), UsageError, "no decision on this frame"),
        (OverrideRequest("f-bright", "dent", "  "), UsageError, "--inspector"),
        (OverrideRequest("f-bright", "dent", "i", line="plant/l-9"), UsageError, "not served"),
    ],
)
def test_bad_overrides_are_refused_and_nothing_is_queued(
    tmp_path: Path, request_: OverrideRequest, error: type[Exception], says: str
) -> None:
    agent = _agent(tmp_path)
    agent.serve("cam-1", "f-bright", BRIGHT)
    agent.recent.flush()
    _drain(agent.outbox)
    with pytest.raises(error, match=says):
        queue_override(agent.state_dir, request_)
    assert agent.outbox.size() == 0


def test_no_state_dir_or_no_desired_state_is_a_usage_error(tmp_path: Path) -> None:
    request = OverrideRequest("f", "dent", "insp-7")
    with pytest.raises(UsageError, match="no such directory"):
        queue_override(tmp_path / "missing", request)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="no desired state"):
        queue_override(tmp_path / "empty", request)


def test_only_the_last_n_decisions_are_kept(tmp_path: Path) -> None:
    agent = _agent(tmp_path, recent_frames=3)
    for n in range(5):
        agent.serve("cam-1", f"f{n}", DARK)
    agent.recent.flush()
    assert [lookup(agent.state_dir, f"f{n}") is not None for n in range(5)] == [
        False, False, True, True, True,
    ]  # fmt: skip
    kept = lookup(agent.state_dir, "f4")
    assert kept is not None and (kept.model, kept.predicted) == ("inc@1", "scratch")
    assert lookup(agent.state_dir, "f4", line="plant/other") is None
