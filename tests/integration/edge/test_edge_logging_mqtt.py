"""Anomaly-native logging over a real Mosquitto (issue 20): a novelty model shipped in the
desired state is fetched, verified, loaded and scores every frame; the device uploads `novel`
and `audit` frames with their reasons and reports per reason what it kept and uploaded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from linefleet_core.wire import decode_frame
from tests.integration.edge.test_edge_mqtt import KEY, Device, Watcher
from tests.support.external_models import anomaly_model
from tests.support.mosquitto import Mosquitto
from tests.support.waiting import wait_for
from tests.unit.edge.documents import desired, line_doc
from tests.unit.edge.helpers import spec_for

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def watcher(broker: Mosquitto) -> Iterator[Watcher]:
    w = Watcher(broker)
    yield w
    w.close()


@pytest.fixture
def device(tmp_path: Path, broker: Mosquitto) -> Iterator[Device]:
    d = Device(tmp_path, broker)
    yield d
    d.close()


def _spool_report(watcher: Watcher) -> dict[str, Any]:
    reports = [b for b in watcher.bodies("reported") if b.get("lines")]
    return (reports[-1]["lines"][0].get("spool") or {}) if reports else {}


def test_novel_and_audit_frames_arrive_with_reasons_and_are_counted_in_the_report(
    tmp_path: Path, watcher: Watcher, device: Device
) -> None:
    serving = spec_for(tmp_path / "src", "inc", 1)  # bright: ok, dark: scratch
    novelty = anomaly_model(tmp_path / "src" / "novelty-1.onnx")  # the darkest 8x8 cell
    line = line_doc(serving)
    line["telemetry"]["audit_rate"] = 0.5
    line["novelty"] = {
        "ref": "novelty@1",
        "artifact": {"url": novelty.path.as_uri(), "sha256": novelty.sha256, "size": novelty.size},
        "input": {"shape": [1, 64, 64, 3], "color": "rgb", "layout": "NHWC"},
        "output_classes": ["ok", "novel"],
        "opset": novelty.opset,
        "task": "anomaly",
        "outputs": {"score": "score_column", "threshold": 0.5},
    }
    watcher.publish_desired(desired(KEY, 1, line, heartbeat_seconds=1))
    wait_for(
        "applied report",
        lambda: any(
            (b.get("applied") or {}).get("generation") == 1 for b in watcher.bodies("reported")
        ),
    )
    # fetched and verified into the artifact store beside the serving model
    assert (tmp_path / "state" / "models" / novelty.sha256).is_file()
    wait_for("a decision by inc@1", lambda: device.decided_by("inc@1"))
    device.show(220, n=6)  # confidently ok and normal: the audit's population
    patched = np.full((48, 64, 3), 220, np.uint8)
    patched[8:24, 8:24] = 0  # still "ok" to the classifier; far from normal to the novelty model
    device.count += 1
    cv2.imwrite(str(device.frames / f"f{device.count:05d}.png"), patched)

    def metas() -> list[Any]:
        return [decode_frame(payload)[0] for payload in watcher.frames()]

    wait_for("the novel frame uploaded", lambda: any(m.reason == "novel" for m in metas()))
    wait_for("audit frames uploaded", lambda: sum(m.reason == "audit" for m in metas()) >= 3)
    novel = next(m for m in metas() if m.reason == "novel")
    assert (novel.predicted, novel.novelty_by) == ("ok", "novelty@1")
    assert novel.novelty is not None and novel.novelty > 0.5
    audits = [m for m in metas() if m.reason == "audit"]
    assert all(m.predicted == "ok" and m.novelty is not None and m.novelty < 0.5 for m in audits)
    assert {m.reason for m in metas()} == {"novel", "audit"}

    def counted() -> bool:
        spool = _spool_report(watcher)
        reasons = spool.get("reasons", {})
        audit = reasons.get("audit", {})
        uploaded = sum(m.reason == "audit" for m in metas())
        return (
            reasons.get("novel", {}).get("uploaded") == 1
            and audit.get("uploaded") == uploaded
            and audit.get("kept") == uploaded
            and spool.get("audit", {}).get("cam-1", {}).get("sampled") == uploaded
        )

    wait_for("a report counting the frames per reason", counted)
    population = _spool_report(watcher)["audit"]["cam-1"]["population"]
    assert population >= 6 + 1  # six shown at once, and the bright frame(s) before them
    assert abs(_spool_report(watcher)["audit"]["cam-1"]["sampled"] - population / 2) <= 1
