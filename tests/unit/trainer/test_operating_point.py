"""The shared operating point of the features and blend backends (`trainer.operating`)."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.operating import BIASES, PRIOR_FRAMES, escape_margins, shared_point


def _frames(
    lines: dict[str, tuple[list[float], list[float]]],
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Two-class log-probabilities [N, 2] (ok = 0) from each line's (defect margins, ok
    margins): a margin is log P(ok) - log P(defect), so a defect escapes at bias b when its
    margin + b >= 0 and an ok frame is rejected when its margin + b < 0."""
    rows, y, groups = [], [], []
    for line, (defects, oks) in lines.items():
        for cls, margins in ((1, defects), (0, oks)):
            for m in margins:
                rows.append([m, 0.0])
                y.append(cls)
                groups.append(line)
    return np.array(rows), np.array(y), groups


def _line(escapes: int, defects: int, ok_margins: list[float]) -> tuple[list[float], list[float]]:
    """`escapes` defect frames confidently ok (margin 3: a flat tail no small bias moves),
    the rest clearly defects; the ok frames as given."""
    return [3.0] * escapes + [-3.0] * (defects - escapes), ok_margins


def _pooled_bias(log_p: np.ndarray, y: np.ndarray, target: float) -> float:
    """The bias nearest 0 whose pooled escape rate alone is within `target`."""
    margin = escape_margins(log_p, y, 0)
    return next((b for b in BIASES if float(np.mean(margin + b >= 0)) <= target), -8.0)


# ok frames spread over margins 0.1-4: each step of 0.25 toward "defect" rejects about 6% more
SPREAD = list(np.linspace(0.1, 4.0, 100))


def test_one_frame_over_on_one_line_does_not_drive_the_shared_bias_far() -> None:
    """Line a is one frame over the target (6 of 100) and its escapes sit in a flat tail;
    the pool has room (7 of 200). The strict per-line rule (prior 0) buys that one frame with
    bias -3.25, rejecting most of every line's good parts; the shrunk estimate does not."""
    log_p, y, groups = _frames({"a": _line(6, 100, SPREAD), "b": _line(1, 100, SPREAD)})
    strict = shared_point(log_p, y, 0, groups, 0.05, prior=0.0)
    assert strict.bias == -3.25 and strict.line_escape == {"a": 0.0, "b": 0.0}
    rejected = float(np.mean(np.array(SPREAD) + strict.bias < 0))
    assert rejected > 0.75  # what that costs in good frames on each line
    point = shared_point(log_p, y, 0, groups, 0.05)
    assert point.bias == 0.0 and point.met
    assert point.escape == pytest.approx(7 / 200)
    assert point.line_escape == {"a": 0.06, "b": 0.01}
    assert point.line_estimate["a"] == pytest.approx((6 + PRIOR_FRAMES * 0.035) / 200)
    assert max(point.line_estimate.values()) <= 0.05


def test_a_line_still_binds_when_the_pool_has_no_room_or_it_is_far_over() -> None:
    # the pool at the target (10 of 200): no loosening, line a's 6 of 100 binds
    log_p, y, groups = _frames({"a": _line(6, 100, SPREAD), "b": _line(4, 100, SPREAD)})
    assert shared_point(log_p, y, 0, groups, 0.05).bias == -3.25
    # a line far over (20 of 100) binds even with an easy line beside it (pool 21 of 300)
    log_p, y, groups = _frames({"a": _line(20, 100, SPREAD), "b": _line(1, 200, SPREAD)})
    point = shared_point(log_p, y, 0, groups, 0.05)
    assert point.bias == -3.25 and point.line_escape["a"] == 0.0


