"""Sites, lines and cameras of the fleet, for checking imported labels (pure).

    places = Places.of(spec)                  # None-safe: Places.load(fleet_repo) -> None
    places.check("toledo", "lnie-1", "cam-1") # [("line", "unknown line 'toledo/lnie-1'; ...")]

A label for a line or camera the fleet does not have would only surface much later (as a
line with no holdout frames); the import refuses it at once, with a did-you-mean.

    places.serves("toledo-edge-1", "toledo/line-1", "cam-1")  # None, or why not

A frame uploaded by a device names its line and camera itself: one that the device does not
serve (a hand-written or misconfigured client) would count in another line's escape estimate.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from linefleet_core.spec import FleetSpec

BROKEN = "its file in the fleet repository does not load (`linefleet validate` says why)"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


@dataclass(frozen=True)
class Places:
    sites: frozenset[str]
    cameras: dict[str, frozenset[str]]
    """`site/line` -> camera ids."""
    served: dict[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    """device id -> the (`site/line`, camera) pairs it serves."""
    broken: frozenset[str] = frozenset()
    """What files that did not load declare (`FleetSpec.broken`: `Line:site/line`, ...)."""

    @classmethod
    def of(cls, spec: FleetSpec) -> Places:
        return cls(
            frozenset(spec.sites) | {line.site for line in spec.lines.values()},
            {k: frozenset(c.id for c in line.cameras) for k, line in spec.lines.items()},
            {
                d.id: frozenset(
                    (f"{d.site}/{s.line}", camera) for s in d.serves for camera in s.cameras
                )
                for d in spec.devices.values()
            },
            frozenset(spec.broken),
        )

    def serves(self, device: str, line: str, camera: str) -> str | None:
        """None when `device` serves camera `camera` of line `line` (`site/line`), else why not."""
        pairs = self.served.get(device)
        if pairs is None and f"EdgeDevice:{device}" in self.broken:
            return f"device {device!r}: {BROKEN}"
        if pairs is None:
            return f"unknown device {device!r}{did_you_mean(device, self.served)}"
        if (line, camera) not in pairs:
            mine = ", ".join(f"{k} {c}" for k, c in sorted(pairs))
            return f"device {device!r} does not serve {line} {camera} (it serves {mine})"
        return None

    @classmethod
    def load(cls, fleet_repo: Path) -> Places | None:
        """The fleet's places, or None when the repo declares no lines (taxonomies only)."""
        from linefleet_core.spec import DirectorySource, load

        if not (fleet_repo / "fleet").is_dir():
            return None
        spec, _ = load(DirectorySource(fleet_repo))
        return cls.of(spec) if spec.lines else None

    def check(self, site: str, line: str, camera: str) -> list[tuple[str, str]]:
        """(field, message) for each of site, line, camera the fleet does not know."""
        if site not in self.sites:
            if f"Site:{site}" in self.broken:
                return [("site", f"site {site!r}: {BROKEN}")]
            return [("site", f"unknown site {site!r}{did_you_mean(site, self.sites)}")]
        key = f"{site}/{line}"
        cameras = self.cameras.get(key)
        if cameras is None and f"Line:{key}" in self.broken:
            return [("line", f"line {key!r}: {BROKEN}")]
        if cameras is None:
            mine = {k.partition("/")[2] for k in self.cameras if k.startswith(f"{site}/")}
            return [("line", f"unknown line {key!r}{did_you_mean(line, mine)}")]
        if camera not in cameras:
            known = ", ".join(sorted(cameras))
            hint = did_you_mean(camera, cameras)
            return [("camera", f"no camera {camera!r} on {key}{hint} (cameras: {known})")]
        return []
