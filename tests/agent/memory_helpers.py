"""Helpers shared by the tests of the agent memories: bound contexts, a hand-checkable embedder, a small run
through the family, save/load round trips, per-user isolation."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from memarena.api import AgentMemory, Clock, Embedder, MemoryContext, MemoryItem, ScoredItem
from memarena.families.agent.family import TimedEmbedder, evaluate_question, rows_of
from memarena.families.agent.generate import generate
from memarena.families.agent.retrievers import HashingEmbedder

DIM = 256


def context(user: str = "u", now_s: float = 0.0) -> MemoryContext:
    return MemoryContext(user=user, embedder=HashingEmbedder(dim=DIM), clock=Clock(now_s))


def bound(mem: AgentMemory, user: str = "u", now_s: float = 0.0) -> AgentMemory:
    mem.bind(context(user, now_s))
    return mem


def turns(*texts: str, session: int = 0, user: str = "u", role: str = "user") -> list[MemoryItem]:
    return [
        MemoryItem(t, session=session, turn=i, user=user, session_id=f"s{session}", role=role)
        for i, t in enumerate(texts)
    ]


def snapshot(mem: AgentMemory, queries: tuple[str, ...]) -> tuple[Any, ...]:
    parts = mem.memory_breakdown()
    return (
        len(mem),
        [m.to_json() for m in mem.items()],
        [
            [(h.item.session_id, h.item.turn, h.item.text, round(h.score, 6)) for h in mem.search(q, 50)]
            for q in queries
        ],
        parts["text_bytes"],
        parts["vector_bytes"],
    )


def save_load(mem: AgentMemory, tmp_path: Path) -> AgentMemory:
    path = tmp_path / "m.mam"
    mem.save(path)
    return AgentMemory.load(
        path, MemoryContext(user=mem.context.user, embedder=HashingEmbedder(dim=DIM), clock=Clock(mem.clock.now_s))
    )


def family_rows(make: Callable[[], AgentMemory], questions: int = 8, size: int = 12) -> list[dict[str, Any]]:
    """Every row of a small generated haystack run through the family's evaluation."""
    emb = TimedEmbedder(HashingEmbedder(dim=DIM))
    results = [evaluate_question(inst, make(), emb) for inst in generate(size=size, questions=questions, seed=11)]
    return rows_of(results)


def check_rows(rows: list[dict[str, Any]]) -> None:
    assert rows and rows[-1]["question_type"] == "all"
    for row in rows:
        assert row["user_violations"] == 0
        assert row["memory_bytes"] > 0 and row["items_stored"] > 0
        for key, value in row.items():
            if key.startswith(("session_", "turn_", "ku_")) and not isinstance(value, list):
                assert 0.0 <= value <= 1.0, (row["question_type"], key, value)
    assert any(k.startswith("session_recall_any_at_") for k in rows[-1])


def isolated_hits(
    make: Callable[[], AgentMemory], texts: Sequence[str], query: str = "Lisbon cello"
) -> list[tuple[AgentMemory, list[ScoredItem]]]:
    """Users ana and bo, each with a memory from ``make`` fed ``texts`` (one session a text), searched for ``query``.

    Checks that every hit is an item of the memory's own user; returns ``(memory, hits)`` per user.
    """
    mems = {}
    for user in ("ana", "bo"):
        mem = bound(make(), user)
        for s, t in enumerate(texts):
            mem.add_many(turns(t, session=s, user=user))
        mems[user] = mem
    out = []
    for user, mem in mems.items():
        hits = mem.search(query, 100)
        assert {h.item.user for h in hits} == {user}
        out.append((mem, hits))
    return out


class KeywordEmbedder(Embedder):
    """One axis per keyword found in the lower-cased text (substring), one more for none; rows unit-norm.

    So cosines are hand-computable: a text with keywords {a, b} against one with {a} is 1/sqrt(2).
    """

    name: ClassVar[str] = "keyword_test"

    def __init__(self, keywords: Sequence[str]) -> None:  # a test double, never registered
        self.keywords = list(keywords)

    @property
    def dim(self) -> int:
        return len(self.keywords) + 1

    def embed(self, texts: Sequence[str]) -> Any:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for r, text in enumerate(texts):
            low = text.lower()
            hits = [i for i, kw in enumerate(self.keywords) if kw in low] or [len(self.keywords)]
            out[r, hits] = 1.0 / np.sqrt(len(hits))
        return out


def bind(memory: AgentMemory, embedder: Embedder | None = None, user: str = "u", now_s: float = 0.0) -> AgentMemory:
    memory.bind(MemoryContext(user=user, embedder=embedder or HashingEmbedder(dim=128), clock=Clock(now_s)))
    return memory


def sessions(n: int = 3, size: int = 20, seed: int = 6) -> list[list[MemoryItem]]:
    """The ``n`` x ``size`` sessions of generated haystacks (``n`` questions), as the family adds them."""
    out = []
    for inst in generate(size=size, questions=n, seed=seed):
        for p, (sid, session) in enumerate(zip(inst.haystack_session_ids, inst.haystack_sessions, strict=True)):
            out.append(
                [
                    MemoryItem(t.content, session=p, turn=i, user="u", session_id=sid, role=t.role, timestamp_s=1e9 + p)
                    for i, t in enumerate(session)
                ]
            )
    return out


QUERIES = ("Where do I live now?", "What pet do I have?", "How many plants have I bought?")


def round_trip(make: Callable[[], AgentMemory], tmp_path: Path) -> tuple[AgentMemory, AgentMemory]:
    """A filled memory and its save/load copy, checked equal in state, cost, items and searches."""
    mem = bind(make())
    for i, s in enumerate(sessions(2)):
        mem.clock.advance_to(1e9 + 86400.0 * i)
        mem.add_many(s)
    mem.save(tmp_path / "m.mam")
    back = AgentMemory.load(tmp_path / "m.mam", MemoryContext(user="u", embedder=HashingEmbedder(dim=128)))
    assert type(back) is type(mem) and back.config == mem.config
    assert back.memory_breakdown()["text_bytes"] == mem.memory_breakdown()["text_bytes"]
    assert [m.to_json() for m in back.items()] == [m.to_json() for m in mem.items()]
    for q in QUERIES:
        a, b = mem.search(q, 40), back.search(q, 40)
        assert [(h.item.to_json(), h.score) for h in a] == [(h.item.to_json(), h.score) for h in b]
    extra = sessions(3)[-1]
    mem.add_many(extra)
    back.add_many(extra)
    assert [m.to_json() for m in back.items()] == [m.to_json() for m in mem.items()]
    return mem, back
