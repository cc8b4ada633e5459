"""Field-level differences between two versions of one fleet object, for the plan.

`flatten()` turns a pydantic model into `{"dotted.field": "rendered value"}`. Items of a list
of mappings are keyed by their identity when they have one (`cameras[cam-2].resolution.width`,
`serves[line-1].cameras`) so that inserting a camera does not show every later camera as
changed, and by position otherwise (`production_windows[0].end`; the plan names freeze periods
itself, by reason and dates). `diff()` compares two flattenings and reports an item that
appears or disappears as a whole as one change whose value summarises the item.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

IDENTITY_KEYS = ("id", "line", "version")
_ITEM = re.compile(r"^(.*?\[[^\]]+\])")


@dataclass(frozen=True)
class FieldChange:
    """`before` is None for an added field or item; `after` is None for a removed one."""

    field: str
    before: str | None
    after: str | None


def flatten(obj: BaseModel, exclude: Iterable[str] = ()) -> dict[str, str]:
    """Every set leaf field of `obj` (defaults included) as dotted path -> rendered value."""
    out: dict[str, str] = {}
    data = obj.model_dump(mode="json", exclude=set(exclude))
    _walk(data, "", out)
    return out


def diff(
    before: Mapping[str, str],
    after: Mapping[str, str],
    summaries: Mapping[str, str] | None = None,
) -> tuple[FieldChange, ...]:
    """Changes from `before` to `after`, in field order (head order, then removed fields).

    `summaries` may give the value shown for a whole item that is added or removed
    (`{"cameras[cam-3]": "1920x1080, left"}`); by default it lists the item's fields.
    """
    changes: list[FieldChange] = []
    whole: set[str] = set()
    for key in list(after) + [k for k in before if k not in after]:
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        item = _item_of(key)
        if item is not None and (_absent(item, before) or _absent(item, after)):
            if item not in whole:
                whole.add(item)
                side = after if _absent(item, before) else before
                text = (summaries or {}).get(item) or _summary(item, side)
                pair = (None, text) if side is after else (text, None)
                changes.append(FieldChange(item, *pair))
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
    elif value is not None and value != "":  # an unset optional field or text is absent
        out[prefix] = render_value(value)


def _identity(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    for key in IDENTITY_KEYS:
        found = value.get(key)
        if isinstance(found, (str, int)) and not isinstance(found, bool):
            return str(found)
    return None


def _item_of(key: str) -> str | None:
    match = _ITEM.match(key)
    return match.group(1) if match else None


def _under(item: str, key: str) -> bool:
    return key == item or key.startswith((item + ".", item + "["))


def _absent(item: str, fields: Mapping[str, str]) -> bool:
    return not any(_under(item, k) for k in fields)


def _summary(item: str, fields: Mapping[str, str]) -> str:
    parts = []
    for key, value in fields.items():
        if _under(item, key):
            name = key[len(item) :].lstrip(".")
            if name not in IDENTITY_KEYS:
                parts.append(f"{name}={value}" if name else value)
    return " ".join(parts)
