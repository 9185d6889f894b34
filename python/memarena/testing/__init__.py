"""Test support for plugin authors: conformance suites and pytest fixtures.

* :mod:`memarena.testing.conformance` -- ``PolicyConformance``,
  ``BackendConformance``, ``AgentMemoryConformance``, ``IndexConformance``
  and ``FamilyConformance``: subclass one in your tests, provide the fixture
  it asks for, and every check memarena makes of its own components runs
  against yours.
* :mod:`memarena.testing.pytest_plugin` -- opt-in fixtures
  (``pytest_plugins = ["memarena.testing.pytest_plugin"]``).
* :mod:`memarena.testing.libcachesim` -- libCacheSim as a peer: the policy
  name map and a replay helper shared by the parity tests and the speed
  benchmark (needs ``libcachesim``, a test dependency).

Nothing here is imported by memarena itself; the conformance suites and
fixtures need pytest.
"""

from __future__ import annotations

__all__: list[str] = []
