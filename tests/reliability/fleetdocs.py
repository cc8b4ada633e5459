"""The soak's fleet: real ONNX artifacts, a rollout schedule, signed desired documents per device.

The harness publishes the documents itself (signed with `linefleet_core.signing`, exactly as
`linefleet publish` signs them) so the soak needs no git fleet of 200 devices; the wire bytes
are the protocol's. Three artifacts A, B, C behave identically (same weights, different
padding, so different sha256) so canaries never trip a health gate by accident.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linefleet_core.signing import SigningKey, canonical_json
from tests.support.onnx_models import CLASSES, BuiltModel, write_model
from tests.support.wiredocs import desired_envelope


@dataclass(frozen=True)
class Step:
    """One publish of the production day: what every line runs at this generation."""

    name: str
    serving: str
    candidate: str | None = None
    stage: str = "shadow"
    previous: str | None = None


DAY: list[Step] = [
    Step("initial rollout", "A"),
    Step("B in shadow", "A", candidate="B"),
    Step("B in canary", "A", candidate="B", stage="canary"),
    Step("promote B", "B", previous="A"),
    Step("roll back to A", "A"),
    Step("roll out C", "C", previous="A"),
    Step("C serving, B shadow again", "C", candidate="B", previous="A"),
]


def build_artifacts(folder: Path) -> dict[str, BuiltModel]:
    folder.mkdir(parents=True, exist_ok=True)
    return {
        name: write_model(folder / f"model-{name}.onnx", pad_bytes=pad)
        for name, pad in (("A", 0), ("B", 1024), ("C", 2048))
    }


def _model(name: str, built: BuiltModel) -> dict[str, Any]:
    return {
        "ref": f"soak-{name.lower()}@1",
        "artifact": {"url": built.url, "sha256": built.sha256, "size": built.size},
        "input": {"shape": [1, 3, 32, 32], "color": "rgb"},
        "output_classes": list(CLASSES),
        "opset": 13,
        "reference_stats": {},
    }


def line_spec(site: str, step: Step, models: dict[str, BuiltModel]) -> dict[str, Any]:
    line: dict[str, Any] = {
        "line": f"{site}/line-1",
        "cameras": [{"id": "cam-1", "fps": 5.0, "width": 64, "height": 48}],
        "taxonomy": {"ref": "surface-defects@1", "classes": list(CLASSES)},
        "serving": _model(step.serving, models[step.serving]),
        "telemetry": {
            "uncertainty_band": [0.35, 0.65],
            "daily_upload_budget_mb": 1.0,
            "spool_mb": 5.0,
            "keep_defects": False,
            "keep_disagreements": False,
        },
        "health_gates": {
            "max_error_rate": 0.5,
            "max_latency_p95_ms": 10_000.0,
            "min_shadow_agreement": 0.0,
            "max_defect_rate_jump": 1.0,
            "max_drift_score": 100.0,
        },
    }
    if step.candidate:
        fraction = 0.5 if step.stage == "canary" else None
        line["candidate"] = {
            **_model(step.candidate, models[step.candidate]),
            "stage": step.stage,
            "canary_fraction": fraction,
        }
    if step.previous:
        line["previous"] = _model(step.previous, models[step.previous])
    return line


def desired(
    key: SigningKey,
    site: str,
    device: str,
    generation: int,
    step: Step,
    models: dict[str, BuiltModel],
    heartbeat: int,
) -> tuple[bytes, str]:
    """The signed payload and its content hash."""
    spec = {"heartbeat_seconds": heartbeat, "lines": [line_spec(site, step, models)]}
    doc = desired_envelope(site, device, generation, spec)
    return canonical_json(key.sign(doc)), str(doc["content_hash"])


def serving_sha(payload: bytes) -> str:
    return str(json.loads(payload)["spec"]["lines"][0]["serving"]["artifact"]["sha256"])
