"""The linefleet contract: fleet and taxonomy models, wire messages, and shared plumbing.

This package imports nothing else of linefleet; the reconciler, edge puller and trainer all
depend on it and never on each other.
"""

import os
import sys
import types

API_VERSION = "linefleet.io/v1"


def _skip_pydantic_plugin_scan() -> None:
    """No search for pydantic plugins, unless PYDANTIC_DISABLE_PLUGINS says otherwise.

    When pydantic builds its first model it imports `importlib.metadata` (with `email`,
    `zipfile`, `csv`) and reads the entry points of every installed distribution, looking for
    plugins that observe validation: ~50 ms CPU of the ~0.3 s a `validate` or `plan` spends
    starting up. linefleet uses no pydantic plugin, so with PYDANTIC_DISABLE_PLUGINS unset it
    gives pydantic a loader that finds none (pydantic's own answer to
    PYDANTIC_DISABLE_PLUGINS=__all__); with the variable set, to anything, pydantic's loader
    decides as documented (PYDANTIC_DISABLE_PLUGINS= enables every plugin).
    """
    name = "pydantic.plugin._loader"  # what pydantic 2 imports `get_plugins` from
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ or name in sys.modules:
        return
    loader = types.ModuleType(name, "linefleet: pydantic plugins off (PYDANTIC_DISABLE_PLUGINS)")
    loader.get_plugins = tuple  # type: ignore[attr-defined]  # () : no plugins
    sys.modules[name] = loader


_skip_pydantic_plugin_scan()
