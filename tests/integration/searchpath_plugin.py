"""A test plugin that ships its own config tree through ``memarena_config_search_path``.

Loaded with ``MEMARENA_PLUGINS=tests.integration.searchpath_plugin``; its
preset is ``+plugin_demo=on`` (sets ``tags: [from_plugin]``). With
``SEARCHPATH_PLUGIN_CLASH=1`` it also ships ``policy/lru.yaml``, a preset
named like a built-in component.
"""

from __future__ import annotations

import os
from pathlib import Path

from memarena import hookimpl

HERE = Path(__file__).resolve().parent


@hookimpl
def memarena_config_search_path() -> list[str]:
    paths = [f"file://{HERE / 'plugin_conf'}"]
    if os.environ.get("SEARCHPATH_PLUGIN_CLASH"):
        paths.append(f"file://{HERE / 'clash_conf'}")
    return paths
