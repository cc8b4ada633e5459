"""The tiny ONNX classifiers follow the model I/O contract and are reproducible."""

from __future__ import annotations

import hashlib

import numpy as np
import onnxruntime as ort
import pytest

from factory_sim.onnx_fixtures import OUTPUT_NAME, build_classifier


@pytest.mark.parametrize(("classes", "channels"), [(2, 3), (7, 3), (4, 1)])
def test_output_is_a_distribution_over_the_classes(classes: int, channels: int) -> None:
    built = build_classifier(classes, channels=channels, height=32, width=48)
    session = ort.InferenceSession(built.data, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape == [1, channels, 32, 48]
    frame = np.random.default_rng(1).random((1, channels, 32, 48), dtype=np.float32)
    (probs,) = session.run([OUTPUT_NAME], {inp.name: frame})
    assert probs.shape == (1, classes)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert (probs >= 0).all()


def test_same_seed_same_bytes_and_the_digest_matches() -> None:
    a, b = build_classifier(6, seed=3), build_classifier(6, seed=3)
    assert a.data == b.data
    assert a.sha256 == hashlib.sha256(a.data).hexdigest()
    assert a.size == len(a.data) < 8192
    assert build_classifier(6, seed=4).sha256 != a.sha256


def test_a_single_class_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        build_classifier(1)
