"""Hostile and careless pull requests against the gate (issue 12), and the figure they give.

Each case edits a copy of the example fleet (`fleet/`, `taxonomies/`, real artifacts) the way
an attacker or a careless editor would. `linefleet validate --format json` must exit 1 (never
3) and locate every error: `path:line:col`, or the path alone for a file that is not read at
all (a link, a FIFO). Random mutations of the example fleet add to the count.

    python -m tests.hostile.gate_corpus [--mutations N]

prints the figure of `docs/reliability.md` (cases tried, refused with a location, tracebacks).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from linefleet.cli import main
from tests.hostile.yaml_corpus import CASES as YAML_CASES

ROOT = Path(__file__).resolve().parents[2]
MODELS = "fleet/models/surface-classifier.yaml"
SITE = "fleet/sites/toledo/site.yaml"
LINE = "fleet/sites/toledo/lines/stamping-1.yaml"
DEVICE = "fleet/sites/toledo/devices/toledo-press-edge-1.yaml"
POLICY = "fleet/policy.yaml"


@dataclass(frozen=True)
class Case:
    name: str
    apply: Callable[[Path], None]


def _sub(path: str, old: str, new: str, count: int = 1) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        text = (root / path).read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {path}"
        (root / path).write_text(text.replace(old, new, count), encoding="utf-8")

    return apply


def _raw(path: str, raw: bytes) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(raw)

    return apply


def _link(path: str, target: str) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        (root / path).symlink_to(target)

    return apply


def _outside_link(root: Path) -> None:
    outside = root.parent / "outside.yaml"
    outside.write_bytes((root / LINE).read_bytes().replace(b"stamping-1", b"stamping-9"))
    (root / "fleet/sites/toledo/lines/stamping-9.yaml").symlink_to(outside)


def _fifo(root: Path) -> None:
    os.mkfifo(root / "fleet/sites/toledo/lines/pipe.yaml")


CASES: list[Case] = [
    Case("nan-in-reference-stats", _sub(MODELS, "brightness: 0.52", "brightness: .nan")),
    Case("inf-in-reference-stats", _sub(MODELS, "contrast: 0.18", "contrast: .inf")),
    Case("1e999", _sub(MODELS, "brightness: 0.52", "brightness: 1e999")),
    Case(
        "5000-digit-integer",
        _sub(POLICY, "heartbeat_seconds: 60", "heartbeat_seconds: " + "9" * 5000),
    ),
    Case("integer-beyond-2^53", _sub(MODELS, "size: 1555", "size: 9007199254740993")),
    Case("kind-as-a-list", _sub(DEVICE, "kind: EdgeDevice", "kind: [EdgeDevice]")),
    Case("kind-as-a-mapping", _sub(SITE, "kind: Site", "kind: {Site: 1}")),
    Case(
        "freeze-with-one-end-tz-aware",
        _sub(SITE, "start: '2026-12-23'", "start: '2026-12-23T00:00+01:00'"),
    ),
    Case("nul-byte", _raw(LINE, b"apiVersion: linefleet.io/v1\nkind: Line\nid: st\x00amping-1\n")),
    Case("escape-character", _raw(LINE, b"apiVersion: linefleet.io/v1\nkind: Line\nid: \x1b[2J\n")),
    Case(
        "artifact-escapes-the-repo",
        _sub(
            MODELS, "url: fleet/artifacts/surface-classifier-v2.onnx", "url: ../../../../etc/passwd"
        ),
    ),
    Case(
        "artifact-absolute-file-url",
        _sub(MODELS, "url: fleet/artifacts/surface-classifier-v2.onnx", "url: file:///etc/shadow"),
    ),
    Case(
        "artifact-http",
        _sub(
            MODELS, "url: fleet/artifacts/surface-classifier-v2.onnx", "url: http://evil.example/m"
        ),
    ),
    Case(
        "artifact-credentials-in-url",
        _sub(
            MODELS,
            "url: fleet/artifacts/surface-classifier-v2.onnx",
            "url: https://u:p@x.example/m",
        ),
    ),
    Case(
        "artifact-missing",
        _sub(
            MODELS,
            "url: fleet/artifacts/surface-classifier-v2.onnx",
            "url: fleet/artifacts/v9.onnx",
        ),
    ),
    Case("artifact-size-made-up", _sub(MODELS, "size: 1555", "size: 1556")),
    Case(
        "artifact-sha256-made-up",
        _sub(
            MODELS,
            "sha256: 0936682da32f5b00c4f6c2ff0c9177c361646398ab498390d14bb3357f80eaa5",
            "sha256: " + "0" * 64,
        ),
    ),
    Case(
        "artifact-is-a-directory",
        _sub(MODELS, "url: fleet/artifacts/surface-classifier-v2.onnx", "url: fleet/artifacts"),
    ),
    Case("link-to-dev-zero", _link("fleet/sites/toledo/lines/zero.yaml", "/dev/zero")),
    Case("link-to-a-valid-file-outside", _outside_link),
    Case("linked-directory", _link("fleet/sites/etc", "/etc")),
    Case("fifo", _fifo),
    *[Case(f"yaml-{c.name}", _raw("fleet/sites/toledo/hostile.yaml", c.raw)) for c in YAML_CASES],
]


@contextlib.contextmanager
def example_fleet() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="linefleet-gate-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        for top in ("fleet", "taxonomies"):
            shutil.copytree(ROOT / top, root / top)
        yield root


@dataclass(frozen=True)
class Outcome:
    code: int
    findings: list[dict[str, object]]

    @property
    def located(self) -> bool:
        errors = [f for f in self.findings if f["severity"] == "error"]
        return bool(errors) and all(
            f["path"] and (int(str(f["line"])) > 0 or f["code"] == "file_type") for f in errors
        )


def validate(root: Path) -> Outcome:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["validate", "--repo", str(root), "--format", "json"])
    findings = json.loads(out.getvalue())["findings"] if code in (0, 1) else []
    return Outcome(code, findings)


def run_case(case: Case) -> Outcome:
    with example_fleet() as root:
        case.apply(root)
        return validate(root)


def figure(mutations: int) -> dict[str, int]:
    """Cases tried, refused with a location, accepted, tracebacks (exit 3)."""
    from hypothesis import HealthCheck, given, settings

    from tests.fuzz.test_fuzz_gate import mutations as strategy

    counts = {"tried": 0, "refused_located": 0, "refused_unlocated": 0, "accepted": 0, "exit3": 0}

    def count(outcome: Outcome) -> None:
        counts["tried"] += 1
        if outcome.code == 3:
            counts["exit3"] += 1
        elif outcome.code == 0:
            counts["accepted"] += 1
        elif outcome.located:
            counts["refused_located"] += 1
        else:
            counts["refused_unlocated"] += 1

    for case in CASES:
        count(run_case(case))
    with example_fleet() as root:

        @settings(
            max_examples=mutations,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy())
        def mutate(mutated: tuple[str, bytes]) -> None:
            path, raw = mutated
            before = (root / path).read_bytes()
            (root / path).write_bytes(raw)
            try:
                count(validate(root))
            finally:
                (root / path).write_bytes(before)

        mutate()
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mutations", type=int, default=500)
    print(json.dumps(figure(parser.parse_args().mutations), indent=2))
