"""Hostile YAML, as a reusable corpus: each case is refused with a located reason, quickly.

Used by the validate acceptance tests and by the reliability suite. Each case: a name, the
bytes of a fleet file, and a fragment the finding's message must contain.
"""

from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    name: str
    raw: bytes
    expect: str


def _billion_laughs() -> bytes:
    rows = ['lol0: &lol0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    rows += [f"lol{i}: &lol{i} [" + ",".join([f"*lol{i - 1}"] * 9) + "]" for i in range(1, 10)]
    return "\n".join(rows).encode()


HEADER = b"apiVersion: linefleet.io/v1\nkind: Site\n"

CASES: list[Case] = [
    Case("syntax-error", HEADER + b"id: [toledo\nname: x\n", "YAML syntax"),
    Case("tab-indent", HEADER + b"id: toledo\n\tname: x\n", "YAML syntax"),
    Case("duplicate-key", HEADER + b"id: toledo\nid: dresden\n", "duplicate key 'id'"),
    Case("billion-laughs", _billion_laughs(), "aliases are not allowed"),
    Case("python-object-tag", HEADER + b"id: !!python/object/apply:os.system [echo hi]\n", "tag"),
    Case("custom-tag", HEADER + b"id: !vault secret\n", "custom tag"),
    Case("non-utf8", HEADER + b"name: K\xf6ln\n", "not valid UTF-8"),
    Case("utf16", "id: toledo\n".encode("utf-16"), "not valid UTF-8"),
    Case("huge-file", HEADER + b"name: '" + b"x" * (3 * 1024 * 1024) + b"'\n", "at most"),
    Case("deep-flow", b"a: " + b"[" * 100_000, "levels deep"),
    Case("deep-block", b"".join(b" " * i + b"k:\n" for i in range(200)), "levels deep"),
    Case("empty", b"", "empty"),
    Case("comment-only", b"# nothing here\n", "empty"),
    Case("top-level-list", b"- id: toledo\n", "expected a mapping at the top level"),
    Case("top-level-scalar", b"toledo\n", "expected a mapping at the top level"),
    Case("two-documents", HEADER + b"id: a\n---\nid: b\n", "one YAML document"),
    Case("null-bytes", HEADER + b"id: to\x00ledo\n", "YAML syntax"),
    Case("complex-key", HEADER + b"? [a, b]\n: c\n", "plain value"),
]
