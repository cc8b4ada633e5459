"""Benchmark: the edge agent's serving, rollback and anomaly-native logging; the edge install size.

Set-up (not timed): a real model trained the way the trainer trains (the trainer's ONNX
feature graph + scikit-learn logistic regression, exported with `trainer.train.export`) on
frames rendered by `factory_sim`, and a second model (`factory_sim.onnx_fixtures`, a tiny CNN)
as the shadow candidate. One CPU thread per inference, as on the device.

Timed:
1. serving alone vs shadow (both models on every frame): frames/s and p50/p95 per frame of
   `Engine.infer` (OpenCV preprocessing of a 640x480 camera frame + inference), N frames each;
2. rollback: the engine's pointer swap (median of many), and end to end from a rollback
   desired state arriving (verify, persist with fsync, switch) to the first frame decided by
   the old model, with a frame loop running all along: frames that failed or were skipped;
3. anomaly-native logging over a synthetic shift (factory_sim, 2% defects): bytes the spool
   selects for upload vs the bytes of uploading every frame in the same envelope, and the
   share of true defect frames kept (target: >= 95% fewer bytes, >= 99% of defect frames);
4. installed size of the edge install (`linefleet[edge]` dependency closure), and a check that
   importing the agent loads no MLflow / scikit-learn.

Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_puller.agent import Agent  # noqa: E402
from edge_puller.engine import Engine, LineModels  # noqa: E402
from edge_puller.runtime import load_model  # noqa: E402
from edge_puller.spool import Spool  # noqa: E402
from linefleet_core.signing import SigningKey  # noqa: E402
from linefleet_core.wire import (  # noqa: E402
    FrameMeta,
    ModelSpec,
    encode_frame,
)
from tests.support.wiremodels import (  # noqa: E402
    gates,
    model_spec,
    telemetry,
)

CLASSES = ("ok", "scratch", "dent", "dust", "oil")
SIZE = 64
SERVE_FRAMES = int(os.environ.get("BENCH_EDGE_FRAMES", "1500"))
SHIFT_FRAMES = int(os.environ.get("BENCH_EDGE_SHIFT", "4000"))
DEFECT_RATE = 0.02
LINE = "bench/line-1"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def render(frames: int, seed: int, defect_rate: float) -> list[tuple[str, np.ndarray]]:
    from factory_sim.classes import class_set
    from factory_sim.dataset import Job, iter_frames
    from factory_sim.profiles import line_profiles

    job = Job(
        profiles=tuple(line_profiles(1, 1, seed=11)),
        classes=class_set(list(CLASSES)),
        frames_per_line=frames,
        seed=seed,
        defect_rate=defect_rate,
        size=128,
    )
    out = []
    for record, png in iter_frames(job):
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
        out.append((record.cls, image))
    return out


def train(folder: Path) -> ModelSpec:
    """A model as the trainer makes one: feature graph + logistic regression, one ONNX file."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from trainer.features import extract, feature_graph, to_tensor
    from trainer.train import export

    data = render(1200, seed=1, defect_rate=0.5)
    x = np.concatenate([to_tensor(img, SIZE) for _, img in data])
    features = feature_graph(SIZE)
    present = sorted({c for c, _ in data}, key=CLASSES.index)
    y = np.array([present.index(c) for c, _ in data])
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
    pipeline.fit(extract(features, x), y)
    return _write(folder, "surface-lr@1", export(features, pipeline, present, CLASSES, SIZE))


def fixture_cnn(folder: Path) -> ModelSpec:
    from factory_sim.onnx_fixtures import build_classifier

    built = build_classifier(len(CLASSES), height=SIZE, width=SIZE, seed=3)
    return _write(folder, "tiny-cnn@2", built.data)


def _write(folder: Path, ref: str, data: bytes) -> ModelSpec:
    import hashlib

    path = folder / f"{ref.replace('@', '-')}.onnx"
    path.write_bytes(data)
    return model_spec(
        ref=ref,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        url=path.as_uri(),
        classes=CLASSES,
        input_shape=(1, 3, SIZE, SIZE),
    )


def _ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


def bench_serving(serving: Any, candidate: Any, frames: list[np.ndarray]) -> dict[str, Any]:
    results = {}
    for mode in ("serving", "shadow"):
        engine = Engine()
        engine.activate(
            LineModels(
                LINE,
                serving,
                candidate=candidate if mode == "shadow" else None,
                stage="shadow" if mode == "shadow" else None,
                gates=gates(max_latency_p95_ms=1e9, min_shadow_agreement=0.0),
            )
        )
        for i in range(50):  # warm-up
            engine.infer(LINE, "cam-1", f"w{i}", frames[i % len(frames)])
        latencies = []
        start = time.perf_counter()
        for i in range(SERVE_FRAMES):
            t0 = time.perf_counter()
            engine.infer(LINE, "cam-1", f"f{i}", frames[i % len(frames)])
            latencies.append((time.perf_counter() - t0) * 1000)
        total = time.perf_counter() - start
        results[mode] = {
            "frames": SERVE_FRAMES,
            "frames_per_second": round(SERVE_FRAMES / total, 1),
            "p50_ms": _ms(latencies, 50),
            "p95_ms": _ms(latencies, 95),
        }
        log(f"{mode}: {results[mode]}")
    return results


