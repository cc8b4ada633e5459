"""Load a fleet repository (a directory or a git revision) into one typed `FleetSpec`.

Loading never stops at the first problem: every file is read, every schema error is
collected and located (`path:line:col: field: message`), and the objects that did load are
kept so that reference checks can still run on them.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

from linefleet_core import API_VERSION, artifactref, placement, yamlsafe
from linefleet_core.catalogue import ModelFamily, ModelVersion
from linefleet_core.errors import Finding
from linefleet_core.fleet import EdgeDevice, Line, Policy, Site
from linefleet_core.gcpause import paused_gc
from linefleet_core.schemafindings import schema_findings
from linefleet_core.taxonomy import Taxonomy

FLEET_DIR = "fleet"
TAXONOMY_DIR = "taxonomies"
YAML_SUFFIXES = (".yaml", ".yml")

KINDS: dict[str, type[BaseModel]] = {
    "Site": Site,
    "Line": Line,
    "EdgeDevice": EdgeDevice,
    "Model": ModelFamily,
    "Policy": Policy,
    "Taxonomy": Taxonomy,
}
KIND_DIR = {kind: TAXONOMY_DIR if kind == "Taxonomy" else FLEET_DIR for kind in KINDS}
_KIND_PREFIX = {kind: f"{folder}/" for kind, folder in KIND_DIR.items()}


@dataclass(frozen=True)
class Refused:
    """A path in fleet/ or taxonomies/ that is not read: not a regular file, or too large.

    The working tree and git objects refuse the same things with the same words, so the
    check (which reads the working tree) and the publisher (which reads git) see one fleet.
    """

    message: str


SYMLINK = Refused(
    "a symbolic link; fleet files must be regular files (git stores a link as its target's "
    "name, so the check and the publisher would read different fleets)"
)
SUBMODULE = Refused("a git submodule; fleet files must be regular files of this repository")
YAML_NAMED_DIR = Refused(
    "a directory named like a YAML file; fleet files must be regular files (its contents are "
    "not read)"
)

NOT_UTF8_NAME = Refused(
    "a name that is not UTF-8 (each such byte written \\xNN here); fleet files are named after "
    "what they declare (ids: a-z, 0-9 and -)"
)


LFS_POINTER = b"version https://git-lfs.github.com/spec/"
"""How a Git LFS pointer file starts (what git holds for a file LFS tracks)."""


def shown_name(path: str) -> str:
    """`path` (from `os.fsdecode`) with each byte that is not UTF-8 written `\\xNN`, as `ls -b`
    does: Python keeps such a byte as a lone surrogate, which no UTF-8 output can hold
    (`plan --out` stopped with exit 3 on a pull request adding `b\\xff.yaml`)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def named(path: str, read: bytes | Refused) -> tuple[str, bytes | Refused]:
    """(path, what was read there), or, where the name is not UTF-8, (`shown_name`, refused):
    the working tree and git refuse such a file alike."""
    shown = shown_name(path)
    return (path, read) if shown == path else (shown, NOT_UTF8_NAME)


def too_large(size: int) -> Refused:
    return Refused(
        f"file is {size:,} bytes; fleet files may be at most {yamlsafe.MAX_FILE_BYTES:,}"
    )


class Source(Protocol):
    """Where fleet files come from: a working tree or a git revision."""

    @property
    def label(self) -> str: ...

    def files(self) -> Iterable[tuple[str, bytes | Refused]]:
        """Yield (repository-relative POSIX path, content) for every YAML file in scope, and
        a `Refused` for every symbolic link, non-regular or oversized file there."""
        ...


