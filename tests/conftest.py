"""Shared fixtures: plugin managers that never auto-load installed entry points."""

from __future__ import annotations

import pytest

from memarena.plugins import PluginManager, get_plugin_manager
from memarena.registry import Registry


@pytest.fixture
def pm() -> PluginManager:
    """Built-in plugins only (installed entry points are not loaded)."""
    return get_plugin_manager(autoload=False)


@pytest.fixture
def registry(pm: PluginManager) -> Registry:
    """The registry of the built-ins."""
    return Registry.from_plugin_manager(pm)


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start with no plugin environment switches set."""
    for var in (
        "MEMARENA_BLOCK_PLUGINS",
        "MEMARENA_PLUGINS",
        "MEMARENA_TRACE_PLUGINS",
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD",
    ):
        monkeypatch.delenv(var, raising=False)
