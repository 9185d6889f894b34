"""Every built-in vector index passes :class:`~memarena.testing.conformance.IndexConformance`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from memarena.api import VectorIndex
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.testing.conformance import IndexConformance

REGISTRY = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
BUILTIN_INDEXES = [REGISTRY.get("index", name) for name in REGISTRY.names("index")]
BUILTIN_INDEXES = [c for c in BUILTIN_INDEXES if isinstance(c, type) and issubclass(c, VectorIndex)]


def test_every_builtin_index_is_covered() -> None:
    names = {c.name for c in BUILTIN_INDEXES}
    assert {"flat", "simhash", "e2lsh", "ivf", "spann", "hnsw", "curator"} <= names, sorted(names)


@pytest.fixture(params=BUILTIN_INDEXES, ids=lambda c: c.name)
def index_class(request: pytest.FixtureRequest) -> type[VectorIndex]:
    return request.param


class TestBuiltinIndex(IndexConformance):
    @pytest.fixture
    def make_index(self, index_class: type[VectorIndex]) -> Callable[[int, str], Any]:
        return lambda dim, metric: index_class(dim=dim, metric=metric)  # type: ignore[call-arg]


@pytest.mark.parametrize("metric", ["ip", "cosine"])
class TestBuiltinIndexOtherMetrics(IndexConformance):
    """The metrics beyond l2, on an exact and a graph index (the suite's ordering check flips)."""

    @pytest.fixture(params=["flat", "hnsw"])
    def make_index(self, request: pytest.FixtureRequest) -> Callable[[int, str], Any]:
        cls = REGISTRY.get("index", request.param)
        return lambda dim, metric: cls(dim=dim, metric=metric)