def bench_rollback(a: ModelSpec, b: ModelSpec, frames: list[np.ndarray]) -> dict[str, Any]:
    from tests.unit.edge.documents import desired, line_doc

    key = SigningKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        roots = {Path(m.artifact.url.removeprefix("file://")).parent for m in (a, b)}
        agent = Agent("bench", "dev-1", Path(tmp), {key.key_id: key.public}, file_roots=[*roots])
        for generation, doc in (
            (1, line_doc(a, line=LINE)),
            (2, line_doc(b, previous=a, line=LINE)),
        ):
            agent.offer_desired(desired(key, generation, doc, site="bench"))
            for _ in range(4):
                agent.tick()
        decisions: list[tuple[float, str | None]] = []
        stop = threading.Event()

        def frame_loop() -> None:
            i = 0
            while not stop.is_set():
                d = agent.serve("cam-1", f"r{i}", frames[i % len(frames)], LINE)
                decisions.append((time.perf_counter(), d.model))
                i += 1

        thread = threading.Thread(target=frame_loop)
        thread.start()
        time.sleep(0.5)
        t0 = time.perf_counter()
        agent.offer_desired(desired(key, 3, line_doc(a, previous=b, line=LINE), site="bench"))
        agent.tick()
        t_done = time.perf_counter()
        time.sleep(0.5)
        stop.set()
        thread.join()
        agent.outbox.close()
        first_old = next(t for t, model in decisions if t > t0 and model == a.ref)
        failed = sum(1 for _, model in decisions if model is None)
        gaps = [y[0] - x[0] for x, y in itertools.pairwise(decisions)]
        around = [g for (t, _), g in zip(decisions, gaps, strict=False) if t0 - 0.1 < t < t_done]
        # the pure pointer swap, many times
        engine = agent.engine
        models = engine.lines()[LINE]
        swaps = []
        for _ in range(2000):
            s0 = time.perf_counter()
            engine.activate(models)
            swaps.append((time.perf_counter() - s0) * 1000)
    result = {
        "swap_median_ms": round(statistics.median(swaps), 4),
        "swap_p95_ms": _ms(swaps, 95),
        "desired_to_first_old_model_decision_ms": round((first_old - t0) * 1000, 2),
        "frames_decided_during_run": len(decisions),
        "frames_failed": failed,
        "max_gap_between_frames_during_switch_ms": round(max(around, default=0) * 1000, 2),
        "median_gap_between_frames_ms": round(statistics.median(gaps) * 1000, 3),
    }
    log(f"rollback: {result}")
    return result


def bench_logging(serving: Any, shift: list[tuple[str, np.ndarray]]) -> dict[str, Any]:
    engine = Engine()
    engine.activate(LineModels(LINE, serving))
    policy = telemetry(daily_upload_budget_mb=10_000, spool_mb=10_000)
    now = dt.datetime.now(dt.UTC)
    all_bytes = 0
    defects = kept_defects = kept = 0
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp), policy)
        for i, (truth, image) in enumerate(shift):
            decision = engine.infer(LINE, "cam-1", f"s{i}", image)
            assert decision.label is not None and decision.serving is not None
            reason = spool.consider(decision, image, "bench", "dev-1", now)
            _ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
            data = jpeg.tobytes()
            meta = FrameMeta(
                protocol=1, kind="Frame", site="bench", device="dev-1", line=LINE,
                camera="cam-1", frame_id=f"s{i}", captured_at=now, reason="sample",
                model=decision.serving.model, predicted=decision.label,
                confidence=decision.confidence, sha256="0" * 64, size=len(data),
            )  # fmt: skip
            all_bytes += len(encode_frame(meta, data))
            kept += reason is not None
            if truth != "ok":
                defects += 1
                kept_defects += reason is not None
        uploaded = spool.spooled_bytes
    saved = 1 - uploaded / all_bytes
    recall = kept_defects / defects if defects else 1.0
    result = {
        "frames": len(shift),
        "defect_frames": defects,
        "kept_frames": kept,
        "kept_defect_frames": kept_defects,
        "defect_frames_kept_share": round(recall, 4),
        "bytes_all_frames": all_bytes,
        "bytes_anomaly_native": uploaded,
        "bytes_saved_share": round(saved, 4),
    }
    log(f"logging: {result}")
    return result


