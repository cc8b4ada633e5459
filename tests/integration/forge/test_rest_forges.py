"""GitHub and Gitea adapters against a real HTTP server speaking their REST shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from linefleet_core.errors import TemporaryError, UsageError
from linefleet_forge import ForgeRefused, PullState, forge_from_spec
from linefleet_forge.gitea import GiteaForge
from linefleet_forge.github import GitHubForge
from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, ForgeState, serve
from tests.support.server import free_port

pytestmark = pytest.mark.integration
Rest = GitHubForge | GiteaForge


def test_open_creates_then_updates_the_same_pull_request(fake: ForgeState, forge: Rest) -> None:
    fake.branches.add("rollback/toledo-line-3")
    assert forge.find_open("rollback/toledo-line-3") is None

    pr = forge.open_pull_request("rollback/toledo-line-3", "main", "Roll back", "first body")
    again = forge.open_pull_request(
        "rollback/toledo-line-3", "main", "Roll back line 3", "second body", labels=["rollback"]
    )

    assert (pr.number, pr.state, pr.head, pr.base) == (
        1,
        PullState.OPEN,
        "rollback/toledo-line-3",
        "main",
    )
    assert pr.url.endswith("/pull/1")
    assert again.number == pr.number
    assert (again.title, again.body, again.labels) == (
        "Roll back line 3",
        "second body",
        ("rollback",),
    )
    assert len(fake.pulls) == 1
    assert fake.pulls[1]["title"] == "Roll back line 3"
    assert forge.find_open("rollback/toledo-line-3") == again
    assert forge.get(1) == again


def test_unchanged_pull_request_is_not_patched(fake: ForgeState, forge: Rest) -> None:
    fake.branches.add("promote/cnn-5")
    forge.open_pull_request("promote/cnn-5", "main", "Promote", "body", labels=["promotion"])
    fake.requests.clear()
    forge.open_pull_request("promote/cnn-5", "main", "Promote", "body", labels=["promotion"])
    assert fake.calls("PATCH") == []
    assert fake.calls("POST") == []


def test_lost_race_updates_the_pull_request_someone_else_opened(
    fake: ForgeState, forge: Rest
) -> None:
    fake.branches.add("promote/cnn-5")
    forge.open_pull_request("promote/cnn-5", "main", "Promote", "old")
    fake.hide_open_once = True  # our look-up misses it; the POST then says "already exists"

    pr = forge.open_pull_request("promote/cnn-5", "main", "Promote", "new")

    assert pr.number == 1
    assert fake.pulls[1]["body"] == "new"
    assert len(fake.pulls) == 1


def test_sticky_comment_is_updated_not_duplicated(fake: ForgeState, forge: Rest) -> None:
    fake.branches.add("change")
    pr = forge.open_pull_request("change", "main", "Change", "")
    fake.add_comment(pr.number, "LGTM from a human")

    forge.upsert_comment(pr.number, "plan", "Plan: 1 to change")
    forge.upsert_comment(pr.number, "plan", "Plan: 2 to change")
    forge.upsert_comment(pr.number, "other", "something else")

    bodies = [c["body"] for c in fake.comments[pr.number]]
    assert bodies == [
        "LGTM from a human",
        "<!-- linefleet:plan -->\nPlan: 2 to change",
        "<!-- linefleet:other -->\nsomething else",
    ]


def test_sticky_comment_is_found_past_the_first_page(fake: ForgeState, forge: Rest) -> None:
    fake.branches.add("busy")
    pr = forge.open_pull_request("busy", "main", "Busy", "")
    for i in range(120):
        fake.add_comment(pr.number, f"chatter {i}")
    fake.add_comment(pr.number, "<!-- linefleet:plan -->\nold plan")
    fake.requests.clear()

    forge.upsert_comment(pr.number, "plan", "new plan")

    assert fake.calls("POST") == []
    assert len(fake.calls("PATCH")) == 1
    assert fake.comments[pr.number][-1]["body"] == "<!-- linefleet:plan -->\nnew plan"
    assert len(fake.comments[pr.number]) == 121


def test_gitea_creates_missing_labels_and_attaches_them_by_id() -> None:
    with serve("gitea") as fake:
        forge = GiteaForge(f"{fake.base_url}/api/v1", OWNER, REPO, TOKEN, timeout=5)
        fake.labels["rollback"] = 7
        fake.branches.add("b")
        pr = forge.open_pull_request("b", "main", "t", "", labels=["rollback", "linefleet"])
    assert set(pr.labels) == {"rollback", "linefleet"}
    assert fake.labels["rollback"] == 7
    assert "linefleet" in fake.labels


def test_missing_branch_is_refused_with_the_forges_message(fake: ForgeState, forge: Rest) -> None:
    with pytest.raises(ForgeRefused) as err:
        forge.open_pull_request("never-pushed", "main", "t", "")
    assert err.value.status in (404, 422)
    expected = (
        "Validation Failed; PullRequest head invalid"
        if fake.flavour == "github"
        else "GetRefCommitID"
    )
    assert expected in str(err.value)
    assert "/pulls" in str(err.value)


def test_bad_token_is_refused_with_a_hint(fake: ForgeState) -> None:
    forge = forge_from_spec(
        _spec(fake),
        Path(),
        env={
            "GITHUB_TOKEN": "wrong",
            "GITEA_TOKEN": "wrong",
            "LINEFLEET_GITHUB_API": fake.base_url,
        },
    )
    with pytest.raises(ForgeRefused, match=r"HTTP 401 \(check the token\): Bad credentials"):
        forge.find_open("x")


def test_unknown_pull_request_is_a_404(forge: Rest) -> None:
    with pytest.raises(ForgeRefused, match="HTTP 404") as err:
        forge.get(42)
    assert err.value.status == 404


def test_server_error_is_temporary(fake: ForgeState, forge: Rest) -> None:
    fake.fail_next.append((502, b"<html>Bad Gateway</html>", {}))
    with pytest.raises(TemporaryError, match="HTTP 502: <html>Bad Gateway</html>") as err:
        forge.find_open("x")
    assert err.value.delay == 5.0
    assert forge.find_open("x") is None  # and the next call works


@pytest.mark.parametrize(
    ("status", "headers", "delay"),
    [
        (429, {"Retry-After": "30"}, 30.0),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "0"}, 1.0),
    ],
)
def test_rate_limit_is_temporary_with_the_servers_delay(
    fake: ForgeState, forge: Rest, status: int, headers: dict[str, str], delay: float
) -> None:
    fake.fail_next.append((status, {"message": "API rate limit exceeded"}, headers))
    with pytest.raises(TemporaryError, match="rate limited") as err:
        forge.find_open("x")
    assert err.value.delay == delay


def test_forbidden_without_rate_limit_is_permanent(fake: ForgeState, forge: Rest) -> None:
    fake.fail_next.append((403, {"message": "Resource not accessible by integration"}, {}))
    with pytest.raises(ForgeRefused, match=r"may lack permission.*not accessible"):
        forge.find_open("x")


def test_slow_server_times_out_as_temporary(fake: ForgeState) -> None:
    fake.stall_seconds = 2.0
    cls = GitHubForge if fake.flavour == "github" else GiteaForge
    api = fake.base_url if fake.flavour == "github" else f"{fake.base_url}/api/v1"
    forge = cls(api, OWNER, REPO, TOKEN, timeout=0.3)
    with pytest.raises(TemporaryError, match=r"timed out after 0.3 s"):
        forge.find_open("x")


def test_unreachable_forge_is_temporary() -> None:
    forge = GitHubForge(f"http://127.0.0.1:{free_port()}", OWNER, REPO, TOKEN, timeout=2)
    with pytest.raises(TemporaryError, match="cannot connect"):
        forge.find_open("x")


def test_non_json_reply_is_temporary(fake: ForgeState, forge: Rest) -> None:
    fake.fail_next.append((200, b"<html>captive portal</html>", {}))
    with pytest.raises(TemporaryError, match="not JSON"):
        forge.find_open("x")


def test_forge_from_spec_builds_working_adapters(fake: ForgeState) -> None:
    env = {"GITHUB_TOKEN": TOKEN, "GITEA_TOKEN": TOKEN, "LINEFLEET_GITHUB_API": fake.base_url}
    forge = forge_from_spec(_spec(fake), Path(), env=env)
    fake.branches.add("b")
    assert forge.open_pull_request("b", "main", "t", "").number == 1


def test_missing_token_is_a_usage_error(fake: ForgeState) -> None:
    with pytest.raises(UsageError, match="_TOKEN"):
        forge_from_spec(_spec(fake), Path(), env={})


def _spec(fake: ForgeState) -> str:
    if fake.flavour == "github":
        return f"github://{OWNER}/{REPO}"
    return f"gitea+http://{fake.base_url.removeprefix('http://')}/{OWNER}/{REPO}"
