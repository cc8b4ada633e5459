"""A strict, fast YAML reader for fleet files, with positions for error messages.

Why not `yaml.safe_load` or ruamel.yaml here:
- libyaml's C composer recurses and crashes the interpreter on deeply nested input, so we
  build documents ourselves from libyaml's event stream, iteratively, with a depth limit;
- aliases (the billion-laughs bomb), custom tags (`!!python/object`), duplicate keys and
  multi-document files are refused with a located error instead of being silently accepted;
- plain scalars resolve by the YAML 1.2 core schema (`yes`, `no`, `on` stay strings) so the
  reader agrees with ruamel.yaml, which we use for round-trip edits.
Most fleet files never reach libyaml's events: `yamlquick` reads plain block YAML (one
regular expression per file, then a loop over its lines) in less than half their time, and
declines anything else, which is then read here as described (`tests/fuzz/test_quick_yaml.py`).

The fast path records no positions. When a file turns out to be invalid, `Located.where()`
parses it again with positions: only bad files pay for them.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml import events as ev

from linefleet_core import yamlquick
from linefleet_core.errors import Finding

MAX_DEPTH = 64
MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_INT = 2**53
"""Integers beyond ±2^53 are refused: JSON readers on the wire (and most languages) would
round them, and Python refuses to convert integer text of more than 4,300 digits."""

_Y = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {
    None,
    "!",
    *(_Y + t for t in ("str", "int", "float", "bool", "null", "map", "seq")),
}

_INT = re.compile(r"[-+]?[0-9]+")
_INT_OCT = re.compile(r"0o[0-7]+")
_INT_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_INF = re.compile(r"[-+]?\.(inf|Inf|INF)")
_NAN = re.compile(r"\.(nan|NaN|NAN)")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_MAYBE_NOT_TEXT = frozenset("0123456789-+.~nNtTfF")
"""First characters of plain scalars that may resolve to something other than text."""
_FALSE = {"false", "False", "FALSE"}

Path = tuple[str | int, ...]


class _BadScalar(ValueError):
    """A scalar the reader refuses; `parse` adds the position."""


class YamlProblem(Exception):
    def __init__(self, message: str, line: int = 0, col: int = 0, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col
        self.field = field


_RESOLVED: dict[str, Any] = {}
"""Plain scalars resolved before, and what they resolved to: fleet files repeat most values
(`1920`, `true`, `15.0`, `diffuse-dome`). Refused ones are not kept (they raise each time)."""
_RESOLVED_MAX = 1 << 16
_UNRESOLVED = object()


def _plain(value: str) -> Any:
    """Resolve a plain (unquoted, untagged) scalar by the YAML 1.2 core schema."""
    found = _RESOLVED.get(value, _UNRESOLVED)
    if found is _UNRESOLVED:
        found = _resolve(value)
        if len(_RESOLVED) < _RESOLVED_MAX:
            _RESOLVED[value] = found
    return found


def _resolve(value: str) -> Any:
    if value in _NULLS:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    first = value[0]
    if first.isdigit() or first in "-+.":
        if len(value) < 16 and value.isdigit() and value.isascii():
            return int(value)  # the common case of `_INT` below: at most 15 digits, no sign
        if _INT.fullmatch(value):
            return _int(value, value, 10)
        if _INT_OCT.fullmatch(value):
            return _int(value, value[2:], 8)
        if _INT_HEX.fullmatch(value):
            return _int(value, value[2:], 16)
        if _FLOAT.fullmatch(value):
            number = float(value)
            if math.isinf(number):
                raise _BadScalar(f"{_short(value)} is too large for a number (out of range)")
            return number
        if _INF.fullmatch(value) or _NAN.fullmatch(value):
            raise _BadScalar(f"{value} is not a finite number; values must be finite")
    return value


def _int(text: str, digits: str, base: int) -> int:
    if len(digits) > 20:  # more than 2^53 in any base we read: refuse before converting
        raise _BadScalar(f"{_short(text)} is out of range (integers are at most ±2^53)")
    number = int(digits, base)
    if abs(number) > MAX_INT:
        raise _BadScalar(f"{_short(text)} is out of range (integers are at most ±2^53)")
    return number


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}…({len(text):,} characters)"


def _tagged(value: str, tag: str, line: int, col: int) -> Any:
    kind = tag[len(_Y) :] if tag.startswith(_Y) else "str"
    if kind == "str":
        return value
    try:
        resolved = _plain(value)
    except _BadScalar as exc:
        raise YamlProblem(str(exc), line, col) from None
    expected: Any = {"int": int, "float": (int, float), "bool": bool, "null": type(None)}.get(kind)
    if (
        expected is None
        or not isinstance(resolved, expected)
        or (kind in ("int", "float") and isinstance(resolved, bool))
    ):
        raise YamlProblem(f"{value!r} is not a valid !!{kind}", line, col)
    return float(resolved) if kind == "float" else resolved


@dataclass
class Parsed:
    """A parsed document; `marks` is filled only when parsed with positions."""

    data: Any
    marks: dict[Path, tuple[int, int]] = field(default_factory=dict)
    key_marks: dict[Path, tuple[int, int]] = field(default_factory=dict)


def decode(raw: bytes) -> str:
    """Decode UTF-8 (an optional BOM is dropped); a bad byte raises a located problem."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlProblem(
            f"file is {len(raw):,} bytes; linefleet's YAML files may be at most {MAX_FILE_BYTES:,}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise YamlProblem(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save the file as UTF-8", line, col
        ) from None
    return text.removeprefix("\ufeff")


