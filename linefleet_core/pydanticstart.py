"""No search for pydantic plugins, unless PYDANTIC_DISABLE_PLUGINS says otherwise.

When pydantic builds its first model it imports `importlib.metadata` (with `email`, `zipfile`,
`csv`) and reads the entry points of every installed distribution, looking for plugins that
observe validation: ~50 ms CPU of the ~0.3 s a `validate` or `plan` spends starting up.
linefleet uses no pydantic plugin, so with PYDANTIC_DISABLE_PLUGINS unset, importing this
module gives pydantic a loader that finds none (pydantic's own answer to
PYDANTIC_DISABLE_PLUGINS=__all__); with the variable set, to anything, pydantic's loader
decides as documented (PYDANTIC_DISABLE_PLUGINS= enables every plugin).

`linefleet_core.model` and `linefleet_core.wire` import it before they define a model; a
process that builds a pydantic model before importing either keeps pydantic's own search.
"""

from __future__ import annotations

import os
import sys
import types

LOADER = "pydantic.plugin._loader"  # what pydantic 2 imports `get_plugins` from


def skip_plugin_scan() -> None:
    if "PYDANTIC_DISABLE_PLUGINS" in os.environ or LOADER in sys.modules:
        return
    loader = types.ModuleType(LOADER, "linefleet: pydantic plugins off (PYDANTIC_DISABLE_PLUGINS)")
    loader.get_plugins = tuple  # type: ignore[attr-defined]  # () : no plugins
    sys.modules[LOADER] = loader


skip_plugin_scan()
