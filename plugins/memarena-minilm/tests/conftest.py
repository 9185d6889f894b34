"""Fixtures for the plugin's tests: memarena's opt-in pytest plugin, and a clean plugin environment."""

from __future__ import annotations

import pytest

# memarena_pm, memarena_registry and a seeded zipf_trace.
pytest_plugins = ["memarena.testing.pytest_plugin"]

PLUGIN_ENV = (
    "MEMARENA_BLOCK_PLUGINS",
    "MEMARENA_PLUGINS",
    "MEMARENA_TRACE_PLUGINS",
    "MEMARENA_DISABLE_PLUGIN_AUTOLOAD",
)


@pytest.fixture(autouse=True)
def _no_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts with no plugin environment switch set."""
    for var in PLUGIN_ENV:
        monkeypatch.delenv(var, raising=False)
