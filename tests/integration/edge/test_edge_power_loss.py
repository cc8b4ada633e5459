"""Power-loss safety: SIGKILL the agent at random moments, many times; it always recovers.

After every kill (during downloads, verification, activation, state and outbox writes) the
state directory must load, the active serving model must be complete, match its sha256 and
pass its smoke test, and the outbox must open. N kills: `LINEFLEET_POWERLOSS_N` (default 8,
kept small for `make test`; run with 200 for a soak).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from edge_puller.outbox import Outbox
from edge_puller.runtime import load_model
from edge_puller.state import StateStore
from linefleet_core.signing import SigningKey
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.integration
KILLS = int(os.environ.get("LINEFLEET_POWERLOSS_N", "8"))
ROOT = Path(__file__).resolve().parents[3]


def _check(state_dir: Path) -> str | None:
    """What the device would serve after this restart (None before the first convergence)."""
    state = StateStore(state_dir).load()  # raises on a torn or corrupt state file
    box = Outbox(state_dir / "outbox.db")
    box.size()
    box.close()
    active = state.active.get("plant/line-1")
    if active is None or active.serving is None:
        return None
    spec = active.serving
    path = state_dir / "models" / spec.artifact.sha256
    assert path.is_file(), f"active model {spec.ref} is missing"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == spec.artifact.sha256
    load_model(path, spec)  # loads and passes the smoke test
    return spec.ref


def test_sigkill_at_random_moments_never_corrupts_state(tmp_path: Path) -> None:
    key = SigningKey.generate()
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    models = [
        spec_for(tmp_path / "src", f"m{n}", n, pad_bytes=3_000_000 + n, invert=bool(n % 2))
        for n in (1, 2, 3)
    ]
    catalogue = tmp_path / "models.json"
    catalogue.write_text(json.dumps([m.model_dump(mode="json") for m in models]))
    state_dir = tmp_path / "state"
    rng = random.Random(int(os.environ.get("LINEFLEET_POWERLOSS_SEED", "7")))
    served: list[str | None] = []
    mid_download = 0
    for _ in range(KILLS):
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.edge.powerloss_child",
             str(state_dir), str(catalogue), str(pem), str(tmp_path / "src")],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], 60)
        assert ready and child.stdout.readline() == b"ready\n", "the child did not start"
        time.sleep(rng.uniform(0.0, 1.0))  # a random moment of work after start-up
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
        assert child.returncode == -signal.SIGKILL, err.decode()[-2000:]
        store = state_dir / "models"
        if store.is_dir() and any(store.glob("*.part")):
            mid_download += 1
        served.append(_check(state_dir))
    assert any(served), "the agent never converged: the test killed it too early every time"
    first = next(i for i, ref in enumerate(served) if ref)
    assert all(served[first:]), f"lost the serving model after a kill: {served}"
    assert len(set(filter(None, served))) > 1, f"no progress across restarts: {served}"
    print(f"{KILLS} kills, {mid_download} with a download in progress, serving: {served}")
