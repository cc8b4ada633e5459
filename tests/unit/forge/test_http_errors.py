"""How forge replies map to our two kinds of error, and the sticky-comment marker."""

from __future__ import annotations

import json

import pytest

from linefleet_core.errors import TemporaryError
from linefleet_forge.base import Comment, ForgeRefused, find_marked, marker_tag, with_marker
from linefleet_forge.http import _http_error, forge_message


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            {
                "message": "Validation Failed",
                "errors": [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": "A pull request already exists for acme:b.",
                    }
                ],
            },
            "Validation Failed; A pull request already exists for acme:b.",
        ),
        (
            {
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
            },
            "Validation Failed; PullRequest head invalid",
        ),
        (
            {"message": "pull request already exists for these targets [id: 3]"},
            "pull request already exists for these targets [id: 3]",
        ),
        ({"errors": ["branch not found"]}, "branch not found"),
        ({}, "no message"),
    ],
)
def test_forge_message_keeps_what_the_forge_said(reply: object, message: str) -> None:
    assert forge_message(json.dumps(reply).encode()) == message


def test_non_json_error_body_is_quoted_short() -> None:
    assert forge_message(b"<h1>502</h1>" + b"x" * 1000) == "<h1>502</h1>" + "x" * 288


@pytest.mark.parametrize(
    ("status", "headers", "kind", "delay"),
    [
        (500, {}, TemporaryError, 5.0),
        (503, {"retry-after": "12"}, TemporaryError, 12.0),
        (408, {}, TemporaryError, 5.0),
        (429, {}, TemporaryError, 60.0),
        (403, {"x-ratelimit-remaining": "0"}, TemporaryError, 60.0),
        (403, {"x-ratelimit-remaining": "12"}, ForgeRefused, None),
        (401, {}, ForgeRefused, None),
        (404, {}, ForgeRefused, None),
        (409, {}, ForgeRefused, None),
        (422, {}, ForgeRefused, None),
    ],
)
def test_status_codes_map_to_temporary_or_permanent(
    status: int, headers: dict[str, str], kind: type[Exception], delay: float | None
) -> None:
    err = _http_error("github acme/fleet: POST /pulls", status, headers, b'{"message": "nope"}')
    assert type(err) is kind
    assert str(err).startswith("github acme/fleet: POST /pulls: ")
    assert "nope" in str(err)
    if isinstance(err, TemporaryError):
        assert err.delay == delay
    else:
        assert isinstance(err, ForgeRefused)
        assert err.status == status


def test_marker_finds_the_oldest_marked_comment_only() -> None:
    comments = [
        Comment(1, "mentions <!-- linefleet:plan --> later"),
        Comment(2, with_marker("plan", "first")),
        Comment(3, with_marker("plan", "second")),
        Comment(4, with_marker("planner", "x")),
    ]
    assert find_marked(comments, "plan") == comments[1]
    assert find_marked(comments, "validate") is None
    assert marker_tag("plan") == "<!-- linefleet:plan -->"


@pytest.mark.parametrize("bad", ["", "a-->b", "a--b", "<x>", "two\nlines"])
def test_markers_that_would_break_the_html_comment_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid comment marker"):
        marker_tag(bad)


def test_long_comments_are_cut_on_a_line_with_a_note() -> None:
    from linefleet_forge.rest import TRUNCATED, fit_comment

    assert fit_comment("short") == "short"
    text = "".join(f"line {i:05d}\n" for i in range(10_000))  # 110,000 characters
    fitted = fit_comment(text)
    assert len(fitted) <= 65536
    assert fitted.endswith(TRUNCATED)
    assert fitted.removesuffix(TRUNCATED).endswith("\n")
    assert text.startswith(fitted.removesuffix(TRUNCATED))
