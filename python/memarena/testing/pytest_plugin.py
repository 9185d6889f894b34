"""Fixtures for testing memarena plugins. Opt in from a conftest or test module::

    pytest_plugins = ["memarena.testing.pytest_plugin"]

It is deliberately not registered through a ``pytest11`` entry point: that
would import memarena (and its Rust extension) into every pytest run in the
environment.

Fixtures:

``memarena_pm``
    A fresh plugin manager with the built-ins only: installed entry points
    are *not* loaded (``autoload=False``), so a test sees exactly the plugins
    it registers itself. Use ``memarena_pm.register(module)`` to add yours.
``memarena_registry``
    The component registry built from ``memarena_pm``.
``zipf_trace``
    A seeded Zipf trace (alpha 1.0, 1,000 objects, 5,000 requests, seed 0):
    the same requests on every machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from memarena.families.paging import Trace
    from memarena.plugins import PluginManager
    from memarena.registry import Registry

__all__ = ["memarena_pm", "memarena_registry", "zipf_trace"]

#: Generator spec and size of the ``zipf_trace`` fixture.
ZIPF_SPEC = {"kind": "zipf", "alpha": 1.0, "n_objects": 1000}
ZIPF_REQUESTS = 5000
ZIPF_SEED = 0


@pytest.fixture
def memarena_pm() -> PluginManager:
    """Built-in plugins only; installed entry points are not loaded."""
    from memarena.plugins import get_plugin_manager

    return get_plugin_manager(autoload=False)


@pytest.fixture
def memarena_registry(memarena_pm: PluginManager) -> Registry:
    """The registry of ``memarena_pm`` (re-read it after registering more plugins)."""
    from memarena.registry import Registry

    return Registry.from_plugin_manager(memarena_pm)


@pytest.fixture
def zipf_trace() -> Trace:
    """A seeded Zipf trace: alpha 1.0 over 1,000 objects, 5,000 requests."""
    from memarena.families.paging import Trace

    return Trace.synthetic(ZIPF_SPEC, n_requests=ZIPF_REQUESTS, seed=ZIPF_SEED)
