from __future__ import annotations

from collections.abc import Iterator

import pytest

from linefleet_forge.gitea import GiteaForge
from linefleet_forge.github import GitHubForge
from tests.integration.forge.fakeforge import OWNER, REPO, TOKEN, ForgeState, serve


@pytest.fixture(params=["github", "gitea"])
def fake(request: pytest.FixtureRequest) -> Iterator[ForgeState]:
    with serve(request.param) as state:
        yield state


@pytest.fixture
def forge(fake: ForgeState) -> GitHubForge | GiteaForge:
    if fake.flavour == "github":
        return GitHubForge(fake.base_url, OWNER, REPO, TOKEN, timeout=5)
    return GiteaForge(f"{fake.base_url}/api/v1", OWNER, REPO, TOKEN, timeout=5)
