"""Hyperbolic caching, a paging policy written in Python.

Blankstein, Sen and Freedman, "Hyperbolic Caching: Flexible Caching for Web
Applications", USENIX ATC 2017. Each resident object ``i`` has the priority

.. math:: p_i = \\frac{n_i}{t - t_i}

where ``n_i`` counts its requests since it entered the cache (the admitting
request included) and ``t_i`` is when it entered. To evict, sample ``S``
resident objects uniformly at random and evict the one with the lowest
priority: no priority queue is kept, because priorities of all objects
change as time passes. The size-aware variant divides by the object size.

This is the documented *slow path* of memarena: the Rust engine keeps the
resident set and capacity accounting and calls :meth:`Hyperbolic.on_hit`,
:meth:`Hyperbolic.on_insert`, :meth:`Hyperbolic.evict` and
:meth:`Hyperbolic.on_evict` once per event.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import ClassVar

from memarena.api import PagingPolicy
from memarena.errors import InvalidConfigError

__all__ = ["Hyperbolic"]


class Hyperbolic(PagingPolicy):
    """Hyperbolic caching: evict the lowest hits/age among a random sample (Python policy).

    Invariants: the policy's own bookkeeping holds exactly the objects the
    engine reports as inserted and not yet evicted (``len(self) ==`` the
    engine's resident count); :meth:`evict` returns one of them.

    :param capacity: Cache capacity (objects, or bytes for sized traces).
    :param sample_size: Objects sampled per eviction (the paper uses 64).
        When at most this many objects are resident, all are compared and
        the choice is deterministic.
    :param seed: Seed of the sampling generator; the same seed gives the
        same evictions on every machine.
    :param size_aware: Divide each priority by the object's size.
    """

    name: ClassVar[str] = "hyperbolic"

    @dataclass
    class Config:
        _target_: str = "memarena_example.policy.Hyperbolic"
        #: Resident objects sampled per eviction.
        sample_size: int = 64
        #: Seed of the sampling generator.
        seed: int = 0
        #: Divide priorities by object size (the paper's cost/size variant).
        size_aware: bool = False

    def __init__(self, capacity: int, sample_size: int = 64, seed: int = 0, size_aware: bool = False) -> None:
        if sample_size < 1:
            raise InvalidConfigError(f"hyperbolic: sample_size must be at least 1, got {sample_size}")
        super().__init__(capacity, sample_size=sample_size, seed=seed, size_aware=size_aware)
        self.sample_size = sample_size
        self.seed = seed
        self.size_aware = size_aware
        self._rng = random.Random(seed)
        # Resident ids in a list for O(1) uniform sampling; swap-remove on evict.
        self._ids: list[int] = []
        self._pos: dict[int, int] = {}
        self._hits: dict[int, int] = {}
        self._since: dict[int, int] = {}
        self._size: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._ids)

    def priority(self, obj_id: int, vtime: int) -> float:
        """``n_i / (t - t_i)`` (divided by the size when size-aware).

        An object inserted at ``vtime`` itself counts as one request old, so
        the priority is always finite.
        """
        age = max(vtime - self._since[obj_id], 1)
        p = self._hits[obj_id] / age
        return p / self._size[obj_id] if self.size_aware else p

    # -- the Python policy protocol (memarena.api.PagingPolicy) --------------

    def on_hit(self, obj_id: int, size: int, vtime: int) -> None:
        self._hits[obj_id] += 1

    def on_insert(self, obj_id: int, size: int, vtime: int) -> None:
        self._pos[obj_id] = len(self._ids)
        self._ids.append(obj_id)
        self._hits[obj_id] = 1
        self._since[obj_id] = vtime
        self._size[obj_id] = max(size, 1)

    def evict(self, vtime: int) -> int:
        n = len(self._ids)
        if n == 0:
            raise RuntimeError("hyperbolic: asked to evict from an empty cache")
        if n <= self.sample_size:
            candidates = self._ids
        else:
            candidates = [self._ids[i] for i in self._rng.sample(range(n), self.sample_size)]
        # Lowest priority; among equal priorities the oldest insertion goes first.
        return min(candidates, key=lambda i: (self.priority(i, vtime), self._since[i]))

    def on_evict(self, obj_id: int) -> None:
        i = self._pos.pop(obj_id)
        last = self._ids.pop()
        if last != obj_id:
            self._ids[i] = last
            self._pos[last] = i
        del self._hits[obj_id], self._since[obj_id], self._size[obj_id]
