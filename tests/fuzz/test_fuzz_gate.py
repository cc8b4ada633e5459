"""The pull-request check is the gate (issue 12), as properties over the example fleet.

1. Every revision `validate` accepts, `publish --dry-run` publishes: a mutation of one field of
   one file of the example fleet (wrong types, extreme and non-finite numbers, hostile
   artifact URLs, mixed-timezone freezes, ...) is committed to a real git repository; when
   `linefleet validate` exits 0, `linefleet publish --dry-run` against a real Mosquitto must
   exit 0 too. Neither `validate` nor `plan` may ever exit 3.
2. The reader and the contract are total: any mutation of any file (and any bytes) gives
   findings, never an exception, through loading, the cross-file checks and the rollout policy.

Bounded (`max_examples`) so this runs in seconds in `make test`; raise
`LINEFLEET_FUZZ_EXAMPLES` for a longer hunt.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import io
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from linefleet.cli import main
from linefleet_core import spec as fleetspec
from linefleet_core import validation
from reconciler.review import policy
from tests.support.mosquitto import Mosquitto, mosquitto

__all__ = ["mosquitto"]
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("LINEFLEET_FUZZ_EXAMPLES", "25"))
NOW = dt.datetime(2026, 11, 3, 12, 0, tzinfo=dt.UTC)

# Raw YAML tokens that no dumper writes: they are spliced into the text in place of a marker.
RAW = ["1e999", "-1e999", "9" * 5000, ".nan", ".inf", "-.inf", "0x" + "f" * 40, "9007199254740993"]
VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    2**53,
    1e308,
    -0.0,
    "",
    "x" * 300,
    "\u202e\x1b[2J",
    [],
    {},
    [["EdgeDevice"]],
    {"a": {"b": [1]}},
    "../../../../etc/passwd",
    "file:///etc/passwd",
    "http://models.example/m.onnx",
    "https://models.example/m.onnx",
    "oci://registry.example/m@sha256:" + "a" * 64,
    "https://user:pw@models.example/m.onnx",
    "fleet/artifacts",
    "fleet/artifacts/missing.onnx",
    "2026-12-23T00:00:00+01:00",
    "2026-12-23",
    "surface-classifier@99",
    "toledo",
    "a" * 64,
]


def _documents() -> dict[str, Any]:
    return {
        path: yaml.safe_load(raw)
        for path, raw in fleetspec.DirectorySource(ROOT).files()
        if isinstance(raw, bytes)
    }


DOCS = _documents()
PATHS = sorted(DOCS)


def _leaves(node: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _leaves(value, (*at, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _leaves(value, (*at, i))
    return out


LEAVES = [(path, at) for path in PATHS for at in _leaves(DOCS[path])[1:]]


def _numeric(path: str, at: tuple[Any, ...]) -> bool:
    node = DOCS[path]
    for part in at:
        node = node[part]
    return isinstance(node, int | float) and not isinstance(node, bool)


NUMERIC = [leaf for leaf in LEAVES if _numeric(*leaf)]


def _mutated(path: str, at: tuple[Any, ...], value: Any, raw_token: str | None = None) -> bytes:
    """The file at `path` with the node at `at` replaced by `value` (deleted if `...`)."""
    doc = copy.deepcopy(DOCS[path])
    parent = doc
    for part in at[:-1]:
        parent = parent[part]
    if value is ...:
        del parent[at[-1]]
    else:
        parent[at[-1]] = "@@RAW@@" if raw_token is not None else value
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)
    if raw_token is not None:
        text = text.replace("'@@RAW@@'", raw_token).replace("@@RAW@@", raw_token)
    return text.encode()


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    """One file of the example fleet with one node replaced or deleted: a number by a token
    no dumper writes (non-finite, huge), or any node by a value of the wrong type or shape."""
    choice = draw(st.integers(0, 9))
    if choice <= 3:
        path, at = draw(st.sampled_from(NUMERIC))
        return path, _mutated(path, at, None, draw(st.sampled_from(RAW)))
    path, at = draw(st.sampled_from(LEAVES))
    return path, _mutated(path, at, ... if choice == 4 else draw(st.sampled_from(VALUES)))


MODELS = "fleet/models/surface-classifier.yaml"
_V2 = ("versions", 1, "artifact")
REGRESSIONS = [  # issue 12: each passed validate, then publish refused (or only the device did)
    (MODELS, _mutated(MODELS, ("versions", 0, "reference_stats", "brightness"), None, ".nan")),
    (MODELS, _mutated(MODELS, ("versions", 0, "reference_stats", "contrast"), None, "1e999")),
    (MODELS, _mutated(MODELS, (*_V2, "url"), "../../../../etc/passwd")),
    (MODELS, _mutated(MODELS, (*_V2, "url"), "fleet/artifacts/surface-classifier-v9.onnx")),
    (MODELS, _mutated(MODELS, (*_V2, "sha256"), "0" * 64)),
    (MODELS, _mutated(MODELS, (*_V2, "size"), 4096)),
]


FILES = list(fleetspec.DirectorySource(ROOT).files())


class _Source:
    """The example fleet with one file replaced, in memory (no artifact files)."""

    label = "fuzz"

    def __init__(self, path: str, raw: bytes) -> None:
        self.path, self.raw = path, raw

    def files(self) -> Iterator[tuple[str, bytes | fleetspec.Refused]]:
        for path, raw in FILES:
            yield path, self.raw if path == self.path else raw


CHECKS: fleetspec.Checks = {}  # the unchanged files are read and checked once
BASE_SPEC, _ = fleetspec.load(fleetspec.DirectorySource(ROOT), CHECKS)


@settings(max_examples=EXAMPLES * 5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_the_reader_the_contract_and_the_policy_are_total(mutated: tuple[str, bytes]) -> None:
    spec, findings = fleetspec.load(_Source(*mutated), CHECKS)
    findings += validation.check(spec)
    findings += policy.check_change(BASE_SPEC, spec, NOW)
    for finding in findings:
        assert finding.path and finding.message


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(st.sampled_from(PATHS), st.binary(max_size=400))
def test_any_bytes_in_any_file_give_findings(path: str, raw: bytes) -> None:
    spec, findings = fleetspec.load(_Source(path, raw), CHECKS)
    findings += validation.check(spec)
    assert all(f.path for f in findings)


def example_all(cases: list[tuple[str, bytes]]) -> Any:
    """Always try each of `cases` (as hypothesis `@example`s) before the generated ones."""

    def decorate(test: Any) -> Any:
        for case in reversed(cases):
            test = example(case)(test)
        return test

    return decorate


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "fleet"
    root.mkdir()
    for top in ("fleet", "taxonomies"):
        shutil.copytree(ROOT / top, root / top)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "fuzz@example.com")
    _git(root, "config", "user.name", "fuzz")
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "the example fleet")
    _git(root, "tag", "base")
    return root


def _cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue() + err.getvalue()


@pytest.mark.integration
def test_every_revision_validate_accepts_publish_publishes(
    repo: Path, mosquitto: Mosquitto, tmp_path: Path
) -> None:
    key = tmp_path / "keys"
    assert _cli("keys", "generate", "--out", str(key))[0] == 0
    accepted = {"n": 0}

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(mutations())
    @example_all(REGRESSIONS)
    def check(mutated: tuple[str, bytes]) -> None:
        path, raw = mutated
        assume(raw != (repo / path).read_bytes())
        try:
            (repo / path).write_bytes(raw)
            _git(repo, "commit", "-qam", "mutation")
            code, said = _cli("validate", "--repo", str(repo), "--now", NOW.isoformat())
            assert code in (0, 1), said
            plan_code, said_plan = _cli(
                "plan", "--repo", str(repo), "--base", "base", "--head", "HEAD"
            )
            assert plan_code in (0, 1), said_plan
            if code == 0:
                accepted["n"] += 1
                published, said_pub = _cli(
                    "publish",
                    "--broker",
                    mosquitto.url,
                    "--repo",
                    str(repo),
                    "--signing-key",
                    str(key / "signing.key"),
                    "--dry-run",
                    "--now",
                    NOW.isoformat(),
                )
                assert published == 0, f"validate accepted {path}, publish refused:\n{said_pub}"
        finally:
            _git(repo, "reset", "-q", "--hard", "base")

    check()
