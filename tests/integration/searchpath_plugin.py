"""A test plugin that ships its own config tree through ``memarena_config_search_path``.

Loaded with ``MEMARENA_PLUGINS=tests.integration.searchpath_plugin``; its
preset is ``+plugin_demo=on`` (sets ``tags: [from_plugin]``).
"""

from __future__ import annotations

from pathlib import Path

from memarena import hookimpl

CONF = Path(__file__).resolve().parent / "plugin_conf"


@hookimpl
def memarena_config_search_path() -> list[str]:
    return [f"file://{CONF}"]
