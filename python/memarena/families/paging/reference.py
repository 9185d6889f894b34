"""Slow pure-Python reference implementations of the paging policies.

They exist for differential tests (STYLE B1.5): the Rust policies must give
exactly the same hit mask on every sequence. Each reference mirrors the
engine of the core (:class:`RefCache`): a hit changes only policy metadata; a
miss on an object larger than the whole cache is not admitted; otherwise
objects are evicted until the new one fits, then it is admitted.

:class:`PyLRU` is different: it is a real :class:`~memarena.api.PagingPolicy`
written in Python, driven by the Rust engine through the callback adapter
(the documented slow path), and tested to match the native LRU exactly.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from memarena.api import PagingPolicy

__all__ = [
    "NEVER",
    "REFERENCES",
    "PyLRU",
    "RefBelady",
    "RefCLOCK",
    "RefCache",
    "RefFIFO",
    "RefLRU",
    "RefPolicy",
    "RefSIEVE",
    "next_access",
    "reference_hit_mask",
]

#: "Never requested again" in ``next_vtime``.
NEVER = 2**64 - 1


def next_access(ids: Sequence[int]) -> list[int]:
    """Index of the next request to the same id, or :data:`NEVER`."""
    nxt = [NEVER] * len(ids)
    seen: dict[int, int] = {}
    for t in range(len(ids) - 1, -1, -1):
        if ids[t] in seen:
            nxt[t] = seen[ids[t]]
        seen[ids[t]] = t
    return nxt


class RefPolicy:
    """Policy half of a reference: metadata and the choice of victim."""

    def hit(self, obj_id: int, next_vtime: int) -> None:
        """``obj_id`` (resident) was requested again."""

    def insert(self, obj_id: int, size: int, next_vtime: int) -> None:
        """Admit ``obj_id`` (not resident)."""
        raise NotImplementedError

    def evict(self) -> tuple[int, int]:
        """Remove one resident object; return ``(id, size)``."""
        raise NotImplementedError

    def __contains__(self, obj_id: int) -> bool:
        raise NotImplementedError


class RefLRU(RefPolicy):
    """LRU over an ordered dict (last = most recent)."""

    def __init__(self) -> None:
        self.d: OrderedDict[int, int] = OrderedDict()

    def hit(self, obj_id: int, next_vtime: int) -> None:
        self.d.move_to_end(obj_id)

    def insert(self, obj_id: int, size: int, next_vtime: int) -> None:
        self.d[obj_id] = size

    def evict(self) -> tuple[int, int]:
        return self.d.popitem(last=False)

    def __contains__(self, obj_id: int) -> bool:
        return obj_id in self.d


class RefFIFO(RefLRU):
    """FIFO: like LRU without promotion on hit."""

    def hit(self, obj_id: int, next_vtime: int) -> None:
        pass


class RefCLOCK(RefPolicy):
    """CLOCK with an ``n_bit_counter``-bit counter: a hit increments (saturating);
    eviction scans from the oldest, decrementing and reinserting non-zero ones."""

    def __init__(self, n_bit_counter: int = 1, init_freq: int = 0) -> None:
        self.max_freq = (1 << n_bit_counter) - 1
        self.init_freq = init_freq
        self.d: OrderedDict[int, list[int]] = OrderedDict()  # id -> [size, freq]; first = oldest

    def hit(self, obj_id: int, next_vtime: int) -> None:
        e = self.d[obj_id]
        if e[1] < self.max_freq:
            e[1] += 1

    def insert(self, obj_id: int, size: int, next_vtime: int) -> None:
        self.d[obj_id] = [size, self.init_freq]

    def evict(self) -> tuple[int, int]:
        while True:
            obj_id, e = next(iter(self.d.items()))
            if e[1] == 0:
                del self.d[obj_id]
                return obj_id, e[0]
            e[1] -= 1
            self.d.move_to_end(obj_id)

    def __contains__(self, obj_id: int) -> bool:
        return obj_id in self.d


class RefSIEVE(RefPolicy):
    """SIEVE: a list (index 0 = oldest), visited bits, and a hand that moves
    from old to new, wrapping to the oldest."""

    def __init__(self) -> None:
        self.order: list[int] = []  # oldest first
        self.info: dict[int, list[int]] = {}  # id -> [size, visited]
        self.hand: int | None = None  # an object id, or None (start at the oldest)

    def hit(self, obj_id: int, next_vtime: int) -> None:
        self.info[obj_id][1] = 1

    def insert(self, obj_id: int, size: int, next_vtime: int) -> None:
        self.order.append(obj_id)
        self.info[obj_id] = [size, 0]

    def evict(self) -> tuple[int, int]:
        i = 0 if self.hand is None else self.order.index(self.hand)
        while self.info[self.order[i]][1]:
            self.info[self.order[i]][1] = 0
            i = i + 1 if i + 1 < len(self.order) else 0
        victim = self.order.pop(i)
        # The hand rests on the victim's newer neighbour, or None past the newest.
        self.hand = self.order[i] if i < len(self.order) else None
        return victim, self.info.pop(victim)[0]

    def __contains__(self, obj_id: int) -> bool:
        return obj_id in self.info


class RefBelady(RefPolicy):
    """Belady: evict the object whose next request is furthest (never = furthest);
    ties broken by the larger id, as the core's max-heap of ``(next_vtime, id)``."""

    def __init__(self) -> None:
        self.d: dict[int, list[int]] = {}  # id -> [next_vtime, size]

    def hit(self, obj_id: int, next_vtime: int) -> None:
        self.d[obj_id][0] = next_vtime

    def insert(self, obj_id: int, size: int, next_vtime: int) -> None:
        self.d[obj_id] = [next_vtime, size]

    def evict(self) -> tuple[int, int]:
        obj_id = max(self.d, key=lambda k: (self.d[k][0], k))
        return obj_id, self.d.pop(obj_id)[1]

    def __contains__(self, obj_id: int) -> bool:
        return obj_id in self.d


