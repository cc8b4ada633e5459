"""`linefleet init`: the files of a new fleet repository, rendered purely, then written.

`render(options)` returns every file as bytes (no disk, no git); `linefleet.commands.init`
checks them with the same loader and checks as `linefleet validate`, then writes and commits.
"""

from __future__ import annotations

from linefleet.scaffold.render import InitOptions, render

__all__ = ["InitOptions", "render"]
