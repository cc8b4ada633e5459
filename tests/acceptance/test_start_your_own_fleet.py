"""README "Start your own fleet", run as a user would, outside the source tree.

linefleet is built into a wheel and installed (not editable) with `[control,edge]` into a fresh
virtualenv; every command runs from that virtualenv, in a temporary folder, without PYTHONPATH.
The three YAML files are taken from the README itself, so the documented edit is the tested one.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import freshvenv
from tests.support.mosquitto import Mosquitto
from tests.support.onnx_models import write_model

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Start your own fleet\n")
    end = text.index("\n## ", start + 1)
    return text[start:end]


def readme_files() -> dict[str, str]:
    """The ```yaml blocks of the section, by the path on their first line (`# fleet/...`)."""
    blocks = re.findall(r"```yaml\n(.*?)```", readme_section(), flags=re.DOTALL)
    files = {}
    for block in blocks:
        first = block.splitlines()[0]
        assert first.startswith("# fleet/"), first
        files[first[2:]] = block
    return files


def test_the_readme_section_shows_the_commands_this_test_runs() -> None:
    section = readme_section()
    for command in (
        "pip install 'linefleet[control,edge]'",
        'linefleet init my-fleet --site plant-1 --site-name "Plant 1" --timezone Europe/Berlin',
        "linefleet validate\n",
        "linefleet plan --base HEAD~1 --format text",
        "linefleet keys generate --out ../keys",
        "linefleet publish --broker mqtt://127.0.0.1:1883 --signing-key ../keys/signing.key",
        "linefleet edge run --device plant-1/edge-1 --broker mqtt://127.0.0.1:1883",
        "--state-dir ../edge-1 --frames ../frames --trust-key ../keys",
        "--artifact-root fleet/artifacts &",
        "linefleet status --broker mqtt://127.0.0.1:1883 --repo . --wait 60",
    ):
        assert command in section, command
    assert sorted(readme_files()) == [
        "fleet/models/defects.yaml",
        "fleet/sites/plant-1/devices/edge-1.yaml",
        "fleet/sites/plant-1/lines/line-1.yaml",
    ]


def test_from_an_empty_folder_to_one_device_synced(tmp_path: Path) -> None:
    # pip install 'linefleet[control,edge]' -- from the wheel built here, into a fresh venv.
    wheel = freshvenv.build_wheel(ROOT, tmp_path / "build")
    venv = freshvenv.create(tmp_path / ".venv", freshvenv.dependency_links(tmp_path / "links"))
    venv.pip_install(f"{wheel}[control,edge]")
    home = tmp_path / "home"
    home.mkdir()
    env = venv.env(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", LINEFLEET_LOG_DIR=str(tmp_path))

    def lf(*args: str, cwd: Path, expect: int = 0) -> str:
        done = subprocess.run(
            ["linefleet", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == expect, f"linefleet {' '.join(args)}\n{done.stdout}{done.stderr}"
        return done.stdout

    where = subprocess.run(
        ["python", "-c", "import linefleet, edge_puller; print(linefleet.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv.root / "lib")), where  # the wheel, not the source tree

    # linefleet init my-fleet ...; cd my-fleet
    lf(
        "init", "my-fleet", "--site", "plant-1", "--site-name", "Plant 1",
        "--timezone", "Europe/Berlin", "--approver", "@acme/plant-1-quality",
        cwd=tmp_path,
    )  # fmt: skip
    fleet = tmp_path / "my-fleet"
    assert lf("validate", cwd=fleet).startswith("valid: 0 error(s)")

    # The model (sha256 and size put in), a line with one camera, the device: from the README.
    model = write_model(tmp_path / "model.onnx")
    (fleet / "fleet" / "artifacts").mkdir(parents=True)
    (fleet / "fleet" / "artifacts" / "defects-v1.onnx").write_bytes(model.path.read_bytes())
    for rel, text in readme_files().items():
        text = text.replace("<sha256 of the file>", model.sha256)
        text = text.replace("<size in bytes>", str(model.size))
        (fleet / rel).parent.mkdir(parents=True, exist_ok=True)
        (fleet / rel).write_text(text, encoding="utf-8")

    assert lf("validate", cwd=fleet) == "valid: 0 error(s), 0 warning(s) in 6 document(s)\n"
    git = ["git", "-c", "user.name=Plant Engineer", "-c", "user.email=pe@example.invalid"]
    subprocess.run([*git, "add", "-A"], cwd=fleet, check=True)
    subprocess.run([*git, "commit", "-qm", "Line 1 with its camera and edge device"], cwd=fleet)
    plan = lf("plan", "--base", "HEAD~1", "--format", "text", cwd=fleet)
    assert "# plant-1/line-1 will be added" in plan, plan
    assert plan.splitlines()[-1].startswith("Plan: 1 line")
    lf("keys", "generate", "--out", "../keys", cwd=fleet)

    with Mosquitto(tmp_path / "broker") as broker:
        published = lf(
            "publish", "--broker", broker.url, "--signing-key", "../keys/signing.key", cwd=fleet
        )
        assert "published plant-1/edge-1" in published, published
        (tmp_path / "frames").mkdir()
        log = (tmp_path / "edge-1.log").open("wb")
        edge_run = [
            "linefleet", "edge", "run", "--device", "plant-1/edge-1", "--broker", broker.url,
            "--state-dir", "../edge-1", "--frames", "../frames", "--trust-key", "../keys",
            "--artifact-root", "fleet/artifacts",
        ]  # fmt: skip
        agent = subprocess.Popen(
            edge_run,
            cwd=fleet,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            status = lf("status", "--broker", broker.url, "--repo", ".", "--wait", "60", cwd=fleet)
        finally:
            agent.send_signal(signal.SIGTERM)
            code = agent.wait(timeout=30)
            log.close()
        agent_log = (tmp_path / "edge-1.log").read_text(errors="replace")
        assert code == 0, agent_log

        # What the generated fleet-publish.yml runs (the publish action's script), with the
        # same wheel: nothing changed since, so nothing is sent, and the key file is gone.
        runner_temp = tmp_path / "runner-temp"
        runner_temp.mkdir()
        script = ROOT / ".github" / "actions" / "publish" / "publish.sh"
        again = subprocess.run(
            ["bash", str(script)],
            cwd=fleet,
            env={
                **env,
                "BROKER": broker.url,
                "SIGNING_KEY_PEM": (tmp_path / "keys" / "signing.key").read_text(),
                "LINEFLEET_PACKAGE": str(wheel),
                "LINEFLEET_PYTHON": str(venv.python),
                "LINEFLEET_PIP_ARGS": "--no-index",
                "OUT": str(tmp_path / "publish-out"),
                "RUNNER_TEMP": str(runner_temp),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        result = json.loads((tmp_path / "publish-out" / "publish.json").read_text())
        assert (result["published"], result["unchanged"]) == (0, 1), result
        assert list(runner_temp.iterdir()) == []
    row = next(line for line in status.splitlines() if "edge-1" in line)
    assert "Synced" in row, status
    assert "defects@1" in status, status
