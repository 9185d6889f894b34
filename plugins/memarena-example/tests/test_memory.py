"""MemoryBankLite: Ebbinghaus decay, reinforcement, forgetting, ranking, and the conformance suite."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
from memarena.api import AgentMemory, MemoryItem
from memarena.errors import InvalidConfigError
from memarena.testing.conformance import AgentMemoryConformance

from memarena_example.memory import MemoryBankLite, tokenize


class TestMemoryBankConformance(AgentMemoryConformance):
    @pytest.fixture(params=[0.0, 0.5, 1.0], ids=lambda w: f"w={w}")
    def make_memory(self, request: pytest.FixtureRequest) -> Callable[[], AgentMemory]:
        return lambda: MemoryBankLite(retention_weight=request.param)


def test_tokenize() -> None:
    assert tokenize("Alice's cat, Miso -- 3 years!") == ["alice", "s", "cat", "miso", "3", "years"]


def test_retention_follows_the_forgetting_curve() -> None:
    mem = MemoryBankLite(initial_strength=2.0)
    mem.add(MemoryItem("the cat is grey", session=0))
    mem.advance(3)
    assert mem.retention()[0] == pytest.approx(math.exp(-3 / 2))


def test_recall_strengthens_and_resets_the_clock() -> None:
    mem = MemoryBankLite(initial_strength=1.0, strength_increment=1.0)
    mem.add(MemoryItem("the cat is grey", session=0))
    mem.add(MemoryItem("the flight leaves friday", session=0))
    mem.advance(2)
    assert mem.retrieve("grey cat", 1)[0].text == "the cat is grey"
    r = mem.retention()
    assert r[0] == 1.0  # just recalled
    assert r[1] == pytest.approx(math.exp(-2))
    mem.advance(4)
    r = mem.retention()
    assert r[0] == pytest.approx(math.exp(-2 / 2))  # S = 2 after one recall
    assert r[1] == pytest.approx(math.exp(-4 / 1))


def test_forgetting_drops_faded_memories() -> None:
    mem = MemoryBankLite(initial_strength=1.0, forget_threshold=0.1)
    mem.add(MemoryItem("old note about the dentist", session=0))
    mem.add(MemoryItem("old note about the cat", session=0))
    mem.retrieve("cat", 1)  # strengthens the cat note: S = 2
    mem.add(MemoryItem("new note about the flight", session=3))
    # exp(-3/1) = 0.05 < 0.1: forgotten; exp(-3/2) = 0.22: kept.
    assert [m.text for m in mem.items()] == ["old note about the cat", "new note about the flight"]
    assert len(mem) == 2
    assert mem.retrieve("dentist", 5) == []


def test_recent_memories_outrank_faded_ones_of_equal_similarity() -> None:
    mem = MemoryBankLite(retention_weight=0.5)
    mem.add(MemoryItem("meeting with bob about the budget", session=0))
    mem.add(MemoryItem("meeting with bob about the roadmap", session=5))
    got = mem.retrieve("meeting with bob", 2)
    assert [m.session for m in got] == [5, 0]
    # With no retention weight the tie is broken by insertion order.
    flat = MemoryBankLite(retention_weight=0.0)
    flat.add(MemoryItem("meeting with bob about the budget", session=0))
    flat.add(MemoryItem("meeting with bob about the roadmap", session=5))
    assert [m.session for m in flat.retrieve("meeting with bob", 2)] == [0, 5]


def test_tfidf_weighs_rare_terms_more() -> None:
    mem = MemoryBankLite(retention_weight=0.0)
    for text in ("the weather today", "the train today", "the zeppelin", "the bus today"):
        mem.add(MemoryItem(text))
    scores = mem.scores("the zeppelin today")
    assert int(np.argmax(scores)) == 2
    assert np.all(scores > 0)
    assert mem.scores("nothing matches")[0] == 0.0
    assert mem.retrieve("nothing matches", 3) == []


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(InvalidConfigError, match="initial_strength"):
        MemoryBankLite(initial_strength=0)
    with pytest.raises(InvalidConfigError, match="retention_weight"):
        MemoryBankLite(retention_weight=2)
