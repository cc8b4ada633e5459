"""Cross-file checks on one fleet revision, table-driven: one mutation, the findings it causes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from linefleet_core import spec as fleetspec
from linefleet_core import validation
from linefleet_core.errors import Severity

from .fleetdocs import MemorySource

L3 = "fleet/sites/toledo/lines/line-3.yaml"
L4 = "fleet/sites/toledo/lines/line-4.yaml"
DEV = "fleet/sites/toledo/devices/tol-edge-01.yaml"
MODEL = "fleet/models/surface-classifier.yaml"
TAX2 = "taxonomies/surface-defects/v2.yaml"

Mutation = Callable[[MemorySource], object]


def findings_for(mutate: Mutation) -> list[tuple[str, str, str, str]]:
    src = MemorySource()
    mutate(src)
    spec, schema_findings = fleetspec.load(src)
    assert schema_findings == []
    return sorted((f.path, f.field, f.severity.value, f.message) for f in validation.check(spec))


def test_the_baseline_is_clean() -> None:
    assert findings_for(lambda s: None) == []


def second_device(src: MemorySource) -> dict[str, Any]:
    doc = dict(src.edit(DEV))
    doc["id"] = "tol-edge-02"
    doc["serves"] = [{"line": "line-3", "cameras": ["cam-2"]}]
    src.docs["fleet/sites/toledo/devices/tol-edge-02.yaml"] = doc
    return doc


def set_in(path: str, *keys: Any, value: Any) -> Mutation:
    def mutate(src: MemorySource) -> None:
        node = src.edit(path)
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def drop_migration(src: MemorySource) -> None:
    del src.edit(TAX2)["migration"]


def add_v4(src: MemorySource) -> None:
    doc = dict(src.edit(TAX2))
    doc["version"] = 4
    src.docs["taxonomies/surface-defects/v4.yaml"] = doc


def unknown_site(src: MemorySource) -> None:
    # Outside fleet/sites/ (inside, the folder would name the site): only the reference is wrong.
    src.docs["fleet/line-3.yaml"] = dict(src.docs.pop(L3), site="toldeo")


def two_canaries(src: MemorySource) -> None:
    for path in (L3, L4):
        src.edit(path)["rollout"]["candidate"] = {
            "model": "surface-classifier@3",
            "stage": "canary",
            "canary_fraction": 0.1,
        }


CASES: list[tuple[str, Mutation, list[tuple[str, str, str, str]]]] = [
    (
        "line names an unknown site",
        unknown_site,
        [
            (DEV, "serves[0].line", "error", "unknown line 'toledo/line-3'"),
            ("fleet/line-3.yaml", "site", "error", "unknown site 'toldeo'"),
            (
                "fleet/line-3.yaml",
                "cameras",
                "warning",
                "no edge device serves camera(s) cam-1, cam-2",
            ),
        ],
    ),
    (
        "line names an unknown taxonomy version",
        set_in(L4, "taxonomy", value="surface-defects@7"),
        [
            (L4, "taxonomy", "error", "unknown taxonomy version 'surface-defects@7'"),
            (
                L4,
                "taxonomy",
                "error",
                "the line uses surface-defects@7 but its serving model surface-classifier@2 outputs "
                "surface-defects@2",
            ),
        ],
    ),
    (
        "serving model not in the catalogue",
        set_in(L4, "rollout", "serving", value="surface-classifier@9"),
        [
            (
                L4,
                "rollout.serving",
                "error",
                "unknown model 'surface-classifier@9' (not in the model catalogue)",
            )
        ],
    ),
    (
        "candidate for an older taxonomy version",
        set_in(
            L4, "rollout", "candidate", value={"model": "surface-classifier@1", "stage": "shadow"}
        ),
        [
            (
                L4,
                "rollout.candidate.model",
                "error",
                "candidate surface-classifier@1 outputs surface-defects@1; the line uses surface-defects@2 (a "
                "candidate may move the line to a later version of its taxonomy, not another)",
            )
        ],
    ),
    (
        "candidate is the serving model",
        set_in(
            L4, "rollout", "candidate", value={"model": "surface-classifier@2", "stage": "shadow"}
        ),
        [(L4, "rollout.candidate.model", "error", "the candidate is the serving model already")],
    ),
    (
        "output classes out of taxonomy order",
        set_in(
            MODEL, "versions", 1, "output_classes", value=["ok", "dent", "scratch", "dust", "oil"]
        ),
        [
            (
                MODEL,
                "versions[1].output_classes",
                "error",
                "must be the classes of surface-defects@2 in order: ['ok', 'scratch', 'dent', 'dust', 'oil']",
            )
        ],
    ),
    (
        "grey model declares three channels",
        set_in(MODEL, "versions", 2, "input", value={"shape": [1, 3, 64, 64], "color": "gray"}),
        [
            (
                MODEL,
                "versions[2].input.shape",
                "error",
                "expected [1, 1, height, width] for gray input",
            )
        ],
    ),
    (
        "a model input of 2^40 pixels a side",
        set_in(MODEL, "versions", 2, "input", value={"shape": [1, 3, 2**40, 64], "color": "rgb"}),
        [
            (
                MODEL,
                "versions[2].input.shape",
                "error",
                f"height and width must be 1 to 8192, not {2**40} x 64 (larger frames: declare input.tiling)",
            )
        ],
    ),
    (
        "camera smaller than the model input",
        set_in(L4, "cameras", 0, "resolution", value={"width": 48, "height": 48}),
        [
            (
                L4,
                "cameras[0].resolution",
                "error",
                "48x48 is smaller than the input 64x64 of surface-classifier@2",
            )
        ],
    ),
    (
        "device opset and execution providers",
        set_in(
            DEV,
            "onnx",
            value={"max_opset": 13, "execution_providers": ["OpenVINOExecutionProvider"]},
        ),
        [
            (
                DEV,
                "onnx.execution_providers",
                "error",
                "surface-classifier@2 (for toledo/line-3) runs on ['CPUExecutionProvider']; the device offers "
                "['OpenVINOExecutionProvider']",
            ),
            (
                DEV,
                "onnx.execution_providers",
                "error",
                "surface-classifier@2 (for toledo/line-4) runs on ['CPUExecutionProvider']; the device offers "
                "['OpenVINOExecutionProvider']",
            ),
            (
                DEV,
                "onnx.max_opset",
                "error",
                "surface-classifier@2 (for toledo/line-3) needs opset 17; this device supports up to 13",
            ),
            (
                DEV,
                "onnx.max_opset",
                "error",
                "surface-classifier@2 (for toledo/line-4) needs opset 17; this device supports up to 13",
            ),
        ],
    ),
    (
        "a camera served by two devices",
        second_device,
        [
            (
                "fleet/sites/toledo/devices/tol-edge-02.yaml",
                "serves[0].cameras[0]",
                "error",
                "camera toledo/line-3/cam-2 is already served by tol-edge-01",
            )
        ],
    ),
    (
        "device serves an unknown camera; another camera is left unserved",
        set_in(DEV, "serves", 1, "cameras", value=["cam-9"]),
        [
            (DEV, "serves[1].cameras[0]", "error", "line toledo/line-4 has no camera 'cam-9'"),
            (L4, "cameras", "warning", "no edge device serves camera(s) cam-1"),
        ],
    ),
    (
        "taxonomy v2 without its migration",
        drop_migration,
        [
            (
                TAX2,
                "migration",
                "error",
                "'contamination' of surface-defects@1 disappears without a migration step (rename, "
                "split, merge or deprecate it)",
            ),
            (
                TAX2,
                "migration",
                "error",
                "'dust' is new in surface-defects@2 but no migration step introduces it (add it)",
            ),
            (
                TAX2,
                "migration",
                "error",
                "'oil' is new in surface-defects@2 but no migration step introduces it (add it)",
            ),
        ],
    ),
    (
        "taxonomy versions with a gap",
        add_v4,
        [
            (
                "taxonomies/surface-defects/v4.yaml",
                "version",
                "error",
                "surface-defects@3 is missing: versions must be consecutive",
            )
        ],
    ),
    (
        "more lines in canary than the policy allows",
        two_canaries,
        [
            (
                L3,
                "rollout.candidate.stage",
                "error",
                "site toledo has 2 lines in canary (toledo/line-3, toledo/line-4); the policy allows 1",
            ),
            (
                L4,
                "rollout.candidate.stage",
                "error",
                "site toledo has 2 lines in canary (toledo/line-3, toledo/line-4); the policy allows 1",
            ),
        ],
    ),
    (
        "evidence for a line that does not exist",
        set_in(
            MODEL,
            "versions",
            2,
            "evaluation",
            value={
                "toledo/line-9": {
                    "metric": "accuracy",
                    "candidate": 0.9,
                    "holdout_frames": 100,
                    "dataset": "ds-1",
                }
            },
        ),
        [
            (
                MODEL,
                "versions[2].evaluation.toledo/line-9",
                "warning",
                "evidence for unknown line 'toledo/line-9'",
            )
        ],
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_cross_file_checks(mutate: Mutation, expected: list[tuple[str, str, str, str]]) -> None:
    assert findings_for(mutate) == sorted(expected)


def test_keep_rules_that_cannot_do_what_they_are_set_for_are_warned_of() -> None:
    def odd(src: MemorySource) -> None:
        src.edit(L4)["rollout"]["telemetry"] = {
            "uncertain_below": 1.0,  # every frame is "uncertain": nothing left to audit
            "audit_rate": 0.01,
            "doubt_defects_below": 0.3,  # no novelty model on the line: no effect
        }

    (doubt, uncertain) = findings_for(odd)  # sorted by field
    assert doubt[:3] == (L4, "rollout.telemetry.doubt_defects_below", "warning")
    assert "without a novelty model on the line" in doubt[3]
    assert uncertain[:3] == (L4, "rollout.telemetry.uncertain_below", "warning")
    assert "every decided frame is kept as uncertain" in uncertain[3]
    assert "audit sample (audit_rate) never gets a frame" in uncertain[3]
    band = findings_for(set_in(L4, "rollout", "telemetry", value={"uncertainty_band": [0.2, 1.0]}))
    assert [f[1] for f in band] == ["rollout.telemetry.uncertainty_band"]
    assert findings_for(set_in(L4, "rollout", "telemetry", value={"uncertain_below": 0.99})) == []


def test_findings_carry_positions_in_the_offending_file() -> None:
    src = MemorySource()
    set_in(L4, "rollout", "serving", value="surface-classifier@9")(src)
    spec, _ = fleetspec.load(src)
    (finding,) = validation.check(spec)
    assert finding.render() == (
        f"{L4}:21:12: rollout.serving: unknown model 'surface-classifier@9' (not in the model catalogue)"
    )
    assert finding.severity is Severity.ERROR


def test_a_tiling_that_cuts_a_cameras_frame_into_too_many_tiles_is_refused_on_the_line() -> None:
    """16-px tiles overlapping by 15 px are within the catalogue's rules, and cut a 640x480
    frame into 290,625 tiles, each decided in turn on the device: validate refused nothing.
    Each camera of a line whose model tiles its frame (its ROI, else its resolution) into more
    than MAX_TILES_PER_FRAME is a finding at the line's model reference, with its position; a
    camera whose ROI is small enough is not."""
    src = MemorySource()
    set_in(MODEL, "versions", 1, "input", "tiling", value={"size": 16, "overlap": 15})(src)
    set_in(L4, "cameras", 0, "roi", value={"x": 0, "y": 0, "width": 64, "height": 48})(src)
    spec, schema_findings = fleetspec.load(src)
    assert schema_findings == []
    found = [f for f in validation.check(spec) if "tiles" in f.message]
    many = (
        "tiling size 16, overlap 15 cuts a 640x480 frame into 290,625 tiles; at most 4,096 a "
        "frame (larger tiles, or less overlap)"
    )
    assert [(f.path, f.field, f.severity.value, f.message) for f in found] == [
        (L3, "rollout.serving", "error", f"surface-classifier@2 on camera cam-1: {many}"),
        (L3, "rollout.serving", "error", f"surface-classifier@2 on camera cam-2: {many}"),
    ]
    assert all(f.line > 0 for f in found)
    assert (
        findings_for(
            set_in(MODEL, "versions", 1, "input", "tiling", value={"size": 16, "overlap": 6})
        )
        == []
    )  # 64 x 48 = 3,072 tiles a 640x480 frame: within the cap