def installed_size() -> dict[str, Any]:
    """Size on disk of the dependency closure of `linefleet[edge]` (without linefleet)."""
    wanted = [r for r in md.requires("linefleet") or [] if "extra ==" not in r or '"edge"' in r]
    todo = [re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0] for r in wanted]
    seen: dict[str, int] = {}
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        size = 0
        for f in dist.files or []:
            path = Path(str(f.locate()))
            if path.is_file():
                size += path.stat().st_size
        seen[name] = size
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            todo.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
    heavy = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, edge_puller.runner, linefleet.commands.edge;"
            "print(sorted(m for m in ('mlflow','sklearn','skl2onnx','git') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout.strip()
    top = sorted(seen.items(), key=lambda kv: -kv[1])
    return {
        "total_mb": round(sum(seen.values()) / 1e6, 1),
        "packages": len(seen),
        "largest": {k: round(v / 1e6, 1) for k, v in top[:6]},
        "heavy_modules_imported": heavy,
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        log("training the serving model on factory_sim frames ...")
        lr, cnn = train(folder), fixture_cnn(folder)
        serving = load_model(Path(lr.artifact.url.removeprefix("file://")), lr)
        candidate = load_model(Path(cnn.artifact.url.removeprefix("file://")), cnn)
        camera = [cv2.resize(img, (640, 480)) for _, img in render(50, seed=5, defect_rate=0.1)]
        log("serving vs shadow ...")
        serving_results = bench_serving(serving, candidate, camera)
        log("rollback ...")
        rollback = bench_rollback(lr, cnn, camera)
        log(f"rendering a shift of {SHIFT_FRAMES} frames ...")
        shift = render(SHIFT_FRAMES, seed=2, defect_rate=DEFECT_RATE)
        logging_results = bench_logging(serving, shift)
    size = installed_size()
    log(f"install: {size}")
    met = (
        logging_results["bytes_saved_share"] >= 0.95
        and logging_results["defect_frames_kept_share"] >= 0.99
        and rollback["desired_to_first_old_model_decision_ms"] < 50
        and rollback["frames_failed"] == 0
    )
    s, sh = serving_results["serving"], serving_results["shadow"]
    markdown = "\n".join(
        [
            "| mode | frames/s | p50 ms | p95 ms |",
            "|---|---|---|---|",
            f"| serving alone | {s['frames_per_second']} | {s['p50_ms']} | {s['p95_ms']} |",
            f"| shadow (two models per frame) | {sh['frames_per_second']} | {sh['p50_ms']} | "
            f"{sh['p95_ms']} |",
            "",
            f"Per frame: OpenCV preprocessing of a 640x480 frame + inference of the trained "
            f"model ({SERVE_FRAMES} frames, one thread).",
            "",
            "| rollback | value |",
            "|---|---|",
            f"| pointer swap (median / p95) | {rollback['swap_median_ms']} ms / "
            f"{rollback['swap_p95_ms']} ms |",
            f"| desired state received → first frame by the old model (verify, fsync, swap) | "
            f"{rollback['desired_to_first_old_model_decision_ms']} ms |",
            f"| frames failed or dropped during the run | {rollback['frames_failed']} of "
            f"{rollback['frames_decided_during_run']} |",
            f"| longest gap between two frames during the switch | "
            f"{rollback['max_gap_between_frames_during_switch_ms']} ms (median gap "
            f"{rollback['median_gap_between_frames_ms']} ms) |",
            "",
            "| anomaly-native logging | value |",
            "|---|---|",
            f"| frames in the shift / true defects | {logging_results['frames']} / "
            f"{logging_results['defect_frames']} |",
            f"| frames kept | {logging_results['kept_frames']} |",
            f"| bytes, every frame | {logging_results['bytes_all_frames']:,} |",
            f"| bytes, anomaly-native | {logging_results['bytes_anomaly_native']:,} |",
            f"| bytes saved | {logging_results['bytes_saved_share']:.1%} |",
            f"| true defect frames kept | {logging_results['defect_frames_kept_share']:.1%} |",
            "",
            f"Edge install (`linefleet[edge]` closure): {size['total_mb']} MB in "
            f"{size['packages']} packages; largest: "
            + ", ".join(f"{k} {v} MB" for k, v in size["largest"].items())
            + f". MLflow / scikit-learn modules imported by the agent: "
            f"{size['heavy_modules_imported']}.",
        ]
    )
    print(
        json.dumps(
            {
                "benchmark": "edge",
                "title": "Edge agent: serving vs shadow, rollback, anomaly-native logging",
                "command": "python bench/bench_edge.py",
                "target": "rollback < 50 ms with no frame dropped; anomaly-native logging "
                ">= 95% fewer bytes while keeping >= 99% of defect frames",
                "met": met,
                "results": {
                    "serving": serving_results,
                    "rollback": rollback,
                    "logging": logging_results,
                    "install": size,
                },
                "markdown": markdown,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
