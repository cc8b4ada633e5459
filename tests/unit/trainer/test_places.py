"""The fleet's places for checking imported labels and uploaded frames (`trainer.places`)."""

from __future__ import annotations

from linefleet_core.spec import load
from tests.unit.core.fleetdocs import MemorySource
from trainer.places import Places


def test_a_place_whose_file_does_not_load_is_named_as_such_not_unknown() -> None:
    src = MemorySource()
    device = next(path for path in src.docs if "/devices/" in path)
    name = device.rsplit("/", 1)[1].removesuffix(".yaml")
    src.raw[device] = b"apiVersion: linefleet.io/v1\nkind: EdgeDevice\nid: [\n"
    places = Places.of(load(src)[0])
    why = "its file in the fleet repository does not load (`linefleet validate` says why)"
    assert places.serves(name, "toledo/line-3", "cam-1") == f"device {name!r}: {why}"
    assert places.serves("nobody", "toledo/line-3", "cam-1") == "unknown device 'nobody'"