#: Reference implementations by registry name.
REFERENCES: dict[str, type[RefPolicy]] = {
    "lru": RefLRU,
    "fifo": RefFIFO,
    "clock": RefCLOCK,
    "sieve": RefSIEVE,
    "belady": RefBelady,
}


class RefCache:
    """The core's cache engine in Python: capacity and byte accounting around a :class:`RefPolicy`."""

    def __init__(self, policy: RefPolicy, capacity: int) -> None:
        self.policy = policy
        self.capacity = capacity
        self.used = 0

    def access(self, obj_id: int, size: int, next_vtime: int) -> bool:
        """Serve one request; return whether it hit."""
        if obj_id in self.policy:
            self.policy.hit(obj_id, next_vtime)
            return True
        if size > self.capacity:
            return False
        while self.used + size > self.capacity:
            _, freed = self.policy.evict()
            self.used -= freed
        self.policy.insert(obj_id, size, next_vtime)
        self.used += size
        return False


def reference_hit_mask(
    name: str, ids: Sequence[int], capacity: int, sizes: Sequence[int] | None = None
) -> npt.NDArray[np.bool_]:
    """Hit mask of reference policy ``name`` over ``ids`` from an empty cache."""
    ids = [int(i) for i in ids]
    sizes = [1] * len(ids) if sizes is None else [int(s) for s in sizes]
    nxt = next_access(ids)
    cache = RefCache(REFERENCES[name](), capacity)
    return np.array([cache.access(i, s, n) for i, s, n in zip(ids, sizes, nxt, strict=True)], dtype=bool)


class PyLRU(PagingPolicy):
    """LRU written in Python: the callback adapter's reference (slow path)."""

    name: ClassVar[str] = "py_lru"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.reference.PyLRU"

    def __init__(self, capacity: int, **params: object) -> None:
        super().__init__(capacity, **params)
        self._order: OrderedDict[int, None] = OrderedDict()

    def on_hit(self, obj_id: int, size: int, vtime: int) -> None:
        self._order.move_to_end(obj_id)

    def on_insert(self, obj_id: int, size: int, vtime: int) -> None:
        self._order[obj_id] = None

    def evict(self, vtime: int) -> int:
        return next(iter(self._order))

    def on_evict(self, obj_id: int) -> None:
        del self._order[obj_id]
