"""The JSON form of wire messages, as pydantic's `model_dump(mode="json")` gives it, for many
documents at once.

pydantic calls `wire.Sparse`'s serializer (a Python function) for every sparse model it dumps,
and a desired state holds about eight of them: at 10,000 devices dumping was the largest part
of compiling and signing. `Dumper` walks the models itself with the same rules (every field;
in a sparse model, an unset field is left out unless `wire` keeps it as `null`), and a model
object it has dumped before (the model versions, taxonomies and gates that one compile shares
between lines) is not walked again.

It only walks a message type whose pydantic schema has no serialization rule other than
`Sparse`'s (checked once per type); a value it does not know (a date, a set, a model of
another type than the field declares) sends the whole message to pydantic. Either way the
result is what pydantic gives. The dictionaries it returns may be shared between documents:
read them, do not change them.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Collection
from functools import cache
from typing import Any

from pydantic import BaseModel

from linefleet_core.signing import canonical_json
from linefleet_core.wire import _KEEP_NONE, Sparse

_OMIT_UNSET = Sparse.__dict__["_omit_unset"]
_UNSUPPORTED_KEYS = frozenset(
    {"serialization_exclude", "serialization_alias", "serialization_exclude_if"}
)


class _Unsupported(Exception):
    """A value the walk does not know how pydantic writes: let pydantic dump the message."""


@cache
def walkable(cls: type[BaseModel]) -> bool:
    """True when pydantic writes every model `cls` holds with the default rules and `Sparse`'s
    only: no other serializer, alias, excluded or computed field, or extra fields kept."""
    return _plain_schema(cls.__pydantic_core_schema__)


def _plain_schema(node: object) -> bool:
    if isinstance(node, dict):
        rule = node.get("serialization")
        if rule is not None and not (
            rule.get("type") == "function-wrap" and rule.get("function") is _OMIT_UNSET
        ):
            return False
        if _UNSUPPORTED_KEYS & node.keys() or node.get("computed_fields"):
            return False
        if node.get("extra_behavior") == "allow":
            return False
        return all(_plain_schema(v) for v in node.values())
    if isinstance(node, list | tuple):
        return all(_plain_schema(v) for v in node)
    return True


@cache
def _fields(cls: type[BaseModel]) -> tuple[tuple[str, frozenset[type]], ...]:
    """Each field's name and the model types its annotation names (where a model may be)."""
    return tuple((name, _models_in(f.annotation)) for name, f in cls.__pydantic_fields__.items())


def _models_in(annotation: object) -> frozenset[type]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return frozenset({annotation})
    found: set[type] = set()
    for arg in typing.get_args(annotation):
        found |= _models_in(arg)
    return frozenset(found)


class Dumper:
    """Dumps wire messages; remembers each model object it dumped while it lives."""

    def __init__(self) -> None:
        self._seen: dict[int, tuple[BaseModel, dict[str, Any]]] = {}
        self._encoded: dict[int, tuple[BaseModel, bytes]] = {}

    def encoded(self, message: BaseModel) -> bytes:
        """`canonical_json(self.dump(message))`, encoded once per object while the dumper
        lives (a part many documents share, spliced into each: `signing.canonical_with`)."""
        found = self._encoded.get(id(message))
        if found is not None and found[0] is message:
            return found[1]
        raw = canonical_json(self.dump(message))
        self._encoded[id(message)] = (message, raw)
        return raw

    def dump(self, message: BaseModel, exclude: Collection[str] = ()) -> dict[str, Any]:
        """`message.model_dump(mode="json", exclude=set(exclude))` (top-level field names)."""
        if walkable(type(message)):
            try:
                return self._model(message, frozenset(exclude))
            except _Unsupported:
                pass
        return message.model_dump(mode="json", exclude=set(exclude))

    def _model(self, obj: BaseModel, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
        seen = self._seen.get(id(obj))
        if seen is not None and seen[0] is obj and not exclude:
            return seen[1]
        if obj.__pydantic_extra__:
            raise _Unsupported
        values = obj.__dict__
        out: dict[str, Any] = {}
        for name, models in _fields(type(obj)):
            if name in exclude:
                continue
            value = values[name]
            kind = type(value)
            if kind in _SCALARS:
                out[name] = value
            elif kind in models:
                out[name] = self._model(value)
            else:
                out[name] = self._value(value, models)
        if isinstance(obj, Sparse):
            out = {k: v for k, v in out.items() if v is not None or k in _KEEP_NONE}
        if not exclude:
            self._seen[id(obj)] = (obj, out)
        return out

    def _value(self, value: Any, models: frozenset[type]) -> Any:
        kind = type(value)
        if kind in _SCALARS:
            return value
        if kind is list or kind is tuple:
            return [v if type(v) in _SCALARS else self._value(v, models) for v in value]
        if kind is dict:
            if not all(type(k) is str for k in value):
                raise _Unsupported
            return {
                k: v if type(v) in _SCALARS else self._value(v, models) for k, v in value.items()
            }
        if kind in models:
            return self._model(value)
        if isinstance(value, enum.Enum) and type(value.value) in (str, int):
            return value.value
        raise _Unsupported  # a model of another type than declared, a date, a set, ...


_SCALARS = frozenset({str, int, float, bool, type(None)})
