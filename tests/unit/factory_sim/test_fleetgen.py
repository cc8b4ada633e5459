"""The fleet generator: shape, determinism, rollout variety and safe writing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from factory_sim import fleetgen
from factory_sim.fleetgen import FleetShape, generate, write
from linefleet_core import yamlsafe
from linefleet_core.fleetschema import modeline


def docs_of(files: dict[str, bytes], kind: str) -> list[dict[str, object]]:
    out = []
    for path, raw in files.items():
        if path.endswith(".yaml"):
            data = yamlsafe.load(path, raw).data
            if data["kind"] == kind:
                out.append(data)
    return out


def test_the_shape_gives_the_counts() -> None:
    files = generate(FleetShape(sites=3, lines_per_site=9, cameras_per_line=2))
    lines = docs_of(files, "Line")
    assert len(docs_of(files, "Site")) == 3
    assert len(lines) == 27
    assert all(len(line["cameras"]) == 2 for line in lines)  # type: ignore[arg-type]
    assert len(docs_of(files, "EdgeDevice")) == 3 * 3  # one per four lines, rounded up
    assert len(docs_of(files, "Taxonomy")) == 3
    assert len(docs_of(files, "Policy")) == 1


def test_devices_serve_every_camera_exactly_once() -> None:
    files = generate(FleetShape(sites=2, lines_per_site=7, cameras_per_line=3, devices_per_site=3))
    served = Counter(
        (d["site"], s["line"], cam)
        for d in docs_of(files, "EdgeDevice")
        for s in d["serves"]  # type: ignore[attr-defined]
        for cam in s["cameras"]
    )
    cameras = {
        (line["site"], line["id"], c["id"])
        for line in docs_of(files, "Line")
        for c in line["cameras"]  # type: ignore[attr-defined]
    }
    assert set(served) == cameras
    assert set(served.values()) == {1}


def test_same_seed_same_bytes_other_seed_other_fleet() -> None:
    shape = FleetShape(sites=2, lines_per_site=5, cameras_per_line=2, seed=7)
    assert generate(shape) == generate(shape)
    other = generate(FleetShape(sites=2, lines_per_site=5, cameras_per_line=2, seed=8))
    assert other != generate(shape)
    assert other.keys() == generate(shape).keys()


def test_rollouts_vary_and_respect_the_canary_limit() -> None:
    files = generate(FleetShape(sites=20, lines_per_site=10, cameras_per_line=1))
    stages: Counter[str] = Counter()
    canaries_per_site: Counter[str] = Counter()
    for line in docs_of(files, "Line"):
        rollout = line["rollout"]
        stages[rollout["serving"]] += 1  # type: ignore[index]
        candidate = rollout.get("candidate")  # type: ignore[attr-defined]
        if candidate:
            stages[f"{candidate['model']} {candidate['stage']}"] += 1
            if candidate["stage"] == "canary":
                canaries_per_site[str(line["site"])] += 1
    for wanted in ("surface-classifier@1", "surface-classifier@2", "surface-classifier@3"):
        assert stages[wanted] > 0
    assert stages["surface-classifier@3 shadow"] > 0
    assert stages["surface-classifier@3 canary"] > 0
    assert stages["surface-classifier@4 shadow"] > 0
    assert max(canaries_per_site.values()) == 1


def test_canary_lines_have_evidence_in_the_catalogue() -> None:
    files = generate(FleetShape(sites=6, lines_per_site=8, cameras_per_line=1))
    (model,) = docs_of(files, "Model")
    v3 = next(v for v in model["versions"] if v["version"] == 3)  # type: ignore[attr-defined]
    for line in docs_of(files, "Line"):
        candidate = line["rollout"].get("candidate")  # type: ignore[attr-defined]
        if candidate and candidate["stage"] == "canary":
            assert f"{line['site']}/{line['id']}" in v3["evaluation"]


def test_more_sites_than_named_plants_get_numbered_ids() -> None:
    ids = fleetgen.site_ids(10)
    assert ids[:3] == ["toledo", "dresden", "monterrey"]
    assert len(set(ids)) == 10
    assert ids[-1] == "plant-010"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sites": 0}, "sites must be at least 1"),
        ({"cameras_per_line": 0}, "cameras-per-line must be at least 1"),
        ({"lines_per_site": 2, "devices_per_site": 3}, "devices-per-site must be between"),
    ],
)
def test_impossible_shapes_are_refused(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FleetShape(**kwargs)


def test_generated_files_start_with_their_modeline_and_have_no_anchors() -> None:
    files = generate(FleetShape(sites=1, lines_per_site=2, cameras_per_line=2))
    for path, raw in files.items():
        if path.endswith(".yaml"):
            kind = yamlsafe.load(path, raw).data["kind"]
            assert raw.decode().startswith(modeline(path, kind))
            assert b"&id" not in raw


def test_write_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        write({"fleet/policy.yaml": b"x"}, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_write_with_force_replaces_the_fleet_and_keeps_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "fleet" / "sites" / "old").mkdir(parents=True)
    write({"fleet/policy.yaml": b"new"}, tmp_path, force=True)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "fleet" / "sites").exists()
    assert (tmp_path / "fleet" / "policy.yaml").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_write_creates_a_missing_directory(tmp_path: Path) -> None:
    out = tmp_path / "a" / "fleet-repo"
    write({"fleet/policy.yaml": b"p", "taxonomies/t/v1.yaml": b"t"}, out)
    assert (out / "taxonomies" / "t" / "v1.yaml").read_bytes() == b"t"