_PARSER_DEPTH_LIMIT = "maximum nesting depth"
"""How libyaml (from PyYAML 6.0.4 on) words its own nesting limit (about 1,000 levels)."""


def _c_loader(text: str) -> Any:
    return yaml.CSafeLoader(text) if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader(text)


def parse(text: str, *, with_marks: bool = False, loader: Any = None) -> Parsed:
    """Parse one YAML document into plain Python values; refuse anything unsafe or ambiguous.

    Deep nesting is refused as `nested more than MAX_DEPTH levels deep` at the opening of the
    first level too deep, whichever PyYAML is installed: newer libyaml scans ahead and stops
    deep flow nesting itself, before our event loop sees the level; the file is then read again
    with the pure-Python reader (no such limit, no recursion) to find the same place.
    """
    if not with_marks and loader is None:
        data = yamlquick.read(text, _plain, _MAYBE_NOT_TEXT)
        if data is not None:
            return Parsed(data)
    try:
        return _parse(text, with_marks, loader or _c_loader)
    except _ParserDepthLimit as exc:
        try:
            return _parse(text, with_marks, yaml.SafeLoader)
        except _ParserDepthLimit:
            raise YamlProblem(
                f"nested more than {MAX_DEPTH} levels deep", exc.line, exc.col
            ) from None


class _ParserDepthLimit(Exception):
    def __init__(self, line: int, col: int) -> None:
        super().__init__(line, col)
        self.line, self.col = line, col


