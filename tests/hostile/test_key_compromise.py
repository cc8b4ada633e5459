"""What a stolen signing key can do, and what rotation does and does not undo (pure calls).

These document the limits stated in docs/security.md: rotation stops *new* forgeries at once,
and because a device keeps its replay floor per signing key (`linefleet_core.highwater`), a
forged huge generation it accepted while the stolen key was pinned stops refusing the
legitimate fleet once that key is unpinned, while replays of the new key's older documents
stay refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge_puller.agent import Agent
from linefleet_core.highwater import floor
from linefleet_core.signing import Refusal, SigningKey, VerifyError, verify
from linefleet_core.wire import Applied
from tests.hostile import wire_corpus as wc
from tests.support.onnx_models import BuiltModel, write_model

OLD = wc.KEY
NEW = SigningKey.generate()


def test_during_rotation_both_keys_verify_and_after_it_only_the_new_one() -> None:
    both = {OLD.key_id: OLD.public, NEW.key_id: NEW.public}
    for key in (OLD, NEW):
        assert verify(wc.signed(wc.document(), key), both, device=wc.DEVICE).generation
    rotated = {NEW.key_id: NEW.public}
    with pytest.raises(VerifyError) as refused:
        verify(wc.signed(wc.document(), OLD), rotated, device=wc.DEVICE)
    assert refused.value.reason is Refusal.UNKNOWN_KEY


def test_a_stolen_key_signs_anything_the_device_then_accepts() -> None:
    """Signatures prove who signed, not what is sane: URL and model are the thief's choice."""
    forged = wc.document(url="http://evil.example/backdoor.onnx")
    doc = verify(wc.signed(forged, OLD), {OLD.key_id: OLD.public}, device=wc.DEVICE)
    assert doc.spec.lines[0].serving.artifact.url == "http://evil.example/backdoor.onnx"


def test_while_the_stolen_key_is_pinned_its_huge_generation_is_the_floor() -> None:
    huge = 2**62
    pinned = {OLD.key_id: OLD.public, NEW.key_id: NEW.public}
    forged = verify(wc.signed(wc.document(huge), OLD), pinned, device=wc.DEVICE)
    marks = {OLD.key_id: Applied(generation=huge, content_hash=forged.content_hash)}
    legit = wc.signed(wc.document(wc.HELD + 10), NEW)  # the real fleet, new key
    with pytest.raises(VerifyError) as refused:
        verify(legit, pinned, device=wc.DEVICE, held=floor(marks, pinned))
    assert refused.value.reason is Refusal.STALE
    rotated = {NEW.key_id: NEW.public}  # the stolen key unpinned: its mark no longer binds
    assert floor(marks, rotated) is None
    assert verify(legit, rotated, device=wc.DEVICE, held=floor(marks, rotated)).generation


def test_a_forged_huge_generation_no_longer_binds_after_the_rotation(tmp_path: Path) -> None:
    """End to end on a real edge agent: verify, persist, restart with the new pin set."""
    good = write_model(tmp_path / "src" / "good.onnx")
    evil = write_model(tmp_path / "src" / "evil.onnx", pad_bytes=512)

    def doc(generation: int, built: BuiltModel, key: SigningKey) -> bytes:
        document = wc.document(generation, url=built.url, sha=built.sha256, size=built.size)
        return wc.signed(document, key)

    def device(*keys: SigningKey) -> Agent:
        pinned = {k.key_id: k.public for k in keys}
        return Agent(wc.SITE, wc.DEVICE, tmp_path / "state", pinned, file_roots=[tmp_path])

    def offer(agent: Agent, payload: bytes) -> list[str]:
        """Deliver one document, converge; the refusal reasons it caused."""
        agent.offer_desired(payload)
        for _ in range(4):
            agent.tick()
        refused = []
        while (message := agent.outbox.first()) is not None:
            body = json.loads(message.payload)
            if body.get("type") == "refused-document":
                refused.append(body["reason"])
            agent.outbox.ack(message.id)
        return refused

    def serving(agent: Agent) -> str:
        active = agent.state.active["plant/line-1"].serving
        return active.artifact.sha256 if active else ""

    # Rotation: both keys pinned; the reconciler re-signs what the device holds with the new key.
    agent = device(OLD, NEW)
    assert offer(agent, doc(40, good, OLD)) == []
    assert offer(agent, doc(40, good, NEW)) == []  # a duplicate: it only marks the new key
    assert offer(agent, doc(2**62, evil, OLD)) == []  # the thief, while the key is trusted
    assert serving(agent) == evil.sha256 and agent.state.applied_generation == 2**62
    assert offer(agent, doc(41, good, NEW)) == [Refusal.STALE.value]
    agent.outbox.close()

    # The stolen key is unpinned; the device restarts with the new pin set (same state).
    agent = device(NEW)
    assert offer(agent, doc(39, good, NEW)) == [Refusal.STALE.value]  # replay below NEW's mark
    assert offer(agent, doc(2**62 + 1, evil, OLD)) == [Refusal.UNKNOWN_KEY.value]
    assert offer(agent, doc(41, good, NEW)) == []  # the legitimate fleet is obeyed again
    assert serving(agent) == good.sha256 and agent.state.applied_generation == 41
    agent.outbox.close()
