from __future__ import annotations

import numpy as np
import pytest

from trainer.active import rank, uncertainty, unscale

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


def test_ranking_divides_the_operating_point_back_out() -> None:
    # the classifier's own P: a is a coin flip ok/scratch, b is surely ok, c surely scratch
    own = np.array([[0.5, 0.5], [0.999, 0.001], [0.001, 0.999]])
    scale = 1e-3  # an operating point that multiplies P(ok) by 1e-3 (export: renormalised)
    placed = own * [scale, 1.0]
    placed /= placed.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(unscale(placed, 0, scale), own)
    # on the placed probabilities the surely-ok frame b looks the most uncertain...
    assert rank(["a", "b", "c"], placed, "margin")[0][0] == "b"
    # ...on the classifier's own, the coin flip a is first
    assert [f for f, _ in rank(["a", "b", "c"], placed, "margin", 0, scale)] == ["a", "b", "c"]
    np.testing.assert_array_equal(unscale(placed, None, scale), placed)
    with pytest.raises(ValueError, match="ok_scale"):
        unscale(placed, 0, 0.0)
