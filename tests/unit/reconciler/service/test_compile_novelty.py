"""A line's novelty model and logging policy (issue 20): validated, compiled into the desired
state the edge accepts, and absent from documents that do not use them (their bytes stay)."""

from __future__ import annotations

import json
from typing import Any

from edge_puller.desired import to_target
from linefleet_core.fleet import TelemetryPolicy
from reconciler.service.compile import compile_fleet
from tests.support import minifleet

BASE = "file:///srv/fleet"
COMMIT = "ab" * 20
LINE = "fleet/sites/toledo/lines/line-1.yaml"
OLD_TELEMETRY = {
    "uncertainty_band",
    "daily_upload_budget_mb",
    "spool_mb",
    "keep_defects",
    "keep_disagreements",
}


def _novelty_family(task: str = "anomaly") -> dict[str, Any]:
    blob_version = minifleet._model_version(1, "surface-defects@2", ["ok", "scratch"])
    version = {**blob_version, "task": task}
    if task == "anomaly":
        version["outputs"] = {"score": "score", "threshold": 2.5}
    else:
        version["output_classes"] = list(minifleet.V2)
    return {
        "apiVersion": minifleet.API,
        "kind": "Model",
        "name": "surface-novelty",
        "versions": [version],
    }


def _docs(task: str = "anomaly", version: int = 1) -> dict[str, Any]:
    docs = minifleet.documents()
    docs["fleet/models/surface-novelty.yaml"] = _novelty_family(task)
    rollout = docs[LINE]["rollout"]
    rollout["novelty"] = {"model": "surface-novelty", "version": version}
    rollout["telemetry"] = {
        "uncertain_below": 0.5, "audit_rate": 0.02, "doubt_defects_below": 0.3,
    }  # fmt: skip
    return docs


def _messages(docs: dict[str, Any]) -> list[str]:
    _, findings = minifleet.load_docs(docs)
    return [f"{f.path}:{f.field}: {f.message}" for f in findings]


def test_the_novelty_model_is_compiled_beside_the_serving_model_and_accepted_by_the_edge() -> None:
    docs = _docs()
    assert _messages(docs) == []
    spec, _ = minifleet.load_docs(docs)
    doc = compile_fleet(spec, COMMIT, 3, BASE)["toledo-edge-1"]
    line = next(ln for ln in doc.spec.lines if ln.line == "toledo/line-1")
    assert line.novelty is not None
    assert (line.novelty.ref, line.novelty.task) == ("surface-novelty@1", "anomaly")
    assert line.novelty.artifact.url == "file:///srv/fleet/artifacts/surface-classifier-1.onnx"
    assert line.telemetry.audit_rate == 0.02 and line.telemetry.uncertain_below == 0.5
    assert line.telemetry.doubt_defects_below == 0.3
    target = to_target(doc).lines["toledo/line-1"]
    assert target.novelty is not None and target.novelty.task == "anomaly"
    assert target.novelty in target.models()  # fetched, verified and loaded like any model
    assert target.telemetry.audit_rate == 0.02 and target.telemetry.uncertain_at == 0.5
    assert target.telemetry.doubt_defects_below == 0.3  # the edge reads it as policy
    # the local state keeps it across a restart
    assert type(target).model_validate_json(target.model_dump_json()) == target


def test_lines_without_the_new_fields_compile_to_the_documents_they_always_were() -> None:
    spec, _ = minifleet.load_docs(minifleet.documents())
    for doc in compile_fleet(spec, COMMIT, 3, BASE).values():
        body = json.loads(doc.model_dump_json())
        for line in body["spec"]["lines"]:
            assert "novelty" not in line
            assert set(line["telemetry"]) == OLD_TELEMETRY
            assert line["candidate"] is None or isinstance(line["candidate"], dict)
        target = to_target(doc)
        assert all(t.novelty is None for t in target.lines.values())


def test_a_novelty_model_must_exist_and_be_an_anomaly_model() -> None:
    assert _messages(_docs(version=9)) == [
        f"{LINE}:rollout.novelty: unknown model 'surface-novelty@9' (not in the model catalogue)"
    ]
    messages = _messages(_docs(task="classification"))
    assert messages == [
        f"{LINE}:rollout.novelty.model: surface-novelty@1 is a classification model; "
        "a novelty model has task 'anomaly'"
    ]


def test_the_old_band_is_read_by_its_upper_edge_only() -> None:
    assert TelemetryPolicy(uncertainty_band=[0.35, 0.65]).uncertain_at == 0.65
    assert TelemetryPolicy(uncertainty_band=[0.35, 0.65], uncertain_below=0.3).uncertain_at == 0.3
