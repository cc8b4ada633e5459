"""Stages 5, 7, 8 and 9: signed desired state to the edge, a line walked to production, a
regression caught twice (on the device, then in git), and the fleet's status."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from linefleet.demo import edges, fleetrepo, history, regression
from linefleet.demo.context import (
    DEMO_DEVICES,
    REGRESSION_LINE,
    WALK_LINE,
    Demo,
    Skip,
    StageFailed,
)
from linefleet.demo.steps import MODEL, Story, change, publish, settle


def publish_and_start_edges(demo: Demo, story: Story) -> None:
    doc = demo.lf_json("keys", "generate", "--out", str(demo.root / "keys"), "--format", "json")
    demo.signing_key = Path(doc["private_key"]).resolve()
    demo.trust_key = Path(doc["public_key"]).resolve()
    demo.console.ok(f"signing key {doc['key_id']}; devices pin {demo.trust_key.name}")
    publish(demo)
    for line, device in DEMO_DEVICES.items():
        story.agents.append(edges.start(demo, device, line))
    settle(demo, story, 12, "warmup")
    _status_table(demo)


def _status_table(demo: Demo, *, limit: int = 14) -> None:
    demo.lf("status", "--broker", demo.broker_url, "--repo", str(demo.repo), limit=limit)


def _candidate(work: Path, line: str) -> str:
    candidate = fleetrepo.rollout(work, line).get("candidate") or {}
    model = candidate.get("model")
    if not model:
        raise StageFailed(f"{line} has no candidate to walk to production")
    return str(model)


def walk_to_production(demo: Demo, story: Story) -> None:
    model = _candidate(demo.repo, WALK_LINE)
    canary = {"model": model, "stage": "canary", "canary_fraction": 0.25}
    change(
        demo,
        f"Canary {model} on {WALK_LINE} (25% of frames)",
        lambda repo: fleetrepo.set_rollout(repo, WALK_LINE, candidate=canary),
    )
    settle(demo, story, 16, "canary")
    serving = str(fleetrepo.rollout(demo.repo, WALK_LINE)["serving"])
    change(
        demo,
        f"Promote {model} to production on {WALK_LINE} ({serving} stays loaded for rollback)",
        lambda repo: fleetrepo.set_rollout(
            repo, WALK_LINE, serving=model, previous=serving, candidate=None
        ),
    )
    settle(demo, story, 12, "production")
    row = _line_row(demo, WALK_LINE)
    if row.get("reported_serving") != model:
        raise StageFailed(f"{WALK_LINE} reports {row.get('reported_serving')}, not {model}")
    demo.record["walked"] = {"line": WALK_LINE, "model": model}
    demo.console.ok(f"{WALK_LINE} serves {model} in production; {serving} is the rollback target")


def _line_row(demo: Demo, line: str) -> dict[str, Any]:
    doc = edges.status(demo)
    for device in doc["devices"]:
        for row in device["lines"]:
            if row["line"] == line:
                return {**row, "condition": device["condition"], "message": device["message"]}
    raise StageFailed(f"`linefleet status` shows no row for {line}")


def regression_and_rollbacks(demo: Demo, story: Story) -> None:
    agent = next(a for a in story.agents if a.line == REGRESSION_LINE)
    ref, bad = _inject_slow_model(demo)
    _edge_local_rollback(demo, story, agent, ref)
    _revert_in_git(demo, story, bad, ref)


def _inject_slow_model(demo: Demo) -> tuple[str, str]:
    """Add a too-slow model version to the catalogue and try it in shadow: (ref, commit)."""
    versions = fleetrepo.model_versions(demo.repo, MODEL)
    newest = max(versions, key=lambda v: int(v["version"]))
    number = int(newest["version"]) + 1
    ref = f"{MODEL}@{number}"
    artifact = f"fleet/artifacts/{MODEL}-v{number}.onnx"
    sha, size = regression.build(demo.repo / artifact, len(newest["output_classes"]))
    entry = {
        k: copy.deepcopy(v)
        for k, v in newest.items()
        if k not in ("evaluation", "mlflow_run_id", "dataset", "reference_stats")
    }
    entry.update(
        version=number,
        artifact={"url": artifact, "sha256": sha, "size": size},
        input={"shape": [1, 3, regression.SIZE, regression.SIZE], "color": "rgb"},
    )

    def inject(repo: Path) -> None:
        fleetrepo.add_model_version(repo, MODEL, entry)
        fleetrepo.set_rollout(repo, REGRESSION_LINE, candidate={"model": ref, "stage": "shadow"})

    demo.console.note(f"{ref}: correct in form, but too slow for the line's latency budget")
    return ref, change(demo, f"Try {ref} in shadow on {REGRESSION_LINE}", inject)


def _edge_local_rollback(demo: Demo, story: Story, agent: edges.EdgeAgent, ref: str) -> None:
    """The device measures the candidate's latency on real frames and drops it by itself."""
    edges.wait_for(demo, "device received it", [agent], _applied, 90.0)
    edges.feed_and_wait(demo, [agent], 30, story.batch("regression"), timeout=180.0)
    edges.wait_for(demo, "device fell back on its own", [agent], _fell_back, 60.0)
    history.record(demo)
    demo.lf("edge", "status", "--state-dir", str(agent.folder / "state"), limit=10)
    _status_table(demo)
    demo.record["edge_local_rollback"] = {"line": REGRESSION_LINE, "model": ref}
    demo.console.ok(f"the device dropped {ref} by itself; {REGRESSION_LINE} kept serving")


