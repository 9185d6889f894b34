"""``agent_memory=memgpt``: MemGPT-style memory tiers (Packer et al. 2023, arXiv 2310.08560) with a deterministic pager.

MemGPT gives the LLM a *main context* (a core memory of "persona" and
"human" blocks, editable by ``core_memory_append``/``core_memory_replace``)
and two external stores it pages through with function calls: **recall
storage**, every message of the conversation, searched by text
(``conversation_search``), and **archival storage**, an embedding index
(``archival_memory_insert``/``archival_memory_search``). When the context
fills up, MemGPT's queue manager warns the LLM ("memory pressure") and
evicts; what stays is the LLM's choice. Here the LLM's choices are rules:

* **Core memory** holds the user's facts (the ``extract_facts`` step of
  :mod:`~memarena.families.agent.llm`, applied to user turns: the "human"
  block), each as a :class:`~memarena.api.MemoryItem` of the turn it came
  from (``role="core"``), within ``core_budget_tokens`` whitespace tokens
  (``len(text.split())``; no model tokenizer). A fact already in core is
  not added again; it counts as an access.
* **Accesses:** a new fact's insertion, and every later message whose
  embedding has cosine ``>= access_threshold`` with the fact.
* **The pager:** while core holds more than the budget, it evicts the entry
  with the lowest value under ``policy`` (never the fact just inserted,
  unless that fact alone is over the budget), ties to the oldest inserted:

  ``lru``               the last access (message position);
  ``lfu``               the number of accesses, then the last access;
  ``strength``          MemoryBank-like retention ``exp(-t / S)``: ``t`` days
                        since the last access (the clock), ``S`` starts at
                        ``strength_initial`` and grows by
                        ``strength_increment`` per access;
  ``recency_relevance`` ``recency_decay ** (messages since the last access)
                        * (1 + cos(entry, the message being added)) / 2``.

  Evicted entries go to **archival storage** (their vectors on the Rust
  ``flat`` or ``hnsw`` index).
* **Recall storage:** every message (user and assistant), searched with
  BM25 (:class:`~memarena.families.agent.retrievers.BM25`, ``recall_tokenizer``).

A search returns core entries first (by cosine to the query; score ``2 +
(1 + cos) / 2``), then archival entries (``1 + (1 + cos) / 2``), then
recall messages (BM25 over the best BM25 score, in ``[0, 1]``): scores
never increase down the list.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from memarena.api import AgentMemory, MemoryItem, ScoredItem, param
from memarena.families.agent.llm import Deciders, make_deciders, whitespace_tokens
from memarena.families.agent.memories._vectors import INDEXES, TextVectors
from memarena.families.agent.metrics import rank_by_scores
from memarena.families.agent.retrievers import BM25, TOKENIZERS

__all__ = ["POLICIES", "CoreEntry", "MemGPT"]

POLICIES: tuple[str, ...] = ("lru", "lfu", "strength", "recency_relevance")
#: Bytes of one core entry's bookkeeping: tokens, inserted, last_pos, count (int64) and last_s, strength (float64).
CORE_ENTRY_BYTES = 48


@dataclass
class CoreEntry:
    """A fact in core memory and what the pager knows of it."""

    item: MemoryItem
    vector: np.ndarray
    tokens: int
    inserted: int  # insertion sequence number
    last_pos: int  # message position of the last access
    last_s: float  # clock time of the last access
    count: int = 1
    strength: float = 1.0


class MemGPT(AgentMemory):
    """Core memory under a token budget, recall and archival storage, a deterministic pager (module docstring).

    Invariants: the core's tokens are within ``core_budget_tokens`` after
    every add; every fact is in core or archival, never both;
    ``len(self) == len(self.items())`` = recall messages + core + archival.
    """

    name: ClassVar[str] = "memgpt"
    state_version: ClassVar[int] = 1

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.memories.memgpt.MemGPT"
        #: Whitespace tokens core memory may hold.
        core_budget_tokens: int = param(200, ge=0)
        #: What stays in core when it overflows: lru, lfu, strength (MemoryBank-like), recency_relevance.
        policy: str = param("lru", choices=POLICIES)
        #: A message with this cosine to a core fact accesses it.
        access_threshold: float = param(0.3, ge=-1, le=1)
        #: strength: S of a new fact.
        strength_initial: float = param(1.0, gt=0)
        #: strength: S added per access.
        strength_increment: float = param(1.0, ge=0)
        #: recency_relevance: per-message decay of an entry's value since its last access.
        recency_decay: float = param(0.9, gt=0, le=1)
        #: Recall storage's BM25 tokenizer.
        recall_tokenizer: str = param("regex_words", choices=tuple(TOKENIZERS))
        #: Archival storage's Rust index.
        index: str = param("flat", choices=INDEXES)
        #: Its build and search parameters ({m: 32}).
        index_params: dict[str, Any] = param(factory=dict)
        #: The LLM behind fact extraction (agent_memory.llm.*; off by default).
        llm: dict[str, Any] = param(factory=dict)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.deciders: Deciders = make_deciders(self.config.llm)
        self._recall: list[MemoryItem] = []
        self._bm25 = BM25(tokenizer=self.config.recall_tokenizer)
        self._core: list[CoreEntry] = []
        self._archival: dict[int, MemoryItem] = {}
        self._vectors = TextVectors(self.config.index, self.config.index_params, "agent_memory.index_params")
        self._inserted = 0  # facts inserted so far (sequence numbers and archival ids)
        self.evictions: list[str] = []  # texts evicted, in order (for inspection)

    # -- the pager ---------------------------------------------------------------

    def core_tokens(self) -> int:
        return sum(e.tokens for e in self._core)

    def _access(self, entry: CoreEntry, pos: int) -> None:
        entry.last_pos, entry.last_s = pos, self.clock.now_s
        entry.count += 1
        entry.strength += self.config.strength_increment

    def value(self, entry: CoreEntry, pos: int, current: np.ndarray | None) -> tuple[float, ...]:
        """The entry's value under the policy (lowest is evicted first), then its insertion number."""
        c = self.config
        if c.policy == "lru":
            return (entry.last_pos, entry.inserted)
        if c.policy == "lfu":
            return (entry.count, entry.last_pos, entry.inserted)
        if c.policy == "strength":
            t_days = (self.clock.now_s - entry.last_s) / 86400.0
            return (math.exp(-t_days / entry.strength), entry.inserted)
        cos = float(entry.vector @ current) if current is not None else 0.0
        return (c.recency_decay ** (pos - entry.last_pos) * (1.0 + cos) / 2.0, entry.inserted)

    def _page(self, newest: CoreEntry, pos: int, current: np.ndarray | None) -> None:
        budget = self.config.core_budget_tokens
        while self.core_tokens() > budget:
            candidates = [e for e in self._core if e is not newest] or [newest]
            victim = min(candidates, key=lambda e: self.value(e, pos, current))
            self._core.remove(victim)
            self._archive([victim])

    def _archive(self, entries: list[CoreEntry]) -> None:
        ids = [e.inserted for e in entries]
        for e in entries:
            self._archival[e.inserted] = e.item
            self.evictions.append(e.item.text)
        self._vectors.add(self.embedder, [e.item.text for e in entries], ids)

    # -- AgentMemory -------------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Each message: into recall storage; it accesses similar core facts; a user turn's facts enter core."""
        if not items:
            return
        self._bm25.add([i.text for i in items])
        rows = np.asarray(self.embedder.embed([i.text for i in items]), dtype=np.float32)
        for item, row in zip(items, rows, strict=True):
            pos = len(self._recall)
            self._recall.append(item)
            for entry in self._core:
                if float(entry.vector @ row) >= self.config.access_threshold:
                    self._access(entry, pos)
            if item.role != "user":
                continue
            facts = [f for f in self.deciders.extract_facts(item.text) if f.strip()]
            if not facts:
                continue
            vectors = np.asarray(self.embedder.embed(facts), dtype=np.float32)
            for fact, vector in zip(facts, vectors, strict=True):
                held = next((e for e in self._core if e.item.text == fact), None)
                if held is not None:
                    if held.last_pos != pos:
                        self._access(held, pos)
                    continue
                entry = CoreEntry(
                    item=replace(item, text=fact, role="core", metadata={"source_role": item.role}),
                    vector=vector,
                    tokens=whitespace_tokens(fact),
                    inserted=self._inserted,
                    last_pos=pos,
                    last_s=self.clock.now_s,
                    strength=self.config.strength_initial,
                )
                self._inserted += 1
                self._core.append(entry)
                self._page(entry, pos, row)

    def search(self, query: str, k: int) -> list[ScoredItem]:
        if k <= 0 or len(self) == 0:
            return []
        out: list[ScoredItem] = []
        if self._core:
            q = np.asarray(self.embedder.embed([query]), dtype=np.float32)[0]
            core = sorted(
                ((float(e.vector @ q), -e.inserted, e) for e in self._core), key=lambda t: (t[0], t[1]), reverse=True
            )
            out += [ScoredItem(e.item, 2.0 + (1.0 + s) / 2.0) for s, _, e in core]
        arch = self._vectors.scores(self.embedder, query)
        for i in sorted(arch, key=lambda i: (-arch[i], -i)):
            out.append(ScoredItem(self._archival[i], 1.0 + (1.0 + arch[i]) / 2.0))
        if len(out) < k and self._recall:
            scores = self._bm25.scores(query)
            top = float(scores.max()) if len(scores) else 0.0
            for p in rank_by_scores(scores)[: k - len(out)]:
                out.append(ScoredItem(self._recall[int(p)], float(scores[p]) / top if top > 0 else 0.0))
        return out[:k]

    def __len__(self) -> int:
        return len(self._recall) + len(self._core) + len(self._archival)

    def items(self) -> list[MemoryItem]:
        return list(self._recall) + [e.item for e in self._core] + list(self._archival.values())

    @property
    def core(self) -> list[MemoryItem]:
        """Core memory's facts, in insertion order."""
        return [e.item for e in self._core]

    @property
    def archival(self) -> list[MemoryItem]:
        """Archival storage's facts, in eviction order."""
        return list(self._archival.values())

    # -- cost and state ------------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """Texts of every tier; core and archival vectors; the archival index beyond its vectors, the recall
        BM25 postings and the core's bookkeeping (``CORE_ENTRY_BYTES`` per entry)."""
        text = sum(len(m.text.encode()) for m in self.items())
        core_vectors = sum(int(e.vector.nbytes) for e in self._core)
        return {
            "text_bytes": text,
            "vector_bytes": core_vectors + self._vectors.vector_bytes(),
            "index_bytes": self._vectors.index_bytes() + self._bm25.memory_bytes() + CORE_ENTRY_BYTES * len(self._core),
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "recall": [m.to_json() for m in self._recall],
            "core": [
                {
                    "item": e.item.to_json(),
                    "tokens": e.tokens,
                    "inserted": e.inserted,
                    "last_pos": e.last_pos,
                    "last_s": e.last_s,
                    "count": e.count,
                    "strength": e.strength,
                }
                for e in self._core
            ],
            "core_vectors": np.asarray([e.vector for e in self._core], dtype=np.float32),
            "archival_ids": np.asarray(list(self._archival), dtype=np.int64),
            "archival": [m.to_json() for m in self._archival.values()],
            "vectors": self._vectors.to_state(),
            "inserted": self._inserted,
            "evictions": list(self.evictions),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._recall = [MemoryItem.from_json(m) for m in state["recall"]]
        self._bm25 = BM25(tokenizer=self.config.recall_tokenizer)
        self._bm25.add([m.text for m in self._recall])
        vectors = np.asarray(state["core_vectors"], dtype=np.float32)
        self._core = [
            CoreEntry(
                item=MemoryItem.from_json(e["item"]),
                vector=vectors[i].copy(),
                tokens=int(e["tokens"]),
                inserted=int(e["inserted"]),
                last_pos=int(e["last_pos"]),
                last_s=float(e["last_s"]),
                count=int(e["count"]),
                strength=float(e["strength"]),
            )
            for i, e in enumerate(state["core"])
        ]
        ids = [int(i) for i in state["archival_ids"]]
        self._archival = {i: MemoryItem.from_json(m) for i, m in zip(ids, state["archival"], strict=True)}
        self._vectors.from_state(state["vectors"])
        self._inserted = int(state["inserted"])
        self.evictions = list(state["evictions"])
