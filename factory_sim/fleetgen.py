"""Generate a complete, valid fleet repository of any size (for benchmarks, tests and demos).

`generate(shape)` is pure: it returns every file as `{repository path: bytes}` and is
deterministic for a seed. `write(files, out)` puts them on disk without leaving a
half-written tree behind. The fleet it describes:

- taxonomy `surface-defects` v1 -> v2 (`contamination` split into `dust` + `oil`) -> v3
  (`discoloration` renamed `stain`, `crack` added);
- model family `surface-classifier`: v1 (taxonomy v1), v2 and v3 (v2), v4 (v3), each a real tiny
  ONNX file under `fleet/artifacts/`;
- per site: a `site.yaml`, lines with varied cameras, and edge devices that serve every camera;
- rollouts: most lines serve v2, some still v1, some have v3 promoted, a few run v3 in shadow
  and at most one line per site has v3 in canary (with per-line evidence in the catalogue).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from factory_sim.onnx_fixtures import OPSET, build_classifier
from factory_sim.surface_defects import TAXONOMY_NAME, taxonomy_documents
from linefleet_core.atomic import write_tree
from linefleet_core.fleetschema import modeline

API_VERSION = "linefleet.io/v1"
MODEL_NAME = "surface-classifier"
INPUT_SHAPE = [1, 3, 64, 64]
# model version -> taxonomy version; the fleet's catalogue
MODEL_TAXONOMY = {1: 1, 2: 2, 3: 2, 4: 3}

_PLANTS = [
    ("toledo", "Toledo Stamping", "America/New_York"),
    ("dresden", "Dresden Body Shop", "Europe/Berlin"),
    ("monterrey", "Monterrey Assembly", "America/Monterrey"),
    ("pune", "Pune Components", "Asia/Kolkata"),
    ("gyor", "Győr Powertrain", "Europe/Budapest"),
    ("curitiba", "Curitiba Panels", "America/Sao_Paulo"),
    ("nagoya", "Nagoya Press Shop", "Asia/Tokyo"),
    ("kosice", "Košice Paint Shop", "Europe/Bratislava"),
]
_PRODUCTS = ["door-panel", "hood", "fender", "roof-panel", "tailgate", "bracket", "heat-shield"]
_LIGHTING = [  # profile, colour temperature (K), intensity (lux)
    ("diffuse-dome", 5600, 1800.0),
    ("dark-field", 6500, 900.0),
    ("bright-field", 5000, 2400.0),
    ("coaxial", 6000, 1500.0),
    ("low-angle-ring", 4500, 1200.0),
]
_RESOLUTIONS = [(1920, 1080), (2448, 2048), (1280, 1024), (2592, 1944)]
_SIDES = ["left", "right", "top", "bottom"]
_HARDWARE = [  # cpu, cores, memory (MB), accelerator
    ("Intel Core i5-1145GRE", 4, 8192, None),
    ("NVIDIA Jetson Orin Nano (Arm Cortex-A78AE)", 6, 8192, "nvidia-ampere-1024"),
    ("AMD Ryzen Embedded V2718", 8, 16384, None),
    ("Rockchip RK3588", 8, 8192, "rknpu"),
]


@dataclass(frozen=True)
class FleetShape:
    sites: int = 3
    lines_per_site: int = 4
    cameras_per_line: int = 3
    devices_per_site: int | None = None
    """Edge devices per site; default: one per four lines. Lines are spread evenly."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("sites", "lines_per_site", "cameras_per_line"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be at least 1")
        if self.devices_per_site is not None and not (
            1 <= self.devices_per_site <= self.lines_per_site
        ):
            raise ValueError("devices-per-site must be between 1 and lines-per-site")

    @property
    def devices(self) -> int:
        return self.devices_per_site or math.ceil(self.lines_per_site / 4)


class _Dumper(yaml.CSafeDumper):
    """Block-style YAML without anchors: fleet files refuse aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(path: str, doc: dict[str, Any]) -> bytes:
    """One fleet file: the schema modeline, then block-style YAML in the document's key order."""
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
    return (modeline(path, doc["kind"]) + body).encode("utf-8")


def site_ids(count: int) -> list[str]:
    ids = [plant[0] for plant in _PLANTS[:count]]
    ids += [f"plant-{n:03d}" for n in range(len(ids) + 1, count + 1)]
    return ids


