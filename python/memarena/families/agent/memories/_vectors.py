"""Embedded texts on a Rust index (flat or HNSW, inner product over the embedder's unit rows), by integer id.

:func:`new_index` builds the index an agent memory's ``index`` and
``index_params`` keys name (every memory with a Rust index uses it), and
:func:`restore_index` reads one back from a saved state.

:class:`TextVectors` is shared by ``scm``, ``memgpt`` and ``mem0``: :meth:`add` embeds and indexes,
:meth:`delete` drops ids (flat only deletes; ``mem0`` uses it for UPDATE and
DELETE), :meth:`scores` gives the similarity of every live id to a query
(an exhaustive search: the memories here rank everything they hold), and
the cost splits into ``vector_bytes`` (``live x dim x 4``) and the index's
heap beyond them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from memarena.api import Embedder
from memarena.errors import InvalidConfigError

#: The indexes a :class:`TextVectors` may hold.
INDEXES: tuple[str, ...] = ("flat", "hnsw")
#: Every index :func:`new_index` builds.
ALL_INDEXES: tuple[str, ...] = ("flat", "hnsw", "simhash")


def new_index(name: str, params: dict[str, Any], dim: int, key: str = "agent_memory.index_params") -> Any:
    """A registered Rust index (``flat``, ``hnsw``, ``simhash``) for unit vectors (inner product).

    A bad parameter raises ``InvalidConfigError`` naming ``key`` and the index.
    """
    from memarena.indexes import HNSW, Flat, SimHash

    cls = {"flat": Flat, "hnsw": HNSW, "simhash": SimHash}[name]
    try:
        return cls(dim=dim, metric="ip", **dict(params))
    except (TypeError, ValueError, InvalidConfigError) as exc:
        raise InvalidConfigError(f"config key {key!r} (index={cls.name}): {exc}") from exc


def restore_index(raw: bytes | None, new: Callable[[int], Any]) -> Any:
    """The index ``raw`` (an index's ``to_bytes``; ``None``: none was built) holds, searching as ``new(dim)`` would.

    The saved bytes keep the vectors and build parameters; the search
    defaults (``ef_search``, probes) come from the index ``new`` builds for
    the memory's config.
    """
    from memarena.indexes import Index

    if raw is None:
        return None
    index = Index.from_bytes(raw)
    index.search_defaults = new(int(index.dim or 0)).search_defaults
    return index


class TextVectors:
    """Vectors of texts by id in a Rust index (built on the first :meth:`add`, when the dimension is known)."""

    def __init__(self, kind: str, params: dict[str, Any], key: str) -> None:
        self.kind = kind
        self.params = dict(params)
        self.key = key
        self.index: Any = None
        self.live = 0

    def _new(self, dim: int) -> Any:
        return new_index(self.kind, self.params, dim, self.key)

    def add(self, embedder: Embedder, texts: Sequence[str], ids: Sequence[int]) -> None:
        if not texts:
            return
        vectors = np.ascontiguousarray(embedder.embed(list(texts)), dtype=np.float32)
        if self.index is None:
            self.index = self._new(int(vectors.shape[1]))
        self.index.add(vectors, np.asarray(ids, dtype=np.uint64))
        self.live += len(texts)

    def delete(self, ids: Sequence[int]) -> None:
        if self.index is not None and ids:
            self.live -= int(self.index.delete(np.asarray(ids, dtype=np.uint64)))

    def scores(self, embedder: Embedder, query: str) -> dict[int, float]:
        """Inner product of the query's row with every live vector, by id."""
        if self.index is None or self.live == 0:
            return {}
        q = np.ascontiguousarray(embedder.embed([query]), dtype=np.float32)
        dist, ids = self.index.search(q, self.live)
        return {int(i): float(d) for d, i in zip(dist[0], ids[0], strict=True) if i >= 0}

    def vector_bytes(self) -> int:
        return 0 if self.index is None else self.live * int(self.index.dim) * 4

    def index_bytes(self) -> int:
        """The index's heap beyond its live vectors."""
        return 0 if self.index is None else max(0, int(self.index.memory_bytes()) - self.vector_bytes())

    def to_state(self) -> dict[str, Any]:
        return {"index": None if self.index is None else self.index.to_bytes(), "live": self.live}

    def from_state(self, state: dict[str, Any]) -> None:
        self.live = int(state["live"])
        self.index = restore_index(state["index"], self._new)
