"""Signed desired-state documents for edge tests, built the way the reconciler builds them."""

from __future__ import annotations

from typing import Any

from linefleet_core.signing import SigningKey, canonical_json
from linefleet_core.wire import ModelSpec
from tests.support.wiredocs import desired_envelope

LINE = "plant/line-1"
TAXONOMY = {"ref": "surface-defects@1", "classes": ["ok", "scratch", "dent"]}


def model_doc(spec: ModelSpec) -> dict[str, Any]:
    """The model as a desired state writes it (a candidate's `stage` is the line's to add)."""
    return spec.model_dump(mode="json", exclude={"stage", "canary_fraction"})


def line_doc(
    serving: ModelSpec,
    *,
    candidate: ModelSpec | None = None,
    stage: str = "shadow",
    fraction: float | None = None,
    previous: ModelSpec | None = None,
    line: str = LINE,
    max_latency_p95_ms: float = 100.0,
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "line": line,
        "cameras": [{"id": "cam-1", "fps": 10.0, "width": 64, "height": 48}],
        "taxonomy": {**TAXONOMY, "classes": list(serving.output_classes)},
        "serving": model_doc(serving),
        "telemetry": {
            "uncertainty_band": [0.35, 0.65],
            "daily_upload_budget_mb": 50.0,
            "spool_mb": 50.0,
            "keep_defects": True,
            "keep_disagreements": True,
        },
        "health_gates": {
            "max_error_rate": 0.01,
            "max_latency_p95_ms": max_latency_p95_ms,
            "min_shadow_agreement": 0.9,
            "max_defect_rate_jump": 0.05,
            "max_drift_score": 0.3,
        },
    }
    if candidate is not None:
        doc["candidate"] = {**model_doc(candidate), "stage": stage, "canary_fraction": fraction}
    if previous is not None:
        doc["previous"] = model_doc(previous)
    return doc


def desired(
    key: SigningKey | None,
    generation: int,
    *lines: dict[str, Any],
    device: str = "dev-1",
    site: str = "plant",
    heartbeat_seconds: int = 60,
) -> bytes:
    spec = {"heartbeat_seconds": heartbeat_seconds, "lines": list(lines)}
    doc = desired_envelope(site, device, generation, spec)
    return canonical_json(key.sign(doc) if key else doc)
