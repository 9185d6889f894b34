"""A MemoryBank-style agent memory: Ebbinghaus forgetting, TF-IDF retrieval.

Zhong et al., "MemoryBank: Enhancing Large Language Models with Long-Term
Memory", AAAI 2024. Each memory has a strength ``S`` and the time ``t`` since
it was stored or last recalled; its retention follows the Ebbinghaus
forgetting curve

.. math:: R = e^{-t / S}.

Recalling a memory makes it stronger (``S`` grows by ``strength_increment``)
and resets ``t``. Memories whose retention falls below ``forget_threshold``
are forgotten for good when time advances.

Time is counted in sessions (:attr:`memarena.api.MemoryItem.session`): the
memory's clock is the latest session it has seen. Retrieval ranks memories
by the cosine similarity of TF-IDF vectors (numpy), weighted by retention:

.. math:: \\mathrm{score} = \\cos(q, m) \\cdot \\bigl((1 - w) + w R\\bigr)

with ``w = retention_weight``; memories sharing no term with the query are
never returned.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from memarena.api import AgentMemory, MemoryItem
from memarena.errors import InvalidConfigError

__all__ = ["MemoryBankLite", "tokenize"]

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case alphanumeric words."""
    return _TOKEN.findall(text.lower())


@dataclass
class _Memory:
    item: MemoryItem
    terms: Counter[str]
    strength: float
    last_recall: float


class MemoryBankLite(AgentMemory):
    """MemoryBank-style memory: Ebbinghaus decay, strengthened by recall, TF-IDF retrieval.

    Invariants: ``len(self) == len(self.items())``; every held memory has
    strength ``>= initial_strength`` and retention above ``forget_threshold``
    as of the last time the clock advanced.

    :param initial_strength: Strength ``S`` of a new memory, in sessions.
    :param strength_increment: Added to ``S`` each time a memory is retrieved.
    :param retention_weight: ``w`` in the score: 0 ranks by similarity only,
        1 multiplies similarity by retention.
    :param forget_threshold: Memories whose retention falls below this are
        dropped when the clock advances (0 keeps everything).
    """

    name: ClassVar[str] = "memorybank_lite"

    @dataclass
    class Config:
        _target_: str = "memarena_example.memory.MemoryBankLite"
        #: Strength S of a new memory, in sessions.
        initial_strength: float = 1.0
        #: Added to S each time a memory is retrieved.
        strength_increment: float = 1.0
        #: Weight w of retention in the retrieval score (0: similarity only).
        retention_weight: float = 0.5
        #: Forget memories whose retention falls below this (0: never forget).
        forget_threshold: float = 0.0

    def __init__(
        self,
        initial_strength: float = 1.0,
        strength_increment: float = 1.0,
        retention_weight: float = 0.5,
        forget_threshold: float = 0.0,
    ) -> None:
        if initial_strength <= 0:
            raise InvalidConfigError(f"memorybank_lite: initial_strength must be > 0, got {initial_strength}")
        if strength_increment < 0:
            raise InvalidConfigError(f"memorybank_lite: strength_increment must be >= 0, got {strength_increment}")
        for key, v in (("retention_weight", retention_weight), ("forget_threshold", forget_threshold)):
            if not 0 <= v <= 1:
                raise InvalidConfigError(f"memorybank_lite: {key} must be in [0, 1], got {v}")
        self.initial_strength = float(initial_strength)
        self.strength_increment = float(strength_increment)
        self.retention_weight = float(retention_weight)
        self.forget_threshold = float(forget_threshold)
        self.now = 0.0
        self._memories: list[_Memory] = []
        self._index: tuple[dict[str, int], np.ndarray, np.ndarray] | None = None

    # -- AgentMemory -----------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        """Store ``item``; a later session advances the clock (and may forget)."""
        self.advance(item.session)
        self._memories.append(_Memory(item, Counter(tokenize(item.text)), self.initial_strength, float(item.session)))
        self._index = None

    def retrieve(self, query: str, k: int) -> list[MemoryItem]:
        """The ``k`` best memories for ``query``; each one returned is reinforced."""
        if k < 1 or not self._memories:
            return []
        scores = self.scores(query)
        ranked = [i for i in np.argsort(-scores, kind="stable") if scores[i] > 0][:k]
        for i in ranked:
            m = self._memories[i]
            m.strength += self.strength_increment
            m.last_recall = self.now
        return [self._memories[i].item for i in ranked]

    def __len__(self) -> int:
        return len(self._memories)

    def items(self) -> list[MemoryItem]:
        return [m.item for m in self._memories]

    # -- forgetting --------------------------------------------------------------

    def retention(self) -> np.ndarray:
        """``exp(-t / S)`` of every memory at the current time, in insertion order."""
        elapsed = np.array([self.now - m.last_recall for m in self._memories], dtype=np.float64)
        strength = np.array([m.strength for m in self._memories], dtype=np.float64)
        return np.exp(-np.maximum(elapsed, 0.0) / strength)

    def advance(self, session: float) -> None:
        """Move the clock to ``session`` (never backwards) and forget faded memories."""
        if session <= self.now:
            return
        self.now = float(session)
        if self.forget_threshold > 0 and self._memories:
            keep = self.retention() >= self.forget_threshold
            if not keep.all():
                self._memories = [m for m, kept in zip(self._memories, keep, strict=True) if kept]
                self._index = None

    # -- retrieval ---------------------------------------------------------------

    def scores(self, query: str) -> np.ndarray:
        """Retention-weighted TF-IDF cosine of ``query`` with every memory (no reinforcement)."""
        vocab, idf, docs = self._build_index()
        q = np.zeros(len(vocab), dtype=np.float64)
        for term, n in Counter(tokenize(query)).items():
            j = vocab.get(term)
            if j is not None:
                q[j] = (1.0 + math.log(n)) * idf[j]
        norm = np.linalg.norm(q)
        if norm == 0:
            return np.zeros(len(self._memories))
        cosine = docs @ (q / norm)
        w = self.retention_weight
        return cosine * ((1.0 - w) + w * self.retention())

    def _build_index(self) -> tuple[dict[str, int], np.ndarray, np.ndarray]:
        """Vocabulary, smoothed IDF and L2-normalised sublinear TF-IDF rows (cached until the next change)."""
        if self._index is None:
            vocab: dict[str, int] = {}
            for m in self._memories:
                for term in m.terms:
                    vocab.setdefault(term, len(vocab))
            n_docs = len(self._memories)
            tf = np.zeros((n_docs, len(vocab)), dtype=np.float64)
            for i, m in enumerate(self._memories):
                for term, n in m.terms.items():
                    tf[i, vocab[term]] = 1.0 + math.log(n)
            df = np.count_nonzero(tf, axis=0)
            idf = np.log((1.0 + n_docs) / (1.0 + df)) + 1.0
            docs = tf * idf
            norms = np.linalg.norm(docs, axis=1, keepdims=True)
            docs = np.divide(docs, norms, out=np.zeros_like(docs), where=norms > 0)
            self._index = (vocab, idf, docs)
        return self._index