@dataclass
class DirectorySource:
    root: Path
    label: str = "working tree"

    def files(self) -> Iterator[tuple[str, bytes | Refused]]:
        for top in (FLEET_DIR, TAXONOMY_DIR):
            base = self.root / top
            if base.is_symlink():
                yield top, SYMLINK
                continue
            if not base.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(base):
                folder = Path(dirpath)
                rel = folder.relative_to(self.root).as_posix()  # once per folder, not per file
                entries = sorted([(n, True) for n in dirnames] + [(n, False) for n in filenames])
                dirnames[:] = []
                for name, is_dir in entries:
                    path = f"{rel}/{name}"
                    if is_dir:
                        refused = _directory_refusal(folder / name)
                        if refused is not None:
                            yield named(path, refused)
                        else:
                            dirnames.append(name)  # os.walk goes on in this (sorted) order
                        continue
                    # (a string, not `folder / name`: a Path per file cost more than its read)
                    file = f"{dirpath}/{name}"
                    got = read_regular(file, name.endswith(YAML_SUFFIXES))
                    if got is not None:
                        yield named(path, got)

    def artifact_digest(self, path: str, limit: int) -> artifactref.Digest | artifactref.Unreadable:
        """Size and sha256 of a repository file, never through a symbolic link."""
        here = self.root
        parts = path.split("/")
        for i, part in enumerate(parts):
            here = here / part
            try:
                info = here.lstat()
            except OSError:
                return NOT_IN_REPO
            if stat.S_ISLNK(info.st_mode):
                return artifactref.Unreadable(f"{'/'.join(parts[: i + 1])} is {SYMLINK.message}")
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(here, flags)
        except OSError as exc:
            return artifactref.Unreadable(f"cannot be read: {exc.strerror}")
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            os.close(fd)
            return artifactref.Unreadable(f"{_file_type(mode)}, not a regular file")
        with os.fdopen(fd, "rb") as handle:
            return artifactref.digest_of(iter(lambda: handle.read(1 << 20), b""), limit)


NOT_IN_REPO = artifactref.Unreadable("no such file in the repository")


def _directory_refusal(folder: Path) -> Refused | None:
    if folder.is_symlink():
        return SYMLINK
    if folder.name.endswith(YAML_SUFFIXES):
        return YAML_NAMED_DIR
    if (folder / ".git").exists():
        return SUBMODULE
    return None


