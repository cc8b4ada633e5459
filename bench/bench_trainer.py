"""Trainer benchmarks: active learning vs random, override -> dataset latency, cross-line.

    python bench/bench_trainer.py            (or: python bench/run.py trainer)

1. Active learning (margin sampling) vs random sampling: labels needed to reach the same
   holdout accuracy (the target is the accuracy of a model trained on the whole pool, minus
   one point). Same features and classifier as `linefleet train`. Twice: on the 60%-defect
   data of the other experiments, and on data with a factory's defect rate (10%).
2. An inspector override -> a confirmed label in a new dataset version: ingest the edge
   event, QA-confirm it, build the dataset version (label store with ~1,600 labels, then
   with 50,000 more).
3. The cross-line experiment: a model trained on one line's data vs one trained on every
   line, each evaluated on every line's holdout (`linefleet train` pipeline end to end).
"""

from __future__ import annotations

import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory_sim.dataset import generate  # noqa: E402
from tests.support.trainer_data import (  # noqa: E402
    frame_payload,
    jpeg,
    override_event,
    write_taxonomies,
)
from trainer.datasets import build  # noqa: E402
from trainer.evaluate import ModelUnderTest, evaluate  # noqa: E402
from trainer.events import EventKind, NewEvent  # noqa: E402
from trainer.features import extract, feature_graph  # noqa: E402
from trainer.imports import import_annotations  # noqa: E402
from trainer.overrides import ingest  # noqa: E402
from trainer.train import TrainConfig, fit, load_images  # noqa: E402
from trainer.views import replay  # noqa: E402
from trainer.workspace import Workspace  # noqa: E402

CLASSES = ["ok", "scratch", "contamination", "spot"]
TAXONOMY = "surface-defects@1"
FRAMES_PER_LINE = 400
SIZE = 64
CAP = 800  # labels; a strategy that has not reached the target by then counts as CAP + BATCH
BATCH = 5  # labels added per round (small batches let margin sampling react; LR fits are cheap)
SEEDS = 7
REALISTIC_RATE = 0.1  # defects are rare on a real line; random sampling then labels mostly `ok`
REALISTIC_FRAMES = 600  # per line: enough defects (~240) for a meaningful holdout


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def workspace(
    root: Path, frames: int = FRAMES_PER_LINE, defect_rate: float = 0.6, seed: int = 11
) -> Workspace:
    repo = root / "repo"
    write_taxonomies(repo)
    log(f"generating {frames} frames x 4 lines, {defect_rate:.0%} defects, seed {seed}")
    generate(
        root / "sim", taxonomy=CLASSES, lines=(2, 2), frames_per_line=frames,
        seed=seed, defect_rate=defect_rate, size=SIZE,
    )  # fmt: skip
    ws = Workspace(state=root / "state", fleet_repo=repo)
    store = ws.open_store()
    import_annotations(
        root / "sim" / "manifest.jsonl", store, ws.frames, annotator="sim", taxonomy=TAXONOMY
    )
    return ws


# -- 1. active learning ---------------------------------------------------------------------


def _fit_score(x: Any, y: Any, xt: Any, yt: Any) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(y.tolist())) < 2:
        return 0.0
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    model.fit(x, y)
    return float((model.predict(xt) == yt).mean())


def _curve(x: Any, y: Any, xt: Any, yt: Any, strategy: str, seed: int) -> list[tuple[int, float]]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from trainer.active import uncertainty

    rng = np.random.default_rng(seed)
    labelled = list(rng.choice(len(x), 20, replace=False))
    curve = []
    while len(labelled) <= min(len(x), CAP):
        idx = np.array(labelled)
        curve.append((len(labelled), _fit_score(x[idx], y[idx], xt, yt)))
        pool = np.setdiff1d(np.arange(len(x)), idx)
        if len(pool) == 0:
            break
        if strategy == "random" or len(set(y[idx].tolist())) < 2:
            pick = rng.choice(pool, min(BATCH, len(pool)), replace=False)
        else:
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
            model.fit(x[idx], y[idx])
            scores = uncertainty(model.predict_proba(x[pool]), "margin")
            pick = pool[np.argsort(-scores, kind="stable")[:BATCH]]
        labelled.extend(int(i) for i in pick)
    return curve


