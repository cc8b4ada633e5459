"""Where a fleet file lives says what it declares: the file name is the object's name.

    fleet/sites/<site>/site.yaml            site <site>
    fleet/sites/<site>/lines/<line>.yaml    line <site>/<line>
    fleet/sites/<site>/devices/<id>.yaml    edge device <id>
    fleet/models/<name>.yaml                model family <name>
    fleet/policy.yaml                       the fleet's policy (a file that did not load)
    fleet, taxonomies                       every file in it (a folder that was not read)
    taxonomies/<name>/v<version>.yaml       taxonomy <name>@<version>

Rollback pull requests edit a line at `fleet/sites/<site>/lines/<line>.yaml`, CODEOWNERS gives
`fleet/sites/<site>/` to that site's approvers, and the report reads a line's history from
its file. A file whose content names another object than its name (`id: paint-9` in
`paint-2.yaml`), or another site than its folder, breaks all three: `findings()` makes that a
located error. Files elsewhere under `fleet/` are allowed; their file name must still be the
object's name. `declared()` reads the layout backwards: what a file that could not be read
was meant to declare, so references to it are consequences of its own error.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from pydantic import BaseModel

from linefleet_core import yamlsafe
from linefleet_core.catalogue import ModelFamily
from linefleet_core.errors import Finding
from linefleet_core.fleet import EdgeDevice, Line, Site
from linefleet_core.refs import ID_PATTERN
from linefleet_core.taxonomy import Taxonomy

SITE_FILE = "site"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)$")
_ID = re.compile(ID_PATTERN)


def line_path(key: str) -> str:
    """The repository-relative file of line `<site>/<line>` (rollbacks and the demo edit it)."""
    site, _, line = key.partition("/")
    return f"fleet/sites/{site}/lines/{line}.yaml"


def _split(path: str) -> tuple[tuple[str, ...], str, str]:
    """(parts, stem, suffix) of a repository-relative POSIX path, as `PurePosixPath` gives
    them (string operations: this runs for every file of every revision read)."""
    split = path.split("/")
    if "" in split or "." in split:  # (`a//b`, `./a`, a trailing `/`: rare)
        split = [part for part in split if part and part != "."]
    parts = tuple(split)
    name = parts[-1] if parts else ""
    dot = name.rfind(".")
    if 0 < dot < len(name) - 1:
        return parts, name[:dot], name[dot:]
    return parts, name, ""


def declared(path: str) -> str:
    """`kind:key` the layout says the file at `path` declares, or "" when it says nothing."""
    parts, stem, _ = _split(path)
    if not parts:
        return ""
    if parts[:2] == ("fleet", "sites") and len(parts) == 4 and stem == SITE_FILE:
        return f"Site:{parts[2]}"
    if parts[:2] == ("fleet", "sites") and len(parts) == 5 and parts[3] == "lines":
        return f"Line:{parts[2]}/{stem}"
    if parts[:2] == ("fleet", "sites") and len(parts) == 5 and parts[3] == "devices":
        return f"EdgeDevice:{stem}"
    if parts[:2] == ("fleet", "models") and len(parts) == 3:
        return f"Model:{stem}"
    if parts[0] == "fleet" and len(parts) == 2 and stem == "policy":
        return "Policy:fleet"
    if parts in (("fleet",), ("taxonomies",)):  # (a link, say: none of its files is read)
        return f"Folder:{parts[0]}"
    version = _VERSION_FILE.match(stem)
    if parts[0] == "taxonomies" and len(parts) == 3 and version:
        return f"Taxonomy:{parts[1]}@{version.group(1)}"
    return ""


def findings(path: str, doc: yamlsafe.Located, obj: BaseModel) -> Iterator[Finding]:
    """Errors where `obj` (loaded from `path`) names another object than its file or folder."""
    parts, stem, suffix = _split(path)
    p = (stem + suffix, suffix)
    folder = parts[2] if parts[:2] == ("fleet", "sites") and len(parts) >= 4 else None
    if isinstance(obj, Site):
        if stem != SITE_FILE:
            yield from _named(doc, p, "id", obj.id, stem)
        yield from _in_site_folder(doc, "id", obj.id, folder)
    elif isinstance(obj, (Line, EdgeDevice)):
        yield from _named(doc, p, "id", obj.id, stem)
        yield from _in_site_folder(doc, "site", obj.site, folder)
    elif isinstance(obj, ModelFamily):
        yield from _named(doc, p, "name", obj.name, stem)
    elif isinstance(obj, Taxonomy):
        yield from _named(doc, p, "version", f"v{obj.version}", stem)
        if len(parts) == 3 and parts[1] != obj.name:
            yield doc.finding(
                ("name",),
                f"{obj.name!r} is in the folder taxonomies/{parts[1]}/; move the file to "
                f"taxonomies/{obj.name}/ or set name to {parts[1]!r}",
                code="file_name",
            )


def _named(
    doc: yamlsafe.Located, p: tuple[str, str], field: str, name: str, stem: str
) -> Iterator[Finding]:
    """`p`: the file's name and suffix."""
    if name != stem:
        said = name.removeprefix("v") if field == "version" else repr(name)
        wanted = stem.removeprefix("v") if field == "version" else repr(stem)
        # (a file name no id can match, `LINE-1.yaml` beside `line-1.yaml`: rename it)
        valid = field == "version" or _ID.match(stem) is not None
        instead = f" or set {field} to {wanted}" if valid else ""
        yield doc.finding(
            (field,),
            f"{said} does not match the file name {p[0]}; rename the file to "
            f"{name}{p[1]}{instead} (rollback pull requests, CODEOWNERS and the report find an "
            "object by its file name)",
            code="file_name",
        )


def _in_site_folder(
    doc: yamlsafe.Located, field: str, site: str, folder: str | None
) -> Iterator[Finding]:
    if folder is not None and folder != site:
        yield doc.finding(
            (field,),
            f"site {site!r}, but the file is in fleet/sites/{folder}/ (reviewed by that site's "
            f"approvers); move it to fleet/sites/{site}/ or set {field} to {folder!r}",
            code="file_name",
        )
