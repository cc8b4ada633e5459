"""Render a new fleet repository: every file as bytes, from a few choices (pure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

from linefleet.scaffold import templates

STARTER_TAXONOMY = "taxonomies/surface-defects/v1.yaml"


@dataclass(frozen=True)
class InitOptions:
    site_id: str = "plant-1"
    site_name: str = "Plant 1"
    timezone: str = "UTC"
    approvers: tuple[str, ...] = ()
    admins: tuple[str, ...] = ()
    """Fleet admins (CODEOWNERS `*`); `linefleet init` defaults them to the approvers."""
    version: str = "0.1.0"
    """The exact linefleet version the workflows install: the one that ran `init`."""
    actions: str = "linefleet/linefleet"
    """The GitHub repository that holds the `check` and `publish` actions (OWNER/REPO)."""
    taxonomies: tuple[tuple[str, bytes], ...] = field(default=())
    """Brought taxonomy files as (repository path, content); none: the starter taxonomy."""


def render(options: InitOptions) -> dict[str, bytes]:
    """Every file of the new repository except `.github/CODEOWNERS` (rendered from the fleet)."""
    files = dict(_fleet_files(options))
    files.update(_repository_files(options))
    return files


def _fleet_files(o: InitOptions) -> Iterator[tuple[str, bytes]]:
    site = f"fleet/sites/{o.site_id}/site.yaml"
    yield "fleet/policy.yaml", (templates.POLICY % {"admins": _list(o.admins, 4)}).encode()
    yield (
        site,
        (
            templates.SITE
            % {
                "id": o.site_id,
                "name": _q(o.site_name),
                "timezone": _q(o.timezone),
                "approvers": _list(o.approvers, 2),
            }
        ).encode(),
    )
    yield "fleet/models/README.md", templates.MODELS_README.encode()
    if o.taxonomies:
        yield from o.taxonomies
    else:
        yield STARTER_TAXONOMY, templates.TAXONOMY.encode()


def _repository_files(o: InitOptions) -> Iterator[tuple[str, bytes]]:
    from linefleet_core.fleetschema import schema_documents

    for name, text in schema_documents().items():
        yield f"schema/{name}", text.encode()
    values = {"version": o.version, "actions": o.actions, "site": o.site_id}
    yield ".github/workflows/fleet-check.yml", (templates.CHECK_WORKFLOW % values).encode()
    yield (
        ".github/workflows/fleet-publish.yml",
        (templates.PUBLISH_WORKFLOW % values).encode(),
    )
    yield ".gitignore", templates.GITIGNORE.encode()
    yield "README.md", (templates.README % values).encode()


def _q(text: str) -> str:
    """A YAML scalar for any text: JSON strings are valid YAML double-quoted scalars."""
    return json.dumps(text, ensure_ascii=False)


def _list(items: tuple[str, ...], indent: int) -> str:
    if not items:
        return " []"
    pad = " " * indent
    return "".join(f"\n{pad}- {_q(item)}" for item in items)