def active_learning(ws: Workspace) -> dict[str, Any]:
    store = ws.open_store()
    version = build(replay(store.events(), store.taxonomies), store.taxonomies[TAXONOMY])
    train, hold = version.train(), version.holdout()
    graph = feature_graph(SIZE)
    x = extract(graph, load_images(ws.frames, train, SIZE))
    xt = extract(graph, load_images(ws.frames, hold, SIZE))
    y = np.array([CLASSES.index(i.cls) for i in train])
    yt = np.array([CLASSES.index(i.cls) for i in hold])
    full = _fit_score(x, y, xt, yt)
    target = full - 0.01
    needed: dict[str, list[int]] = {"random": [], "margin": []}
    for seed in range(SEEDS):
        for strategy in needed:
            curve = _curve(x, y, xt, yt, strategy, seed)
            hit = next((n for n, acc in curve if acc >= target), None)
            needed[strategy].append(hit if hit is not None else CAP + BATCH)
            log(f"  {strategy} seed {seed}: {hit} labels")
    rand, marg = statistics.median(needed["random"]), statistics.median(needed["margin"])
    return {
        "pool": len(x),
        "holdout": len(xt),
        "full_pool_accuracy": round(full, 4),
        "target_accuracy": round(target, 4),
        "labels_random": needed["random"],
        "labels_margin": needed["margin"],
        "median_random": rand,
        "median_margin": marg,
        "reduction": round(1 - marg / rand, 3) if rand else 0.0,
    }


# -- 2. override -> dataset latency -----------------------------------------------------------


def override_latency(root: Path, ws: Workspace, extra: int = 0) -> dict[str, Any]:
    """Median of 5 override -> dataset round trips, after adding `extra` annotations."""
    from linefleet_core.taxonomy import Taxonomy
    from trainer.store import FrameInfo

    store = ws.open_store()
    if extra:
        infos = [
            FrameInfo(hashlib.sha256(f"bulk-{i}".encode()).hexdigest(), "toledo", "line-1", "c")
            for i in range(extra)
        ]
        store.append(
            [NewEvent(EventKind.ANNOTATION, "bulk", frame=f.sha256, cls="ok",
                      taxonomy="surface-defects@2") for f in infos],
            new_frames=infos,
        )  # fmt: skip
    tax: Taxonomy = store.taxonomies["surface-defects@2"]
    samples = []
    for n in range(5):
        data = jpeg(1000 + n + extra)
        sha = hashlib.sha256(data).hexdigest()
        start = time.perf_counter()
        seq = 100 + n + extra
        report = ingest(store, ws.frames, [override_event(seq, sha, "oil")],
                        [frame_payload(data, f"bench-{seq}")])  # fmt: skip
        (task,) = [t for t in store.state().tasks()
                   if t.kind.value == "override" and t.frame == sha]  # fmt: skip
        store.append([NewEvent(EventKind.QA, "qa-lead", target=task.id, detail="confirm")])
        version = build(store.state(), tax)
        elapsed = time.perf_counter() - start
        assert report.queued == 1 and any(i.frame == sha for i in version.items)
        samples.append(elapsed)
    return {
        "labels_in_store": len(store.events()),
        "samples_s": [round(s, 3) for s in samples],
        "median_s": round(statistics.median(samples), 3),
    }


# -- 3. cross-line --------------------------------------------------------------------------

CROSS_FRAMES = 1500  # per line: a holdout of ~300 frames per line (one frame ~0.3 points)
CROSS_SEEDS = (11, 12, 13)  # each seed draws other line profiles (materials, cameras, light)


def cross_line(root: Path, seed: int) -> dict[str, Any]:
    """Pilot (first line only) and all-lines models, each scored on every line's holdout."""
    ws = workspace(root, CROSS_FRAMES, 0.6, seed)
    store = ws.open_store()
    version = build(replay(store.events(), store.taxonomies), store.taxonomies[TAXONOMY])
    lines = version.lines()
    out: dict[str, Any] = {"seed": seed, "pilot_line": lines[0],
                           "holdout": {k: len(version.holdout(k)) for k in lines}}  # fmt: skip
    for name, config in (("pilot", TrainConfig(lines=(lines[0],))), ("all", TrainConfig())):
        model = fit(version, ws.frames, config)
        under = ModelUnderTest(model.onnx, SIZE, SIZE, "rgb", version.classes, version.taxonomy)
        _, per_line = evaluate(under, version.holdout(), ws.frames, version.classes,
                               version.taxonomy, store.taxonomies)  # fmt: skip
        out[name] = {k: round(s.accuracy, 4) for k, s in per_line.items()}
        log(f"  seed {seed} {name}: {out[name]}")
    multi = out["all"]
    out["mean"] = round(statistics.mean(multi.values()), 4)
    out["worst"] = round(min(multi.values()), 4)
    out["gap"] = round(out["mean"] - out["worst"], 4)
    out["pilot_others"] = round(
        statistics.mean(v for k, v in out["pilot"].items() if k != lines[0]), 4
    )
    return out


