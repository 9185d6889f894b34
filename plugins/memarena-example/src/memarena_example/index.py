"""An exact vector index written in Python (numpy): ``index=numpy_flat``.

It shows the whole :class:`memarena.api.VectorIndex` contract, tenants
included, through public API only: both ``experiment=retrieval`` and
``experiment=retrieval_tenants`` run it. Every query is scored against every
stored row (one matrix product per block of queries), so recall is 1 and the
speed is numpy's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from memarena.api import VectorIndex
from memarena.errors import InvalidConfigError
from memarena.indexes import tenants_to_csr

__all__ = ["NumpyFlat"]


class NumpyFlat(VectorIndex):
    """Exact search in numpy: one matrix product per block of queries, tenants as a boolean mask.

    Invariants: ``len(ids) == len(rows)``; ids are unique; each row's tenant
    set is kept as CSR ``(offsets, tenant_ids)`` beside it.
    """

    name: ClassVar[str] = "numpy_flat"
    supports_tenants: ClassVar[bool] = True

    @dataclass
    class Config:
        _target_: str = "memarena_example.index.NumpyFlat"
        #: Queries scored per matrix product (bounds the (block, n) score matrix).
        block: int = 256

    def __init__(self, dim: int | None = None, metric: str = "l2", block: int = 256) -> None:
        if metric not in ("l2", "ip", "cosine"):
            raise InvalidConfigError(f"config key 'index.metric' must be l2, ip or cosine, got {metric!r}")
        if block < 1:
            raise InvalidConfigError(f"config key 'index.block' must be >= 1, got {block}")
        self.dim, self.metric, self.block = dim, metric, block
        self.reset()

    def reset(self) -> None:
        d = self.dim or 0
        self.rows = np.empty((0, d), dtype=np.float32)
        self.ids = np.empty(0, dtype=np.uint64)
        self.offsets = np.zeros(1, dtype=np.uint64)
        self.tenant_ids = np.empty(0, dtype=np.uint32)

    def train(self, data: Any) -> None:
        """Nothing to learn: exact search."""

    def _prepare(self, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if self.metric != "cosine":
            return x
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms == 0, 1, norms)

    def add(self, data: Any, ids: Any = None, tenants: Any = None) -> None:
        x = np.ascontiguousarray(data, dtype=np.float32)
        if x.ndim != 2 or (self.dim is not None and x.shape[1] != self.dim):
            raise InvalidConfigError(f"numpy_flat: data must be (n, {self.dim}) rows, got shape {x.shape}")
        n = x.shape[0]
        start = int(self.ids.max()) + 1 if len(self.ids) else 0
        new_ids = np.arange(start, start + n, dtype=np.uint64) if ids is None else np.asarray(ids, dtype=np.uint64)
        if new_ids.shape != (n,) or len(np.unique(np.concatenate([self.ids, new_ids]))) != len(self.ids) + n:
            raise InvalidConfigError(f"numpy_flat: ids must be {n} new unique ids")
        offsets, tids = tenants_to_csr(tenants, n) if tenants is not None else (np.zeros(n + 1, np.uint64), None)
        self.dim = x.shape[1]
        self.rows = np.concatenate([self.rows.reshape(-1, self.dim), self._prepare(x)])
        self.ids = np.concatenate([self.ids, new_ids])
        self.offsets = np.concatenate([self.offsets[:-1], offsets + self.offsets[-1]])
        if tids is not None:
            self.tenant_ids = np.concatenate([self.tenant_ids, np.asarray(tids, dtype=np.uint32)])

    def _readable(self, tenant: int) -> npt.NDArray[np.bool_]:
        """Which rows ``tenant`` may read."""
        owner = np.repeat(np.arange(len(self.ids)), np.diff(self.offsets).astype(np.int64))
        mask = np.zeros(len(self.ids), dtype=bool)
        mask[owner[self.tenant_ids == tenant]] = True
        return mask

    def search(
        self, queries: Any, k: int, params: Mapping[str, Any] | None = None, tenant: Any = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        q = self._prepare(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        nq = q.shape[0]
        dist = np.full((nq, k), np.inf if self.metric == "l2" else -np.inf, dtype=np.float32)
        out = np.full((nq, k), -1, dtype=np.int64)
        per_query = None if tenant is None else np.broadcast_to(np.asarray(tenant, dtype=np.int64), (nq,))
        masks: dict[int, npt.NDArray[np.bool_]] = {}
        for lo in range(0, nq, self.block):
            block = q[lo : lo + self.block]
            if self.metric == "l2":
                scores = -((block**2).sum(1, keepdims=True) - 2 * block @ self.rows.T + (self.rows**2).sum(1)[None, :])
            else:
                scores = block @ self.rows.T
            for i in range(block.shape[0]):
                s = scores[i]
                if per_query is not None:
                    t = int(per_query[lo + i])
                    if t not in masks:
                        masks[t] = self._readable(t)
                    s = np.where(masks[t], s, -np.inf)
                take = min(k, int(np.isfinite(s).sum()))
                best = np.argsort(-s, kind="stable")[:take]
                out[lo + i, :take] = self.ids[best].astype(np.int64)
                dist[lo + i, :take] = -s[best] if self.metric == "l2" else s[best]
        return dist, out

    def memory_bytes(self) -> int:
        return int(self.rows.nbytes + self.ids.nbytes + self.offsets.nbytes + self.tenant_ids.nbytes)

    def tenant_len(self, tenant: int) -> int:
        return int(self._readable(tenant).sum())

    def tenant_memory_bytes(self, tenants: Any) -> npt.NDArray[np.uint64]:
        """The rows (and their ids) each tenant may read, plus its own tenant entries."""
        row_bytes = self.rows.shape[1] * 4 + 8 + 4
        return np.array([self.tenant_len(int(t)) * row_bytes for t in np.atleast_1d(tenants)], dtype=np.uint64)
