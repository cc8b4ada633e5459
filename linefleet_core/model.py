"""Base classes for every document in the contract: strict, frozen, no unknown keys."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from linefleet_core import pydanticstart  # noqa: F401  (before the first model is built)


class Strict(BaseModel):
    """No coercion ("8" is not 8), no unknown keys (a typo is an error, not a silent default),
    no NaN or infinity (the wire is JSON: a non-finite number would stop every publish)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class Header(Strict):
    """Every fleet file starts with these two keys, so tools and editors know what it holds."""

    apiVersion: Literal["linefleet.io/v1"] = "linefleet.io/v1"
    kind: str
