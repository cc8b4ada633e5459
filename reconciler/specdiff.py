"""Field-level differences between two versions of one fleet object, for the plan.

`flatten()` turns a pydantic model into `{"dotted.field": "rendered value"}`; items of a list
of mappings are keyed by their identity (`cameras[cam-2].resolution.width`, `serves[line-1]`)
so that inserting a camera does not show every later camera as changed. `diff()` compares two
flattenings and collapses an item that appears or disappears as a whole into one change.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

IDENTITY_KEYS = ("id", "line", "version")
PRESENT = "present"
"""The value of an item that appears or disappears as a whole (a camera, a served line)."""
_ITEM = re.compile(r"^(.*?\[[^\]]+\])")


@dataclass(frozen=True)
class FieldChange:
    """`before` is None for an added field or item; `after` is None for a removed one.

    A whole item (`cameras[cam-3]`) that is added or removed has the value `PRESENT` on the
    side where it exists.
    """

    field: str
    before: str | None
    after: str | None


def flatten(obj: BaseModel, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Every leaf field of `obj` (defaults included) as dotted path -> rendered value."""
    out: dict[str, str] = {}
    data = obj.model_dump(mode="json", exclude=set(exclude))
    _walk(data, "", out)
    return out


def diff(before: Mapping[str, str], after: Mapping[str, str]) -> tuple[FieldChange, ...]:
    """Changes from `before` to `after`, in field order (head order, then removed fields)."""
    changes: list[FieldChange] = []
    whole: set[str] = set()
    keys = list(after) + [k for k in before if k not in after]
    for key in keys:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        item = _item_of(key)
        if item is not None and (_absent(item, before) or _absent(item, after)):
            if item not in whole:
                whole.add(item)
                added = _absent(item, before)
                present = (None, PRESENT) if added else (PRESENT, None)
                changes.append(FieldChange(item, *present))
            continue
        changes.append(FieldChange(key, old, new))
    return tuple(changes)


def render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    return json.dumps(value, sort_keys=True)


def _walk(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        if not value and prefix:
            out[prefix] = "{}"
        for key, item in value.items():
            _walk(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value and all(_identity(v) for v in value):
        for item in value:
            _walk(item, f"{prefix}[{_identity(item)}]", out)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        for i, item in enumerate(value):
            _walk(item, f"{prefix}[{i}]", out)
    elif value is not None:  # an unset optional field is absent, not "null"
        out[prefix] = render_value(value)


def _identity(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in IDENTITY_KEYS:
        if isinstance(value.get(key), (str, int)) and not isinstance(value.get(key), bool):
            return str(value[key])
    return None


def _item_of(key: str) -> str | None:
    match = _ITEM.match(key)
    return match.group(1) if match else None


def _absent(item: str, fields: Mapping[str, str]) -> bool:
    return not any(k == item or k.startswith((item + ".", item + "[")) for k in fields)