def generate(shape: FleetShape) -> dict[str, bytes]:
    """Every file of a valid fleet repository of the given shape."""
    rng = random.Random(shape.seed)
    files: dict[str, bytes] = {}
    for version, doc in taxonomy_documents().items():
        path = f"taxonomies/{TAXONOMY_NAME}/v{version}.yaml"
        files[path] = dump(path, doc)
    files["fleet/policy.yaml"] = dump("fleet/policy.yaml", policy_doc())
    evidence: dict[int, dict[str, Any]] = {v: {} for v in MODEL_TAXONOMY}
    for index, site in enumerate(site_ids(shape.sites)):
        base = f"fleet/sites/{site}"
        files[f"{base}/site.yaml"] = dump(f"{base}/site.yaml", site_doc(site, index, rng))
        lines = [
            line_doc(site, n, shape.cameras_per_line, rng)
            for n in range(1, shape.lines_per_site + 1)
        ]
        _assign_rollouts(lines, rng, evidence)
        for line in lines:
            path = f"{base}/lines/{line['id']}.yaml"
            files[path] = dump(path, line)
        for n, served in enumerate(_spread(lines, shape.devices), start=1):
            device = device_doc(site, n, served, rng)
            path = f"{base}/devices/{device['id']}.yaml"
            files[path] = dump(path, device)
    catalogue, artifacts = model_family(evidence)
    files[f"fleet/models/{MODEL_NAME}.yaml"] = dump(f"fleet/models/{MODEL_NAME}.yaml", catalogue)
    files.update(artifacts)
    return files


def policy_doc() -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Policy",
        "owners": {"fleet_admins": ["@acme/fleet-admins"], "data_team": ["@acme/vision-data"]},
        "promotion": {"metric": "accuracy", "tolerance": 0.01, "min_holdout_frames": 200},
        "max_canary_lines_per_site": 2,
        "health_gates": {
            "max_error_rate": 0.01,
            "max_latency_p95_ms": 80.0,
            "min_shadow_agreement": 0.92,
            "max_defect_rate_jump": 0.05,
            "max_drift_score": 0.3,
        },
        "heartbeat_seconds": 60,
        "hold_changes_during_production": False,
    }


def site_doc(site: str, index: int, rng: random.Random) -> dict[str, Any]:
    name, zone = (
        (_PLANTS[index][1], _PLANTS[index][2])
        if index < len(_PLANTS)
        else (f"Plant {index + 1}", rng.choice([p[2] for p in _PLANTS]))
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "Site",
        "id": site,
        "name": name,
        "timezone": zone,
        "approvers": [f"@acme/{site}-quality"],
        "production_windows": [
            {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "06:00", "end": "22:00"}
        ],
        "freeze_periods": [
            {"start": "2026-12-21T00:00", "end": "2027-01-04T00:00", "reason": "year-end shutdown"}
        ],
    }


def camera_doc(n: int, rng: random.Random) -> dict[str, Any]:
    width, height = rng.choice(_RESOLUTIONS)
    profile, kelvin, lux = rng.choice(_LIGHTING)
    return {
        "id": f"cam-{n}",
        "resolution": {"width": width, "height": height},
        "lighting": {
            "profile": profile,
            "color_temperature_k": kelvin + rng.randrange(-300, 301, 100),
            "intensity_lux": round(lux * rng.uniform(0.85, 1.15), 1),
        },
        "mount": {
            "angle_deg": float(rng.choice([0, 15, 30, 45, -30])),
            "height_mm": float(rng.randrange(350, 1201, 50)),
        },
        "conveyor_side": _SIDES[(n - 1) % len(_SIDES)],
        "fps": float(rng.choice([10, 15, 25, 30])),
    }


def line_doc(site: str, n: int, cameras: int, rng: random.Random) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Line",
        "id": f"line-{n}",
        "site": site,
        "name": f"{site.title()} line {n}",
        "product": rng.choice(_PRODUCTS),
        "taxonomy": f"{TAXONOMY_NAME}@2",
        "cameras": [camera_doc(c, rng) for c in range(1, cameras + 1)],
        "rollout": {
            "serving": f"{MODEL_NAME}@2",
            "previous": f"{MODEL_NAME}@1",
            "telemetry": {"uncertainty_band": [0.35, 0.65], "daily_upload_budget_mb": 50.0},
        },
    }


