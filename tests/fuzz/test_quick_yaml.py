"""The quick YAML reader (`linefleet_core.yamlquick`) only ever returns a document that
libyaml's path (`yamlsafe._parse`) returns too, equal in every type, value and key order.

`yamlsafe.parse` takes the quick reader's document when it gives one and never asks libyaml
then, so this is the promise that lets it skip libyaml: for generated and mutated fleet
files, for any data PyYAML and ruamel.yaml write in block style, and for the hostile corpus.
The reader may decline anything (None); it must decline exactly where it is unsure, and it
must take the files fleets are made of (or the speed-up is gone, silently).
"""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from factory_sim.fleetgen import FleetShape, generate
from linefleet_core import yamlquick, yamlsafe
from tests.hostile.yaml_corpus import CASES

EXAMPLES = int(os.environ.get("LINEFLEET_FUZZ_EXAMPLES", "150"))
fuzz = settings(
    max_examples=EXAMPLES * 2, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FLEET = {
    path: raw.decode()
    for path, raw in generate(FleetShape(sites=2, lines_per_site=3, cameras_per_line=2)).items()
    if path.endswith(".yaml")
}
EXAMPLE_FLEET = Path(__file__).parents[2] / "fleet"


def quick(text: str) -> Any:
    return yamlquick.read(text, yamlsafe._plain, yamlsafe._MAYBE_NOT_TEXT)


def careful(text: str) -> Any:
    """libyaml's path, as before the quick reader; an exception is returned, not raised."""
    try:
        return yamlsafe._parse(text, False, yamlsafe._c_loader).data
    except Exception as exc:  # compared, not handled
        return exc


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (1, 1.0 and True are not the same) and the
    same key order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def agrees(text: str) -> bool:
    """The quick reader declines, or reads what libyaml's path reads (which must not fail)."""
    got = quick(text)
    return got is None or same(got, careful(text))


def test_the_quick_reader_takes_every_generated_and_example_fleet_file() -> None:
    texts = {**FLEET}
    texts.update({str(p): p.read_text() for p in EXAMPLE_FLEET.rglob("*.yaml")})
    declined = [path for path, text in texts.items() if quick(text) is None]
    assert not declined
    for path, text in texts.items():
        assert same(quick(text), careful(text)), path


def test_parse_gives_the_quick_document_and_keeps_positions_on_libyamls_path() -> None:
    text = next(iter(FLEET.values()))
    assert same(yamlsafe.parse(text).data, careful(text))
    marked = yamlsafe.parse(text, with_marks=True)
    assert marked.marks and same(marked.data, careful(text))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_files_are_left_to_libyamls_path(case: Any) -> None:
    try:
        text = yamlsafe.decode(case.raw)
    except yamlsafe.YamlProblem:
        return  # refused before any reader sees it
    assert quick(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n  b: 2\n",  # a continuation of a plain scalar, or an error
        "a: x\n  y\n",  # a multi-line plain scalar
        "a:\nb: 1\n",  # a null value
        "a:\n",
        "a: 1\na: 2\n",  # duplicate key
        "true: 1\n",  # a boolean key
        "1: x\n",
        "a: 'it''s'\n",
        'a: "\\t"\n',
        "a: b # comment\n",
        "a: b \n",
        "a: |\n  text\n",
        "a: [1, 2]\n",
        "a: {}\n",
        "a: &x 1\n",
        "a: !!str 1\n",
        "a:\n  - x\n  b: 1\n",
        "a:\n- x\n - y\n",
        "- a\n",
        "  a: 1\n",
        "a: b: c\n",
        "a: b:\n",
        "a\tb: 1\n",
        "a: 1\r\nb: 2\r\n",
        "---\na: 1\n",
        "a: 1\n...\n",
        "a: 1\n---\nb: 2\n",
        f"{'k' * 1100}: v\n",
        "a: 99999999999999999999999\n",
        "a: .inf\n",
        "a: - x\n",
        "? a\n: b\n",
    ],
)
def test_what_the_quick_reader_declines(text: str) -> None:
    assert quick(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1\nb: 1.5\nc: true\nd: ~\ne: '1'\nf: \"x y\"\n",
         {"a": 1, "b": 1.5, "c": True, "d": None, "e": "1", "f": "x y"}),
        ("a:\n- 1\n- x\nb:\n  c:\n  - d: 1\n    e: 2\n  - 3\n",
         {"a": [1, "x"], "b": {"c": [{"d": 1, "e": 2}, 3]}}),
        ("# head\na:  06:00\n\nb: https://x/y:z\nc: -x\n  # indented comment\nd: 0o17\n",
         {"a": "06:00", "b": "https://x/y:z", "c": "-x", "d": 15}),
        ("a:\n  -   b: 1\n      c: 2\n", {"a": [{"b": 1, "c": 2}]}),
        ("n: no\nk y: 1\nu: Győr\n", {"n": "no", "k y": 1, "u": "Győr"}),
    ],
)  # fmt: skip
def test_what_the_quick_reader_reads(text: str, expected: Any) -> None:
    assert same(quick(text), expected)
    assert same(careful(text), expected)


ALPHABET = " -:#'\"\n\t{}[]&*!|>?%@`,.0123456789eEntrufalsxyo~\\_\r\x85\u2028\xa0"


@fuzz
@given(st.data())
def test_mutated_fleet_files_read_alike_or_are_declined(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(sorted(FLEET.values())))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 3))
        insert = data.draw(st.text(alphabet=ALPHABET, max_size=4))
        text = text[:at] + insert + text[at + cut :]
    assert agrees(text)


def test_many_random_mutations_of_fleet_files_read_alike_or_are_declined() -> None:
    """The same, without hypothesis's shrinking: many cheap mutations, one per line too."""
    rng = random.Random(17)
    texts = sorted(FLEET.values())
    for _ in range(EXAMPLES * 20):
        text = rng.choice(texts)
        lines = text.splitlines(keepends=True)
        n = rng.randrange(len(lines))
        line = lines[n]
        at = rng.randrange(len(line) + 1)
        edit = "".join(rng.choice(ALPHABET) for _ in range(rng.randrange(1, 3)))
        lines[n] = line[:at] + edit + line[at + rng.randrange(3) :]
        if rng.random() < 0.3:  # re-indent a line
            lines[n] = " " * rng.randrange(6) + lines[n].lstrip(" ")
        mutated = "".join(lines)
        assert agrees(mutated), mutated


keys = st.text(alphabet="abcyn-_/.: 0129", min_size=1, max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**60), 2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=ALPHABET + "abcdéő", max_size=12)
)
documents = st.dictionaries(
    keys,
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=12,
    ),
    min_size=1,
    max_size=5,
)


@fuzz
@given(documents, st.sampled_from([2, 3, 4]), st.booleans())
def test_block_yaml_as_pyyaml_and_ruamel_write_it_reads_alike(
    doc: dict[str, Any], indent: int, ruamel: bool
) -> None:
    if ruamel:
        writer = YAML()
        writer.indent(mapping=indent, sequence=indent + 2, offset=indent)
        out = io.StringIO()
        writer.dump(doc, out)
        text = out.getvalue()
    else:
        text = yaml.safe_dump(doc, default_flow_style=False, sort_keys=False, indent=indent)
    assert agrees(text), text