def _cross_markdown(runs: list[dict[str, Any]], gap: float, met: bool) -> str:
    rows = []
    for run in runs:
        for k in sorted(run["all"]):
            pilot = "(pilot)" if k == run["pilot_line"] else ""
            rows.append(f"| {run['seed']} | `{k}` {pilot} | {run['holdout'][k]} | "
                        f"{run['pilot'][k]:.3f} | {run['all'][k]:.3f} |")  # fmt: skip
    summary = "\n".join(
        f"| {r['seed']} | {r['mean']:.3f} | {r['worst']:.3f} | {r['gap']:.3f} | "
        f"{r['pilot_others']:.3f} |"
        for r in runs
    )
    verdict = "met" if met else "not met"
    over = [f"seed {r['seed']} ({r['gap']:.3f})" for r in runs if r["gap"] > 0.03]
    outliers = (
        f" Outside 3 points in this run: {', '.join(over)}; the target is met on the median."
        if over and met
        else ""
    )
    return f"""**Cross-line**: a pilot model trained on one line's frames and a model trained on
every line's frames (the `linefleet train` pipeline end to end), each scored on every line's
holdout. {len(runs)} factories (data seeds {", ".join(str(r["seed"]) for r in runs)}: each
seed draws its own four line profiles), 4 lines x {CROSS_FRAMES} frames, 60% defects, so
each line's holdout has about 300 frames (one frame moves a line's score ~0.3 points; with
the ~80-frame holdouts used before, one frame moved it ~1.2 points, too coarse for a 3-point
target).

| seed | line | holdout frames | pilot | all lines |
|---|---|---|---|---|
{chr(10).join(rows)}

| seed | all lines: mean | worst line | gap | pilot on the other lines |
|---|---|---|---|---|
{summary}

Median gap between the all-lines model's mean and its worst line: **{gap:.3f}** (target
<= 0.03: {verdict}).{outliers} The pilots lose on lines they never saw (last column vs the
all-lines means).
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = workspace(root)
        log("active learning vs random")
        al = active_learning(ws)
        log("override -> dataset latency")
        lat = override_latency(root, ws)
        log("override -> dataset latency with 50,000 more labels")
        lat_big = override_latency(root, ws, 50_000)
        log("cross-line experiment")
        cross = [cross_line(root / f"cross-{s}", s) for s in CROSS_SEEDS]
        log(f"active learning vs random at a {REALISTIC_RATE:.0%} defect rate")
        real_root = root / "realistic"
        al_real = active_learning(workspace(real_root, REALISTIC_FRAMES, REALISTIC_RATE))
    gap = statistics.median(run["gap"] for run in cross)
    met_al = al["reduction"] >= 0.6
    met_al_real = al_real["reduction"] >= 0.6
    met_lat = max(lat["median_s"], lat_big["median_s"]) < 60
    met_cross = gap <= 0.03
    verdict = {True: "met", False: "not met"}
    markdown = f"""Synthetic frames from `factory_sim` (4 lines x {FRAMES_PER_LINE}, {SIZE} px,
60% defects, classes {", ".join(CLASSES)}), the `linefleet train` features and classifier.

**Active learning (margin) vs random**: pool {al["pool"]} frames, holdout {al["holdout"]};
target accuracy {al["target_accuracy"]:.3f} (whole pool {al["full_pool_accuracy"]:.3f} minus
one point); batches of {BATCH} from a random seed set of 20; {SEEDS} seeds, median; a run
that had not reached the target at {CAP} labels counts as {CAP + BATCH}.

| strategy | labels to reach the target (per seed) | median |
|---|---|---|
| random | {al["labels_random"]} | {al["median_random"]} |
| margin | {al["labels_margin"]} | {al["median_margin"]} |

Reduction: **{al["reduction"]:.0%}** fewer labels (target >= 60%: {verdict[met_al]}).

**The same at a factory's defect rate** ({REALISTIC_RATE:.0%} defects, 4 lines x
{REALISTIC_FRAMES}; a real line sees few defects, so random sampling spends most labels on
`ok` frames): pool {al_real["pool"]}, holdout {al_real["holdout"]}; target accuracy
{al_real["target_accuracy"]:.3f} (whole pool {al_real["full_pool_accuracy"]:.3f} minus one
point).

| strategy | labels to reach the target (per seed) | median |
|---|---|---|
| random | {al_real["labels_random"]} | {al_real["median_random"]} |
| margin | {al_real["labels_margin"]} | {al_real["median_margin"]} |

Reduction: **{al_real["reduction"]:.0%}** fewer labels (target >= 60%:
{verdict[met_al_real]}).

**Override -> confirmed label in a new dataset version** (ingest the edge event and frame, QA
confirm, build the dataset version; store with {lat["labels_in_store"]} events): median
**{lat["median_s"]} s** over 5 runs {lat["samples_s"]} (target < 60 s: {verdict[met_lat]}); with
{lat_big["labels_in_store"]} events in the store: median **{lat_big["median_s"]} s**
{lat_big["samples_s"]}.

""" + _cross_markdown(cross, gap, met_cross)
    print(json.dumps({
        "benchmark": "trainer",
        "title": "Trainer: active learning, override latency, cross-line",
        "command": "python bench/bench_trainer.py",
        "target": ">= 60% fewer labels; override -> dataset < 60 s; multi-line worst line "
                  "within 3 points of its mean",
        "met": met_al and met_lat and met_cross,
        "results": {"active_learning": al, "active_learning_realistic": al_real,
                    "override_latency": lat,
                    "override_latency_50k": lat_big, "cross_line": cross,
                    "cross_line_median_gap": gap},
        "markdown": markdown,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
