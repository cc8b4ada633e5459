"""The strict YAML reader: YAML 1.2 core scalars, positions, and refusal of unsafe input."""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("text", "fragment", "col"),
    [
        ("a: .nan", ".nan is not a finite number", 4),
        ("a: .inf", ".inf is not a finite number", 4),
        ("a: -.Inf", "-.Inf is not a finite number", 4),
        ("a: 1e999", "1e999 is too large for a number", 4),
        ("a: !!float .nan", ".nan is not a finite number", 4),
        ("a: " + "9" * 5000, "(5,000 characters) is out of range", 4),
        ("a: !!int " + "9" * 5000, "(5,000 characters) is out of range", 4),
        ("a: 9007199254740993", "is out of range (integers are at most ±2^53)", 4),
        ("a: 0x" + "f" * 40, "is out of range", 4),
    ],
)
def test_numbers_the_wire_cannot_carry_are_refused_where_they_are(
    text: str, fragment: str, col: int
) -> None:
    """Issue 12: `.nan` passed validate and then stopped every publish; 5,000 digits exited 3."""
    problem = problem_of("x: 1\n" + text + "\n")
    assert fragment in problem.message
    assert (problem.line, problem.col) == (2, col)


def test_a_nul_byte_is_refused_with_its_line_and_column() -> None:
    problem = problem_of("a: 1\nid: to\x00ledo\n")
    assert "NUL byte" in problem.message
    assert (problem.line, problem.col) == (2, 7)


def test_the_largest_json_safe_integer_still_reads() -> None:
    assert parse("a: 9007199254740992").data == {"a": 2**53}


def problem_of(text: str) -> YamlProblem:
    return problem(text)


def test_parsed_blobs_reuse_a_document_by_content_whatever_the_path() -> None:
    raw = b"apiVersion: linefleet/v1\nkind: Site\n"
    parsed = yamlsafe.ParsedBlobs()
    first = yamlsafe.load("fleet/sites/a/site.yaml", raw, parsed)
    assert parsed.used == {yamlsafe.blob_id(raw): first.data}
    kept = yamlsafe.ParsedBlobs(known=dict(parsed.used))
    again = yamlsafe.load("fleet/sites/b/site.yaml", raw, kept)
    assert again.data is first.data and again.path == "fleet/sites/b/site.yaml"
    assert kept.used == kept.known


def test_blob_id_is_the_id_git_gives_the_bytes() -> None:
    # `printf 'hello\n' | git hash-object --stdin`; the empty blob's id is git's well-known one.
    assert yamlsafe.blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert yamlsafe.blob_id(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


def test_a_file_that_does_not_parse_is_not_kept() -> None:
    parsed = yamlsafe.ParsedBlobs()
    for raw in (b"", b"a: [1\n"):
        with pytest.raises(yamlsafe.YamlProblem):
            yamlsafe.load("fleet/x.yaml", raw, parsed)
    assert parsed.used == {}
