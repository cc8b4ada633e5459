"""The demo's stage runner: headings, a stop at the first failure, skips, the summary.

Each stage is a plain function `(Demo, Story) -> None`. A stage that raises `Skip` needs a
piece that is not built yet: the demo says so and goes on. A `StageFailed` (or any error)
stops the demo: the message names the stage and shows the failing command's output, exit 1.
Ctrl-C or SIGTERM stop every process the demo started, exit 130.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from linefleet.demo import learning, prepare, rollout
from linefleet.demo.console import Console
from linefleet.demo.context import Demo, Options, Skip, StageFailed
from linefleet.demo.procs import Children, Interrupted
from linefleet.demo.steps import Story


@dataclass(frozen=True)
class Stage:
    title: str
    explain: str
    run: Callable[[Demo, Story], None]


STAGES = (
    Stage(
        "Start the control room",
        "A clean state directory and a private MQTT broker: the channel to every device.",
        prepare.state_and_broker,
    ),
    Stage(
        "Create the fleet repository",
        "Git holds what every line should run; a bare 'origin' and local pull requests.",
        prepare.fleet_repository,
    ),
    Stage(
        "Record frames from three lines",
        "Synthetic cameras: each line has its own lighting, angle and conveyor.",
        prepare.camera_frames,
    ),
    Stage(
        "Train a model and propose it",
        "Labels in, a model out; the trainer opens a pull request with per-line evidence.",
        learning.first_model,
    ),
    Stage(
        "Publish the fleet and start the devices",
        "Signed instructions go to each edge device; each downloads, checks and switches.",
        rollout.publish_and_start_edges,
    ),
    Stage(
        "Learn from the inspectors",
        "Inspectors correct wrong calls; QA confirms; the model is retrained and proposed.",
        learning.overrides_and_retrain,
    ),
    Stage(
        "Walk one line to production",
        "Shadow (watch only) -> canary (decides a quarter of parts) -> production.",
        rollout.walk_to_production,
    ),
    Stage(
        "Catch a regression twice",
        "A too-slow model: the device drops it by itself; then git is reverted to match.",
        rollout.regression_and_rollbacks,
    ),
    Stage(
        "Fleet status",
        "Every device and line: what it should run, what it runs, and its health.",
        rollout.final_status,
    ),
)


def run_demo(
    options: Options,
    console: Console | None = None,
    *,
    stages: tuple[Stage, ...] = STAGES,
    children: Children | None = None,
) -> int:
    """Run the stages in order; 0 done, 1 a stage failed, 130 interrupted."""
    console = console or Console()
    if children is None:
        children = Children()
        children.install()
    demo = Demo(options, console, children)
    story = Story()
    started = time.monotonic()
    total = len(stages)
    results: dict[str, str] = {}
    demo.record["stages"] = results
    try:
        for number, stage in enumerate(stages, start=1):
            console.heading(number, total, stage.title, stage.explain)
            began = time.monotonic()
            try:
                stage.run(demo, story)
            except Skip as skip:
                console.skipped(str(skip))
                results[stage.title] = f"skipped: {skip}"
            else:
                results[stage.title] = "ok"
            seconds = time.monotonic() - began
            console.elapsed(number, seconds)
            demo.record.setdefault("stage_seconds", {})[stage.title] = round(seconds, 1)
            demo.record["seconds"] = round(time.monotonic() - started, 1)
            demo.save_record()
    except StageFailed as exc:
        return _failed(demo, number, stage, str(exc), exc.output)
    except Interrupted as exc:
        alive = len(children.alive())
        children.stop_all()
        console.failure(f"interrupted ({exc}); stopped {alive} process(es) the demo started")
        return 130
    except Exception as exc:  # a bug or an unexpected environment: still name the stage
        return _failed(demo, number, stage, f"{type(exc).__name__}: {exc}", traceback.format_exc())
    finally:
        children.stop_all()
    _summary(demo, results, time.monotonic() - started)
    return 0


def _failed(demo: Demo, number: int, stage: Stage, message: str, output: str) -> int:
    demo.console.failure(f"stage {number} ({stage.title}): {message}")
    if output.strip():
        demo.console.output(output, limit=40)
    demo.record.setdefault("stages", {})[stage.title] = f"failed: {message}"
    if demo.save_record():
        demo.console.note(f"logs and state are kept in {demo.root}")
    return 1


def _summary(demo: Demo, results: dict[str, str], seconds: float) -> None:
    console = demo.console
    skipped = {t: r for t, r in results.items() if r != "ok"}
    demo.record["seconds"] = round(seconds, 1)
    demo.save_record()
    console.done(f"The whole loop ran in {seconds:.0f} s.")
    console.output("\n".join(_outcome(demo.record)), limit=20)
    for title, result in skipped.items():
        console.skipped(f"{title}: {result.removeprefix('skipped: ')}")
    console.note(f"everything is in {demo.root} (summary.json, status.json, logs)")


def _outcome(record: dict[str, Any]) -> list[str]:
    """What a plant manager takes away, from what the stages recorded."""
    lines = []
    if pulls := record.get("merged_pulls"):
        numbers = ", ".join(f"#{n}" for n in pulls)
        lines.append(f"{len(pulls)} promotion pull request(s) merged ({numbers})")
    if "qa_confirmed" in record:
        lines.append(
            f"{record['overrides']} inspector correction(s), {record['qa_confirmed']} "
            "QA-confirmed, learned by the retrained model"
        )
    if walked := record.get("walked"):
        lines.append(f"{walked['line']} runs {walked['model']} in production")
    if bad := record.get("edge_local_rollback"):
        lines.append(
            f"regression {bad['model']} on {bad['line']}: dropped by the device on its own, "
            f"then reverted in git ({str(record.get('git_revert', ''))[:12]})"
        )
    if counts := record.get("status_counts"):
        lines.append("fleet: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    if report := record.get("report"):
        lines.append(f"report: {report}")
    return lines
