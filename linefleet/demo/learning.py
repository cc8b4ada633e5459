"""Stages 4 and 6: labels -> a trained model -> a promotion pull request, and the loop back
from inspectors' corrections on the line to a better model."""

from __future__ import annotations

from typing import Any

from linefleet.demo import inspector
from linefleet.demo.context import Demo, StageFailed
from linefleet.demo.edges import feed_and_wait
from linefleet.demo.steps import Story, promote_and_merge, publish, settle, train

MAX_OVERRIDES_PER_DEVICE = 12
QUICK_OVERRIDES_PER_DEVICE = 4


def _labels(demo: Demo, *args: str, show: bool = True, limit: int = 6) -> str:
    done = demo.lf(
        "labels", *args, "--state", str(demo.trainer), "--fleet-repo", str(demo.repo),
        show=show, limit=limit,
    )  # fmt: skip
    return done.stdout


def first_model(demo: Demo, story: Story) -> None:
    _labels(demo, "import", str(demo.data / "manifest.jsonl"), "--annotator", "line-qa")
    run_id = train(demo)
    story.runs.append(run_id)
    demo.record["pulls_first_model"] = promote_and_merge(demo, run_id)


def overrides_and_retrain(demo: Demo, story: Story) -> None:
    # The trainer's first listen starts its persistent session: from then on the broker keeps
    # what the devices send for it while it is away.
    _labels(demo, "ingest-events", "--broker", demo.broker_url, "--seconds", "0.5", limit=2)
    batch = story.batch("shift")
    frames = 24 if demo.options.quick else 40
    decided = feed_and_wait(demo, story.agents, frames, batch)
    queued = 0
    for agent in story.agents:
        decisions = [d for d in decided[agent.device] if d.get("model")]
        limit = QUICK_OVERRIDES_PER_DEVICE if demo.options.quick else MAX_OVERRIDES_PER_DEVICE
        pairs = inspector.overrides(agent.camera.shown, decisions, limit)
        if not pairs:
            continue
        queued += inspector.correct(demo, agent.folder / "state", pairs)
        demo.console.note(
            f"inspector on {agent.line} corrected {len(pairs)} of {len(decisions)} decision(s)"
        )
    demo.record["overrides"] = queued
    if not queued:
        raise StageFailed("the inspectors found nothing to correct: no override to learn from")
    inspector.collect(demo, queued)
    tasks = demo.lf_json(
        "labels", "tasks", "--kind", "override", "--format", "json",
        "--state", str(demo.trainer), "--fleet-repo", str(demo.repo),
    )  # fmt: skip
    ids = [str(t["id"]) for t in _tasks(tasks)]
    if not ids:
        raise StageFailed("no override waits for QA", str(tasks)[:400])
    shown = ids if len(ids) <= 3 else [ids[0], "...", ids[-1]]
    verdict = ["--confirm", "--reviewer", "qa-lead"]
    demo.console.command(["linefleet", "labels", "qa", *shown, *verdict])
    _labels(demo, "qa", *ids, *verdict, show=False)  # one call, one transaction
    demo.console.progress("overrides QA-confirmed", len(ids), len(ids))
    demo.record["qa_confirmed"] = len(ids)
    run_id = train(demo)
    story.runs.append(run_id)
    demo.record["pulls_retrained"] = promote_and_merge(demo, run_id)
    publish(demo)
    settle(demo, story, 10, "retrained")


def _tasks(doc: Any) -> list[dict[str, Any]]:
    if isinstance(doc, dict) and isinstance(doc.get("tasks"), list):
        return list(doc["tasks"])
    raise StageFailed("`linefleet labels tasks --format json`: unexpected shape", str(doc)[:400])