def test_the_worst_line_binds_not_the_mean() -> None:
    """Line b's 20 defects look like ok (margins 0.1-1.0 escape at bias 0), line a's not."""
    y = np.array([1] * 40 + [0] * 40)
    groups = ["a"] * 20 + ["b"] * 20 + ["a"] * 20 + ["b"] * 20
    log_p = np.zeros((80, 2))
    log_p[:20, 1] = 3.0  # a: clearly defects
    log_p[20:40, 0] = np.linspace(0.1, 1.0, 20)  # b: escapes at bias 0
    log_p[40:, 0] = 3.0
    point = shared_point(log_p, y, 0, groups, 0.05)
    assert point.bias == -1.0  # the first step that lets at most 1 of b's 20 defects through
    assert point.line_escape == {"a": 0.0, "b": 0.05} and point.escape == 1 / 40
    # at a target of 0.15 the pooled rate alone would stop at -0.75 (6 of 40), b's own 6 of
    # 20 hiding behind a's 0 of 20; b's estimate (its 20 frames weigh half) binds
    assert _pooled_bias(log_p, y, 0.15) == -0.75
    assert shared_point(log_p, y, 0, groups, 0.15).bias == -1.0


def test_a_small_line_is_never_let_past_twice_the_target() -> None:
    """Line b has 20 defect frames, 4 escaping (0.2), beside a clean line of 300: with a prior
    of 100 frames the pool (4 of 320) would carry it; its own frames weigh at least half."""
    log_p, y, groups = _frames({"a": _line(0, 300, SPREAD), "b": _line(4, 20, SPREAD)})
    point = shared_point(log_p, y, 0, groups, 0.1)
    assert point.bias == -3.25 and point.line_escape["b"] == 0.0
    assert (4 + PRIOR_FRAMES * 4 / 320) / (20 + PRIOR_FRAMES) <= 0.1  # uncapped it passed
    # at 3 of 20 (0.15 on its own, under twice 0.1) it passes, carried by the pool
    log_p, y, groups = _frames({"a": _line(0, 300, SPREAD), "b": _line(3, 20, SPREAD)})
    assert shared_point(log_p, y, 0, groups, 0.1).bias == 0.0


def test_nothing_to_choose_and_a_target_out_of_reach() -> None:
    log_p, y, groups = _frames({"a": _line(6, 100, SPREAD)})
    assert shared_point(log_p, y, 0, groups, None).bias == 0.0  # no target: plain argmax
    assert shared_point(log_p, y, -1, groups, 0.05).escape is None  # no ok class
    oks = np.array([0] * len(y))
    assert shared_point(log_p, oks, 0, groups, 0.05).escape is None  # no defect frame
    never = np.array([[20.0, 0.0]] * 10 + [[-3.0, 0.0]] * 10)  # 10 defects always called ok
    out = shared_point(never, np.array([1] * 10 + [0] * 10), 0, ["a"] * 20, 0.05)
    assert out.bias == -8.0 and not out.met and out.escape == 1.0


def test_a_line_with_few_defects_counts_in_the_pool_only() -> None:
    # line c: 5 defects, all escaping, under MIN_LINE_DEFECTS (10); the pool (5 of 205) holds
    log_p, y, groups = _frames({"a": _line(0, 200, SPREAD), "c": _line(5, 5, SPREAD)})
    point = shared_point(log_p, y, 0, groups, 0.05)
    assert point.bias == 0.0 and set(point.line_escape) == {"a"}


def test_escape_margins_ignore_a_defect_called_another_defect() -> None:
    log_p = np.log(np.array([[0.5, 0.3, 0.2], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05]]))
    margins = escape_margins(log_p, np.array([1, 2, 0]), 0)
    np.testing.assert_allclose(margins, [np.log(0.5 / 0.3), np.log(0.2 / 0.7)])


@pytest.mark.parametrize("seed", range(20))
def test_the_shrunk_bias_lies_between_the_pooled_and_the_strict_ones(seed: int) -> None:
    """On generated scores: never stricter than every line held on its own, never looser than
    the pool alone, and the pooled escape at it is within the target."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 400))
    y = rng.integers(0, 3, n)
    groups = [f"line-{i}" for i in rng.integers(0, 3, n)]
    log_p = np.log(rng.dirichlet(np.ones(3), n))
    log_p[y == 0, 0] += rng.uniform(0, 2)  # some separation, so the point is not always -8
    strict = shared_point(log_p, y, 0, groups, 0.05, prior=0.0)
    point = shared_point(log_p, y, 0, groups, 0.05)
    assert strict.bias <= point.bias <= _pooled_bias(log_p, y, 0.05)
    assert point.escape is not None
    assert not point.met or point.escape <= 0.05
    assert not point.met or max(point.line_estimate.values(), default=0.0) <= 0.05 + 1e-12
