"""``agent_memory=scm``: Self-Controlled Memory (Wang et al. 2023, arXiv 2304.13343), without an LLM by default.

SCM's parts, as the released code (github wbbeyourself/SCM4LLMs,
``core/chat.py``, class ``ChatBot``) and the paper build them:

* **Memory stream:** every turn, with its embedding and its **summary**
  (upstream's ``Turn(user_input, system_response, user_sys_text, summ,
  embedding)``, summarised by the LLM). Here one stream item per turn the
  family adds; the summary is the ``summarize`` step of
  :mod:`~memarena.families.agent.llm` (rule: the first sentence, cut to
  ``summary_tokens`` tokens).
* **Flash memory:** the last ``flash_turns`` turns, always in context
  (upstream keeps the previous turn, ``self.history[-1]``, out of retrieval
  and concatenates it directly: a comment there says the previous turn is concatenated directly, no retrieval needed).
* **Activation (the memory controller):** whether to recall at all.
  Upstream asks the LLM (``is_history_need``: an answer with ``(B)`` means
  no). Rule: the best similarity of the query to a stream item outside the
  flash memory is at least ``activation_threshold``. Not activated, a search
  returns the flash memory only.
* **Ranking:** the paper ranks stream items by the *sum* of a relevance
  and a recency score (as MemEngine's ``SCMemoryRecall`` reimplements it:
  ``comprehensive_scores`` = text score + recency score, equal weights).
  Here ``score = cos(query, item) + recency_weight * recency_decay ** age``,
  ``age`` the stream positions since the item was stored or last recalled
  (an activated search refreshes what it returns). The released code ranks
  by the cosine alone (``get_related_turn``): ``recency_weight: 0``.
* **Full text vs summary under a token budget:** upstream keeps the
  retrieved turns within ``MAX_HISTORY_TOKENS = 2500`` (tiktoken tokens),
  judging for each turn "drop", "summary" or "raw" (``judge_drop_or_summary``)
  and turning raw turns into summaries until the history fits. Here tokens
  are **whitespace tokens** (``len(text.split())``, no model tokenizer), and
  the rule is greedy in rank order: the flash memory is counted first (full
  text); then each ranked item gets its full text if it fits the budget
  left, else its summary if that fits, else it is dropped.

A search returns what the context would hold: the flash items and the kept
ranked items, best score first, each :class:`~memarena.api.MemoryItem` a
turn of the stream (its ``session``, ``session_id`` and ``turn``), its text
the full text or the summary (``metadata["form"]`` says which).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from memarena.api import AgentMemory, MemoryItem, ScoredItem, param
from memarena.families.agent.llm import Deciders, make_deciders, whitespace_tokens
from memarena.families.agent.memories._vectors import INDEXES, TextVectors

__all__ = ["SCM"]


class SCM(AgentMemory):
    """Memory stream + flash memory + activation + full text or summary under a token budget (module docstring).

    Invariants: ``len(self) == len(self.items())`` (the stream); every
    stream item has one summary, one vector (id = its stream position) and
    one last-access position; a search's texts fit ``budget_tokens`` except
    that the flash memory is always kept.
    """

    name: ClassVar[str] = "scm"
    state_version: ClassVar[int] = 1

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.memories.scm.SCM"
        #: Turns of flash memory (the most recent, always in context).
        flash_turns: int = param(2, ge=0)
        #: The controller recalls when the query's best similarity to the stream reaches this (rule).
        activation_threshold: float = param(0.1, ge=-1, le=1)
        #: Weight of the recency score in the rank score (0: the released code's cosine alone).
        recency_weight: float = param(1.0, ge=0)
        #: Recency = recency_decay ** (stream positions since stored or last recalled).
        recency_decay: float = param(0.995, gt=0, le=1)
        #: Whitespace tokens the returned texts may hold (SCM4LLMs: MAX_HISTORY_TOKENS = 2500).
        budget_tokens: int = param(2500, ge=0)
        #: Whitespace tokens of a rule summary (first sentence, cut to this).
        summary_tokens: int = param(24, ge=1)
        #: The Rust index of the stream's vectors.
        index: str = param("flat", choices=INDEXES)
        #: Its build and search parameters ({m: 32}).
        index_params: dict[str, Any] = param(factory=dict)
        #: The LLM behind the summary and activation steps (agent_memory.llm.*; off by default).
        llm: dict[str, Any] = param(factory=dict)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.deciders: Deciders = make_deciders(self.config.llm)
        self._stream: list[MemoryItem] = []
        self._summaries: list[str] = []
        self._last: list[int] = []  # stream position of each item's last store or recall
        self._vectors = TextVectors(self.config.index, self.config.index_params, "agent_memory.index_params")

    # -- AgentMemory -----------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Append each turn to the stream with its summary and vector."""
        if not items:
            return
        first = len(self._stream)
        for offset, item in enumerate(items):
            self._stream.append(item)
            self._summaries.append(self.deciders.summarize(item.text, self.config.summary_tokens))
            self._last.append(first + offset)
        self._vectors.add(self.embedder, [i.text for i in items], range(first, first + len(items)))

    def rank_scores(self, query: str) -> dict[int, float]:
        """``cos + recency_weight * recency_decay ** age`` of every stream position (without refreshing)."""
        c = self.config
        now = len(self._stream) - 1
        sims = self._vectors.scores(self.embedder, query)
        return {p: s + c.recency_weight * c.recency_decay ** (now - self._last[p]) for p, s in sims.items()}

    def activated(self, query: str) -> bool:
        """The controller's decision for ``query`` (the rule: best similarity outside flash >= threshold)."""
        n = len(self._stream)
        flash = set(range(max(0, n - self.config.flash_turns), n))
        sims = self._vectors.scores(self.embedder, query)
        best = max((s for p, s in sims.items() if p not in flash), default=-np.inf)
        texts = [self._stream[p].text for p in sorted(flash)]
        return bool(self.deciders.should_recall(query, texts, float(best), self.config.activation_threshold))

    def search(self, query: str, k: int) -> list[ScoredItem]:
        n = len(self._stream)
        if k <= 0 or n == 0:
            return []
        c = self.config
        flash = list(range(max(0, n - c.flash_turns), n))
        scores = self.rank_scores(query)
        budget = c.budget_tokens - sum(whitespace_tokens(self._stream[p].text) for p in flash)
        kept: list[tuple[float, int, str]] = [(scores.get(p, -np.inf), p, "full") for p in flash]
        if self.activated(query):
            ranked = sorted((p for p in scores if p not in set(flash)), key=lambda p: (-scores[p], -p))
            recalled = []
            for p in ranked:
                if len(kept) >= k:
                    break
                full = whitespace_tokens(self._stream[p].text)
                summary = whitespace_tokens(self._summaries[p])
                if full <= budget:
                    kept.append((scores[p], p, "full"))
                    budget -= full
                elif summary <= budget:
                    kept.append((scores[p], p, "summary"))
                    budget -= summary
                else:
                    continue
                recalled.append(p)
            for p in recalled:  # recalled: recency restarts (MemEngine's __retention__)
                self._last[p] = n - 1
        kept.sort(key=lambda t: (-t[0], -t[1]))
        out = []
        for score, p, form in kept[:k]:
            item = self._stream[p]
            text = item.text if form == "full" else self._summaries[p]
            out.append(ScoredItem(replace(item, text=text, metadata={**item.metadata, "form": form}), float(score)))
        return out

    def __len__(self) -> int:
        return len(self._stream)

    def items(self) -> list[MemoryItem]:
        return list(self._stream)

    @property
    def summaries(self) -> list[str]:
        """Each stream item's summary, by stream position."""
        return list(self._summaries)

    # -- cost and state ----------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """Texts and summaries (UTF-8); vectors; the index beyond them plus 8 bytes of last-access per item."""
        text = sum(len(i.text.encode()) for i in self._stream) + sum(len(s.encode()) for s in self._summaries)
        return {
            "text_bytes": text,
            "vector_bytes": self._vectors.vector_bytes(),
            "index_bytes": self._vectors.index_bytes() + 8 * len(self._last),
        }

    def get_state(self) -> dict[str, Any]:
        return {
            "stream": [i.to_json() for i in self._stream],
            "summaries": list(self._summaries),
            "last": np.asarray(self._last, dtype=np.int64),
            "vectors": self._vectors.to_state(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._stream = [MemoryItem.from_json(i) for i in state["stream"]]
        self._summaries = list(state["summaries"])
        self._last = [int(x) for x in state["last"]]
        self._vectors.from_state(state["vectors"])
