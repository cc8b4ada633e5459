"""`validate`: each catalogue entry's declared contract against its ONNX graph, when it can be read.

For every model version whose artifact is a file in the repository (a relative path or a
`file://` URL; remote artifacts are not fetched), the graph's interface is read
(`reconciler.onnxread`, no `onnx` package needed) and compared with
what the catalogue declares: the opset of the default domain, the input (its name when declared,
otherwise the first non-initializer input; rank 4, float, every fixed dimension equal to the
declared `input.shape`), and the outputs the task reads (they exist; a classifier's is [N, K]
with K the class count, a YOLO-style detector's [N, 4+K, boxes] or [N, boxes, 5+K]).
Findings are located on the model file (`versions[i].…`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from linefleet_core import catalogue, graphcontract
from linefleet_core.catalogue import ModelVersion
from linefleet_core.errors import Finding
from linefleet_core.graphcontract import graph_problems
from linefleet_core.spec import FleetSpec
from reconciler import onnxread


def artifact_path(url: str, repo: Path) -> Path | None:
    """The local file of a catalogue artifact URL, or None for a remote one."""
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc in ("", "localhost"):
            return Path(parts.path)
        return repo / (parts.netloc + parts.path)
    if parts.scheme == "":
        return repo / url
    return None


Problems = tuple[tuple[tuple[str | int, ...], str, str], ...]
"""(field path under the model version, message, finding code) of one artifact's check."""


@dataclass
class GraphResults:
    """Graph checks done before, by artifact digest and declared contract (a persistent
    cache, `linefleet_forge.gitcache`): a hit needs no graph read. `known`: as read back;
    `used`: what this run checked or reused."""

    known: dict[str, Problems] = field(default_factory=dict)
    used: dict[str, Problems] = field(default_factory=dict)


def checker_version() -> str | None:
    """Changes with this module, the graph reader or the contract rules (None if unreadable)."""
    try:
        modules = (__file__, onnxread.__file__, graphcontract.__file__, catalogue.__file__)
        code = b"".join(Path(m).read_bytes() for m in modules)
    except OSError:
        return None
    return hashlib.sha256(code).hexdigest()


def check_graphs(spec: FleetSpec, repo: Path, results: GraphResults | None = None) -> list[Finding]:
    local = [
        (family, i, mv, path)
        for family in spec.models.values()
        for i, mv in enumerate(family.versions)
        if (path := artifact_path(mv.artifact.url, repo)) is not None and path.is_file()
    ]
    out: list[Finding] = []
    for family, i, mv, path in local:
        doc = spec.located(family)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            out.append(doc.finding(("versions", i, "artifact", "url"), f"not an ONNX model: {exc}"))
            continue
        if hashlib.sha256(raw).hexdigest() != mv.artifact.sha256:
            continue  # a different file: the artifact's own check reports it
        key = hashlib.sha256(mv.model_dump_json().encode()).hexdigest()  # digest included
        problems = None if results is None else results.known.get(key)
        if problems is None:
            problems = _problems(raw, mv)
        if results is not None:
            results.used[key] = problems
        for where, message, code in problems:
            out.append(doc.finding(("versions", i, *where), message, code=code))
    return out


def _problems(raw: bytes, mv: ModelVersion) -> Problems:
    try:
        graph = onnxread.load(raw)
    except onnxread.NotOnnx as exc:
        return ((("artifact", "url"), f"not an ONNX model: {exc}", "invalid"),)
    return tuple((fld, message, "contract") for fld, message in graph_problems(graph, mv))
