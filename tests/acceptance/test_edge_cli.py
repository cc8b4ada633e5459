"""`linefleet edge run`, `edge status` and `edge override` as a user (or systemd, or a line's
HMI) runs them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge_puller.agent import Agent
from linefleet.cli import main
from linefleet_core.signing import SigningKey
from tests.support.mosquitto import Mosquitto, free_port
from tests.support.waiting import wait_for
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.acceptance
KEY = SigningKey.generate()


@pytest.fixture
def trust_key(tmp_path: Path) -> Path:
    path = tmp_path / f"{KEY.key_id}.pub"
    KEY.write(tmp_path / "keys")
    (tmp_path / "keys" / f"{KEY.key_id}.pub").rename(path)
    return path


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for n, level in enumerate([220, 30, 220]):
        cv2.imwrite(str(folder / f"f{n}.png"), np.full((48, 64, 3), level, dtype=np.uint8))
    (folder / "f9.png").write_bytes(b"not an image")
    return folder


def _converged_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    keys = {KEY.key_id: KEY.public}
    agent = Agent("plant", "dev-1", state, keys, file_roots=[tmp_path / "src"])
    m1 = spec_for(tmp_path / "src", "inc", 1)
    m2 = spec_for(tmp_path / "src", "cand", 2, invert=True)
    agent.offer_desired(desired(KEY, 4, line_doc(m1, candidate=m2, stage="canary", fraction=0.2)))
    for _ in range(3):
        agent.tick()
    agent.serve("cam-1", "dark", np.full((48, 64, 3), 30, dtype=np.uint8))
    agent.outbox.close()
    return state


def _decided_state(tmp_path: Path) -> Path:
    """A converged device that decided a bright frame (ok) and a dark one (scratch)."""
    state = tmp_path / "state"
    agent = Agent("plant", "dev-1", state, {KEY.key_id: KEY.public}, file_roots=[tmp_path / "src"])
    agent.offer_desired(desired(KEY, 2, line_doc(spec_for(tmp_path / "src", "inc", 1))))
    for _ in range(3):
        agent.tick()
    agent.serve("cam-1", "f-bright", np.full((48, 64, 3), 220, dtype=np.uint8))
    agent.serve("cam-1", "f-dark", np.full((48, 64, 3), 30, dtype=np.uint8))
    agent.recent.close()
    agent.outbox.close()
    return state


def _edge_run(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "linefleet", "edge", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().split("\n")[:-1] if x]


def _wait_lines(path: Path, count: int) -> list[dict[str, object]]:
    def enough() -> list[dict[str, object]]:
        lines = _lines(path)
        return lines if len(lines) >= count else []

    return wait_for(f"{count} results in {path}", enough)


def test_status_of_a_fresh_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "state").mkdir()
    assert main(["edge", "status", "--state-dir", str(tmp_path / "state")]) == 0
    out = capsys.readouterr().out
    assert "condition   Progressing (NoDesiredState): no desired state received yet" in out
    assert "generation  0 held, 0 applied" in out
    assert "none yet (no desired state received)" in out


def test_status_shows_models_generation_and_outbox_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _converged_state(tmp_path)
    assert main(["edge", "status", "--state-dir", str(state)]) == 0
    out = capsys.readouterr().out
    assert "condition   Synced (Applied): running generation 4" in out
    assert "device      plant/dev-1" in out
    assert "generation  4 held, 4 applied" in out
    assert "plant/line-1: serving inc@1 (slot a), standby -, canary cand@2" in out
    assert "spool       1 frame(s) waiting" in out  # the dark frame: a scratch, kept
    assert main(["edge", "status", "--state-dir", str(state), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outbox"] >= 2  # the activation event and a report, never delivered
    assert doc["lines"][0]["candidate"] == "cand@2" and doc["lines"][0]["in_sync"] is True
    assert doc["lines"][0]["spool"]["kept"] == 1


def test_status_of_a_missing_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["edge", "status", "--state-dir", str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "dev-1"], "--device SITE/DEVICE or --site SITE"),
        (["--device", "Plant/dev-1"], "lower-case letters"),
        (["--device", "plant/dev-1", "--broker", "http://x"], "expected mqtt://HOST:PORT"),
        (["--device", "plant/dev-1", "--trust-key", "/nonexistent.pub"], "no such file"),
        (["--device", "plant/dev-1", "--artifact-root", "/nonexistent"], "no such directory"),
    ],
)
def test_run_refuses_bad_arguments(
    tmp_path: Path,
    trust_key: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    base = {
        "--broker": "mqtt://127.0.0.1:1",
        "--state-dir": str(tmp_path / "s"),
        "--frames": str(tmp_path),
        "--trust-key": str(trust_key),
    }
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["edge", "run", "--device", base.pop("--device")]
    for flag, value in base.items():
        argv += [flag, value]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def _serve_with_no_broker(
    tmp_path: Path, trust_key: Path, frames: Path, count: int
) -> list[dict[str, object]]:
    """`edge run` of a converged state (a canary) on `frames`, no broker: its first `count`
    results, once SIGTERM stopped it cleanly."""
    results = tmp_path / "results.jsonl"
    proc = _edge_run(
        "--device", "plant/dev-1", "--broker", f"mqtt://127.0.0.1:{free_port()}",
        "--state-dir", str(_converged_state(tmp_path)), "--frames", str(frames),
        "--trust-key", str(trust_key), "--results", str(results),
        "--artifact-root", str(tmp_path / "src"),
    )  # fmt: skip
    try:
        lines = _wait_lines(results, count)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return lines


def test_run_serves_from_persisted_state_with_no_broker_and_stops_on_sigterm(
    tmp_path: Path, trust_key: Path, frames: Path
) -> None:
    lines = _serve_with_no_broker(tmp_path, trust_key, frames, 4)
    by_frame = {line["frame_id"]: line for line in lines}
    assert by_frame["f9.png"]["error"] == "unreadable frame"
    assert by_frame["f1.png"]["serving"]["label"] == "scratch"  # type: ignore[index]
    assert {line["model"] for line in lines if line.get("label")} <= {"inc@1", "cand@2"}


def test_run_converges_from_the_broker_and_says_goodbye(
    tmp_path: Path, trust_key: Path, frames: Path
) -> None:
    m1 = spec_for(tmp_path / "src", "inc", 1)
    with Mosquitto(tmp_path / "broker") as broker:
        publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-publisher")
        publisher.connect(broker.host, broker.port)
        publisher.loop_start()
        publisher.publish(
            "linefleet/v1/plant/dev-1/desired", desired(KEY, 1, line_doc(m1)), 1, True
        ).wait_for_publish(5)
        results = tmp_path / "results.jsonl"
        proc = _edge_run(
            "--device", "dev-1", "--site", "plant", "--broker", broker.url,
            "--state-dir", str(tmp_path / "state"), "--frames", str(frames),
            "--trust-key", str(trust_key.parent), "--results", str(results),
            "--artifact-root", str(tmp_path / "src"),
        )  # fmt: skip
        try:

            def served_by_inc() -> bool:
                (frames / f"g{time.monotonic_ns()}.png").write_bytes(
                    cv2.imencode(".png", np.full((48, 64, 3), 200, np.uint8))[1].tobytes()
                )  # one more frame to decide
                return _wait_lines(results, 1)[-1].get("model") == "inc@1"

            wait_for("the device serving inc@1", served_by_inc, interval=0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        seen: list[bytes] = []
        publisher.on_message = lambda _c, _u, msg: seen.append(bytes(msg.payload))
        publisher.subscribe("linefleet/v1/plant/dev-1/online", qos=1)
        wait_for("the retained online message", lambda: seen, 5)
        publisher.loop_stop()
        assert json.loads(seen[-1])["online"] is False  # the clean goodbye, retained
    assert main(["edge", "status", "--state-dir", str(tmp_path / "state")]) == 0


def test_a_second_agent_on_the_same_state_dir_is_refused(
    tmp_path: Path, trust_key: Path, frames: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge_puller.runner import lock_state_dir

    state = tmp_path / "state"
    held = lock_state_dir(state)  # as a running agent holds it
    try:
        code = main(
            ["edge", "run", "--device", "plant/dev-1", "--broker", "mqtt://127.0.0.1:1",
             "--state-dir", str(state), "--frames", str(frames), "--trust-key", str(trust_key)]
        )  # fmt: skip
    finally:
        os.close(held)
    assert code == 2
    assert "another edge agent is running on it" in capsys.readouterr().err


def test_override_takes_a_batch_of_corrections_from_a_file_or_stdin(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _decided_state(tmp_path)
    batch = tmp_path / "hmi.jsonl"
    batch.write_text(
        '{"frame": "f-bright", "label": "dent", "note": "rim"}\n'
        '{"frame": "f-dark", "label": "ok", "inspector": "insp-8"}\n'
    )
    override = ["edge", "override", "--state-dir", str(state)]
    assert main([*override, "--from", str(batch)]) == 2  # no inspector for the first row
    assert f"{batch}:1: inspector: required" in capsys.readouterr().err
    assert main([*override, "--from", str(batch), "--inspector", "i", "--label", "ok"]) == 2
    assert "--label goes with --frame" in capsys.readouterr().err

    assert main([*override, "--from", str(batch), "--inspector", "insp-7"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("queued inspection-override #") and "f-bright is dent" in out[0]
    assert "f-dark is ok, not scratch" in out[1]
    first = int(out[0].split("#")[1].split()[0])
    assert out[2] == f"2 corrections queued in one transaction (#{first}-#{first + 1})"

    bad = '{"frame": "f-bright", "label": "rust"}\n{"frame": "f-dark", "label": "scratch"}\n'
    done = subprocess.run(
        [sys.executable, "-m", "linefleet", *override, "--from", "-", "--inspector", "insp-7"],
        input=bad,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1, done.stderr
    assert "<stdin>:1: label rust: not a class of" in done.stderr
    assert "<stdin>:2: label scratch: inc@1 already said scratch" in done.stderr
    assert "Traceback" not in done.stderr
    assert main(["edge", "status", "--state-dir", str(state), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["events_sent_or_queued"] == first + 1  # the refused batch queued nothing


def test_a_frame_file_whose_name_is_not_utf8_is_decided_not_a_crash(
    tmp_path: Path, trust_key: Path
) -> None:
    """`b\\xff.png` (a Latin-1 name from a Windows share) became a frame id holding a lone
    surrogate; the canary split's hash could not encode it and the agent exited 3, and again on
    every start while the file stayed in the folder."""
    folder = tmp_path / "frames"
    folder.mkdir()
    image = cv2.imencode(".png", np.full((48, 64, 3), 30, np.uint8))[1].tobytes()
    (Path(os.fsdecode(os.fsencode(folder) + b"/b\xff.png"))).write_bytes(image)
    (folder / "c.png").write_bytes(image)
    lines = _serve_with_no_broker(tmp_path, trust_key, folder, 2)  # a canary: ids are hashed
    assert [(line["frame_id"], line["label"]) for line in lines] == [
        ("b\\xff.png", "scratch"),
        ("c.png", "scratch"),
    ]
