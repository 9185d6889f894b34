"""``agent_memory=memorybank``: MemoryBank's Ebbinghaus forgetting (Zhong et al., AAAI 2024, arXiv 2305.10250).

The paper (section 2.3): the retention of a memory is ``R = e^{-t/S}``, ``t``
the time since it was learned or last recalled (days), ``S`` its strength,
"initialized to 1 upon its first mention" and "increased by 1" each time it
is recalled, when ``t`` is also reset to 0. The released code
(github zhongwanjun/MemoryBank-SiliconFriend, commit 3869efc,
``memory_bank/memory_retrieval/forget_memory.py``) does:

* ``forgetting_curve(t, S)``: ``return math.exp(-t / 5*S)``, which Python
  reads as ``exp(-(t/5) * S)``: a stronger memory fades *faster*, the
  opposite of its own docstring ("The higher the memory strength, the slower
  the rate of forgetting"). ``retention_formula: paper`` (the default) is
  ``exp(-t/S)``; ``retention_formula: upstream_code`` reproduces the code's
  precedence, for comparison only.
* ``MemoryForgetterLoader.initial_load_forget_and_save(name, now_date)``,
  run each time the memory is loaded for a new conversation: for every
  memory, ``days_diff = self._get_date_difference(last_recall_date,
  now_date)`` (whole calendar days between ``%Y-%m-%d`` dates),
  ``retention_probability = forgetting_curve(days_diff, memory_strength)``,
  and ``if random.random() > retention_probability: forget_ids.append(i)``
  (forgotten for good, popped from the bank) else kept; ``memory_strength``
  defaults to 1 and ``last_recall_date`` to the memory's own date.
* ``update_memory_when_searched(recalled_memos, user, cur_date)``: each
  recalled memory gets ``memory_strength += 1`` and ``last_recall_date =
  cur_date``; ``search_memory`` recalls the top ``VECTOR_SEARCH_TOP_K = 6``
  hits of the FAISS store.
* A memory is one exchange, ``[|User|]: {query}; [|AI|]: {response}``, of
  the day's conversation (daily LLM summaries are never forgotten; this
  memory writes no summaries).

Here, per user:

* **Units** (``unit``): ``round`` (the default, as upstream) makes one
  memory of each user turn with the assistant turns after it in the same
  :meth:`add_many` (contents joined by ``"\\n"``; the memory names the user
  turn; assistant turns before any user turn are memories of their own);
  ``turn`` makes one memory per turn.
* **Forgetting**: each time the clock has moved since the last pass, before
  an :meth:`add_many` and before a :meth:`search` (upstream forgets when the
  memory is loaded for a new conversation, then answers in it), every held
  memory, in the order added, draws ``u = rng.random()`` from one
  ``random.Random(seed)`` and is forgotten when ``u > R`` (upstream's test).
  ``t`` is whole calendar days (UTC) when ``whole_days`` (upstream), else
  fractional days of the clock. ``forget: false`` keeps everything.
* **Retrieval**: the embedder's vectors on a Rust index (``index``: flat,
  hnsw, simhash); forgotten memories are deleted from it, so a search returns
  only retained memories, by inner product. The first ``min(k, recall_k)``
  hits are recalled: ``S += strength_increment``, ``t`` reset to now.

Invariants: ``len(self) == len(self.items())``, the retained memories; the
index holds exactly their ids; strengths are ``>= initial_strength``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from memarena.api import AgentMemory, MemoryItem, ScoredItem, param
from memarena.families.agent.memories._vectors import ALL_INDEXES, new_index, restore_index

__all__ = ["MemoryBank", "retention"]

#: Bytes of each memory's bookkeeping: its index id (int64), strength and last recall time (float64).
META_BYTES_PER_MEMORY = 24
_DAY_S = 86400.0


def retention(t_days: float, strength: float, formula: str = "paper") -> float:
    """``R`` after ``t_days`` at strength ``strength``.

    ``paper``: ``exp(-t/S)``. ``upstream_code``: ``exp(-t / 5*S)`` as Python
    parses it, ``exp(-(t/5)*S)`` (forget_memory.py's ``forgetting_curve``).

    >>> round(retention(2.0, 2.0), 6), round(retention(2.0, 2.0, "upstream_code"), 6)
    (0.367879, 0.449329)
    """
    if formula == "paper":
        return math.exp(-t_days / strength)
    if formula == "upstream_code":
        return math.exp(-t_days / 5 * strength)  # the released code's precedence, on purpose
    raise ValueError(f"retention formula must be paper or upstream_code, got {formula!r}")


class MemoryBank(AgentMemory):
    """MemoryBank: memories fade as ``R = exp(-t/S)``, are forgotten with probability ``1 - R``, recall strengthens.

    See the module docstring for the rules and the upstream code they follow.
    """

    name: ClassVar[str] = "memorybank"
    state_version: ClassVar[int] = 1

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.memories.memorybank.MemoryBank"
        #: A memory: a user turn with the assistant's reply (round, as upstream) or one turn.
        unit: str = param("round", choices=("round", "turn"))
        #: paper: exp(-t/S); upstream_code: exp(-t / 5*S) as the released code computes it (a compatibility option).
        retention_formula: str = param("paper", choices=("paper", "upstream_code"))
        #: Forget at all (false: a plain dense memory whose recalls still strengthen).
        forget: bool = True
        #: t in whole calendar days, as upstream's date difference (false: fractional days of the clock).
        whole_days: bool = True
        #: S of a new memory.
        initial_strength: float = param(1.0, gt=0)
        #: S grows by this much on each recall.
        strength_increment: float = param(1.0, ge=0)
        #: Hits of a search that count as recalled (upstream's VECTOR_SEARCH_TOP_K = 6).
        recall_k: int = param(6, ge=0)
        #: Seed of the forgetting draws.
        seed: int = 0
        #: The registered index holding the vectors.
        index: str = param("flat", choices=ALL_INDEXES)
        #: Build and search parameters of that index.
        index_params: dict[str, Any] = param(factory=dict)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._items: list[MemoryItem] = []
        self._ids: list[int] = []
        self._strength: list[float] = []
        self._last_recall_s: list[float] = []
        self._next_id = 0
        self._forgotten = 0
        self._last_pass_s: float | None = None
        self._rng = random.Random(self.config.seed)
        self._index: Any = None

    # -- the rule ------------------------------------------------------------------

    def elapsed_days(self, since_s: float, now_s: float) -> float:
        """``t``: whole calendar days (UTC) between the two times, or fractional days (``whole_days``)."""
        if self.config.whole_days:
            return float(math.floor(now_s / _DAY_S) - math.floor(since_s / _DAY_S))
        return (now_s - since_s) / _DAY_S

    def retention_of(self, i: int, now_s: float | None = None) -> float:
        """``R`` of the ``i``-th held memory at ``now_s`` (default: the clock)."""
        now = self.clock.now_s if now_s is None else now_s
        t = self.elapsed_days(self._last_recall_s[i], now)
        return retention(t, self._strength[i], self.config.retention_formula)

    def strengths(self) -> list[float]:
        """``S`` of every held memory, in the order of :meth:`items`."""
        return list(self._strength)

    @property
    def forgotten(self) -> int:
        """Memories forgotten so far."""
        return self._forgotten

    def forget_pass(self) -> list[MemoryItem]:
        """Forget each held memory with probability ``1 - R`` at the clock's time (once per clock time).

        :returns: The memories forgotten by this pass.
        """
        now = self.clock.now_s
        if not self.config.forget or self._last_pass_s == now:
            return []
        self._last_pass_s = now
        keep: list[int] = []
        gone: list[int] = []
        for i in range(len(self._items)):
            # forget_memory.py: ``if random.random() > retention_probability: forget_ids.append(i)``
            if self._rng.random() > self.retention_of(i, now):
                gone.append(i)
            else:
                keep.append(i)
        if not gone:
            return []
        forgotten = [self._items[i] for i in gone]
        self._index.delete(np.asarray([self._ids[i] for i in gone], dtype=np.uint64))
        self._items = [self._items[i] for i in keep]
        self._ids = [self._ids[i] for i in keep]
        self._strength = [self._strength[i] for i in keep]
        self._last_recall_s = [self._last_recall_s[i] for i in keep]
        self._forgotten += len(gone)
        return forgotten

    # -- units -----------------------------------------------------------------------

    def _units(self, items: Sequence[MemoryItem]) -> list[MemoryItem]:
        if self.config.unit == "turn":
            return list(items)
        out: list[MemoryItem] = []
        group: list[MemoryItem] = []

        def flush() -> None:
            if not group:
                return
            head = group[0]
            out.append(
                MemoryItem(
                    "\n".join(t.text for t in group),
                    session=head.session,
                    turn=head.turn,
                    metadata={**head.metadata, "turns": [t.turn for t in group]},
                    user=head.user,
                    session_id=head.session_id,
                    role=head.role,
                    timestamp_s=head.timestamp_s,
                )
                if len(group) > 1
                else head
            )
            group.clear()

        for item in items:
            if item.role == "user" or (group and group[0].role != "user"):
                flush()
            group.append(item)
        flush()
        return out

    # -- AgentMemory ---------------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        """Store one item (its own memory)."""
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Forget (if the clock moved), then store the session's rounds (or turns) at strength ``initial_strength``."""
        units = self._units(items)
        if not units:
            return
        vectors = np.ascontiguousarray(self.embedder.embed([u.text for u in units]), dtype=np.float32)
        if self._index is None:
            self._index = new_index(self.config.index, self.config.index_params, vectors.shape[1])
        self.forget_pass()
        ids = list(range(self._next_id, self._next_id + len(units)))
        self._index.add(vectors, np.asarray(ids, dtype=np.uint64))
        self._next_id += len(units)
        now = self.clock.now_s
        self._items += units
        self._ids += ids
        self._strength += [float(self.config.initial_strength)] * len(units)
        self._last_recall_s += [now] * len(units)

    def search(self, query: str, k: int) -> list[ScoredItem]:
        """Forget if the clock moved, then the ``k`` nearest retained memories; the first ``recall_k`` are recalled."""
        if k <= 0 or not self._items:
            return []
        self.forget_pass()
        if not self._items:
            return []
        q = np.ascontiguousarray(self.embedder.embed([query]), dtype=np.float32)
        want = min(k, len(self._items))
        dist, ids = self._index.search(q, want)
        slot = {mid: i for i, mid in enumerate(self._ids)}
        hits: list[ScoredItem] = []
        now = self.clock.now_s
        for d, mid in zip(dist[0], ids[0], strict=True):
            if mid < 0:
                continue
            i = slot[int(mid)]
            hits.append(ScoredItem(self._items[i], float(d)))
            if len(hits) <= self.config.recall_k:
                # update_memory_when_searched: memory_strength += 1; last_recall_date = cur_date
                self._strength[i] += float(self.config.strength_increment)
                self._last_recall_s[i] = now
        return hits

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[MemoryItem]:
        return list(self._items)

    # -- cost ----------------------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """Texts' UTF-8 bytes; the retained vectors; the index beyond them plus 24 bytes of bookkeeping per memory."""
        text = sum(len(m.text.encode()) for m in self._items)
        if self._index is None:
            return {"text_bytes": text, "vector_bytes": 0, "index_bytes": 0}
        vectors = len(self._items) * int(self._index.dim) * 4
        index = self._index.memory_bytes() - vectors + META_BYTES_PER_MEMORY * len(self._items)
        return {"text_bytes": text, "vector_bytes": vectors, "index_bytes": max(0, index)}

    # -- durability ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        version, internal, gauss = self._rng.getstate()
        return {
            "items": [m.to_json() for m in self._items],
            "ids": np.asarray(self._ids, dtype=np.int64),
            "strength": np.asarray(self._strength, dtype=np.float64),
            "last_recall_s": np.asarray(self._last_recall_s, dtype=np.float64),
            "next_id": self._next_id,
            "forgotten": self._forgotten,
            "last_pass_s": self._last_pass_s,
            "rng": {"version": version, "internal": np.asarray(internal, dtype=np.int64), "gauss": gauss},
            "index": None if self._index is None else self._index.to_bytes(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._items = [MemoryItem.from_json(m) for m in state["items"]]
        self._ids = [int(i) for i in state["ids"]]
        self._strength = [float(s) for s in state["strength"]]
        self._last_recall_s = [float(s) for s in state["last_recall_s"]]
        self._next_id = int(state["next_id"])
        self._forgotten = int(state["forgotten"])
        self._last_pass_s = None if state["last_pass_s"] is None else float(state["last_pass_s"])
        rng = state["rng"]
        self._rng.setstate((int(rng["version"]), tuple(int(x) for x in rng["internal"]), rng["gauss"]))
        c = self.config
        self._index = restore_index(state["index"], lambda dim: new_index(c.index, c.index_params, dim))