def _assign_rollouts(
    lines: list[dict[str, Any]], rng: random.Random, evidence: dict[int, dict[str, Any]]
) -> None:
    """Vary the rollout stages on one site's lines; at most one canary per site."""
    canary_done = False
    for line in lines:
        rollout = line["rollout"]
        key = f"{line['site']}/{line['id']}"
        roll = rng.random()
        if roll < 0.15:  # not upgraded yet
            line["taxonomy"] = f"{TAXONOMY_NAME}@1"
            rollout["serving"] = f"{MODEL_NAME}@1"
            del rollout["previous"]
        elif roll < 0.35:  # v3 already promoted here
            rollout["serving"], rollout["previous"] = f"{MODEL_NAME}@3", f"{MODEL_NAME}@2"
            evidence[3][key] = _evidence(rng, incumbent=2)
        elif roll < 0.55:
            rollout["candidate"] = {"model": f"{MODEL_NAME}@3", "stage": "shadow"}
        elif roll < 0.7 and not canary_done:
            canary_done = True
            rollout["candidate"] = {
                "model": f"{MODEL_NAME}@3",
                "stage": "canary",
                "canary_fraction": 0.1,
            }
            evidence[3][key] = _evidence(rng, incumbent=2)
        elif roll < 0.8:  # the taxonomy v3 model listens in
            rollout["candidate"] = {"model": f"{MODEL_NAME}@4", "stage": "shadow"}


def _evidence(rng: random.Random, *, incumbent: int) -> dict[str, Any]:
    base = round(rng.uniform(0.9, 0.95), 3)
    return {
        "metric": "accuracy",
        "candidate": round(base + rng.uniform(0.0, 0.02), 3),
        "incumbent": base,
        "incumbent_model": f"{MODEL_NAME}@{incumbent}",
        "holdout_frames": rng.randrange(200, 1001, 50),
        "dataset": "holdout-2026-11",
    }


def _spread(lines: list[dict[str, Any]], devices: int) -> list[list[dict[str, Any]]]:
    """Split the lines into `devices` nearly equal consecutive groups."""
    size, extra = divmod(len(lines), devices)
    groups, start = [], 0
    for n in range(devices):
        end = start + size + (1 if n < extra else 0)
        groups.append(lines[start:end])
        start = end
    return groups


def device_doc(
    site: str, n: int, lines: list[dict[str, Any]], rng: random.Random
) -> dict[str, Any]:
    cpu, cores, memory, accelerator = rng.choice(_HARDWARE)
    hardware: dict[str, Any] = {"cpu": cpu, "cores": cores, "memory_mb": memory}
    if accelerator:
        hardware["accelerator"] = accelerator
    return {
        "apiVersion": API_VERSION,
        "kind": "EdgeDevice",
        "id": f"{site}-edge-{n}",
        "site": site,
        "serves": [
            {"line": line["id"], "cameras": [c["id"] for c in line["cameras"]]} for line in lines
        ],
        "hardware": hardware,
        "onnx": {"max_opset": 19, "execution_providers": ["CPUExecutionProvider"]},
    }


def model_family(
    evidence: dict[int, dict[str, Any]],
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The `surface-classifier` catalogue and its ONNX artifacts (real, tiny, deterministic)."""
    classes = {v: [c["id"] for c in doc["classes"]] for v, doc in taxonomy_documents().items()}
    versions, artifacts = [], {}
    for version, tax_version in MODEL_TAXONOMY.items():
        built = build_classifier(len(classes[tax_version]), seed=version, name=MODEL_NAME)
        path = f"fleet/artifacts/{MODEL_NAME}-v{version}.onnx"
        artifacts[path] = built.data
        entry: dict[str, Any] = {
            "version": version,
            "taxonomy": f"{TAXONOMY_NAME}@{tax_version}",
            "output_classes": classes[tax_version],
            "artifact": {"url": path, "sha256": built.sha256, "size": built.size},
            "input": {"shape": INPUT_SHAPE, "color": "rgb"},
            "opset": OPSET,
            "execution_providers": ["CPUExecutionProvider"],
            "reference_stats": {"brightness": 0.52, "contrast": 0.18},
            "dataset": f"surface-frames-v{tax_version}",
        }
        if evidence.get(version):
            entry["evaluation"] = dict(sorted(evidence[version].items()))
        versions.append(entry)
    doc = {
        "apiVersion": API_VERSION,
        "kind": "Model",
        "name": MODEL_NAME,
        "description": "Surface-defect classifier for stamped and painted panels.",
        "versions": versions,
    }
    return doc, artifacts


def write(files: dict[str, bytes], out: Path, *, force: bool = False) -> None:
    """Write `files` under `out`; refuse a non-empty `out` unless `force`.

    Everything is written to a temporary directory next to `out` first, so a failure leaves
    nothing half-written. With `force`, the generated top-level folders (`fleet/`,
    `taxonomies/`, ...) replace the existing ones; other files in `out` are kept.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError("exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FileExistsError("not empty (use --force to replace its fleet)")
    write_tree(files, out, replace_folders=True)
