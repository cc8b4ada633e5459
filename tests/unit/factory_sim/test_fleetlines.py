"""Profiles for a fleet's declared lines and cameras."""

from __future__ import annotations

from typing import Any

import pytest

from factory_sim.fleetlines import camera_profile, common_taxonomy, fleet_profiles, select_lines
from linefleet_core.fleet import Line


def _camera(cid: str, *, kelvin: int = 5000, lux: float = 1000, angle: float = 0,
            side: str = "top", profile: str = "diffuse-dome") -> dict[str, Any]:  # fmt: skip
    return {
        "id": cid,
        "resolution": {"width": 640, "height": 480},
        "lighting": {"profile": profile, "color_temperature_k": kelvin, "intensity_lux": lux},
        "mount": {"angle_deg": angle, "height_mm": 600},
        "conveyor_side": side,
    }


def _line(site: str, lid: str, product: str, cameras: list[dict[str, Any]],
          taxonomy: str = "surface-defects@2") -> Line:  # fmt: skip
    return Line.model_validate(
        {
            "apiVersion": "linefleet.io/v1",
            "kind": "Line",
            "id": lid,
            "site": site,
            "product": product,
            "taxonomy": taxonomy,
            "cameras": cameras,
            "rollout": {"serving": "surface-classifier@2"},
        }
    )


def test_the_declared_camera_sets_lighting_angle_and_orientation() -> None:
    line = _line("toledo", "stamping-1", "hood", [
        _camera("hem-left", kelvin=3200, lux=500, angle=-45, side="left", profile="low-angle-ring"),
        _camera("top", kelvin=6500, lux=1600, angle=0, side="top"),
    ])  # fmt: skip
    left, top = fleet_profiles([line], seed=4)
    assert (left.camera, top.camera) == ("hem-left", "top")
    assert left.lighting.colour_temp_k == 3200 and top.lighting.colour_temp_k == 6500
    assert left.lighting.intensity < top.lighting.intensity
    assert left.lighting.falloff >= 0.12 > 0.05 >= top.lighting.falloff
    assert left.optics.tilt < 0 and top.optics.tilt == 0
    assert (left.optics.quarter_turns, left.optics.tilt_axis) == (3, 1)
    assert (top.optics.quarter_turns, top.optics.tilt_axis) == (0, 0)
    assert left.supplier == top.supplier, "every camera of a line sees the same product"
    assert left.supplier.material == "brushed_metal"
    assert not left.optics.mirrored
    assert camera_profile(line, line.cameras[0], seed=4) == left


@pytest.mark.parametrize(
    ("site", "lid", "product", "material"),
    [
        ("toledo", "paint-2", "fender", "painted_panel"),
        ("pune", "press-1", "bracket", "brushed_metal"),
        ("pune", "line-7", "rear-bumper", "plastic"),
    ],
)
def test_material_follows_the_line_and_product(
    site: str, lid: str, product: str, material: str
) -> None:
    (profile,) = fleet_profiles([_line(site, lid, product, [_camera("c")])], seed=0)
    assert profile.supplier.material == material


def test_dresden_runs_the_other_way() -> None:
    (profile,) = fleet_profiles([_line("dresden", "body-1", "door", [_camera("c")])], seed=0)
    assert profile.optics.mirrored


def test_select_lines_and_their_taxonomy() -> None:
    a = _line("toledo", "paint-1", "hood", [_camera("c")], "surface-defects@1")
    b = _line("pune", "press-1", "bracket", [_camera("c")], "surface-defects@2")
    c = _line("pune", "press-2", "bracket", [_camera("c")], "other-defects@1")
    fleet = {line.key: line for line in (a, b, c)}
    assert select_lines(fleet, []) == [b, c, a]
    assert select_lines(fleet, ["toledo/paint-1", "pune/press-1", "toledo/paint-1"]) == [a, b]
    with pytest.raises(ValueError, match="unknown line\\(s\\): pune/press-9"):
        select_lines(fleet, ["pune/press-9"])
    assert common_taxonomy([b]) == ("surface-defects@2", None)
    assert common_taxonomy([a, b]) == (
        "surface-defects@2",
        "the selected lines use surface-defects@1, surface-defects@2; "
        "labelling with surface-defects@2",
    )
    with pytest.raises(ValueError, match="different taxonomies"):
        common_taxonomy([b, c])
