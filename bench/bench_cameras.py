"""Benchmark: one device, 8 cameras at once (`edge run --sources`'s serving path), and tiling.

The frame-keeping features are off here (the spool keeps nothing, no recent frames for
overrides): each kept frame costs a 640x480 JPEG encode (~18 ms on these cores) and an fsync,
which the edge benchmark measures on a realistic 2% defect shift.

Set-up (not timed): a small CNN (`factory_sim.onnx_fixtures`, 64x64 input) serving one line
with 8 cameras on an `Agent` converged from a signed desired state; a second CNN as the shadow
candidate for the shadow runs. Frames are 640x480 BGR images rendered once. The cameras are
synthetic live sources feeding the agent's real per-camera queues (`edge_puller/cameras.py`,
4 frames each, oldest dropped) and its real inspection workers (`edge_puller/runner.py`, 2
threads, results written to /dev/null): everything after the capture is the agent's own path.

Timed:
1. paced: 8 cameras at 10 fps for `BENCH_CAMERAS_SECONDS`: decided frames/s in total and per
   camera, p95 inference latency per camera, frames dropped per camera;
2. saturated: the cameras push frames as fast as they can (drop-oldest keeps memory bounded):
   the agent's decided frames/s, serving alone and with a shadow candidate, against
   onnxruntime alone running the same model on the same frames (contract preprocessing +
   `session.run`) in a tight loop on the same 2 threads (goal: ratio >= 0.8);
3. tiling: a 2448x2048 frame cut into 256-px tiles (80 tiles, each resized to the model's
   64 px): decided frames/s of `Engine.infer`.

Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_puller.agent import Agent  # noqa: E402
from edge_puller.cameras import CameraFeed, CameraHub  # noqa: E402
from edge_puller.engine import Engine, LineModels  # noqa: E402
from edge_puller.runner import _inspect  # noqa: E402
from edge_puller.runtime import load_model  # noqa: E402
from edge_puller.sources import Source  # noqa: E402
from factory_sim.onnx_fixtures import build_classifier  # noqa: E402
from linefleet_core.modelio import prepare  # noqa: E402
from linefleet_core.signing import SigningKey, canonical_json  # noqa: E402
from tests.support.wiredocs import desired_envelope  # noqa: E402
from tests.support.wiremodels import model_spec  # noqa: E402

CAMERAS = 8
FPS = 10.0
WORKERS = 2
SECONDS = float(os.environ.get("BENCH_CAMERAS_SECONDS", "6"))
ROUNDS = 3
CLASSES = ["ok", "scratch", "dent"]
LINE = "bench/line-1"
RECENT = int(os.environ.get("BENCH_CAMERAS_RECENT", "0"))
"""Decisions kept with their frames for overrides (0: none; each costs a 640x480 JPEG encode)."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _model_doc(ref: str, path: Path, data: bytes) -> dict[str, Any]:
    import hashlib

    return {
        "ref": ref,
        "artifact": {"url": path.as_uri(), "sha256": hashlib.sha256(data).hexdigest(),
                     "size": len(data)},
        "input": {"shape": [1, 3, 64, 64], "color": "rgb"},
        "output_classes": CLASSES,
        "opset": 17,
    }  # fmt: skip


def converged_agent(folder: Path, shadow: bool) -> Agent:
    serving = build_classifier(len(CLASSES), seed=1).data
    candidate = build_classifier(len(CLASSES), seed=2).data
    (folder / "m").mkdir(parents=True, exist_ok=True)
    (folder / "m" / "a.onnx").write_bytes(serving)
    (folder / "m" / "b.onnx").write_bytes(candidate)
    line: dict[str, Any] = {
        "line": LINE,
        "cameras": [
            {"id": f"cam-{n}", "fps": FPS, "width": 640, "height": 480} for n in range(CAMERAS)
        ],
        "taxonomy": {"ref": "surface-defects@1", "classes": CLASSES},
        "serving": _model_doc("cnn@1", folder / "m" / "a.onnx", serving),
        "telemetry": {"uncertainty_band": [0.0, 0.0], "daily_upload_budget_mb": 50.0,
                      "spool_mb": 50.0, "keep_defects": False, "keep_disagreements": False},
        "health_gates": {"max_error_rate": 0.01, "max_latency_p95_ms": 1000.0,
                         "min_shadow_agreement": 0.0, "max_defect_rate_jump": 1.0,
                         "max_drift_score": 1.0},
    }  # fmt: skip
    if shadow:
        line["candidate"] = {
            **_model_doc("cnn@2", folder / "m" / "b.onnx", candidate),
            "stage": "shadow",
            "canary_fraction": None,
        }
    key = SigningKey.generate()
    doc = desired_envelope("bench", "dev-1", 1, {"heartbeat_seconds": 3600, "lines": [line]})
    agent = Agent(
        "bench", "dev-1", folder / "state", {key.key_id: key.public}, file_roots=[folder / "m"],
        recent_frames=RECENT,
    )  # fmt: skip
    agent.offer_desired(canonical_json(key.sign(doc)))
    for _ in range(4):
        agent.tick()
    assert agent.engine.lines(), "the agent did not converge"
    return agent


