"""A fake KV-compression method for the serving tests, with bytes a test can compute by hand.

``int8_test`` keeps the newest ``window_tokens`` tokens of every head in
fp16 and the older ones as int8 codes at a fixed scale (no scales or zero
points stored): at ``n >= window_tokens`` tokens it holds
``(n - W) x d x 2`` bytes of codes and ``W x d x 2 x 2`` bytes of fp16 per
head (K and V), so its ratio to the fp16 cache is ``(n + W) / (2 n)``; with
``W = 0``, exactly one half. Not a real method (the scale is arbitrary):
it stands in for KIVI, whose fp16 residual makes its ratio depend on the
length the same way.

Loaded with ``MEMARENA_PLUGINS=tests.kvcache.serving_fakes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from memarena import hookimpl
from memarena.api import KVCompression, param
from memarena.families.kvcache import CacheSpec, HeadStore, HeadwiseLayer

SCALE = 16.0


class Int8WindowStore(HeadStore):
    """int8 codes of the older tokens, fp16 rows of the newest ``window`` ones (storage exactly n x d each)."""

    def __init__(self, head_dim: int, window: int) -> None:
        self.head_dim, self.window = head_dim, window
        self.qk = torch.empty(0, head_dim, dtype=torch.int8)
        self.qv = torch.empty(0, head_dim, dtype=torch.int8)
        self.rk = torch.empty(0, head_dim, dtype=torch.float16)
        self.rv = torch.empty(0, head_dim, dtype=torch.float16)

    def __len__(self) -> int:
        return int(self.qk.shape[0] + self.rk.shape[0])

    @staticmethod
    def _code(x: torch.Tensor) -> torch.Tensor:
        return (x.float() * SCALE).round().clamp(-127, 127).to(torch.int8)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        rk, rv = torch.cat([self.rk, k.half()]), torch.cat([self.rv, v.half()])
        spill = max(0, rk.shape[0] - self.window)
        self.qk = torch.cat([self.qk, self._code(rk[:spill])])
        self.qv = torch.cat([self.qv, self._code(rv[:spill])])
        self.rk, self.rv = rk[spill:].clone(), rv[spill:].clone()

    def read(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        k = torch.cat([self.qk.float() / SCALE, self.rk.float()])
        v = torch.cat([self.qv.float() / SCALE, self.rv.float()])
        return k, v, None

    def keep(self, rows: torch.Tensor) -> None:
        k, v, _ = self.read()
        self.__init__(self.head_dim, self.window)  # type: ignore[misc]
        self.append(k[rows], v[rows])

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield "payload", self.qk
        yield "payload", self.qv
        yield "residual", self.rk
        yield "residual", self.rv


class Int8Test(KVCompression):
    """int8 codes at a fixed scale plus an fp16 window of the newest tokens (a test double)."""

    name: ClassVar[str] = "int8_test"

    @dataclass
    class Config:
        _target_: str = "tests.kvcache.serving_fakes.Int8Test"
        #: Newest tokens kept in fp16.
        window_tokens: int = param(0, ge=0)

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> HeadwiseLayer:
        return HeadwiseLayer(spec, layer, store=lambda h: Int8WindowStore(spec.head_dim, self.window_tokens))


@hookimpl
def memarena_register_methods() -> list[type[Any]]:
    return [Int8Test]
