"""The synthetic factory: frames, profiles, drift and the on-disk format."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from factory_sim.classes import class_set
from factory_sim.dataset import Manifest, generate
from factory_sim.defects import paint
from factory_sim.drift import profile_at
from factory_sim.profiles import DriftEvent, line_profiles
from factory_sim.render import frame_rng, render, render_frame

CLASSES = ["ok", "scratch", "dent", "dust", "oil", "discoloration", "crack"]


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    def make(out: Path, seed: int) -> None:
        generate(out, taxonomy=CLASSES, lines=(2, 1), frames_per_line=6, seed=seed, size=64)

    make(tmp_path / "a", 5)
    make(tmp_path / "b", 5)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert len(a) == 2 + 12
    assert a == b
    make(tmp_path / "c", 6)
    c = _tree(tmp_path / "c")
    assert a["frames/toledo/line-1/cam-1/000000.png"] != c["frames/toledo/line-1/cam-1/000000.png"]


def test_manifest_describes_every_frame(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    written = generate(out, taxonomy=CLASSES, lines=(2, 2), frames_per_line=5, seed=1, size=64)
    manifest = Manifest.read(out)
    assert manifest.records == written.records
    assert manifest.lines == ["toledo/line-1", "toledo/line-2", "dresden/line-1", "dresden/line-2"]
    assert manifest.classes == CLASSES
    for record in manifest.records:
        data = manifest.file(record).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record.sha256
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None
        assert image.shape == (64, 64, 3)
        assert record.cls in CLASSES
        if record.cls == "ok":
            assert record.box is None
        else:
            assert record.box is not None
            x0, y0, x1, y1 = record.box
            assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    rows = (out / "manifest.jsonl").read_text().splitlines()
    first = json.loads(rows[0])
    assert set(first) == {
        "path", "sha256", "site", "line", "camera", "class", "truth", "taxonomy", "box", "seq",
        "timestamp", "drift", "nuisance",
    }  # fmt: skip
    assert first["timestamp"] == "2026-01-05T06:00:00.000Z"
    assert [r.seq for r in manifest.for_line("dresden/line-2")] == [0, 1, 2, 3, 4]


def test_a_frame_does_not_depend_on_the_others() -> None:
    profile = line_profiles(1, 1, seed=3)[0]
    alone = render_frame(profile, "scratch", frame_rng(3, profile, 7), 64)
    again = render_frame(profile, "scratch", frame_rng(3, profile, 7), 64)
    assert alone.dtype == np.uint8 and alone.shape == (64, 64, 3)
    assert np.array_equal(alone, again)


def test_lines_differ_in_nuisance_and_dresden_runs_mirrored() -> None:
    profiles = line_profiles(["toledo", "dresden"], 2, seed=11)
    assert len({p.nuisance().__repr__() for p in profiles}) == 4
    assert all(p.optics.mirrored for p in profiles if p.site == "dresden")
    # drawn from (seed, line): adding a site does not change existing lines
    assert line_profiles(["toledo", "dresden", "pune"], 2, seed=11)[:4] == profiles


@pytest.mark.parametrize("cls", ["scratch", "dent", "dust", "oil", "discoloration", "crack"])
def test_every_defect_changes_the_surface(cls: str) -> None:
    rng = np.random.default_rng(0)
    surface = np.full((128, 128, 3), 0.5, np.float32)
    painted = surface.copy()
    truth = paint(painted, cls, rng)
    diff = np.abs(painted - surface).max(axis=2)
    assert diff.max() > 0.05, cls
    assert (diff > 0.02).mean() < 0.25, "a defect is local, not the whole surface"
    assert truth in {cls, "discolouration"}


def test_contamination_records_dust_or_oil_and_unknown_classes_get_a_blob() -> None:
    truths = set()
    for i in range(20):
        img = np.full((64, 64, 3), 0.5, np.float32)
        truths.add(paint(img, "contamination", np.random.default_rng(i)))
    assert truths == {"dust", "oil"}
    classes = class_set(["ok", "scratch", "weld-spatter"])
    assert classes.warnings == (
        "class 'weld-spatter' has no dedicated defect painter; it is drawn as a generic blob",
    )
    profile = line_profiles(1, 1, seed=0)[0]
    assert render(profile, "weld-spatter", np.random.default_rng(0), 64).truth == "blob"


def test_drift_changes_the_nuisance_from_its_frame_on() -> None:
    profile = line_profiles(1, 1, seed=2)[0]
    events = [
        DriftEvent("camera_bump", profile.key, 10),
        DriftEvent("lighting_change", profile.key, 20),
        DriftEvent("supplier_texture", "elsewhere/line-9", 0),
    ]
    before, active = profile_at(profile, events, 9, seed=2)
    assert before == profile and active == []
    bumped, active = profile_at(profile, events, 10, seed=2)
    assert [e.kind for e in active] == ["camera_bump"]
    assert bumped.optics != profile.optics and bumped.lighting == profile.lighting
    assert bumped.optics.blur_sigma > profile.optics.blur_sigma
    both, _ = profile_at(profile, events, 25, seed=2)
    assert both.lighting != profile.lighting and both.optics == bumped.optics
    supplier = DriftEvent("supplier_texture", profile.key, 0)
    changed, _ = profile_at(profile, [supplier], 0, seed=2)
    assert changed.supplier != profile.supplier
    assert changed.supplier.material == profile.supplier.material


def test_drift_is_recorded_in_the_manifest(tmp_path: Path) -> None:
    event = DriftEvent.parse("lighting_change:toledo/line-1:3")
    m = generate(
        tmp_path / "d", taxonomy=CLASSES, lines=(1, 1), frames_per_line=5, seed=0, size=48,
        events=[event],
    )  # fmt: skip
    assert [r.drift for r in m.records] == [(), (), (), (str(event),), (str(event),)]
    assert m.records[2].nuisance["lighting"] != m.records[3].nuisance["lighting"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("camera_bump:toledo/line-1", "expected KIND:SITE/LINE:FRAME"),
        ("camera_bump:toledo/line-1:3:x", "RAMP must be a non-negative number"),
        ("earthquake:toledo/line-1:3", "unknown drift kind"),
        ("camera_bump:toledo/line-1:-3", "FRAME must be a non-negative integer"),
    ],
)
def test_bad_drift_events_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DriftEvent.parse(text)


def test_bad_arguments_leave_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "x"
    with pytest.raises(ValueError, match="unknown line 'nowhere/line-1'"):
        generate(
            out, taxonomy=CLASSES, lines=(1, 1), frames_per_line=2, seed=0,
            events=[DriftEvent("camera_bump", "nowhere/line-1", 0)],
        )  # fmt: skip
    with pytest.raises(ValueError, match="duplicate class ids: ok"):
        generate(out, taxonomy=["ok", "ok", "dent"], lines=(1, 1), frames_per_line=2, seed=0)
    assert list(tmp_path.iterdir()) == []
    (out / "keep").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        generate(out, taxonomy=CLASSES, lines=(1, 1), frames_per_line=2, seed=0, size=32)
    assert (out / "keep").is_dir()
    generate(out, taxonomy=CLASSES, lines=(1, 1), frames_per_line=2, seed=0, size=32,
             overwrite=True)  # fmt: skip
    assert not (out / "keep").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


def test_a_ramped_drift_blends_in_over_its_frames() -> None:
    profile = line_profiles(1, 1, seed=2)[0]
    event = DriftEvent.parse(f"lighting_change:{profile.key}:10:5")
    assert (event.at_frame, event.ramp, str(event)) == (
        10,
        5,
        f"lighting_change:{profile.key}:10:5",
    )
    abrupt, _ = profile_at(profile, [DriftEvent("lighting_change", profile.key, 10)], 10, 2)
    kelvins = [
        profile_at(profile, [event], frame, seed=2)[0].lighting.colour_temp_k
        for frame in range(9, 16)
    ]
    start, end = profile.lighting.colour_temp_k, abrupt.lighting.colour_temp_k
    assert kelvins[0] == start and kelvins[-2:] == [end, end]
    steps = [b - a for a, b in itertools.pairwise(kelvins[:5])]
    assert all(abs(s - (end - start) / 5) < 1 for s in steps), "linear, a fifth per frame"
    assert profile_at(profile, [event], 11, seed=2)[0].optics == profile.optics


def test_an_interrupted_run_leaves_nothing_behind(tmp_path: Path) -> None:
    def interrupt(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "data", taxonomy=CLASSES, lines=(1, 1), frames_per_line=10,
                 seed=0, size=32, progress=interrupt)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_reading_something_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not a linefleet-synthetic-frames v1 dataset"):
        Manifest.read(tmp_path)