def frames(count: int, width: int = 640, height: int = 480) -> list[Any]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def run_cameras(agent: Agent, pool: list[Any], fps: float | None, seconds: float) -> dict[str, Any]:
    """Cameras feed the agent's queues for `seconds`; the agent's workers decide."""
    feeds = {
        f"cam-{n}": CameraFeed(Source(f"cam-{n}", "bench", "stream"), 4) for n in range(CAMERAS)
    }
    hub = CameraHub(feeds)
    stop = threading.Event()
    sink = Path(os.devnull).open("w")  # noqa: SIM115
    write = threading.Lock()

    def camera(feed: CameraFeed, n: int) -> None:
        period = 1.0 / fps if fps else 0.0
        next_at = time.monotonic()
        i = 0
        while not stop.is_set():
            hub.put(feed, (f"{feed.source.camera}-{i:08d}", pool[(i + n) % len(pool)]), stop)
            i += 1
            if period:
                next_at += period
                stop.wait(max(0.0, next_at - time.monotonic()))
            else:
                time.sleep(0.0005)  # a camera at its limit; yields the GIL like a driver read

    agent.metrics.clear()
    threads = [
        threading.Thread(target=camera, args=(feed, n), daemon=True)
        for n, feed in enumerate(feeds.values())
    ]
    threads += [
        threading.Thread(
            target=_inspect, args=(agent, hub, sink, write, stop, None), name=f"inspect-{n}",
            daemon=True,
        )
        for n in range(WORKERS)
    ]  # fmt: skip
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    status = hub.status()
    elapsed = time.monotonic() - started
    stop.set()
    for t in threads:
        t.join(5)
    sink.close()
    metrics = agent.metrics[LINE].snapshot({})
    per_camera = {
        cam: {
            "decided_per_s": round(s["frames_decided"] / elapsed, 2),
            "dropped": s["frames_dropped"],
            "read": s["frames_read"],
            "latency_p95_ms": round(metrics["cameras"].get(cam, {}).get("latency_p95_ms", 0.0), 3),
        }
        for cam, s in status.items()
    }
    decided = sum(s["frames_decided"] for s in status.values())
    return {
        "seconds": round(elapsed, 2),
        "decided_per_s": round(decided / elapsed, 2),
        "dropped": sum(s["frames_dropped"] for s in status.values()),
        "cameras": per_camera,
    }


