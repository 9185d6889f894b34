"""A plugin module registering one embedder, for ``MEMARENA_PLUGINS`` in the embedder kind's tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from memarena import hookimpl
from memarena.api import Embedder


class LengthEmbedder(Embedder):
    """Embeds a text as (1, len) normalised: a toy whose vectors are easy to check."""

    name: ClassVar[str] = "length_test"

    @dataclass
    class Config:
        _target_: str = "tests.agent.embedder_plugin.LengthEmbedder"
        scale: float = 1.0

    @property
    def dim(self) -> int:
        return 2

    def embed(self, texts: Sequence[str]) -> Any:
        v = np.array([[1.0, self.scale * len(t)] for t in texts], dtype=np.float64).reshape(-1, 2)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


@hookimpl
def memarena_register_embedders() -> list[type[Any]]:
    return [LengthEmbedder]
