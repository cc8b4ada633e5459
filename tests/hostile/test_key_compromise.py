"""What a stolen signing key can do, and what rotation does and does not undo (pure calls).

These document the limits stated in docs/security.md: rotation stops *new* forgeries at once,
but a forged document with a huge generation that a device already accepted keeps refusing
the legitimate fleet (`stale-generation`) until that device's state is reset.
"""

from __future__ import annotations

import pytest

from linefleet_core.signing import Refusal, SigningKey, VerifyError, verify
from linefleet_core.wire import Applied
from tests.hostile import wire_corpus as wc

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


def test_a_forged_huge_generation_outlives_the_rotation() -> None:
    huge = 10**18
    pinned = {OLD.key_id: OLD.public, NEW.key_id: NEW.public}
    forged = verify(wc.signed(wc.document(huge), OLD), pinned, device=wc.DEVICE)
    held = Applied(generation=forged.generation, content_hash=forged.content_hash)
    legit = wc.signed(wc.document(wc.HELD + 10), NEW)  # the real fleet, new key
    with pytest.raises(VerifyError) as refused:
        verify(legit, {NEW.key_id: NEW.public}, device=wc.DEVICE, held=held)
    assert refused.value.reason is Refusal.STALE
