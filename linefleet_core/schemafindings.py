"""Pydantic's validation errors as located findings a person can act on.

`missing required field 'taxonomy'`, `unknown field 'camras' (did you mean 'cameras'?)`,
`expected text, but YAML read 5 as a int; put the value in quotes`: one finding per error,
at the line and column of the offending key or value.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import BaseModel, ValidationError

from linefleet_core import yamlsafe
from linefleet_core.errors import Finding


def schema_findings(
    doc: yamlsafe.Located, exc: ValidationError, kinds: tuple[type[BaseModel], ...]
) -> list[Finding]:
    """One finding per error of `exc`; unknown keys get a hint from the fields of `kinds`."""
    out = []
    for err in exc.errors(include_url=False):
        path, _ = _data_path(doc.data, err["loc"])
        kind = err["type"]
        if kind == "missing":
            message = f"missing required field {str(err['loc'][-1])!r}"
            out.append(doc.finding(path, message, code="missing"))
        elif kind == "extra_forbidden":
            name = str(err["loc"][-1])
            import difflib  # only for an unknown field: not on a valid fleet's path

            near = difflib.get_close_matches(name, _vocabulary(kinds), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            out.append(doc.finding(path, f"unknown field {name!r}{hint}", key=True, code="unknown"))
        else:
            out.append(doc.finding(path, _message(err), code=kind))
    return out


def _data_path(data: Any, loc: tuple[int | str, ...]) -> tuple[tuple[str | int, ...], bool]:
    """Follow pydantic's `loc` through the data, skipping union tags that are not keys."""
    path: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
            path.append(part)
        elif isinstance(node, dict) and not isinstance(part, int) and part == loc[-1]:
            path.append(part)  # the missing or unknown key itself
            return tuple(path), False
    return tuple(path), True


@functools.cache
def _vocabulary(kinds: tuple[type[BaseModel], ...]) -> list[str]:
    """Every field name of the contract, for "did you mean" hints on unknown keys."""
    names: set[str] = set()
    pending: list[type[BaseModel]] = list(kinds)
    seen: set[type[BaseModel]] = set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            names.add(name)
            pending.extend(_models_in(info.annotation))
    return sorted(names)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


_NUMERIC = {
    "int_type": "expected a whole number",
    "float_type": "expected a number",
    "bool_type": "expected true or false",
}


def _message(err: Any) -> str:
    msg: str = err["msg"]
    value = err.get("input")
    if err["type"] == "string_type" and isinstance(value, (int, float, bool)):
        return (
            f"expected text, but YAML read {value!r} as a {type(value).__name__}; "
            "put the value in quotes"
        )
    if err["type"] in _NUMERIC and isinstance(value, str):
        return f"{_NUMERIC[err['type']]}, but {value!r} is quoted text; remove the quotes"
    if err["type"].endswith("_type") and not isinstance(value, (dict, list)):
        return f"{msg} (got {value!r})"
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    return msg
