from __future__ import annotations

import numpy as np
import pytest

from trainer.active import rank, uncertainty

P = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [1 / 3, 1 / 3, 1 / 3]])


def test_least_confidence_and_margin_and_entropy() -> None:
    np.testing.assert_allclose(uncertainty(P, "least-confidence"), [0.1, 0.6, 0.5, 2 / 3])
    np.testing.assert_allclose(uncertainty(P, "margin"), [0.15, 0.95, 1.0, 1.0])
    ent = uncertainty(P, "entropy")
    assert ent[3] == pytest.approx(1.0) and ent[0] < ent[1] < ent[3]


def test_rank_is_most_uncertain_first_and_stable_on_ties() -> None:
    frames = ["a", "b", "c", "d"]
    assert [f for f, _ in rank(frames, P, "margin")] == ["c", "d", "b", "a"]
    assert [f for f, _ in rank(frames, P, "least-confidence")] == ["d", "b", "c", "a"]


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="K >= 2"):
        uncertainty(np.ones((3, 1)), "margin")
    with pytest.raises(ValueError, match="unknown strategy"):
        uncertainty(P, "random")  # type: ignore[arg-type]
