"""The edge extra stays light: running the agent never imports MLflow, scikit-learn or git."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("mlflow", "sklearn", "skl2onnx", "git", "onnx", "reconciler", "trainer", "factory_sim")


def test_edge_modules_import_nothing_heavy() -> None:
    code = (
        "import json, sys, edge_puller.runner, edge_puller.localstatus, linefleet.commands.edge;"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "onnxruntime" in loaded and "cv2" in loaded  # the check sees real imports
    assert not loaded & set(HEAVY), loaded & set(HEAVY)


def test_the_cli_parses_its_arguments_before_importing_pydantic_or_a_runtime() -> None:
    """Every command module is imported to build the parser: none may pull in a heavy
    dependency at import time (start-up is most of what a short command like `edge override`
    costs); each command imports what it needs when it runs."""
    code = (
        "import json, sys; from linefleet.cli import build_parser;"
        "build_parser().parse_args(['edge', 'override', '--state-dir', 'x', '--from', 'f']);"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(json.loads(out))
    assert "linefleet" in loaded and "argparse" in loaded  # the check sees real imports
    heavy = {*HEAVY, "pydantic", "onnxruntime", "cv2", "numpy", "paho", "cryptography"}
    assert not loaded & heavy, loaded & heavy
