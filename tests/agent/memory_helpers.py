"""Helpers shared by the tests of the agent memories: a bound context, a small run through the family, isolation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from memarena.api import AgentMemory, Clock, MemoryContext, MemoryItem
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
