"""The strict YAML reader: YAML 1.2 core scalars, positions, and refusal of unsafe input."""

from __future__ import annotations

import math

import pytest
import yaml

from linefleet_core import yamlsafe
from linefleet_core.yamlsafe import YamlProblem, parse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: 1", 1),
        ("a: -12", -12),
        ("a: 0o17", 15),
        ("a: 0x1F", 31),
        ("a: 0777", 777),  # YAML 1.2: decimal, not octal
        ("a: 1.10", 1.1),
        ("a: 1e3", 1000.0),
        ("a: .inf", math.inf),
        ("a: yes", "yes"),  # YAML 1.1 would say True
        ("a: no", "no"),
        ("a: on", "on"),
        ("a: true", True),
        ("a: False", False),
        ("a: ~", None),
        ("a: null", None),
        ("a:", None),
        ("a: '1'", "1"),
        ('a: "true"', "true"),
        ("a: !!str 12", "12"),
        ("a: !!float 3", 3.0),
        ("a: 2026-12-20", "2026-12-20"),  # no implicit timestamps
        ("a: line-3", "line-3"),
    ],
)
def test_plain_scalars_resolve_by_the_yaml_1_2_core_schema(text: str, expected: object) -> None:
    assert parse(text).data == {"a": expected}


def test_nested_structures_and_key_order() -> None:
    data = parse("b: [1, {c: d}]\na:\n  - x\n  - y: [z]\n").data
    assert data == {"b": [1, {"c": "d"}], "a": ["x", {"y": ["z"]}]}
    assert list(data) == ["b", "a"]


def test_positions_are_recorded_only_when_asked() -> None:
    text = "kind: Line\ncameras:\n  - id: cam-1\n    fps: 3\n"
    assert parse(text).marks == {}
    marked = parse(text, with_marks=True)
    assert marked.marks[("cameras", 0, "fps")] == (4, 10)
    assert marked.key_marks[("cameras", 0, "fps")] == (4, 5)
    assert marked.marks[("cameras", 0)] == (3, 5)


def test_located_falls_back_to_the_nearest_ancestor() -> None:
    doc = yamlsafe.load("x.yaml", b"kind: Line\ncameras:\n  - id: cam-1\n")
    assert doc.where(("cameras", 0, "missing")) == (3, 5)
    finding = doc.finding(("cameras", 0, "fps"), "bad")
    assert finding.render() == "x.yaml:3:5: cameras[0].fps: bad"


def problem(text: str | bytes) -> YamlProblem:
    raw = text.encode() if isinstance(text, str) else text
    with pytest.raises(YamlProblem) as info:
        yamlsafe.load("f.yaml", raw)
    return info.value


def test_duplicate_keys_are_refused_with_the_second_position() -> None:
    p = problem("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert (p.line, p.col, p.field) == (4, 3, "b.c")
    assert "duplicate key 'c'" in p.message


def test_aliases_are_refused_which_defuses_billion_laughs() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    p = problem("\n".join(lines))
    assert "aliases are not allowed" in p.message
    assert p.line == 1


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object:os.system {}",
        "a: !!python/name:os.system ''",
        "a: !custom 1",
        "a: !!binary aGVsbG8=",
        "!!set {a, b}",
    ],
)
def test_custom_and_unsafe_tags_are_refused(text: str) -> None:
    assert "tag" in problem(text).message


def test_deep_nesting_is_refused_without_crashing_the_interpreter() -> None:
    # libyaml's C composer segfaults on this; PyYAML >= 6.0.4's scanner stops it at ~1,000
    # levels; either way the user sees our refusal at the first level too deep.
    p = problem("[" * 200_000)
    assert f"nested more than {yamlsafe.MAX_DEPTH} levels" in p.message
    assert (p.line, p.col) == (1, yamlsafe.MAX_DEPTH + 1)
    p = problem("".join(f"{' ' * i}k{i}:\n" for i in range(100)) + " " * 100 + "v: 1\n")
    assert "nested more than" in p.message
    assert p.line == yamlsafe.MAX_DEPTH + 1


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_the_readers_own_limit_between_its_depth_and_the_parsers(opening: str) -> None:
    # Deeper than MAX_DEPTH, far shallower than libyaml's own limit: our event loop refuses.
    text = opening * (yamlsafe.MAX_DEPTH + 5)
    p = problem(text)
    assert p.message == f"nested more than {yamlsafe.MAX_DEPTH} levels deep"
    assert (p.line, p.col) == (1, len(opening) * yamlsafe.MAX_DEPTH + 1)


class _ParserWithDepthLimit:
    """The C loader as PyYAML 6.0.4 behaves: libyaml refuses the nesting before we see it."""

    def __init__(self, text: str) -> None:
        self.mark = yaml.Mark("<unicode string>", 1000, 0, 1000, text, 1000)

    def get_event(self) -> object:
        raise yaml.scanner.ScannerError(
            "while increasing flow level", self.mark, "exceeded maximum nesting depth", self.mark
        )

    def dispose(self) -> None:
        pass


def test_the_parsers_own_depth_error_becomes_the_same_located_refusal() -> None:
    text = "[" * 2_000
    with pytest.raises(yamlsafe.YamlProblem) as caught:
        yamlsafe.parse(text, loader=_ParserWithDepthLimit)
    p = caught.value
    assert p.message == f"nested more than {yamlsafe.MAX_DEPTH} levels deep"
    assert (p.line, p.col) == (1, yamlsafe.MAX_DEPTH + 1)


def test_invalid_utf8_names_the_line_and_column_of_the_bad_byte() -> None:
    p = problem(b"a: 1\nname: Dr\xfcsseldorf\n")
    assert (p.line, p.col) == (2, 9)
    assert "not valid UTF-8" in p.message


def test_a_byte_order_mark_is_accepted() -> None:
    assert yamlsafe.load("f.yaml", "\ufeffa: 1\n".encode()).data == {"a": 1}


def test_huge_files_are_refused_before_parsing() -> None:
    p = problem(b"a: " + b"x" * (yamlsafe.MAX_FILE_BYTES + 1))
    assert "at most" in p.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("# only a comment\n", "empty"),
        ("a: 1\n---\nb: 2\n", "one YAML document"),
        ("a: [1, 2\n", "YAML syntax"),
        ("a: b: c\n", "YAML syntax"),
        ("? [a, b]\n: 1\n", "plain value"),
        ("a: !!int x\n", "not a valid !!int"),
        ("a:\tb\n\t- c\n", "YAML syntax"),
    ],
)
def test_other_malformed_input_gets_a_located_problem(text: str, message: str) -> None:
    p = problem(text)
    assert message in p.message
    assert p.line >= 1
