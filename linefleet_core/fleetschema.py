"""The JSON Schema of every fleet file kind, for editors and CI: the contract as editors read it.

`linefleet schema` writes them into `schema/`; `linefleet init` and `linefleet fleet generate`
put them into a new fleet repository, and every generated fleet file names its schema in a
yaml-language-server modeline (`modeline`).

The schemas come from the pydantic models (`model_json_schema()`), adjusted where pydantic's
export and what `linefleet validate` accepts would otherwise disagree:
- `apiVersion` is required (the loader refuses a file without it);
- times are ISO 8601 strings as the YAML files write them (`2026-12-20`, `2026-12-20T06:00`),
  checked by a pattern: `format: date-time` would demand seconds and a UTC offset;
- a field's docstring (the string under it in the model) becomes its `description`, so an
  editor shows it on hover.
Output is deterministic (sorted keys, fixed indentation), so `schema/` can be committed and
a test can tell when it is stale.
"""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import textwrap
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a schema is built: every other command starts without them
    from pydantic import BaseModel
    from pydantic.json_schema import GenerateJsonSchema

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_FILES = {
    "Site": "site",
    "Line": "line",
    "EdgeDevice": "edge-device",
    "Model": "model",
    "Policy": "policy",
    "Taxonomy": "taxonomy",
}
ISO_TIME = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$"
)


def modeline(path: str, kind: str) -> str:
    """The yaml-language-server comment at the top of the fleet file at repository path `path`
    (a `kind` file) that points an editor at its schema in the repository's `schema/`."""
    up = "../" * path.count("/")
    return f"# yaml-language-server: $schema={up}schema/{SCHEMA_FILES[kind]}.schema.json\n"


@cache
def _fleet_json_schema() -> type[GenerateJsonSchema]:
    from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
    from pydantic_core import core_schema

    class FleetJsonSchema(GenerateJsonSchema):
        def datetime_schema(self, schema: core_schema.DatetimeSchema) -> JsonSchemaValue:
            return {
                "type": "string",
                "pattern": ISO_TIME,
                "description": "ISO 8601 date or date and time; without an offset, site-local.",
            }

    return FleetJsonSchema


def schema_documents() -> dict[str, str]:
    """File name -> JSON Schema text for every kind of fleet file."""
    from linefleet_core.spec import KINDS

    out: dict[str, str] = {}
    for kind, model in KINDS.items():
        schema: dict[str, Any] = model.model_json_schema(schema_generator=_fleet_json_schema())
        required = schema.setdefault("required", [])
        if "apiVersion" not in required:
            required.insert(0, "apiVersion")
        schema["title"] = kind
        _describe_fields(model, schema)
        schema = {"$schema": DRAFT, "$id": f"{SCHEMA_FILES[kind]}.schema.json", **schema}
        text = json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        out[f"{SCHEMA_FILES[kind]}.schema.json"] = text
    return out


def _describe_fields(root: type[BaseModel], schema: dict[str, Any]) -> None:
    """Copy field docstrings into `properties.<field>.description` of every model's schema."""
    pending, seen = [root], set()
    while pending:
        model = pending.pop()
        if model in seen:
            continue
        seen.add(model)
        target = schema if model is root else schema.get("$defs", {}).get(model.__name__)
        docs = _field_docstrings(model)
        for name, info in model.model_fields.items():
            prop = (target or {}).get("properties", {}).get(name)
            if prop is not None and name in docs:
                prop.setdefault("description", docs[name])
            pending.extend(_models_in(info.annotation))


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]


def _field_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """`field: type = ...` followed by a string literal, in the class body and its bases."""
    from pydantic import BaseModel

    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or cls is BaseModel:
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, after in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs
