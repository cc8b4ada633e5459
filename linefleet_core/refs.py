"""References between fleet objects (`name@version` for models and taxonomies, ids for the
rest), and the few words every document shares (a candidate's stage, a model's task, a colour
order): declared once, used by the fleet YAML, the catalogue, the wire and the edge."""

from __future__ import annotations

from typing import Annotated, Literal, NamedTuple

from pydantic import StringConstraints

ID_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
REF_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?@[1-9][0-9]{0,5}$"

Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
"""Lower-case letters, digits and dashes: safe in paths, MQTT topics and git branch names."""

VersionedRef = Annotated[str, StringConstraints(pattern=REF_PATTERN)]
"""`name@version`, for example `surface-defects@2` or `surface-classifier@5`."""

CandidateStage = Literal["shadow", "canary"]
"""Where a line's candidate model runs: beside the serving model (`shadow`) or deciding a share
of the frames (`canary`)."""

ModelTask = Literal["classification", "detection", "anomaly"]
"""What a model's outputs mean (model contract v2; absent on the wire: classification)."""

ColorOrder = Literal["rgb", "bgr", "gray"]
"""The channel order a model's input expects."""


class Ref(NamedTuple):
    name: str
    version: int

    @classmethod
    def parse(cls, text: str) -> Ref:
        name, _, version = text.partition("@")
        return cls(name, int(version))

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def line_key(site: str, line: str) -> str:
    """The fleet-wide name of a line: `site/line`."""
    return f"{site}/{line}"