def _parse(text: str, with_marks: bool, make_loader: Any) -> Parsed:
    # The hot loop of `linefleet validate`: ~100 events per fleet file. The open container
    # lives in local variables (`container`, `is_dict`, `key`); `stack` keeps its parents.
    out = Parsed(None)
    marks, key_marks = out.marks, out.key_marks
    stack: list[tuple[Any, bool, Any, Path]] = []
    container: Any = None  # the open mapping or sequence (None at the top level)
    is_dict = False
    nokey: Any = _NOKEY
    key: Any = nokey  # the open mapping's pending key
    path: Path = ()  # the open container's path (kept only with marks)
    documents = 0
    loader = make_loader(text)
    get_event = loader.get_event
    allowed, maybe_not_text, plain = _ALLOWED_TAGS, _MAYBE_NOT_TEXT, _plain
    scalar_t, alias_t, doc_t = ev.ScalarEvent, ev.AliasEvent, ev.DocumentStartEvent
    map_t, seq_t = ev.MappingStartEvent, ev.SequenceStartEvent
    end_ts = (ev.MappingEndEvent, ev.SequenceEndEvent)

    try:
        while True:
            e: Any = get_event()
            if e is None:
                break
            t = type(e)
            if t is scalar_t:
                if e.anchor is not None:
                    raise _at(e, "anchors and aliases are not allowed in linefleet's YAML files")
                tag = e.tag
                if tag is None or tag == "!":
                    value: Any = e.value
                    if (value[:1] in maybe_not_text or not value) and e.implicit[0] and not e.style:
                        value = plain(value)
                elif tag in allowed:
                    value = _tagged(e.value, tag, e.start_mark.line + 1, e.start_mark.column + 1)
                else:
                    raise _at(e, f"custom tag {tag!r} is not allowed")
                if is_dict:
                    if key is nokey:
                        if value in container:
                            raise YamlProblem(
                                f"duplicate key {value!r}",
                                e.start_mark.line + 1,
                                e.start_mark.column + 1,
                                _render_path((*_path_of(stack), str(value))),
                            )
                        key = value
                        if with_marks:
                            key_marks[(*path, value)] = (
                                e.start_mark.line + 1,
                                e.start_mark.column + 1,
                            )
                        continue
                    if with_marks:
                        marks[(*path, key)] = (e.start_mark.line + 1, e.start_mark.column + 1)
                    container[key] = value
                    key = nokey
                elif container is not None:
                    if with_marks:
                        marks[(*path, len(container))] = (
                            e.start_mark.line + 1,
                            e.start_mark.column + 1,
                        )
                    container.append(value)
                else:
                    out.data = value
            elif t is map_t or t is seq_t:
                if e.anchor is not None:
                    raise _at(e, "anchors and aliases are not allowed in linefleet's YAML files")
                if e.tag not in allowed:
                    raise _at(e, f"custom tag {e.tag!r} is not allowed")
                if len(stack) + (container is not None) >= MAX_DEPTH:
                    raise _at(e, f"nested more than {MAX_DEPTH} levels deep")
                if is_dict and key is nokey:
                    raise _at(e, "a mapping key must be a plain value")
                if container is not None:
                    stack.append((container, is_dict, key, path))
                    if with_marks:
                        path = (*path, key if is_dict else len(container))
                if with_marks:
                    marks[path] = (e.start_mark.line + 1, e.start_mark.column + 1)
                is_dict = t is map_t
                container = {} if is_dict else []
                key = nokey
            elif t in end_ts:
                done = container
                if not stack:
                    out.data = done
                    container, is_dict, key = None, False, nokey
                    continue
                container, is_dict, key, path = stack.pop()
                if is_dict:
                    container[key] = done
                    key = nokey
                else:
                    container.append(done)
            elif t is alias_t:
                raise _at(e, "anchors and aliases are not allowed in linefleet's YAML files")
            elif t is doc_t:
                documents += 1
                if documents > 1:
                    raise _at(e, "only one YAML document per file is allowed")
    except _BadScalar as exc:
        raise _at(e, str(exc)) from None
    except yaml.reader.ReaderError as exc:
        line, col = _position(text, exc.position)
        what = "a NUL byte" if exc.character in (0, "\0") else f"character #x{_code(exc):04x}"
        raise YamlProblem(
            f"YAML syntax: {what} is not allowed (control characters are not allowed)", line, col
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark: Any = exc.problem_mark or exc.context_mark
        if _PARSER_DEPTH_LIMIT in (exc.problem or ""):
            raise _ParserDepthLimit(
                (mark.line + 1) if mark else 0, (mark.column + 1) if mark else 0
            ) from None
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise YamlProblem(
            f"YAML syntax: {message}",
            (mark.line + 1) if mark else 0,
            (mark.column + 1) if mark else 0,
        ) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(f"YAML syntax: {exc}") from None
    finally:
        loader.dispose()
    return out


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character `index` of `text`."""
    index = max(0, min(index, len(text)))
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _code(exc: yaml.reader.ReaderError) -> int:
    char: object = exc.character
    return ord(char) if isinstance(char, str) and len(char) == 1 else int(str(char or 0))


def _path_of(stack: list[tuple[Any, bool, Any, Path]]) -> Path:
    """The path of the open container, rebuilt from its parents (for error messages)."""
    return tuple(key if is_dict else len(parent) for parent, is_dict, key, _ in stack)


class _NoKey:
    __slots__ = ()


_NOKEY = _NoKey()


def _at(e: Any, message: str) -> YamlProblem:
    return YamlProblem(message, e.start_mark.line + 1, e.start_mark.column + 1)


def _render_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


render_path = _render_path


@dataclass
class Located:
    """A parsed file that can turn a data path into a `path:line:col` finding on demand."""

    path: str
    text: str
    data: Any
    _marked: Parsed | None = None

    def where(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Line and column of `path` (its key with key=True), or of its nearest ancestor."""
        if self._marked is None:
            self._marked = parse(self.text, with_marks=True)
        marks = self._marked.key_marks if key else self._marked.marks
        probe = tuple(path)
        while probe:
            if probe in marks:
                return marks[probe]
            if key and probe in self._marked.marks:
                return self._marked.marks[probe]
            probe = probe[:-1]
        return self._marked.marks.get((), (1, 1))

    def finding(self, path: Path, message: str, *, key: bool = False, **kw: Any) -> Finding:
        line, col = self.where(path, key=key)
        return Finding(self.path, line, col, _render_path(path), message, **kw)


def load(path: str, raw: bytes, parsed: ParsedBlobs | None = None) -> Located:
    """Decode and parse one file; raise YamlProblem (with a position) if it is not usable YAML.

    With `parsed`, bytes parsed before (by any path) are not parsed again.
    """
    text = decode(raw)
    if parsed is not None:
        oid = blob_id(raw)
        data = parsed.known.get(oid)
        if data is None:
            data = parsed.ahead.get(oid)
        if data is not None:
            parsed.used[oid] = data
            return Located(path, text, data)
    data = parse(text).data
    if data is None:
        raise YamlProblem("the file is empty; expected a mapping with apiVersion and kind", 1, 1)
    if parsed is not None:
        parsed.used[oid] = data
    return Located(path, text, data)


def document(raw: bytes) -> Any:
    """The document `load` gives for `raw`, or None where it would raise (the file's problem
    is then found, and located, when it is loaded). Depends on nothing but the bytes."""
    try:
        return parse(decode(raw)).data
    except YamlProblem:
        return None


def blob_id(raw: bytes) -> str:
    """The id git gives these bytes as a blob (`git hash-object`)."""
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw, usedforsecurity=False).hexdigest()


@dataclass
class ParsedBlobs:
    """Documents parsed before, by the git blob id of their bytes: what a persistent cache
    (`linefleet_forge.gitcache`) read back, and what this run parsed or reused.

    Parsing depends on nothing but the bytes (the path only names the file in findings), so
    an unchanged file, at any path and in any revision, is parsed once. Only documents that
    parse are kept: a file with a problem is parsed again, and reports it again.
    """

    known: dict[str, Any] = field(default_factory=dict)
    """Blob id -> document, as read back (nothing if the cache was missing or unusable)."""
    used: dict[str, Any] = field(default_factory=dict)
    """Blob id -> document of every file this run parsed or reused: what to keep."""
    ahead: dict[str, Any] = field(default_factory=dict)
    """Blob id -> document parsed ahead in this run, before its file was loaded (by
    `linefleet_forge.gitrepo`, while it reads the files from git); `load` takes them."""
