"""The classes to generate: from a taxonomy version (file or `name@N` ref) or a plain list."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from factory_sim.defects import OK, is_known
from linefleet_core import yamlsafe
from linefleet_core.refs import REF_PATTERN, Ref
from linefleet_core.taxonomy import Taxonomy

DEFAULT_CLASSES = ("ok", "scratch", "dent", "contamination", "discoloration")
"""What `surface-defects@1` lists; used when no taxonomy is given."""


class TaxonomyLoadError(Exception):
    """A taxonomy file that cannot be used; the message names the file (and line)."""


@dataclass(frozen=True)
class ClassSet:
    ids: tuple[str, ...]
    taxonomy: str | None = None
    """The taxonomy ref (`surface-defects@2`) the ids come from, or None for a plain list."""
    warnings: tuple[str, ...] = field(default=())

    @property
    def defects(self) -> tuple[str, ...]:
        return tuple(c for c in self.ids if c != OK)

    @property
    def has_ok(self) -> bool:
        return OK in self.ids


def class_set(source: Taxonomy | ClassSet | Sequence[str]) -> ClassSet:
    """Normalise a taxonomy or a list of class ids; warn about classes drawn as a blob."""
    if isinstance(source, ClassSet):
        return source
    if isinstance(source, str):
        raise TypeError(f"expected a list of class ids or a Taxonomy, got the string {source!r}")
    if isinstance(source, Taxonomy):
        ids, ref = tuple(source.class_ids), source.ref
    else:
        ids, ref = tuple(source), None
    if not ids:
        raise ValueError("at least one class is needed")
    dupes = sorted({c for c in ids if ids.count(c) > 1})
    if dupes:
        raise ValueError(f"duplicate class ids: {', '.join(dupes)}")
    warnings = [
        f"class {c!r} has no dedicated defect painter; it is drawn as a generic blob"
        for c in ids
        if not is_known(c)
    ]
    if OK not in ids:
        warnings.append(f"no {OK!r} class: every frame gets a defect")
    if not [c for c in ids if c != OK]:
        raise ValueError(f"at least one defect class (other than {OK!r}) is needed")
    return ClassSet(ids, ref, tuple(warnings))


def load_taxonomy(spec: str, repo: Path = Path()) -> Taxonomy:
    """Load a taxonomy from a YAML file path, or from a `name@N` ref under `repo/taxonomies`."""
    path = Path(spec)
    if re.match(REF_PATTERN, spec) and not path.is_file():
        ref = Ref.parse(spec)
        path = repo / "taxonomies" / ref.name / f"v{ref.version}.yaml"
        if not path.is_file():
            raise TaxonomyLoadError(f"{spec}: no taxonomy file at {path}")
    elif not path.is_file():
        raise TaxonomyLoadError(f"{spec}: no such file (and not a name@version ref)")
    try:
        doc = yamlsafe.load(str(path), path.read_bytes())
    except yamlsafe.YamlProblem as problem:
        raise TaxonomyLoadError(f"{path}:{problem.line}:{problem.col}: {problem.message}") from None
    except OSError as exc:
        raise TaxonomyLoadError(f"{path}: {exc.strerror}") from None
    try:
        return Taxonomy.model_validate(doc.data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = tuple(err["loc"])
        finding = doc.finding(loc, err["msg"])
        raise TaxonomyLoadError(finding.render()) from None
