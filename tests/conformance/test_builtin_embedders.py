"""Every built-in embedder passes :class:`~memarena.testing.conformance.EmbedderConformance`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from memarena.api import Embedder
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.testing.conformance import EMBEDDER_TEXTS, EmbedderConformance

REGISTRY = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
BUILTIN_EMBEDDERS = [REGISTRY.get("embedder", name) for name in REGISTRY.names("embedder")]


def test_builtin_embedders_registered() -> None:
    assert {"hashing", "tfidf"} <= set(REGISTRY.names("embedder"))


@pytest.fixture(params=BUILTIN_EMBEDDERS, ids=lambda c: c.name)
def builtin_embedder(request: pytest.FixtureRequest) -> type[Embedder]:
    return request.param


class TestBuiltinEmbedder(EmbedderConformance):
    @pytest.fixture
    def make_embedder(self, builtin_embedder: type[Embedder]) -> Callable[[], Embedder]:
        return builtin_embedder


class Unnormalised(Embedder):
    """Letter counts, not normalised, in float64: breaks the contract twice."""

    name = "unnormalised"

    @dataclasses.dataclass
    class Config:
        _target_: str = "tests.conformance.test_builtin_embedders.Unnormalised"

    @property
    def dim(self) -> int:
        return 26

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), 26))
        for i, text in enumerate(texts):
            for ch in text.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out


def test_the_suite_catches_a_broken_embedder() -> None:
    suite = EmbedderConformance()
    with pytest.raises(AssertionError, match="unnormalised: embed returned float64, not float32"):
        suite.test_shapes_dtype_and_unit_norm(Unnormalised, list(EMBEDDER_TEXTS))
    with pytest.raises(AssertionError, match="unnormalised: rows after fit are not unit norm"):
        suite.test_fit_then_embed(Unnormalised, list(EMBEDDER_TEXTS))
    suite.test_a_row_does_not_depend_on_its_batch(Unnormalised, list(EMBEDDER_TEXTS))  # that part holds
