"""``agent_memory=mem0``: mem0-style memory updates (Chhikara et al. 2025, arXiv 2504.19413), rules by default.

mem0's write path (github mem0ai/mem0, ``mem0/memory/main.py``,
``Memory._add_to_vector_store``): the LLM extracts facts from the new
messages (``USER_MEMORY_EXTRACTION_PROMPT``: facts "solely based on the
user's messages", as ``{"facts": [...]}``); for each fact the vector store
is searched for the most similar existing memories (``limit=5``); the old
memories (their UUIDs mapped to temporary ids ``"0"``, ``"1"``... so the LLM
cannot garble them) and the facts go to the LLM with
``DEFAULT_UPDATE_MEMORY_PROMPT`` (``mem0/configs/prompts.py``), which
answers ``{"memory": [{"id", "text", "event", "old_memory"}]}`` with events
ADD, UPDATE, DELETE, NONE; then ``_create_memory`` (embed, insert, history
``ADD``), ``_update_memory`` (re-embed, same id, history ``UPDATE`` with the
previous value), ``_delete_memory`` (remove, history ``DELETE``,
``is_deleted``) or nothing (NONE: "NOOP for Memory.").

Here, per user turn (``role == "user"``):

1. facts: the ``extract_facts`` step of :mod:`~memarena.families.agent.llm`
   (rule: the first-person statements);
2. for each fact in turn, its ``top_similar`` nearest memories (cosine of
   the embedder on the Rust flat index), shown as ids ``"0"``, ``"1"``...;
3. the ``decide`` step (rule :func:`~memarena.families.agent.llm.rule_decide`:
   identical -> NONE; same subject and relation, other value -> UPDATE, or
   DELETE when the fact is a negation; else ADD);
4. the event applied; a memory keeps the ``session``, ``session_id`` and
   ``turn`` of the message that last wrote it (``role="memory"``).

The **history** logs every event, NONE included (upstream logs the three
others): ``{"memory_id", "event", "old_memory", "new_memory",
"timestamp_s"}`` with the clock's time; it is part of the state and of the
cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from memarena.api import AgentMemory, MemoryItem, ScoredItem, param
from memarena.errors import InvariantError
from memarena.families.agent.llm import Deciders, Decision, make_deciders
from memarena.families.agent.memories._vectors import TextVectors

__all__ = ["HISTORY_ENTRY_BYTES", "Mem0"]

#: Bytes of one history entry beyond its texts: memory id (int64) and timestamp (float64).
HISTORY_ENTRY_BYTES = 16


class Mem0(AgentMemory):
    """Facts per user turn; ADD/UPDATE/DELETE/NONE against the most similar memories; a history (module docstring).

    Invariants: every memory has one live vector; ``len(self)`` is the
    number of live memories; the history only grows.
    """

    name: ClassVar[str] = "mem0"
    state_version: ClassVar[int] = 1

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.memories.mem0.Mem0"
        #: Existing memories each new fact is compared with (mem0: limit=5).
        top_similar: int = param(5, ge=1)
        #: Build and search parameters of the Rust flat index.
        index_params: dict[str, Any] = param(factory=dict)
        #: The LLM behind fact extraction and the update decision (agent_memory.llm.*; off by default).
        llm: dict[str, Any] = param(factory=dict)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.deciders: Deciders = make_deciders(self.config.llm)
        self._memories: dict[int, MemoryItem] = {}
        self._vec_of: dict[int, int] = {}  # memory id -> vector id
        self._mem_of: dict[int, int] = {}  # vector id -> memory id
        self._next_id = 0
        self._next_vec = 0
        self._history: list[dict[str, Any]] = []
        self._vectors = TextVectors("flat", self.config.index_params, "agent_memory.index_params")

    # -- the update step -------------------------------------------------------------

    def _embed_memory(self, mid: int, text: str) -> None:
        v = self._next_vec
        self._next_vec += 1
        self._vectors.add(self.embedder, [text], [v])
        self._vec_of[mid], self._mem_of[v] = v, mid

    def _unembed(self, mid: int) -> None:
        v = self._vec_of.pop(mid)
        del self._mem_of[v]
        self._vectors.delete([v])

    def _log(self, mid: int | None, event: str, old: str | None, new: str | None) -> None:
        self._history.append(
            {"memory_id": mid, "event": event, "old_memory": old, "new_memory": new, "timestamp_s": self.clock.now_s}
        )

    def similar(self, text: str) -> list[int]:
        """Memory ids of the ``top_similar`` memories nearest ``text``, nearest first (ties: older first)."""
        sims = self._vectors.scores(self.embedder, text)
        order = sorted(sims, key=lambda v: (-sims[v], v))[: self.config.top_similar]
        return [self._mem_of[v] for v in order]

    def apply(self, fact: str, source: MemoryItem) -> Decision:
        """Decide and apply the event for one new ``fact`` said in ``source``; returns the decision (ids as shown)."""
        near = self.similar(fact)
        shown = [(str(j), self._memories[mid].text) for j, mid in enumerate(near)]
        d = self.deciders.decide(shown, fact)
        if d.event in ("UPDATE", "DELETE", "NONE") and d.id:
            if not d.id.isdigit() or int(d.id) >= len(near):
                raise InvariantError(f"agent_memory=mem0: decision {d.event} names id {d.id!r} of {len(near)} shown")
            mid = near[int(d.id)]
        else:
            mid = -1
        if d.event == "ADD":
            mid = self._next_id
            self._next_id += 1
            self._memories[mid] = replace(source, text=d.text, role="memory", metadata={})
            self._embed_memory(mid, d.text)
            self._log(mid, "ADD", None, d.text)
        elif d.event == "UPDATE":
            old = self._memories[mid].text
            self._memories[mid] = replace(source, text=d.text, role="memory", metadata={})
            self._unembed(mid)
            self._embed_memory(mid, d.text)
            self._log(mid, "UPDATE", old, d.text)
        elif d.event == "DELETE":
            old = self._memories.pop(mid).text
            self._unembed(mid)
            self._log(mid, "DELETE", old, None)
        else:
            text = self._memories[mid].text if mid >= 0 else fact
            self._log(mid if mid >= 0 else None, "NONE", text, text)
        return d

    # -- AgentMemory ---------------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Each user turn's facts, in order, through :meth:`apply`."""
        for item in items:
            if item.role != "user":
                continue
            for fact in self.deciders.extract_facts(item.text):
                self.apply(fact, item)

    def search(self, query: str, k: int) -> list[ScoredItem]:
        if k <= 0 or not self._memories:
            return []
        sims = self._vectors.scores(self.embedder, query)
        order = sorted(sims, key=lambda v: (-sims[v], v))[:k]
        return [ScoredItem(self._memories[self._mem_of[v]], sims[v]) for v in order]

    def __len__(self) -> int:
        return len(self._memories)

    def items(self) -> list[MemoryItem]:
        return list(self._memories.values())

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every event, in order: memory_id, event, old_memory, new_memory, timestamp_s."""
        return [dict(h) for h in self._history]

    # -- cost and state ----------------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """Memories' texts and the history's (event names, old and new texts), UTF-8; vectors; the index beyond
        them, 16 bytes per memory (its vector id, both ways) and ``HISTORY_ENTRY_BYTES`` per history entry."""
        text = sum(len(m.text.encode()) for m in self._memories.values())
        for h in self._history:
            text += len(h["event"].encode())
            text += sum(len(h[key].encode()) for key in ("old_memory", "new_memory") if h[key] is not None)
        return {
            "text_bytes": text,
            "vector_bytes": self._vectors.vector_bytes(),
            "index_bytes": self._vectors.index_bytes()
            + 16 * len(self._memories)
            + HISTORY_ENTRY_BYTES * len(self._history),
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "ids": np.asarray(list(self._memories), dtype=np.int64),
            "memories": [m.to_json() for m in self._memories.values()],
            "vec_of": np.asarray([self._vec_of[mid] for mid in self._memories], dtype=np.int64),
            "next_id": self._next_id,
            "next_vec": self._next_vec,
            "history": [dict(h) for h in self._history],
            "vectors": self._vectors.to_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        ids = [int(i) for i in state["ids"]]
        self._memories = {mid: MemoryItem.from_json(m) for mid, m in zip(ids, state["memories"], strict=True)}
        self._vec_of = {mid: int(v) for mid, v in zip(ids, state["vec_of"], strict=True)}
        self._mem_of = {v: mid for mid, v in self._vec_of.items()}
        self._next_id = int(state["next_id"])
        self._next_vec = int(state["next_vec"])
        self._history = [dict(h) for h in state["history"]]
        self._vectors.from_state(state["vectors"])
