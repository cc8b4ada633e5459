"""A quick reader for the plain block YAML that fleet files are, or None where it is not sure.

`yamlsafe.parse` builds documents from libyaml's events: about 100 Python event objects per
fleet file, each with two position marks, which is most of a cold `validate` (2,045 files).
Fleet files are written by `fleet generate`, ruamel.yaml edits and people, and nearly all of
them use a small part of YAML: block mappings and sequences, one entry per line, plain or
simply quoted scalars, whole-line comments. This reader matches every line of a file against
that part with one regular expression (the scanning runs in C) and builds the document from
the matches.

It never decides anything on its own: it returns None as soon as a file leaves that part
(flow collections, block scalars, multi-line scalars, escapes, anchors, tags, directives, a
tab, a carriage return, a trailing space, a null value, a duplicate key, anything unusual in
the indentation), and `yamlsafe.parse` then reads the file with libyaml as before, which
gives the located error or the document. Where it does return a document, it is the one
libyaml's path builds, scalars resolved by the same function (`tests/fuzz/test_quick_yaml.py`
compares the two on generated and mutated files and on the hostile corpus).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_SQ = r"'[^'\n]*'"  # single-quoted, no '' escape, on one line
_DQ = r'"[^"\\\n]*"'  # double-quoted, no escapes, on one line
_PLAIN = (
    r"(?:[^\s#:'\"\[\]{},&*!|>%@`?-]|-(?=[^\s#:'\"]))"  # first character: no indicator
    r"[^\s#:'\"]*(?:(?::| +)[^\s#:'\"]+)*"  # then no ': ', ' #', quote, trailing ':' or space
)
_VALUE = f"(?:{_SQ}|{_DQ}|{_PLAIN})"
_LINE = re.compile(
    r"( *)(?:"
    rf"(- +)?(?:({_PLAIN}):(?: +({_VALUE}))?|({_VALUE}))"
    r"|#[^\n]*"  # a whole-line comment
    r"|([^\n]*)"  # anything else ('' for a blank line): not for this reader
    r")\n"
)
_UNUSUAL = re.compile(
    "[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]"
)
"""Characters outside printable ASCII and plain printable Unicode: tabs, carriage returns,
control characters, byte order marks and the Unicode line breaks (NEL, LS, PS)."""
_MAX_KEY = 128
"""libyaml refuses a key of more than 1,024 characters (a "simple key"); longer ones than this
go to its path."""
_MAX_DEPTH = 32
"""Deeper documents go to libyaml's path, which enforces the real limit."""


class _NotPlain(Exception):
    """The file leaves the part of YAML this reader takes."""


def read(text: str, plain: Callable[[str], Any], maybe_not_text: frozenset[str]) -> Any:
    """The document of `text`, or None: then the caller parses it with libyaml.

    `plain` resolves an unquoted scalar (raising ValueError to refuse it) and
    `maybe_not_text` holds the first characters of those that may resolve to a non-string;
    both are `yamlsafe`'s, so the two paths resolve scalars alike.
    """
    if _UNUSUAL.search(text):
        return None
    if not text.endswith("\n"):
        text += "\n"
    try:
        return _build(_LINE.findall(text), plain, maybe_not_text)
    except (_NotPlain, ValueError):
        return None


def _build(
    rows: list[tuple[str, str, str, str, str, str]],
    plain: Callable[[str], Any],
    maybe_not_text: frozenset[str],
) -> Any:
    root: dict[Any, Any] = {}
    # The open container and its indent; `indentless` when it is a sequence written at its
    # key's own indent (`key:\n- a`). `stack` holds the containers around it.
    container: Any = root
    at, is_dict, indentless = 0, True, False
    stack: list[tuple[int, Any, bool, bool]] = []
    nokey = _NOKEY
    pending: Any = nokey  # a key of `container` waiting for its block value (`key:`)

    for indent_s, dash, key, key_value, item, rest in rows:
        indent = len(indent_s)
        if not (key_value and indent == at and is_dict and pending is nokey and not dash):
            # Not the common line (`key: value` in the open mapping): find where it goes.
            if not (dash or key or item):
                if rest:
                    raise _NotPlain  # a line this reader does not take
                continue  # blank line or comment
            if not root and pending is nokey and (indent or dash or not key):
                raise _NotPlain  # the top-level mapping opens at column 1
            if pending is not nokey:  # the line opens the value of `key:`
                if indent > at:
                    child: Any = [] if dash else {}
                    opened = (indent, child, not dash, False)
                elif indent == at and dash:
                    child = []
                    opened = (indent, child, False, True)
                else:
                    raise _NotPlain  # a null value: libyaml's path reads those
                container[pending] = child
                pending = nokey
                stack.append((at, container, is_dict, indentless))
                at, container, is_dict, indentless = opened
            while at > indent:
                if not stack:
                    raise _NotPlain
                at, container, is_dict, indentless = stack.pop()
            if at != indent:
                raise _NotPlain  # between two levels: a continuation line or an error
            if is_dict and dash:
                raise _NotPlain
            if not is_dict and not dash:
                if not indentless:
                    raise _NotPlain
                # The indentless sequence ends; the line is its mapping's next key.
                at, container, is_dict, indentless = stack.pop()
                if at != indent or not is_dict:
                    raise _NotPlain
            if dash and key:  # `- key: ...` opens a mapping in the sequence
                mapping: dict[Any, Any] = {}
                container.append(mapping)
                stack.append((at, container, is_dict, indentless))
                at, container, is_dict, indentless = indent + len(dash), mapping, True, False
            elif not dash and not key:
                raise _NotPlain
            if len(stack) >= _MAX_DEPTH:
                raise _NotPlain
        if key:
            name = plain(key) if key[0] in maybe_not_text else key
            if type(name) is not str or name in container or len(key) > _MAX_KEY:
                raise _NotPlain  # a null/bool key or a duplicate: libyaml's path says where
            if not key_value:
                pending = name
                continue
            text = key_value
        else:
            text = item  # `- value`
        first = text[0]
        if first in maybe_not_text:
            value = plain(text)
        elif first == "'" or first == '"':
            value = text[1:-1]
        else:
            value = text
        if key:
            container[name] = value
        else:
            container.append(value)
    if pending is not nokey or not root:
        raise _NotPlain
    return root


class _NoKey:
    __slots__ = ()


_NOKEY = _NoKey()
