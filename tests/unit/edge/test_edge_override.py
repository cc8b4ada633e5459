"""Inspector overrides on the device: the recent decisions, validation, and what gets queued."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge_puller.agent import Agent
from edge_puller.corrections import read_corrections
from edge_puller.outbox import Outbox
from edge_puller.override import OverrideRequest, queue_override, queue_overrides
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


def _two_decisions(tmp_path: Path) -> Agent:
    agent = _agent(tmp_path)
    agent.serve("cam-1", "f-bright", BRIGHT)
    agent.serve("cam-1", "f-dark", DARK)
    agent.recent.flush()
    _drain(agent.outbox)
    return agent


def test_a_batch_is_queued_in_one_go_with_consecutive_seqs(tmp_path: Path) -> None:
    agent = _two_decisions(tmp_path)
    before = agent.outbox.counter("event_seq")
    requests = [
        OverrideRequest("f-bright", "dent", "insp-7", source="hmi.jsonl:1"),
        OverrideRequest("f-dark", "ok", "insp-8", note="glare", source="hmi.jsonl:2"),
    ]
    done = queue_overrides(agent.state_dir, requests)

    assert [d.seq for d in done] == [before + 1, before + 2]
    assert [(d.predicted, d.label) for d in done] == [("ok", "dent"), ("scratch", "ok")]
    sent = _drain(agent.outbox)
    assert [channel for channel, _ in sent] == ["frames", "events", "frames", "events"]
    events = [Event.model_validate(json.loads(body)) for ch, body in sent if ch == "events"]
    frames = [decode_frame(body)[0] for ch, body in sent if ch == "frames"]
    assert [e.seq for e in events] == [d.seq for d in done]
    assert [e.details["frame_id"] for e in events] == ["f-bright", "f-dark"]
    assert [e.details["inspector"] for e in events] == ["insp-7", "insp-8"]
    assert events[1].details["note"] == "glare" and "note" not in events[0].details
    assert [f.sha256 for f in frames] == [e.details["frame_sha256"] for e in events]


def test_a_batch_with_bad_rows_names_each_of_them_and_queues_nothing(tmp_path: Path) -> None:
    agent = _two_decisions(tmp_path)
    before = agent.outbox.counter("event_seq")
    requests = [
        OverrideRequest("f-bright", "dent", "insp-7", source="hmi.jsonl:1"),
        OverrideRequest("f-dark", "rust", "insp-7", source="hmi.jsonl:2"),
        OverrideRequest("f-dark", "scratch", "insp-7", source="hmi.jsonl:3"),
    ]
    with pytest.raises(PermanentError) as refused:
        queue_overrides(agent.state_dir, requests)
    assert str(refused.value).splitlines() == [
        f"hmi.jsonl:2: label rust: not a class of {TAXONOMY['ref']} on {LINE} "
        "(classes: ok, scratch, dent)",
        "hmi.jsonl:3: label scratch: inc@1 already said scratch on frame f-dark; "
        "nothing to correct",
    ]
    unknown = [*requests[:1], OverrideRequest("f-gone", "dent", "insp-7", source="hmi.jsonl:4")]
    with pytest.raises(UsageError, match=r"hmi\.jsonl:4: frame f-gone: no decision"):
        queue_overrides(agent.state_dir, unknown)  # an unknown frame makes it a usage error
    twice = [requests[0], OverrideRequest("f-bright", "scratch", "insp-8", source="hmi.jsonl:5")]
    with pytest.raises(
        UsageError,
        match=r"hmi\.jsonl:5: frame f-bright: corrected twice in one batch \(first at hmi\.jsonl:1\)",
    ):
        queue_overrides(agent.state_dir, twice)
    assert agent.outbox.size() == 0
    assert agent.outbox.counter("event_seq") == before  # no sequence number was used up


def test_corrections_from_json_lines_take_defaults_and_report_every_bad_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "hmi.jsonl"
    path.write_text(
        '{"frame": "f-1", "label": "dent"}\n'
        "\n"
        '{"frame": "f-2", "label": "ok", "inspector": "insp-8", "note": "glare", "line": "a/b"}\n'
    )
    first, second = read_corrections(str(path), inspector="insp-7", line="a/c", note="shift 2")
    assert first == OverrideRequest("f-1", "dent", "insp-7", "a/c", "shift 2", f"{path}:1")
    assert second == OverrideRequest("f-2", "ok", "insp-8", "a/b", "glare", f"{path}:3")

    path.write_text('{"frame": "f-1"}\n[1]\n{"frame": 7, "label": "x", "camera": "c"}\nnope\n')
    with pytest.raises(UsageError) as refused:
        read_corrections(str(path), inspector="insp-7")
    lines = str(refused.value).splitlines()
    assert lines[:3] == [
        f"{path}:1: label: required",
        f"{path}:2: not a JSON object",
        f"{path}:3: camera: unknown field (known: frame, label, line, note, inspector); "
        "frame: must be a string",
    ]
    assert lines[3].startswith(f"{path}:4: not JSON")
    path.write_text('{"frame": "f-1", "label": "dent"}\n')
    with pytest.raises(UsageError, match=r"hmi.jsonl:1: inspector: required"):
        read_corrections(str(path))
    path.write_text("\n\n")
    with pytest.raises(UsageError, match="no corrections in it"):
        read_corrections(str(path), inspector="insp-7")
    with pytest.raises(UsageError, match="cannot read"):
        read_corrections(str(tmp_path / "missing.jsonl"), inspector="insp-7")
    # A note pasted with a line separator (U+2028, valid inside a JSON string) is one row; a
    # Latin-1 row is located (it refused the whole file by byte offset, and U+2028 split a row).
    note = json.dumps({"frame": "f-1", "label": "dent", "note": "a\u2028b"}, ensure_ascii=False)
    path.write_bytes(note.encode() + b"\r\n" + b'{"frame": "f-2", "label": "d\xe9nt"}\n')
    with pytest.raises(UsageError) as refused:
        read_corrections(str(path), inspector="insp-7")
    assert str(refused.value) == (
        f"{path}:2: not valid UTF-8 (byte 0xe9 at column 29); save the file as UTF-8"
    )
    path.write_bytes(b"\xef\xbb\xbf" + note.encode() + b"\r\n")
    (only,) = read_corrections(str(path), inspector="insp-7")
    assert only.note == "a\u2028b"


def test_a_correction_with_a_lone_surrogate_escape_is_refused_by_field(tmp_path: Path) -> None:
    """The inspector's name `"insp\\ud800"` went into an event no receiver can store."""
    path = tmp_path / "hmi.jsonl"
    path.write_text('{"frame": "f-1", "label": "dent", "inspector": "insp\\ud800"}\n')
    with pytest.raises(UsageError, match=rf"{path}:1: inspector: a string holds a lone surrogate"):
        read_corrections(str(path))


def test_a_correction_giving_a_field_twice_is_refused_by_field(tmp_path: Path) -> None:
    """`{"label": "ok", ..., "label": "dent"}` from an HMI export was sent as dent, silently
    (json.loads keeps the last value)."""
    path = tmp_path / "hmi.jsonl"
    path.write_text('{"frame": "f-1", "label": "ok", "inspector": "insp-7", "label": "dent"}\n')
    with pytest.raises(UsageError) as refused:
        read_corrections(str(path))
    assert str(refused.value) == (
        f"{path}:1: label: given twice in one object; keep the value that is meant"
    )
