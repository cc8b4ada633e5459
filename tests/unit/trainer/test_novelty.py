"""The novelty fitter: a valid plain-ONNX graph that onnxruntime runs, equal to the statistics it
was fitted with (patch Gaussians, absolute and frame-relative, colour and grey deviation maps, each
part standardised on the fit frames scored out of fold), and
scoring a line's defect frames and frames of another source above the threshold chosen on
held-out ok frames."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from sklearn.covariance import LedoitWolf

from factory_sim.profiles import draw_profile
from factory_sim.render import frame_rng, render_frame
from linefleet_core.errors import PermanentError
from linefleet_core.modelio import Contract, prepare
from tests.support.othersource import foreign_frames
from trainer.novelty import (
    DIMS,
    GF_DIMS,
    INPUT,
    OPSET,
    PARTS,
    SCORE,
    NoveltyConfig,
    cross_standardised,
    features,
    fit_novelty,
    fit_statistics,
    gaussians,
    local,
    novelty_model,
    predictive_excess,
    raw_parts,
    scores_of,
    standardise,
    tail_size,
    threshold_for,
)

SIZE = 128
CONTRACT = Contract(classes=("ok", "scratch"), height=SIZE, width=SIZE, task="anomaly")
PROFILE = draw_profile("toledo", "line-1", seed=4)


def _inputs(frames: list[Any]) -> Any:
    return np.concatenate([prepare(f, CONTRACT)[0] for f in frames])


def _line(cls: str, first: int, count: int) -> Any:
    return _inputs(
        [render_frame(PROFILE, cls, frame_rng(9, PROFILE, first + i), SIZE) for i in range(count)]
    )


@pytest.fixture(scope="module")
def fitted() -> Any:
    return fit_novelty(
        _line("ok", 0, 60), _line("ok", 1000, 40), NoveltyConfig(false_alarm_rate=0.05)
    )


def test_the_graph_is_plain_onnx_with_the_declared_input_and_one_score(fitted: Any) -> None:
    model = onnx.load_model_from_string(fitted.onnx)
    onnx.checker.check_model(model, full_check=True)
    assert {(o.domain, o.version) for o in model.opset_import} == {("", OPSET)}
    assert {n.domain for n in model.graph.node} == {""}
    (inp,) = model.graph.input
    assert inp.name == INPUT
    assert [d.dim_value for d in inp.type.tensor_type.shape.dim] == [1, 3, SIZE, SIZE]
    assert [o.name for o in model.graph.output] == [SCORE]
    scores = fitted.score(_line("ok", 2000, 3))
    assert scores.shape == (3,) and np.all(np.isfinite(scores)) and np.all(scores >= 0)


def test_the_score_is_the_largest_standardised_part_from_the_fitted_statistics() -> None:
    train, held, probe = _line("ok", 0, 30), _line("ok", 1000, 10), _line("scratch", 500, 4)
    config = NoveltyConfig(false_alarm_rate=0.2)
    model = fit_novelty(train, held, config)
    fit = fit_statistics(train, config)
    stats = fit.stats
    assert model.onnx == novelty_model(config, stats)
    train_patches, train_chroma, train_grey, train_free, train_colour = features(train, config)
    assert train_patches.shape == (len(train), config.grid**2, DIMS) and config.grid == 15
    mean, _ = gaussians(train_patches, config.grid)
    np.testing.assert_allclose(stats.mean, mean)
    # a position's Gaussian pools its neighbours: the corner's mean is its 2 x 2 block's
    laid = train_patches.reshape(len(train), config.grid, config.grid, DIMS)
    np.testing.assert_allclose(mean[0], laid[:, :2, :2].reshape(-1, DIMS).mean(0))
    local_mean, _ = gaussians(local(train_patches), config.grid)
    np.testing.assert_allclose(stats.local_mean, local_mean)
    np.testing.assert_allclose(stats.chroma_mu, train_chroma.mean(0))
    np.testing.assert_allclose(stats.grey_sd, train_grey.std(0) + 0.02)
    # the grain-free neighbourhoods: 25 samples 3 px apart every 4 px of the 64 px map
    assert train_free.shape == (len(train), 13 * 13, GF_DIMS) and config.gf_grid == 13
    gf_mean, _ = gaussians(train_free, config.gf_grid)
    np.testing.assert_allclose(stats.gf_mean, gf_mean)

    def worst(f: Any, mu: Any, prec: Any) -> Any:
        # the largest mean over 3 x 3 neighbouring positions of the G x G distance map
        d = f - mu
        grid = round(np.sqrt(f.shape[1]))
        dist = np.sqrt(np.einsum("npi,pij,npj->np", d, prec, d)).reshape(len(f), grid, grid)
        windows = np.lib.stride_tricks.sliding_window_view(dist, (3, 3), axis=(1, 2))
        return windows.mean(axis=(3, 4)).max(axis=(1, 2))

    def parts(x: Any, fitted_on: Any) -> Any:
        """Raw parts of inputs `x` under statistics of the train frames `fitted_on` selects."""
        patches, chroma, grey, free, colour = features(x, config)  # [N, P, DIMS], maps, ...
        base = train_patches[fitted_on]
        mu, prec = gaussians(base, config.grid)
        lmu, lprec = gaussians(local(base), config.grid)
        c_mu, c_sd = train_chroma[fitted_on].mean(0), train_chroma[fitted_on].std(0) + 1e-3
        g_mu, g_sd = train_grey[fitted_on].mean(0), train_grey[fitted_on].std(0) + 0.02
        f_mu, f_prec = gaussians(train_free[fitted_on], config.gf_grid)
        # the frame colour: one Gaussian, its covariance floored by (0.02, 0.02, 0.1, 0.1)^2
        base_colour = train_colour[fitted_on]
        shrunk = LedoitWolf().fit(base_colour).covariance_
        colour_delta = colour - base_colour.mean(0)
        colour_prec = np.linalg.inv(shrunk + np.diag([0.02**2, 0.02**2, 0.1**2, 0.1**2]))
        colour_d = np.sqrt(np.einsum("ni,ij,nj->n", colour_delta, colour_prec, colour_delta))
        return np.stack(
            [
                worst(patches, mu, prec),
                worst(local(patches), lmu, lprec),
                ((chroma - c_mu) / c_sd).max(axis=(1, 2, 3)),
                ((grey - g_mu) / g_sd).max(axis=(1, 2, 3)),
                worst(free, f_mu, f_prec),
                colour_d,
            ],
            axis=1,
        )

    # every train frame is scored by statistics fitted without its fold (10 interleaved
    # folds); the parts are standardised on those out-of-fold parts alone
    everything = np.ones(len(train), bool)
    fold = np.arange(len(train)) % 10
    pooled = np.empty((len(train), 6))
    for f in range(10):
        pooled[fold == f] = parts(train[fold == f], fold != f)
    logs = np.log(np.maximum(pooled, 0) + 1e-3)
    # the tail: with 30 frames, the 10 largest logs above the 11th largest, u; the scale their
    # mean excess over u
    ordered = np.sort(logs, axis=0)
    loc = ordered[-11]
    spread = np.maximum(0.02, np.mean(ordered[-10:] - loc, axis=0))
    np.testing.assert_allclose(stats.loc, loc, atol=2e-3)
    np.testing.assert_allclose(stats.spread, spread, rtol=2e-2, atol=2e-3)
    z = (np.log(np.maximum(parts(probe, everything), 0) + 1e-3) - loc) / spread
    expected = np.exp(np.minimum(z.max(axis=1), 40.0))
    np.testing.assert_allclose(model.score(probe), expected, rtol=2e-2)
    # the threshold is the 80% quantile of those 30 out-of-fold scores: 6 at or above it
    calibration = np.asarray(model.calibration_scores)
    assert len(calibration) == 30
    assert np.sum(calibration >= model.threshold) == 6
    # the threshold's scores: each frame's out-of-fold parts standardised by the other folds'
    # tails alone (neither the statistics nor the standardisation saw the frame)
    expected_calibration = np.empty(len(train))
    for f in range(10):
        other = np.sort(np.log(np.maximum(pooled[fold != f], 0) + 1e-3), axis=0)
        f_loc = other[-11]  # 27 frames: still the 10 largest over the 11th
        f_spread = np.maximum(0.02, np.mean(other[-10:] - f_loc, axis=0))
        f_z = (np.log(np.maximum(pooled[fold == f], 0) + 1e-3) - f_loc) / f_spread
        expected_calibration[fold == f] = np.exp(np.minimum(f_z.max(axis=1), 40.0))
    np.testing.assert_allclose(calibration, np.asarray(expected_calibration), rtol=2e-2)
    # the held-out frames took no part: their scores are the artifact's, by the full statistics
    held_z = (np.log(np.maximum(parts(held, everything), 0) + 1e-3) - loc) / spread
    np.testing.assert_allclose(
        model.heldout_scores, np.exp(np.minimum(held_z.max(axis=1), 40.0)), rtol=2e-2
    )


def test_each_part_is_standardised_by_an_exponential_fit_to_its_largest_tenth() -> None:
    # exponential log values: the edge is the 361st largest of 400 and the scale the mean excess
    rng = np.random.default_rng(0)
    logs = 1.0 + rng.exponential(0.5, 400)
    loc, spread = standardise([np.exp(logs) - 1e-3])
    ordered = np.sort(logs)
    assert loc[0] == pytest.approx(ordered[-41], abs=1e-6)
    assert spread[0] == pytest.approx(np.mean(ordered[-40:] - ordered[-41]), rel=1e-6)
    assert spread[0] == pytest.approx(0.5, rel=0.25)
    # two parts alike in the bulk, one with a heavier far tail (a fiftieth of its frames far
    # up): measured by their bulk they look alike; measured where the threshold lies, the
    # heavy-tailed part gets the wider scale, so both exceed a standardised value about
    # equally often on fresh frames of the same kind
    bulk = rng.normal(0.0, 1.0, 400)
    heavy = bulk.copy()
    heavy[::50] += rng.exponential(6.0, 8)
    loc, spread = standardise([np.exp(bulk) - 1e-3, np.exp(heavy) - 1e-3])
    assert spread[1] > 2 * spread[0]
    fresh = rng.normal(0.0, 1.0, 40000)
    fresh_heavy = fresh.copy()
    fresh_heavy[::50] += rng.exponential(6.0, 800)
    rates = [np.mean((v - at) / width > 2.3) for v, at, width in
             zip((fresh, fresh_heavy), loc, spread, strict=True)]  # fmt: skip
    assert all(0.002 <= r <= 0.03 for r in rates) and max(rates) < 4 * min(rates)
    # a part that never varied gets the floor; a single value is its own edge
    assert standardise([np.array([2.0] * 50)])[1] == (0.02,)
    assert standardise([np.array([2.0])]) == ((pytest.approx(np.log(2.001)),), (0.02,))


@pytest.mark.parametrize(("count", "size"), [(400, 40), (200, 20), (100, 10), (40, 10), (5, 4)])
def test_the_tail_is_a_tenth_of_the_calibration_frames_and_at_least_ten(
    count: int, size: int
) -> None:
    assert tail_size(count) == size


def test_normal_frames_stay_under_the_threshold_defects_and_foreign_frames_do_not(
    fitted: Any,
) -> None:
    normal = fitted.score(_line("ok", 3000, 40))
    defects = fitted.score(
        np.concatenate([_line(c, 4000 + 100 * k, 10) for k, c in enumerate(("scratch", "dent"))])
    )
    foreign = fitted.score(_inputs(foreign_frames(24, seed=1)))
    assert np.mean(normal >= fitted.threshold) <= 0.15  # asked 0.05 on 40 other frames
    assert np.mean(defects >= fitted.threshold) >= 0.8
    assert np.all(foreign >= fitted.threshold)
    assert np.median(foreign) > 2 * np.median(normal)


def test_the_threshold_is_set_on_the_fit_frames_out_of_fold_at_the_false_alarm_rate(
    fitted: Any,
) -> None:
    # 60 fit frames scored out of fold: floor(0.05 * 60) = 3 at or above the threshold; the
    # 40 held-out frames are not among the calibration scores (an independent check)
    pooled = np.asarray(fitted.calibration_scores)
    assert len(pooled) == 60 and len(fitted.heldout_scores) == 40
    assert np.sum(pooled >= fitted.threshold) == 3


def test_the_held_out_frames_do_not_move_the_model_or_its_threshold() -> None:
    # the same fit frames with other held-out frames give the same artifact and threshold:
    # the held-out false-alarm rate checks the asked one, it is not tuned to it
    train, config = _line("ok", 0, 30), NoveltyConfig(false_alarm_rate=0.1)
    one = fit_novelty(train, _line("ok", 1000, 10), config)
    other = fit_novelty(train, _line("scratch", 1500, 10), config)
    assert one.onnx == other.onnx and one.threshold == other.threshold
    assert one.calibration_scores == other.calibration_scores
    assert one.heldout_scores != other.heldout_scores


def test_fresh_ok_frames_are_flagged_near_the_asked_rate() -> None:
    # the asked rate is honoured on frames neither the fit nor the threshold saw: 400 fresh
    # ok frames of another line at 5% asked (a binomial spread of about 1.1%, and the
    # threshold's own from 150 calibration frames; the band is wide enough not to flake)
    profile = draw_profile("toledo", "line-2", seed=8)

    def frames(first: int, count: int) -> Any:
        return _inputs(
            [render_frame(profile, "ok", frame_rng(5, profile, first + i), SIZE)
             for i in range(count)]
        )  # fmt: skip

    model = fit_novelty(frames(0, 120), frames(500, 30), NoveltyConfig(false_alarm_rate=0.05))
    fresh = model.score(frames(2000, 400))
    assert 0.02 <= float(np.mean(fresh >= model.threshold)) <= 0.09


@pytest.mark.parametrize(
    ("scores", "rate", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 0.25, 4.0),  # one of four may be at or above
        ([1.0, 2.0, 3.0, 4.0], 0.5, 3.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 3.0),  # order does not matter
        (list(range(1, 101)), 0.1, 91),  # ten above it: the quantile itself
    ],
)
def test_threshold_for_allows_at_most_the_rate(
    scores: list[float], rate: float, expected: float
) -> None:
    threshold = threshold_for(scores, rate)
    assert threshold == expected
    assert sum(s >= threshold for s in scores) <= rate * len(scores)


def test_under_ten_scores_above_it_the_threshold_comes_from_an_exponential_tail_of_the_logs() -> (
    None
):
    # 200 scores at 1%: the 20 largest logs over the 21st largest, their mean excess the
    # scale, extrapolated from 20/200 to 1/100 with the scale's uncertainty allowed for:
    # 20 * (10^(1/20) - 1) = 2.44 scales above the edge, not ln 10 = 2.30
    rng = np.random.default_rng(3)
    scores = np.exp(rng.normal(0.0, 1.0, 200))
    logs = np.sort(np.log(scores))
    edge, scale = logs[-21], np.mean(logs[-20:] - logs[-21])
    assert predictive_excess(20, 200, 0.01) == pytest.approx(20 * (10 ** (1 / 20) - 1))
    expected = np.exp(edge + scale * 20 * (10 ** (1 / 20) - 1))
    assert threshold_for(scores.tolist(), 0.01) == pytest.approx(expected, rel=1e-12)
    # below 100 scores the top tenth is under ten: the quantile (here the 2nd largest of 60)
    assert threshold_for(scores[:60].tolist(), 0.04) == np.sort(scores[:60])[-2]


def test_the_tail_threshold_lands_on_the_asked_rate_on_average() -> None:
    # log scores exponential (so a frame reaches log t with probability exp(-log t)): over
    # 2000 draws of 200 calibration scores, the true rate of the threshold at 1% is about 1%
    # on average (a fresh frame's chance over the draws: 1.08%, the edge being an estimate too),
    # where the plug-in ln(k / (n * rate)) gives 1.22%; and it stays under 2.5% in nine of ten
    rng = np.random.default_rng(1)
    draws = np.exp(rng.exponential(1.0, (2000, 200)))
    true = np.array([1.0 / threshold_for(d.tolist(), 0.01) for d in draws])
    assert 0.0095 <= float(np.mean(true)) <= 0.0112
    assert float(np.quantile(true, 0.9)) <= 0.025
    plug_in = []
    for d in draws:
        logs = np.sort(np.log(d))
        plug_in.append(np.exp(-(logs[-21] + np.mean(logs[-20:] - logs[-21]) * np.log(10.0))))
    assert float(np.mean(plug_in)) >= 0.0118


def test_below_one_in_n_the_threshold_sits_just_above_every_heldout_score() -> None:
    threshold = threshold_for([1.0, 2.0, 3.0], 0.01)
    assert threshold > 3.0 and threshold == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("train", "heldout", "config", "message"),
    [
        (5, 10, NoveltyConfig(), "at least 10"),
        (20, 2, NoveltyConfig(), "false-alarm check needs at least 5"),
        (20, 10, NoveltyConfig(patch=7), "not a multiple"),
        (20, 10, NoveltyConfig(size=80, patch=16), "not a multiple of patch 16 and of 32"),
        (20, 10, NoveltyConfig(false_alarm_rate=0.0), "fraction"),
    ],
)
def test_too_little_or_wrong_input_is_a_clear_error(
    train: int, heldout: int, config: NoveltyConfig, message: str
) -> None:
    with pytest.raises(PermanentError, match=message):
        fit_novelty(_line("ok", 0, train), _line("ok", 1000, heldout), config)


def _grained(rng: np.random.Generator, dent: bool) -> Any:
    """A brushed surface: streaks along a direction within 10 degrees of the rows, mottling
    the size of a dent, a per-frame gain; with `dent`, a shaded dent (a lit rim beside a
    shadowed one, radius 10 px) whose contrast is that of the streaks and the mottling."""
    streaks = np.repeat(rng.standard_normal((SIZE, 1)), SIZE, axis=1)
    mottling = cv2.resize(rng.standard_normal((8, 8)), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    grey = 0.5 + 0.04 * streaks + 0.03 * mottling
    turn = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), rng.uniform(-10, 10), 1.0)
    grey = cv2.warpAffine(grey, turn, (SIZE, SIZE), borderMode=cv2.BORDER_REFLECT)
    if dent:
        cy, cx = rng.uniform(40, 88, 2)
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        u, v = (xx - cx) / 10, (yy - cy) / 10
        light = rng.uniform(0, 2 * np.pi)
        rims = (np.cos(light) * u + np.sin(light) * v) * np.exp(-1.5 * (u * u + v * v))
        grey = grey + 0.12 * rims
    grey = grey * rng.uniform(0.8, 1.2)
    return np.clip(np.repeat(grey[:, :, None], 3, axis=2) * 255, 0, 255).astype(np.uint8)


def test_a_shallow_dent_on_grain_stands_out_in_the_grain_free_part() -> None:
    # the dent's energy and peaks stay within the streaks' and the mottling's: on this seed
    # no dent's largest standardised other part exceeds the largest of 20 fresh ok frames
    # (measured by hand); the grain-free neighbourhoods, judged against the camera's own,
    # lift most dents above every ok frame's
    rng = np.random.default_rng(3)
    config = NoveltyConfig()

    def frames(count: int, dent: bool) -> Any:
        return _inputs([_grained(rng, dent) for _ in range(count)])

    fit = fit_statistics(frames(40, False), config)
    part = PARTS.index("grainfree_part")
    ok = raw_parts(fit.stats, features(frames(20, False), config))[:, part]
    dents = raw_parts(fit.stats, features(frames(20, True), config))[:, part]
    assert np.sum(dents > ok.max()) >= 12


def test_the_calibration_scores_are_standardised_without_their_own_fold() -> None:
    # each frame's parts are standardised by the tails of the other folds' parts alone
    rng = np.random.default_rng(5)
    raw = np.exp(rng.normal(0.0, 1.0, (200, 6)))
    scores = cross_standardised(raw, folds=10)
    fold = np.arange(200) % 10
    for f in (0, 7):
        loc, spread = standardise([raw[fold != f, k] for k in range(6)])
        np.testing.assert_allclose(scores[fold == f], scores_of(raw[fold == f], loc, spread))


def test_a_threshold_on_cross_standardised_scores_keeps_fresh_false_alarms_at_the_asked_rate() -> (
    None
):
    # six parts of light-tailed normal values: standardised by tails fitted to the very frames
    # the threshold is then chosen on, those frames look more normal than fresh ones and the
    # threshold at 1% flags more than 1% of fresh frames over 300 draws of 200; standardised
    # without their fold, about the asked rate
    rng = np.random.default_rng(11)
    own: list[float] = []
    crossed: list[float] = []
    for _ in range(300):
        raw = np.exp(rng.normal(0.0, 1.0, (200, 6)))
        fresh = np.exp(rng.normal(0.0, 1.0, (4000, 6)))
        loc, spread = standardise([raw[:, k] for k in range(6)])
        fresh_scores = scores_of(fresh, loc, spread)
        for scores, out in ((scores_of(raw, loc, spread), own), (cross_standardised(raw), crossed)):
            out.append(float(np.mean(fresh_scores >= threshold_for(scores.tolist(), 0.01))))
    assert float(np.mean(own)) >= 0.0125
    assert float(np.mean(crossed)) <= 0.0105


def _grey(frame: Any) -> Any:
    return cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def _frames(cls: str, first: int, count: int) -> list[Any]:
    return [
        render_frame(PROFILE, cls, frame_rng(9, PROFILE, first + i), SIZE) for i in range(count)
    ]


def test_a_grey_or_channel_swapped_frame_on_a_colour_line_is_far_above_the_threshold(
    fitted: Any,
) -> None:
    # every other part judges colour relative to the frame's own or the grey level alone:
    # without the frame colour part 11 of these 12 grey frames scored 0.01-0.2 of the threshold
    ok = _frames("ok", 5000, 12)
    grey = fitted.score(_inputs([_grey(f) for f in ok]))
    swapped = fitted.score(_inputs([np.ascontiguousarray(f[:, :, ::-1]) for f in ok]))
    assert np.all(grey >= 100 * fitted.threshold)
    assert np.all(swapped >= 10 * fitted.threshold)
    assert np.mean(fitted.score(_inputs(ok)) >= fitted.threshold) <= 0.25
    # the part itself: the frame colour's distance, far beyond every ok frame's
    stats = fit_statistics(_line("ok", 0, 30), NoveltyConfig()).stats
    part = PARTS.index("frame_colour_part")
    ok_part = raw_parts(stats, features(_inputs(ok), NoveltyConfig()))[:, part]
    grey_part = raw_parts(stats, features(_inputs([_grey(f) for f in ok]), NoveltyConfig()))
    assert grey_part[:, part].min() > 10 * ok_part.max()


def test_a_colour_frame_on_a_grey_line_is_far_above_the_threshold() -> None:
    # a grey camera's frames have three equal channels: no colour at all, on every ok frame
    train = _inputs([_grey(f) for f in _frames("ok", 0, 40)])
    held = _inputs([_grey(f) for f in _frames("ok", 1000, 10)])
    model = fit_novelty(train, held, NoveltyConfig(false_alarm_rate=0.05))
    ok = _frames("ok", 6000, 12)
    grey = model.score(_inputs([_grey(f) for f in ok]))
    colour = model.score(_inputs(ok))
    assert np.mean(grey >= model.threshold) <= 0.25
    assert np.all(colour >= 100 * model.threshold)