def ort_alone(agent: Agent, pool: list[Any], seconds: float) -> float:
    """The same model and frames, contract preprocessing + session.run, 2 threads, no agent."""
    model = agent.engine.lines()[LINE].serving
    count = [0, 0]
    stop = threading.Event()

    def loop(k: int) -> None:
        i = k
        while not stop.is_set():
            batch, _ = prepare(pool[i % len(pool)], model.contract)
            model.session.run(model.outputs, {model.input_name: batch})
            count[k] += 1
            i += 2

    threads = [threading.Thread(target=loop, args=(k,), daemon=True) for k in range(WORKERS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    elapsed = time.monotonic() - started
    for t in threads:
        t.join(5)
    return sum(count) / elapsed


def tiling(folder: Path, count: int = 10) -> dict[str, Any]:
    data = build_classifier(len(CLASSES), seed=1).data
    path = folder / "tile.onnx"
    path.write_bytes(data)
    import hashlib

    spec = model_spec("tile@1", hashlib.sha256(data).hexdigest(), len(data), path.as_uri(),
                     tuple(CLASSES), (1, 3, 64, 64), tiling=(256, 0))  # fmt: skip
    engine = Engine()
    engine.activate(LineModels(LINE, load_model(path, spec)))
    frame = frames(1, 2448, 2048)[0]
    engine.infer(LINE, "c", "warm", frame)
    times = []
    for n in range(count):
        start = time.perf_counter()
        decision = engine.infer(LINE, "c", f"f{n}", frame)
        times.append(time.perf_counter() - start)
        assert decision.label is not None, decision.error
    median = statistics.median(times)
    return {
        "tiles": 80,
        "median_s_per_frame": round(median, 4),
        "frames_per_s": round(1 / median, 2),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pool = frames(16)
        results: dict[str, Any] = {}
        for shadow in (False, True):
            name = "shadow" if shadow else "serving"
            agent = converged_agent(Path(tmp) / name, shadow)
            if not shadow:
                log("paced: 8 cameras x 10 fps")
                results["paced"] = run_cameras(agent, pool, FPS, SECONDS)
            runs, alone = [], []
            for attempt in range(ROUNDS):  # alternated: the shared machine's load drifts
                log(f"saturated ({name}) {attempt + 1}/{ROUNDS}")
                runs.append(run_cameras(agent, pool, None, SECONDS))
                if not shadow:
                    alone.append(ort_alone(agent, pool, SECONDS))
            runs.sort(key=lambda r: float(r["decided_per_s"]))
            results[f"saturated_{name}"] = runs[len(runs) // 2]
            results[f"saturated_{name}"]["samples"] = [r["decided_per_s"] for r in runs]
            if not shadow:
                results["ort_alone_per_s"] = round(statistics.median(alone), 2)
                results["ort_alone_samples"] = [round(a, 2) for a in alone]
            agent.recent.close()
            agent.outbox.close()
        log("tiling 2448x2048 into 256-px tiles")
        results["tiling"] = tiling(Path(tmp))
    alone = results["ort_alone_per_s"]
    ratio = results["saturated_serving"]["decided_per_s"] / alone
    ratio_shadow = results["saturated_shadow"]["decided_per_s"] / alone
    results["ratio_vs_ort"] = round(ratio, 3)
    results["ratio_vs_ort_with_shadow"] = round(ratio_shadow, 3)
    paced = results["paced"]
    rows = "\n".join(
        f"| {cam} | {c['decided_per_s']} | {c['latency_p95_ms']} | {c['dropped']} |"
        for cam, c in paced["cameras"].items()
    )
    serving, shadow = results["saturated_serving"], results["saturated_shadow"]
    markdown = f"""One device (2 shared cores), one line, 8 cameras, 640x480 frames, a small CNN
(64 px), 2 inspection workers, 4 frames queued per camera (oldest dropped). Frame keeping
(spool, recent frames for overrides) is off: each kept frame costs a 640x480 JPEG encode and
an fsync.

**Paced, 8 x 10 fps for {paced["seconds"]} s:** {paced["decided_per_s"]} frames decided/s in
total (80 offered), {paced["dropped"]} dropped.

| camera | decided/s | p95 inference ms | dropped |
|---|---|---|---|
{rows}

**Saturated** (cameras as fast as they can push; drop-oldest keeps memory bounded; median of
{ROUNDS} runs of {SECONDS:g} s, alternated with onnxruntime alone):

| path | frames decided/s | ratio to onnxruntime alone |
|---|---|---|
| onnxruntime alone (contract preprocessing + session.run, 2 threads) | {alone} | 1.0 |
| agent, serving only | {serving["decided_per_s"]} | {results["ratio_vs_ort"]} |
| agent, serving + shadow | {shadow["decided_per_s"]} | {results["ratio_vs_ort_with_shadow"]} |

The shadow run does two inferences per frame, so its ratio counts decided frames, not
inferences. Goal: the agent >= 0.8 of onnxruntime alone (serving only). The agent measures
above the baseline loop on this shared machine: the baseline's two Python threads contend for
the GIL in preprocessing the same way, so treat ratios above 1 as "no agent overhead visible",
not as a speed-up.

**Tiling** a 2448x2048 frame into 80 tiles of 256 px (each resized to 64 px, one run per tile):
{results["tiling"]["frames_per_s"]} frames/s (median {results["tiling"]["median_s_per_frame"]} s
per frame).
"""
    print(
        json.dumps(
            {
                "benchmark": "cameras",
                "title": "Edge agent: 8 cameras at once, backpressure, tiling",
                "command": "python bench/bench_cameras.py",
                "target": "agent throughput >= 0.8 x onnxruntime alone",
                "met": ratio >= 0.8,
                "results": results,
                "markdown": markdown,
            }
        )
    )


if __name__ == "__main__":
    main()
