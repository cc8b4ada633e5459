from __future__ import annotations

from pathlib import Path

import pytest

from linefleet_core.errors import UsageError
from linefleet_forge import forge_from_spec
from linefleet_forge.gitea import GiteaForge
from linefleet_forge.github import GitHubForge

ENV = {"GITHUB_TOKEN": "gh", "GITEA_TOKEN": "gt"}


@pytest.mark.parametrize(
    ("spec", "env", "api", "owner", "repo"),
    [
        ("github://acme/fleet", ENV, "https://api.github.com", "acme", "fleet"),
        (
            "github://acme/fleet.git-2",
            {**ENV, "LINEFLEET_GITHUB_API": "https://ghe.acme.io/api/v3/"},
            "https://ghe.acme.io/api/v3",
            "acme",
            "fleet.git-2",
        ),
        ("gitea://git.acme.io/acme/fleet", ENV, "https://git.acme.io/api/v1", "acme", "fleet"),
        (
            "gitea://git.acme.io:3000/acme/fleet/",
            ENV,
            "https://git.acme.io:3000/api/v1",
            "acme",
            "fleet",
        ),
        (
            "gitea+http://127.0.0.1:3000/acme/fleet",
            ENV,
            "http://127.0.0.1:3000/api/v1",
            "acme",
            "fleet",
        ),
        (
            "forgejo://code.acme.io/git/acme/fleet",
            ENV,
            "https://code.acme.io/git/api/v1",
            "acme",
            "fleet",
        ),
    ],
)
def test_specs_pick_the_adapter_and_api(
    spec: str, env: dict[str, str], api: str, owner: str, repo: str
) -> None:
    forge = forge_from_spec(spec, Path(), env=env)
    assert isinstance(forge, GitHubForge | GiteaForge)
    assert (forge.client.base_url, forge.owner, forge.repo) == (api, owner, repo)


def test_tokens_are_sent_the_way_each_forge_wants() -> None:
    github = forge_from_spec("github://a/b", Path(), env=ENV)
    gitea = forge_from_spec("gitea://h/a/b", Path(), env=ENV)
    assert isinstance(github, GitHubForge)
    assert isinstance(gitea, GiteaForge)
    assert github.client.headers["Authorization"] == "Bearer gh"
    assert github.client.headers["Accept"] == "application/vnd.github+json"
    assert gitea.client.headers["Authorization"] == "token gt"


@pytest.mark.parametrize(
    "spec",
    ["", "github", "github://acme", "github://acme/fleet/extra", "gitlab://a/b", "gitea://h/a"],
)
def test_malformed_specs_are_usage_errors(spec: str) -> None:
    with pytest.raises(UsageError, match="expected local, github://OWNER/REPO"):
        forge_from_spec(spec, Path(), env=ENV)


@pytest.mark.parametrize(
    ("spec", "var"), [("github://a/b", "GITHUB_TOKEN"), ("gitea://h/a/b", "GITEA_TOKEN")]
)
def test_missing_token_names_the_variable(spec: str, var: str) -> None:
    with pytest.raises(UsageError, match=f"set {var}"):
        forge_from_spec(spec, Path(), env={var: "  "})


def test_local_outside_a_repository_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a git repository"):
        forge_from_spec("local", tmp_path, env=ENV)
