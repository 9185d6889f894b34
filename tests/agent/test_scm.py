"""agent_memory=scm: activation, rank = relevance + recency, full text vs summary under the budget; cost; state."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from memarena.api import AgentMemory, MemoryItem
from memarena.families.agent.memories.scm import SCM
from memarena.testing.conformance import AgentMemoryConformance
from tests.agent.memory_helpers import KeywordEmbedder, bind, check_rows, family_rows, round_trip
from tests.agent.test_llm import FakeServer

R2 = 1 / np.sqrt(2)
STREAM = (
    "I live in Lisbon now.",  # 5 tokens, lisbon
    "The cat sleeps all day long. It is lazy.",  # 9 tokens (summary: the first sentence, 6), cat
    "Pizza tonight.",  # 2 tokens, pizza
    "Okay thanks.",  # 2 tokens, nothing: the flash memory
)


def stream_memory(**config: object) -> SCM:
    mem = SCM(flash_turns=1, recency_weight=1.0, recency_decay=0.5, **config)  # type: ignore[arg-type]
    bind(mem, KeywordEmbedder(["lisbon", "cat", "pizza"]))
    mem.add_many([MemoryItem(t, session=0, turn=i, session_id="s0") for i, t in enumerate(STREAM)])
    return mem


def test_rank_is_relevance_plus_recency() -> None:
    mem = stream_memory()
    # query "lisbon cat": cos 1/sqrt2 with items 0 and 1, 0 with 2 and 3; recency 0.5 ** age, ages 3, 2, 1, 0
    assert mem.rank_scores("lisbon cat?") == pytest.approx({0: R2 + 0.125, 1: R2 + 0.25, 2: 0.5, 3: 1.0})
    assert mem.summaries == ["I live in Lisbon now.", "The cat sleeps all day long.", "Pizza tonight.", "Okay thanks."]


def test_not_activated_returns_the_flash_memory_only() -> None:
    mem = stream_memory(activation_threshold=0.8)  # best similarity outside flash: 1/sqrt2 < 0.8
    assert not mem.activated("lisbon cat?")
    hits = mem.search("lisbon cat?", 10)
    assert [(h.item.turn, h.item.metadata["form"]) for h in hits] == [(3, "full")]
    assert mem.rank_scores("lisbon cat?")[1] == pytest.approx(R2 + 0.25)  # nothing recalled, nothing refreshed


def test_budget_chooses_full_text_summary_or_drop() -> None:
    mem = stream_memory(activation_threshold=0.5, budget_tokens=10)
    assert mem.activated("lisbon cat?")
    hits = mem.search("lisbon cat?", 10)
    # flash (item 3, 2 tokens) first: 8 left. Rank: 1 (0.957), 0 (0.832), 2 (0.5).
    # item 1: full 9 > 8, summary 6 <= 8 -> summary, 2 left; item 0: 5 and 5 > 2 -> dropped; item 2: full 2 -> full.
    assert [(h.item.turn, h.item.metadata["form"], h.item.text) for h in hits] == [
        (3, "full", "Okay thanks."),
        (1, "summary", "The cat sleeps all day long."),
        (2, "full", "Pizza tonight."),
    ]
    assert [h.score for h in hits] == pytest.approx([1.0, R2 + 0.25, 0.5])
    # the recalled items' recency restarts: age 0 now
    assert mem.rank_scores("lisbon cat?") == pytest.approx({0: R2 + 0.125, 1: R2 + 1.0, 2: 1.0, 3: 1.0})
    assert mem.items()[1].text == STREAM[1]  # the stream keeps the full text


def test_a_large_budget_keeps_every_full_text_and_k_cuts() -> None:
    mem = stream_memory(activation_threshold=0.5, budget_tokens=100)
    hits = mem.search("lisbon cat?", 10)
    assert [h.item.turn for h in hits] == [3, 1, 0, 2] and {h.item.metadata["form"] for h in hits} == {"full"}
    assert [h.item.turn for h in stream_memory(activation_threshold=0.5).search("lisbon cat?", 2)] == [3, 1]
    assert stream_memory().search("x", 0) == [] and bind(SCM()).search("x", 3) == []


def test_memory_breakdown_is_what_it_holds() -> None:
    mem = stream_memory()
    texts = sum(len(t.encode()) for t in STREAM) + sum(len(s.encode()) for s in mem.summaries)
    index = mem._vectors.index
    assert mem.memory_breakdown() == {
        "text_bytes": texts,
        "vector_bytes": 4 * 4 * 4,  # 4 items x dim 4 x float32
        "index_bytes": index.memory_bytes() - 64 + 8 * 4,  # the index beyond its vectors + last-access positions
    }


def test_save_load_round_trip(tmp_path: Path) -> None:
    round_trip(lambda: SCM(), tmp_path)
    round_trip(lambda: SCM(index="hnsw", budget_tokens=60), tmp_path / "h")


def test_family_run_metrics_in_unit_interval() -> None:
    check_rows(family_rows(lambda: SCM()))


def test_llm_summary_and_activation_steps() -> None:
    server = FakeServer()
    try:
        mem = SCM(flash_turns=1, llm=server.llm())
        bind(mem, KeywordEmbedder(["lisbon"]))
        server.reply("User lives in Lisbon.")
        server.reply("Thanks.")
        mem.add_many([MemoryItem("I live in Lisbon now, it is sunny.", turn=0), MemoryItem("Okay thanks.", turn=1)])
        assert mem.summaries == ["User lives in Lisbon.", "Thanks."]
        first = server.requests[0]["json"]
        assert first["model"] == "fake-1" and "I live in Lisbon now, it is sunny." in first["messages"][0]["content"]
        assert "at most 24 words" in first["messages"][0]["content"]
        server.reply("(B) no, the recent turn is enough")
        assert [h.item.turn for h in mem.search("lisbon?", 5)] == [1]  # not activated: flash only
        server.reply("(A) yes")
        assert [h.item.turn for h in mem.search("lisbon?", 5)] == [0, 1]
        assert "Okay thanks." in server.requests[2]["json"]["messages"][0]["content"]  # the flash memory is shown
        assert json.loads(json.dumps(server.requests[3]["json"]))["temperature"] == 0.0
    finally:
        server.close()


class TestSCMConformance(AgentMemoryConformance):
    @pytest.fixture(params=["flat", "hnsw"])
    def make_memory(self, request: pytest.FixtureRequest) -> Callable[[], AgentMemory]:
        return lambda: bind(SCM(index=request.param))