def _revert_in_git(demo: Demo, story: Story, bad: str, ref: str) -> None:
    """Make git agree with the device: revert the change, check it, publish, converge."""
    demo.console.note("now make git agree: revert the change, publish, converge")
    demo.console.command(["git", "revert", "--no-edit", bad[:12]])
    reverted = fleetrepo.revert(demo.repo, bad)
    demo.lf("plan", "--repo", str(demo.repo), "--base", "HEAD~1", "--format", "text", limit=10)
    publish(demo)
    settle(demo, story, 10, "reverted")
    if (_line_row(demo, REGRESSION_LINE).get("desired_candidate") or "") == ref:
        raise StageFailed(f"{REGRESSION_LINE} still has {ref} after the revert")
    demo.record["git_revert"] = reverted
    demo.console.ok(f"reverted in git ({reverted[:12]}); desired and reported agree again")


def _applied(row: dict[str, Any]) -> bool:
    """The device took the newest desired state (whatever its condition is now)."""
    applied, desired = row.get("applied") or {}, row.get("desired") or {}
    return bool(applied) and applied.get("content_hash") == desired.get("content_hash")


def _fell_back(row: dict[str, Any]) -> bool:
    """The device reports the regression line rolled back: it dropped the candidate itself."""
    return any(
        line["line"] == REGRESSION_LINE and line.get("phase") == "rolled_back"
        for line in row.get("lines", [])
    )


def final_status(demo: Demo, story: Story) -> None:
    _status_table(demo, limit=30)
    doc = edges.status(demo)
    (demo.root / "status.json").write_text(json.dumps(doc, indent=2) + "\n")
    demo.record["status_counts"] = doc.get("counts", {})
    if not demo.has_command("report"):
        raise Skip("the HTML report (`linefleet report`)", 6)
    out = demo.root / "report.html"
    demo.lf(
        "report", "--out", str(out), "--broker", demo.broker_url, "--repo", str(demo.repo),
        "--history", str(history.history_file(demo)), "--record", *_label_store(demo),
    )  # fmt: skip
    demo.record["report"] = str(out)


def _label_store(demo: Demo) -> list[str]:
    """`--labels` with the trainer's label store, so the report shows the label queues
    (nothing when the learning stage did not make one)."""
    from trainer.store import default_url

    url = default_url(demo.trainer)
    return ["--labels", url] if Path(url.removeprefix("sqlite:///")).is_file() else []
