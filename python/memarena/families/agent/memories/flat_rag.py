"""``agent_memory=flat_rag``: LongMemEval's flat retrieval baseline, on BM25 or a Rust vector index.

What LongMemEval's ``src/retrieval/run_retrieval.py`` does for one question
(``process_item_flat_index`` and ``DenseRetrievalMaster.run_flat_retrieval``),
as a memory that grows one session at a time:

* **Values** are sessions or turns (``granularity``), of the **user's**
  turns only: a session's value is the contents of its user turns joined by
  ``' '`` (``' '.join([turn['content'] for turn in data if turn['role'] ==
  'user'])``; a session without user turns is an empty document, which
  still counts in BM25's statistics), a turn's value is its content
  (``for i_turn, turn in enumerate(data): if turn['role'] == 'user': ...``).
  These are the documents of :func:`memarena.families.agent.metrics.build_corpus`,
  in the same order when sessions are added in haystack order.
* **Keys** are the values, optionally expanded with the user's facts
  (``fact_keys``), as upstream's ``resolve_expansion`` does with LLM-extracted
  user facts; here the facts come from the rule-based
  :func:`~memarena.families.agent.facts.extract_facts`, joined by ``' '``
  (upstream's ``' '.join(cur_item_expansions)`` without ``split``):
  ``merge`` indexes ``facts + ' ' + value`` in place of the value
  (``out_corpus.append(expansion_item + ' ' + existing_corpus[i])``; a value
  with no facts keeps its own text), ``separate`` indexes the facts as one
  more key of the value (``existing_corpus += ...`` with the value's id). A
  value's score is its best key's; results are values, each once.
* **Retrievers:** ``bm25`` ranks keys with
  :class:`~memarena.families.agent.retrievers.BM25` (``rank_bm25.BM25Okapi``'s
  scores, bit for bit; ``tokenizer`` defaults to upstream's ``split(" ")``)
  and orders them as upstream does, ``np.argsort(scores)[::-1]``
  (:func:`~memarena.families.agent.metrics.rank_by_scores`), so ranking
  every value gives upstream's ``rankings`` exactly. ``dense`` embeds keys
  and query with the family's embedder (unit rows) and searches a Rust index
  (``index: flat | hnsw | simhash``, inner product, ``index_params`` passed
  to the registered index: ``{m: 32}``, ``{n_bits: 8, n_probes: 4}``).

``add_many`` makes, at session granularity, one value per session id among
its items (the family adds one whole session per call); ``add`` is
``add_many`` of one item. At turn granularity every user item is a value,
the others are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from memarena.api import AgentMemory, MemoryItem, ScoredItem, param
from memarena.families.agent.facts import extract_facts
from memarena.families.agent.family import SessionItems
from memarena.families.agent.memories._vectors import ALL_INDEXES, new_index, restore_index
from memarena.families.agent.metrics import rank_by_scores
from memarena.families.agent.retrievers import BM25, TOKENIZERS

__all__ = ["FlatRAG"]

INDEXES: tuple[str, ...] = ALL_INDEXES


class FlatRAG(AgentMemory):
    """LongMemEval's flat retrieval baseline: session or turn values, BM25 or dense keys (see the module docstring).

    Invariants: ``len(self) == len(self.items())`` (the values); every key
    belongs to one value (``key_value``); with ``fact_keys: none`` keys and
    values are one to one, in order; a search returns each value at most once.
    """

    name: ClassVar[str] = "flat_rag"
    state_version: ClassVar[int] = 1

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.memories.flat_rag.FlatRAG"
        #: What a value is: a whole session (its user turns joined by ' ') or one user turn.
        granularity: str = param("session", choices=("session", "turn"))
        #: bm25 (rank_bm25's BM25Okapi) or dense (the embedder on a Rust index).
        retriever: str = param("bm25", choices=("bm25", "dense"))
        #: BM25's tokenizer: whitespace_split is LongMemEval's text.split(" ").
        tokenizer: str = param("whitespace_split", choices=tuple(TOKENIZERS))
        #: BM25 term-frequency saturation.
        k1: float = param(1.5, gt=0)
        #: BM25 length normalisation.
        b: float = param(0.75, ge=0, le=1)
        #: BM25 floor of negative idfs, as a fraction of the mean idf.
        epsilon: float = param(0.25, ge=0)
        #: Keys expanded with the user's first-person statements: none, merge (facts + value) or separate.
        fact_keys: str = param("none", choices=("none", "merge", "separate"))
        #: Dense retriever: the registered index (index=<name>) holding the key vectors.
        index: str = param("flat", choices=INDEXES)
        #: Dense retriever: build and search parameters of that index ({m: 32}, {n_probes: 0}).
        index_params: dict[str, Any] = param(factory=dict)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._values: list[MemoryItem] = []
        self._keys: list[str] = []
        self._key_value: list[int] = []
        self._bm25: BM25 | None = None
        self._index: Any = None
        self._indexed = 0  # keys[:_indexed] are in the BM25 index or the vector index
        self._reset_retriever()
        if self.config.retriever == "dense":
            self._new_index(1)  # bad index_params fail here, not at the first search

    def _reset_retriever(self) -> None:
        c = self.config
        self._bm25 = BM25(c.k1, c.b, c.epsilon, c.tokenizer) if c.retriever == "bm25" else None
        self._index = None
        self._indexed = 0

    def _new_index(self, dim: int) -> Any:
        return new_index(self.config.index, self.config.index_params, dim)

    # -- values and keys ---------------------------------------------------------

    def _new_values(self, items: Sequence[MemoryItem]) -> list[MemoryItem]:
        if isinstance(items, SessionItems):  # the family's session: read the turns, make no per-turn item
            return self._session_values(items)
        if self.config.granularity == "turn":
            return [item for item in items if item.role == "user"]
        sessions: dict[str, list[MemoryItem]] = {}
        for item in items:
            sessions.setdefault(item.session_id, []).append(item)
        out = []
        for sid, group in sessions.items():
            users = [t for t in group if t.role == "user"]
            first = group[0]
            out.append(
                MemoryItem(
                    " ".join(t.text for t in users),
                    session=first.session,
                    turn=-1,
                    metadata={"turns": [t.turn for t in users]},
                    user=first.user,
                    session_id=sid,
                    role="user",
                    timestamp_s=first.timestamp_s,
                )
            )
        return out

    def _session_values(self, items: SessionItems) -> list[MemoryItem]:
        """``_new_values`` of one whole session, the same values, from its turns."""
        if self.config.granularity == "turn":
            return items.of_role("user")
        if not len(items):
            return []
        turns: list[int] = []
        texts: list[str] = []
        for i, t in enumerate(items.turns):
            if t.role == "user":
                turns.append(i)
                texts.append(t.content)
        return [
            MemoryItem(
                " ".join(texts),
                items.session,
                -1,
                {"turns": turns},
                user=items.user,
                session_id=items.session_id,
                role="user",
                timestamp_s=items.timestamp_s,
            )
        ]

    def _keys_of(self, text: str) -> list[str]:
        mode = self.config.fact_keys
        if mode == "none":
            return [text]
        facts = " ".join(extract_facts(text))
        if not facts:
            return [text]
        return [f"{facts} {text}"] if mode == "merge" else [text, facts]

    def _flush(self) -> None:
        """Index the keys added since the last flush: one BM25 add, or one embedding call and one index add.

        Keys wait in ``self._keys`` from their ``add_many`` to the next search
        (or state, or size): a BM25 index and an embedder do the same work
        on one batch as on many, minus the per-call cost, which at M-like
        size (500 sessions) was most of flat_rag's ingest.
        """
        first = self._indexed
        if first == len(self._keys):
            return
        keys = self._keys[first:]
        self._indexed = len(self._keys)
        if self._bm25 is not None:
            self._bm25.add(keys)
            return
        vectors = np.ascontiguousarray(self.embedder.embed(keys), dtype=np.float32)
        if self._index is None:
            self._index = self._new_index(vectors.shape[1])
        ids = np.arange(first, first + len(keys), dtype=np.uint64)
        self._index.add(vectors, ids)

    # -- AgentMemory -------------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        """Store one item (a value of its own at either granularity; an assistant turn is dropped at turn level)."""
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Store one session's items: one value per session id (session) or per user turn (turn)."""
        keys: list[str] = []
        owners: list[int] = []
        values = self._new_values(items)
        if self.config.fact_keys == "none":  # one key per value, its text
            first = len(self._values)
            self._values += values
            keys = [value.text for value in values]
            owners = list(range(first, first + len(values)))
            values = []
        for value in values:
            v = len(self._values)
            self._values.append(value)
            for key in self._keys_of(value.text):
                keys.append(key)
                owners.append(v)
        if keys and self._bm25 is None:
            _ = self.embedder  # no embedder bound: fail at the add, not at the first search
        self._keys += keys  # indexed at the next search (_flush)
        self._key_value += owners

    def value_scores(self, query: str) -> np.ndarray:
        """BM25: the score of every value (its best key's), by insertion order."""
        assert self._bm25 is not None, "value_scores is the bm25 retriever's"
        self._flush()
        key_scores = self._bm25.scores(query)
        if len(self._keys) == len(self._values):
            return key_scores
        scores = np.full(len(self._values), -np.inf)
        np.maximum.at(scores, np.asarray(self._key_value, dtype=np.int64), key_scores)
        return scores

    def search(self, query: str, k: int) -> list[ScoredItem]:
        """At most ``k`` values, best first: BM25 in upstream's order, or the index's nearest keys."""
        n = len(self._values)
        if k <= 0 or n == 0:
            return []
        if self._bm25 is not None:
            scores = self.value_scores(query)
            order = rank_by_scores(scores)[:k]
            values = self._values
            return list(map(ScoredItem, [values[i] for i in order.tolist()], scores[order].tolist()))
        self._flush()
        q = np.ascontiguousarray(self.embedder.embed([query]), dtype=np.float32)
        n_keys = len(self._keys)
        per_value = -(-n_keys // n)  # keys per value, at most this many on average; all when k covers everything
        want = n_keys if k >= n else min(n_keys, k * max(per_value, 1) * 2)
        dist, ids = self._index.search(q, want)
        hits: list[ScoredItem] = []
        seen: set[int] = set()
        key_value = self._key_value
        for d, key in zip(dist[0].tolist(), ids[0].tolist(), strict=True):
            if key < 0:
                continue
            v = key_value[key]
            if v not in seen:
                seen.add(v)
                hits.append(ScoredItem(self._values[v], float(d)))
                if len(hits) == k:
                    break
        return hits

    def __len__(self) -> int:
        return len(self._values)

    def items(self) -> list[MemoryItem]:
        return list(self._values)

    @property
    def keys(self) -> list[str]:
        """The indexed key texts, by key id."""
        return list(self._keys)

    # -- cost ----------------------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """Values' and extra keys' UTF-8 bytes; key vectors; the BM25 postings or the index beyond its vectors."""
        self._flush()
        text = sum(len(v.text.encode()) for v in self._values)
        text += sum(
            len(key.encode()) for key, v in zip(self._keys, self._key_value, strict=True) if key != self._values[v].text
        )
        if self._bm25 is not None:
            return {"text_bytes": text, "vector_bytes": 0, "index_bytes": self._bm25.memory_bytes()}
        if self._index is None:
            return {"text_bytes": text, "vector_bytes": 0, "index_bytes": 0}
        vectors = len(self._keys) * int(self._index.dim) * 4
        return {
            "text_bytes": text,
            "vector_bytes": vectors,
            "index_bytes": max(0, self._index.memory_bytes() - vectors),
        }

    # -- durability ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        self._flush()
        return {
            "values": [v.to_json() for v in self._values],
            "keys": list(self._keys),
            "key_value": np.asarray(self._key_value, dtype=np.int64),
            "index": None if self._index is None else self._index.to_bytes(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._values = [MemoryItem.from_json(v) for v in state["values"]]
        self._keys = list(state["keys"])
        self._key_value = [int(v) for v in state["key_value"]]
        self._reset_retriever()
        if self._bm25 is not None:
            return  # the keys are indexed at the next search: the same postings, the same scores
        self._index = restore_index(state["index"], self._new_index)
        self._indexed = len(self._keys)
