"""Benchmark: synthetic frames generated per second by `linefleet data generate`.

End to end, as a user runs it: a fresh process per run (interpreter start-up, imports,
rendering, PNG encoding, sha256, manifest, the final rename), 2 sites x 2 lines, at 128 and
256 px; medians of BENCH_REPEAT runs. In-process, the cost of one frame split into its
stages (surface + defect, camera capture, PNG encoding), median over many frames.

Prints the JSON result for bench/run.py on stdout; progress on stderr.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from factory_sim.defects import paint
from factory_sim.nuisance import capture
from factory_sim.profiles import line_profiles
from factory_sim.render import frame_rng
from factory_sim.surfaces import render_surface

REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
FRAMES = 250  # per line; 4 lines
SIZES = (128, 256)
BIN = Path(sys.executable).parent


def _cli_run(size: int, out: Path) -> float:
    cmd = [str(BIN / "linefleet"), "data", "generate", "--out", str(out), "--sites", "2",
           "--lines", "2", "--frames", str(FRAMES), "--size", str(size), "--seed", "1",
           "--quiet", "--force"]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _stages(size: int, frames: int = 200) -> dict[str, float]:
    profile = line_profiles(1, 1, seed=1)[0]
    classes = ["ok", "scratch", "dent", "dust", "oil", "discoloration"]
    times: dict[str, list[float]] = {"surface_defect": [], "capture": [], "png": []}
    for seq in range(frames):
        rng = frame_rng(1, profile, seq)
        t0 = time.perf_counter()
        surface = render_surface(rng, size, profile.supplier)
        paint(surface, classes[seq % len(classes)], rng)
        t1 = time.perf_counter()
        image = capture(surface, profile, rng).image
        t2 = time.perf_counter()
        cv2.imencode(".png", image)
        t3 = time.perf_counter()
        times["surface_defect"].append(t1 - t0)
        times["capture"].append(t2 - t1)
        times["png"].append(t3 - t2)
    return {k: float(np.median(v)) * 1000 for k, v in times.items()}


def main() -> int:
    total = 4 * FRAMES
    results: dict[str, object] = {"frames_per_run": total, "repeat": REPEAT}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            print(f"size {size}: {REPEAT} runs of {total} frames", file=sys.stderr)
            runs = [_cli_run(size, Path(tmp) / f"d{size}") for _ in range(REPEAT)]
            median = statistics.median(runs)
            mb = sum(p.stat().st_size for p in (Path(tmp) / f"d{size}").rglob("*.png")) / 1e6
            stages = _stages(size)
            results[f"size_{size}"] = {
                "runs_s": [round(r, 3) for r in runs],
                "median_s": round(median, 3),
                "frames_per_s": round(total / median, 1),
                "png_mb": round(mb, 1),
                "stage_ms": {k: round(v, 3) for k, v in stages.items()},
            }
            rows.append(
                f"| {size} px | {median:.2f} s | {total / median:.0f} | {mb / total * 1000:.0f} KB "
                f"| {stages['surface_defect']:.2f} / {stages['capture']:.2f} / "
                f"{stages['png']:.2f} ms |"
            )
    markdown = "\n".join(
        [
            f"{total} frames (2 sites x 2 lines x {FRAMES}) per run, median of {REPEAT} runs, "
            "each a fresh `linefleet data generate` process; one process, one core.",
            "",
            "| frame size | wall time | frames/s (end to end) | PNG per frame "
            "| per frame: surface+defect / camera / PNG |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "The wall time includes interpreter start-up and imports (about half a second).",
        ]
    )
    print(
        json.dumps(
            {
                "benchmark": "data",
                "title": "linefleet data generate: synthetic frames per second",
                "command": "python bench/bench_data.py "
                f"(linefleet data generate --sites 2 --lines 2 --frames {FRAMES} --size N)",
                "results": results,
                "markdown": markdown,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
