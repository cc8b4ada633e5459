"""Edge agents as separate processes (`linefleet edge run`), and waiting on what they report."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet.demo.camera import Camera, results
from linefleet.demo.context import Demo, StageFailed

SETTLED = ("Synced", "Degraded")


@dataclass
class EdgeAgent:
    device: str  # site/device
    line: str  # the line whose camera feeds this agent
    folder: Path
    camera: Camera
    process: subprocess.Popen[bytes] | None = None

    @property
    def results(self) -> Path:
        return self.folder / "results.jsonl"

    @property
    def log(self) -> Path:
        return self.folder / "agent.log"

    def decisions(self) -> list[dict[str, Any]]:
        return results(self.results)

    def check_running(self) -> None:
        """Fail the stage at once, with the agent's log, if its process has exited."""
        if self.process is not None and self.process.poll() is not None:
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            raise StageFailed(
                f"the edge agent of {self.device} exited with {self.process.returncode}",
                "\n".join(log.splitlines()[-20:]),
            )


def start(demo: Demo, device: str, line: str) -> EdgeAgent:
    assert demo.trust_key is not None
    folder = demo.edge_dir(device)
    agent = EdgeAgent(device, line, folder, Camera(demo.data, line, folder / "camera"))
    argv = [
        "edge",
        "run",
        "--device",
        device,
        "--broker",
        demo.broker_url,
        "--state-dir",
        str(folder / "state"),
        "--frames",
        str(agent.camera.folder),
        "--trust-key",
        str(demo.trust_key),
        "--results",
        str(agent.results),
        "--line",
        line,
    ]  # fmt: skip
    # No --artifact-root: models come from the site's mirror by digest, never from file://.
    demo.console.command(["linefleet", *argv[:4], "..."])
    agent.process = demo.children.start(
        f"edge {device}", demo.argv(*argv), agent.log, env=demo.env()
    )
    return agent


def status(demo: Demo) -> dict[str, Any]:
    doc: dict[str, Any] = demo.lf_json(
        "status", "--broker", demo.broker_url, "--repo", str(demo.repo), "--format", "json"
    )
    return doc


def device_rows(doc: dict[str, Any], devices: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = set(devices)
    return {
        f"{d['site']}/{d['device']}": d
        for d in doc["devices"]
        if f"{d['site']}/{d['device']}" in wanted
    }


def converged(row: dict[str, Any]) -> bool:
    """The device runs exactly what the broker holds for it (Synced, or Degraded by a gate)."""
    desired, applied = row.get("desired") or {}, row.get("applied") or {}
    return (
        row.get("condition") in SETTLED
        and bool(applied)
        and applied.get("content_hash") == desired.get("content_hash")
    )


def wait_for(
    demo: Demo,
    label: str,
    agents: list[EdgeAgent],
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> dict[str, Any]:
    """Poll `linefleet status` until `done(row)` holds for every agent's device; show a counter."""
    devices = [a.device for a in agents]
    deadline = time.monotonic() + timeout
    shown = -1
    while True:
        for agent in agents:
            agent.check_running()
        doc = status(demo)
        rows = device_rows(doc, devices)
        ready = sum(1 for d in devices if d in rows and done(rows[d]))
        if ready != shown:
            demo.console.progress(label, ready, len(devices))
            shown = ready
        if ready == len(devices):
            return doc
        if time.monotonic() >= deadline:
            lines = [f"{d}: {rows[d]['condition']} ({rows[d]['message']})" for d in rows]
            raise StageFailed(
                f"{label}: only {ready} of {len(devices)} device(s) after {timeout:g} s",
                "\n".join(lines),
            )
        time.sleep(1.0)


def feed_and_wait(
    demo: Demo, agents: list[EdgeAgent], count: int, batch: str, timeout: float = 120.0
) -> dict[str, list[dict[str, Any]]]:
    """Show `count` frames to each agent's camera; wait until each has decided all of them."""
    for agent in agents:
        agent.camera.feed(count, batch)
    total = count * len(agents)
    deadline = time.monotonic() + timeout
    shown = -1
    while True:
        for agent in agents:
            agent.check_running()
        decided = {
            a.device: [r for r in a.decisions() if str(r.get("frame_id", "")).startswith(batch)]
            for a in agents
        }
        done = sum(len(v) for v in decided.values())
        if done != shown:
            demo.console.progress(f"frames inspected ({batch})", min(done, total), total)
            shown = done
        if done >= total:
            return decided
        if time.monotonic() >= deadline:
            raise StageFailed(
                f"the edge agents decided {done} of {total} frames in {timeout:g} s",
                "\n".join(f"{a.device}: see {a.log}" for a in agents),
            )
        time.sleep(0.3)
