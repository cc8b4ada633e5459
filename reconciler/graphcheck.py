"""`validate`: each catalogue entry's declared contract against its ONNX graph, when it can be read.

For every model version whose artifact is a file in the repository (a relative path or a
`file://` URL; remote artifacts are not fetched), the graph is opened with the `onnx` package
(installed with `linefleet[trainer]`; without it these checks are skipped) and compared with
what the catalogue declares: the opset of the default domain, the input (its name when declared,
otherwise the first non-initializer input; rank 4, float, every fixed dimension equal to the
declared `input.shape`), and the outputs the task reads (they exist; a classifier's is [N, K]
with K the class count, a YOLO-style detector's [N, 4+K, boxes] or [N, boxes, 5+K]).
Findings are located on the model file (`versions[i].…`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from linefleet_core.errors import Finding
from linefleet_core.graphcontract import graph_problems
from linefleet_core.spec import FleetSpec


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


def check_graphs(spec: FleetSpec, repo: Path) -> list[Finding]:
    local = [
        (family, i, mv, path)
        for family in spec.models.values()
        for i, mv in enumerate(family.versions)
        if (path := artifact_path(mv.artifact.url, repo)) is not None and path.is_file()
    ]
    if not local:  # the usual fleet: nothing to read, so no `onnx` to import (~1 s with numpy)
        return []
    try:
        import onnx
    except ImportError:  # validate runs without the trainer extra: nothing to read graphs with
        return []
    out: list[Finding] = []
    for family, i, mv, path in local:
        doc = spec.located(family)
        try:
            raw = path.read_bytes()
            if hashlib.sha256(raw).hexdigest() != mv.artifact.sha256:
                continue  # a different file: the artifact's own check reports it
            graph = onnx.load_model_from_string(raw)
        except Exception as exc:  # a corrupt file raises the protobuf library's errors
            out.append(doc.finding(("versions", i, "artifact", "url"), f"not an ONNX model: {exc}"))
            continue
        for field, message in graph_problems(graph, mv):
            out.append(doc.finding(("versions", i, *field), message, code="contract"))
    return out
