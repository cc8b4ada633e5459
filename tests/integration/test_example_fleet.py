"""The example fleet committed in `fleet/` and `taxonomies/`: valid, editor-ready and runnable."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import onnxruntime as ort
import pytest
import yaml

from factory_sim.fleetgen import MODEL_TAXONOMY
from factory_sim.onnx_fixtures import build_classifier
from linefleet.cli import main
from linefleet_core import yamlsafe
from linefleet_core.spec import DirectorySource, load

REPO = Path(__file__).resolve().parents[2]
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)\n")
SPEC, LOAD_FINDINGS = load(DirectorySource(REPO))
YAML_FILES = sorted(
    p.relative_to(REPO).as_posix()
    for top in ("fleet", "taxonomies")
    for p in (REPO / top).rglob("*")
    if p.suffix in (".yaml", ".yml")
)


def document(rel: str) -> Any:
    return yamlsafe.load(rel, (REPO / rel).read_bytes()).data


def schema_for(rel: str) -> tuple[Path, dict[str, Any]]:
    text = (REPO / rel).read_text(encoding="utf-8")
    match = MODELINE.match(text)
    assert match, f"{rel}: first line must be the yaml-language-server modeline"
    path = ((REPO / rel).parent / match.group(1)).resolve()
    return path, json.loads(path.read_text())


def test_validate_passes_on_the_repository_with_no_findings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", "--repo", str(REPO), "--format", "json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["findings"] == []


def test_the_fleet_has_the_promised_size_and_variety() -> None:
    assert not LOAD_FINDINGS
    assert {"toledo", "dresden"} <= set(SPEC.sites) and len(SPEC.sites) == 3
    assert len(SPEC.lines) >= 12
    cameras = [c for line in SPEC.lines.values() for c in line.cameras]
    assert len(cameras) >= 30
    assert len(SPEC.devices) >= 6
    assert len({c.lighting.profile for c in cameras}) >= 4
    assert {c.conveyor_side for c in cameras} == {"left", "right", "top", "bottom"}
    assert len({c.mount.angle_deg for c in cameras}) >= 5
    serving = Counter(line.rollout.serving for line in SPEC.lines.values())
    assert len(serving) >= 3  # v1, v2 and v3 all in production somewhere
    stages = {
        line.rollout.candidate.stage for line in SPEC.lines.values() if line.rollout.candidate
    }
    assert stages == {"shadow", "canary"}


def test_every_canary_has_evidence_on_its_line() -> None:
    for key, line in SPEC.lines.items():
        candidate = line.rollout.candidate
        if candidate and candidate.stage == "canary":
            version = SPEC.model_version(candidate.model)
            assert version is not None
            assert key in version.evaluation, f"{key}: canary {candidate.model} has no evidence"


def test_the_taxonomy_evolves_v1_to_v3() -> None:
    v1, v2, v3 = (SPEC.taxonomies[f"surface-defects@{v}"] for v in (1, 2, 3))
    assert "contamination" in v1.class_ids
    assert {"dust", "oil"} <= set(v2.class_ids) and "contamination" not in v2.class_ids
    assert [op.model_dump() for op in v2.migration] == [
        {"split": "contamination", "into": ["dust", "oil"]}
    ]
    assert len(v3.class_ids) > len(v2.class_ids)
    assert all(len(c.definition) > 40 for t in (v1, v2, v3) for c in t.classes)


@pytest.mark.parametrize("rel", YAML_FILES)
def test_every_file_names_its_schema_and_the_schema_accepts_it(rel: str) -> None:
    path, schema = schema_for(rel)
    assert path.parent == REPO / "schema"
    data = document(rel)
    assert schema["title"] == data["kind"]
    jsonschema.Draft202012Validator(schema).validate(data)


@pytest.mark.parametrize(
    ("rel", "mutate"),
    [
        ("fleet/policy.yaml", lambda d: d.update(heartbeat_seconds="60")),
        ("fleet/policy.yaml", lambda d: d.update(max_canaries=1)),
        ("fleet/sites/toledo/site.yaml", lambda d: d.pop("apiVersion")),
        ("fleet/sites/toledo/site.yaml", lambda d: d["freeze_periods"][0].update(start="soon")),
        ("fleet/sites/toledo/site.yaml", lambda d: d["approvers"].append("mkowalski")),
        ("taxonomies/surface-defects/v2.yaml", lambda d: d["migration"].append({"fold": "x"})),
    ],
)
def test_the_schemas_refuse_what_the_validator_refuses(rel: str, mutate: Any) -> None:
    _, schema = schema_for(rel)
    data = copy.deepcopy(document(rel))
    mutate(data)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(data)
    _, findings = load(OneFile(rel, yaml.safe_dump(data, sort_keys=False).encode()))
    assert findings, "the validator accepts it: schema and validator disagree"


class OneFile:
    """A fleet source holding one file (only that file's own checks apply)."""

    label = "one file"

    def __init__(self, path: str, raw: bytes) -> None:
        self.path, self.raw = path, raw

    def files(self) -> Iterator[tuple[str, bytes]]:
        yield self.path, self.raw


@pytest.mark.parametrize("version", [v.version for v in SPEC.models["surface-classifier"].versions])
def test_each_artifact_matches_its_catalogue_entry_and_runs(version: int) -> None:
    entry = SPEC.model_version(f"surface-classifier@{version}")
    assert entry is not None
    data = (REPO / entry.artifact.url).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry.artifact.sha256
    assert len(data) == entry.artifact.size
    classes = SPEC.taxonomies[entry.taxonomy].class_ids
    if version in MODEL_TAXONOMY:  # the fixtures: the committed bytes are what the builder makes
        assert data == build_classifier(len(classes), seed=version, name="surface-classifier").data
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.shape == entry.input.shape
    frame = np.random.default_rng(0).random(entry.input.shape, dtype=np.float32)
    (probs,) = session.run(["probabilities"], {inp.name: frame})
    assert probs.shape == (1, len(classes))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_check_jsonschema_accepts_the_example_fleet() -> None:
    """The schemas as an editor or CI reads them: check-jsonschema parses YAML itself."""
    tool = Path(sys.executable).with_name("check-jsonschema")
    by_schema: dict[Path, list[str]] = {}
    for rel in YAML_FILES:
        by_schema.setdefault(schema_for(rel)[0], []).append(rel)
    assert len(by_schema) == 6
    for schema, files in sorted(by_schema.items()):
        proc = subprocess.run(
            [str(tool), "--schemafile", str(schema), *files],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, f"{schema.name}: {proc.stdout}{proc.stderr}"
