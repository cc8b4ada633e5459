"""A small valid fleet as Python dicts, written to an in-memory source, for table tests."""

from __future__ import annotations

import copy
import functools
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SHA = "ab" * 32


@functools.cache
def artifact_bytes(version: int) -> bytes:
    """The artifact file of catalogue version `version` (see `MemorySource.write`): a real ONNX
    classifier with the version's classes and input, so validate's graph check can read it."""
    from tests.support.onnx_models import build

    classes = V1 if version == 1 else V2
    return build(classes=tuple(classes), height=64, width=64, threshold=0.4 + version / 100)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


V1 = ["ok", "scratch", "dent", "contamination"]
V2 = ["ok", "scratch", "dent", "dust", "oil"]


def _model_version(version: int, taxonomy: int, classes: list[str]) -> dict[str, Any]:
    return {
        "version": version,
        "taxonomy": f"surface-defects@{taxonomy}",
        "output_classes": classes,
        "artifact": {
            "url": f"artifacts/v{version}.onnx",
            "sha256": hashlib.sha256(artifact_bytes(version)).hexdigest(),
            "size": len(artifact_bytes(version)),
        },
        "input": {"shape": [1, 3, 64, 64], "color": "rgb"},
        "opset": 17,
    }


def _camera(cid: str) -> dict[str, Any]:
    return {
        "id": cid,
        "resolution": {"width": 640, "height": 480},
        "lighting": {"profile": "led-5000k", "color_temperature_k": 5000, "intensity_lux": 800},
        "mount": {"angle_deg": 10, "height_mm": 600},
        "conveyor_side": "left",
    }


def baseline() -> dict[str, dict[str, Any]]:
    header = {"apiVersion": "linefleet.io/v1"}
    return {
        "fleet/policy.yaml": {**header, "kind": "Policy", "max_canary_lines_per_site": 1},
        "fleet/sites/toledo/site.yaml": {
            **header,
            "kind": "Site",
            "id": "toledo",
            "name": "Toledo",
            "timezone": "America/New_York",
        },
        "fleet/sites/toledo/lines/line-3.yaml": {
            **header,
            "kind": "Line",
            "id": "line-3",
            "site": "toledo",
            "product": "door-panel",
            "taxonomy": "surface-defects@2",
            "cameras": [_camera("cam-1"), _camera("cam-2")],
            "rollout": {"serving": "surface-classifier@2"},
        },
        "fleet/sites/toledo/lines/line-4.yaml": {
            **header,
            "kind": "Line",
            "id": "line-4",
            "site": "toledo",
            "product": "hood",
            "taxonomy": "surface-defects@2",
            "cameras": [_camera("cam-1")],
            "rollout": {"serving": "surface-classifier@2"},
        },
        "fleet/sites/toledo/devices/tol-edge-01.yaml": {
            **header,
            "kind": "EdgeDevice",
            "id": "tol-edge-01",
            "site": "toledo",
            "serves": [
                {"line": "line-3", "cameras": ["cam-1", "cam-2"]},
                {"line": "line-4", "cameras": ["cam-1"]},
            ],
            "hardware": {"cpu": "i5-8365UE", "cores": 4, "memory_mb": 8192},
            "onnx": {"max_opset": 17, "execution_providers": ["CPUExecutionProvider"]},
        },
        "fleet/models/surface-classifier.yaml": {
            **header,
            "kind": "Model",
            "name": "surface-classifier",
            "versions": [
                _model_version(1, 1, V1),
                _model_version(2, 2, V2),
                _model_version(3, 2, V2),
            ],
        },
        "taxonomies/surface-defects/v1.yaml": {
            **header,
            "kind": "Taxonomy",
            "name": "surface-defects",
            "version": 1,
            "classes": [{"id": c, "definition": f"{c} defined", "severity": "major"} for c in V1],
        },
        "taxonomies/surface-defects/v2.yaml": {
            **header,
            "kind": "Taxonomy",
            "name": "surface-defects",
            "version": 2,
            "classes": [{"id": c, "definition": f"{c} defined", "severity": "major"} for c in V2],
            "migration": [{"split": "contamination", "into": ["dust", "oil"]}],
        },
    }


@dataclass
class MemorySource:
    docs: dict[str, Any] = field(default_factory=baseline)
    raw: dict[str, bytes] = field(default_factory=dict)
    label: str = "memory"

    def files(self) -> Iterator[tuple[str, bytes]]:
        merged = {
            p: yaml.dump(d, Dumper=_Dumper, sort_keys=False).encode() for p, d in self.docs.items()
        }
        merged.update(self.raw)
        yield from sorted(merged.items())

    def write(self, root: Path) -> Path:
        """Write every file under `root`, with the catalogue's artifact files; return `root`."""
        for rel, raw in self.files():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
        for version in (1, 2, 3):
            art = root / "artifacts" / f"v{version}.onnx"
            art.parent.mkdir(parents=True, exist_ok=True)
            art.write_bytes(artifact_bytes(version))
        return root

    def edit(self, path: str) -> dict[str, Any]:
        """The document at `path`, to change in place before loading."""
        return self.docs[path]

    def copy(self) -> MemorySource:
        return MemorySource(copy.deepcopy(self.docs), dict(self.raw))
