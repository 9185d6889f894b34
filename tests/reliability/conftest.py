"""The reliability suite's worker: ``memarena`` in a process with an address-space limit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import Runner

#: The environment every case runs in: no installed plugins, the suite's test plugin.
FUZZ_ENV = {"MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1", "MEMARENA_PLUGINS": "tests.reliability.fuzz_plugin"}


@pytest.fixture(scope="session")
def runner() -> Iterator[Runner]:
    """One worker for the session (replaced when a case kills it)."""
    r = Runner(FUZZ_ENV)
    yield r
    r.close()