def read_regular(path: Path | str, wanted: bool) -> bytes | Refused | None:
    """The bytes of a regular file (at most `MAX_FILE_BYTES` + 1 are read), a `Refused` for
    anything else, or None for a regular file that is not `wanted` (not YAML).

    Opened without following links and without blocking, then checked on the open file: a
    FIFO cannot hang the reader and a device cannot feed it forever.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or Path(path).is_symlink():
            return SYMLINK
        return Refused(f"cannot be read: {exc.strerror}")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return Refused(f"{_file_type(info.st_mode)}; fleet files must be regular files")
    try:
        if not wanted:
            return None
        if info.st_size > yamlsafe.MAX_FILE_BYTES:
            return too_large(info.st_size)
        chunks = []  # plain reads on the descriptor: no buffered file object per file
        left = yamlsafe.MAX_FILE_BYTES + 1
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
        raw = b"".join(chunks)
    finally:
        os.close(fd)
    if len(raw) > yamlsafe.MAX_FILE_BYTES:
        return too_large(len(raw))
    return raw


def _file_type(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


_TABLES = {
    "Site": "sites",
    "Line": "lines",
    "EdgeDevice": "devices",
    "Model": "models",
    "Taxonomy": "taxonomies",
}
"""The table of `FleetSpec` each kind is kept in (`exists`)."""


@dataclass
class FleetSpec:
    """Everything the fleet declares, indexed by id; `docs` keeps each object's source file."""

    sites: dict[str, Site] = field(default_factory=dict)
    lines: dict[str, Line] = field(default_factory=dict)  # by `site/line`
    devices: dict[str, EdgeDevice] = field(default_factory=dict)
    models: dict[str, ModelFamily] = field(default_factory=dict)
    taxonomies: dict[str, Taxonomy] = field(default_factory=dict)  # by `name@version`
    policy: Policy = field(default_factory=lambda: Policy(kind="Policy"))
    docs: dict[int, yamlsafe.Located] = field(default_factory=dict)  # id(object) -> file
    source: str = ""
    broken: set[str] = field(default_factory=set)
    """`kind:key` of documents that failed their schema: references to them are not reported
    again as unknown (the schema error already says what is wrong)."""
    _versions: dict[int, tuple[ModelFamily, dict[int, ModelVersion]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """id(family) -> (family, its versions by number): `model_version` runs for every
    reference of every line and device."""

    def exists(self, kind: str, key: str) -> bool:
        """True when the object is declared, loaded or not (broken ones count as declared)."""
        table: dict[str, Any] = getattr(self, _TABLES[kind])
        return key in table or f"{kind}:{key}" in self.broken

    def located(self, obj: object) -> yamlsafe.Located:
        return self.docs[id(obj)]

    def model_version(self, ref: str) -> ModelVersion | None:
        name, _, version = ref.partition("@")
        family = self.models.get(name)
        if family is None or not version.isdigit():
            return None
        found = self._versions.get(id(family))
        if found is None or found[0] is not family:  # (the first of a version listed twice)
            index = {v.version: v for v in reversed(family.versions)}
            found = self._versions[id(family)] = (family, index)
        return found[1].get(int(version))

    def lines_of(self, site: str) -> list[Line]:
        return [line for line in self.lines.values() if line.site == site]


def assigned_lines(spec: FleetSpec) -> dict[str, frozenset[str]]:
    """The lines (`site/line`) each device (`site/device`) serves, as the fleet declares."""
    return {
        f"{d.site}/{d.id}": frozenset(f"{d.site}/{s.line}" for s in d.serves)
        for d in spec.devices.values()
    }


@dataclass(frozen=True)
class Checked:
    """One file read and schema-checked: what depends on nothing but its path and bytes."""

    doc: yamlsafe.Located | None
    obj: BaseModel | None = None
    findings: tuple[Finding, ...] = ()
    broken: tuple[str, ...] = ()
    """`kind:key` of what the file declares (or, if unreadable, what its path says it declares)
    when it did not load: references to it are the file's own error's consequences."""


Checks = dict[tuple[str, bytes], Checked]
"""Files already checked, by path and content. Two revisions of a fleet share most files:
loading both with one `Checks` reads, parses and schema-checks each unchanged file once, and
both specs hold the same (frozen) objects for it, found at the same path."""


def load(
    source: Source, checks: Checks | None = None, parsed: yamlsafe.ParsedBlobs | None = None
) -> tuple[FleetSpec, list[Finding]]:
    """Read and schema-check every file of `source`; return what loaded and every finding.

    `parsed`: documents parsed before, by blob id (a persistent cache); see `check_file`.
    """
    # Everything built here survives (a tree of documents and frozen models, no cycles), so
    # cycle collection during the build cannot free anything; on 2,000 files it cost ~20%.
    with paused_gc():
        return _load(source, {} if checks is None else checks, parsed)


def _load(
    source: Source, checks: Checks, parsed: yamlsafe.ParsedBlobs | None
) -> tuple[FleetSpec, list[Finding]]:
    spec = FleetSpec(source=source.label)
    findings: list[Finding] = []
    policy_seen: yamlsafe.Located | None = None
    for path, raw in source.files():
        if isinstance(raw, Refused):
            findings.append(Finding(path, 0, 0, "", raw.message, code="file_type"))
            spec.broken.update(_by_path(path))  # one error, not two
            continue
        checked = checks.get((path, raw))
        if checked is None:
            checked = checks[(path, raw)] = check_file(path, raw, parsed)
        findings.extend(checked.findings)
        spec.broken.update(checked.broken)
        obj, doc = checked.obj, checked.doc
        if obj is None or doc is None:
            continue
        spec.docs[id(obj)] = doc
        findings.extend(_register(spec, obj, doc, policy_seen))
        if isinstance(obj, Policy):
            policy_seen = doc
    return spec, findings


def check_file(path: str, raw: bytes, parsed: yamlsafe.ParsedBlobs | None = None) -> Checked:
    """Parse one file and check it against the schema of its kind (and its place).

    With `parsed`, a document parsed before is reused; the checks always run (they are
    most of what a change of linefleet changes, and the objects they build are not cached).
    """
    try:
        doc = yamlsafe.load(path, raw, parsed)
    except yamlsafe.YamlProblem as problem:
        where = (path, problem.line, problem.col, problem.field, problem.message)
        return Checked(None, findings=(Finding(*where, code="yaml"),), broken=_by_path(path))
    data = doc.data
    if not isinstance(data, dict):
        kind_of = type(data).__name__
        message = f"expected a mapping at the top level, got a {kind_of}"
        if raw.startswith(LFS_POINTER):
            message = (
                "a Git LFS pointer, not the file's YAML: fleet files must be committed as they "
                "are (no LFS or other filter for them in .gitattributes): the publisher reads "
                "git's objects"
            )
        return _refused(doc, (), message, _by_path(path))
    kind = data.get("kind")
    if data.get("apiVersion") != API_VERSION:
        return _refused(
            doc, ("apiVersion",), f"must be {API_VERSION!r}", _by_path(path), code="api_version"
        )
    if not isinstance(kind, str) or (model := KINDS.get(kind)) is None:
        message = f"unknown kind {kind!r}; one of: {', '.join(KINDS)}"
        return _refused(doc, ("kind",), message, _by_path(path))
    if not path.startswith(_KIND_PREFIX[kind]):
        message = f"a {kind} belongs under {KIND_DIR[kind]}/"
        return _refused(doc, ("kind",), message, _by_path(path))
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        findings = schema_findings(doc, exc, tuple(KINDS.values()))
        broken = tuple(dict.fromkeys((f"{kind}:{_key_of(kind, data)}", *_by_path(path))))
        return Checked(doc, findings=tuple(findings), broken=broken)
    misplaced = tuple(placement.findings(path, doc, obj))
    if misplaced:  # not registered: what refers to either name is a consequence of this error
        broken = tuple(dict.fromkeys((f"{kind}:{_key_of(kind, data)}", *_by_path(path))))
        return Checked(doc, findings=misplaced, broken=broken)
    return Checked(doc, obj)


def _by_path(path: str) -> tuple[str, ...]:
    """What the file's place says it declares (`placement.declared`), for a file that did not
    load: references to it are consequences of its own error."""
    return tuple(filter(None, [placement.declared(path)]))


def _refused(
    doc: yamlsafe.Located,
    path: yamlsafe.Path,
    message: str,
    broken: tuple[str, ...],
    **kw: Any,
) -> Checked:
    return Checked(doc, findings=(doc.finding(path, message, **kw),), broken=broken)


def _key_of(kind: str, data: dict[str, Any]) -> str:
    """The key a document would be registered under, as far as its raw data tells."""
    if kind == "Line":
        return f"{data.get('site')}/{data.get('id')}"
    if kind == "Model":
        return str(data.get("name"))
    if kind == "Taxonomy":
        return f"{data.get('name')}@{data.get('version')}"
    if kind == "Policy":
        return "fleet"  # (the fleet has one)
    return str(data.get("id"))


def _register(
    spec: FleetSpec, obj: BaseModel, doc: yamlsafe.Located, policy_seen: yamlsafe.Located | None
) -> list[Finding]:
    def dup(key: str, other: object, field_name: str = "id") -> list[Finding]:
        first = spec.located(other).path
        return [
            doc.finding(
                (field_name,), f"duplicate {key!r}; first defined in {first}", code="duplicate"
            )
        ]

    if isinstance(obj, Site):
        if obj.id in spec.sites:
            return dup(obj.id, spec.sites[obj.id])
        spec.sites[obj.id] = obj
    elif isinstance(obj, Line):
        if obj.key in spec.lines:
            return dup(obj.key, spec.lines[obj.key])
        spec.lines[obj.key] = obj
    elif isinstance(obj, EdgeDevice):
        if obj.id in spec.devices:
            return dup(obj.id, spec.devices[obj.id])
        spec.devices[obj.id] = obj
    elif isinstance(obj, ModelFamily):
        if obj.name in spec.models:
            return dup(obj.name, spec.models[obj.name], "name")
        spec.models[obj.name] = obj
    elif isinstance(obj, Taxonomy):
        if obj.ref in spec.taxonomies:
            return dup(obj.ref, spec.taxonomies[obj.ref], "version")
        spec.taxonomies[obj.ref] = obj
    elif isinstance(obj, Policy):
        if policy_seen is not None:
            return [
                doc.finding(("kind",), f"a second Policy; the fleet has one, in {policy_seen.path}")
            ]
        spec.policy = obj
    return []
