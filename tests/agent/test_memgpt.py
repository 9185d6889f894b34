"""agent_memory=memgpt: the pager's eviction under each policy (hand-computed), tiers, cost, state, family run."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from memarena.api import AgentMemory, MemoryItem
from memarena.families.agent.memories.memgpt import CORE_ENTRY_BYTES, POLICIES, MemGPT
from memarena.testing.conformance import AgentMemoryConformance
from tests.agent.memory_helpers import KeywordEmbedder, bind, check_rows, family_rows, round_trip

DAY = 86400.0
# (day, role, text): three facts of 3 tokens (A tea, B cat, C chess), assistant turns that access them
# (cosine 1 >= access_threshold 0.9), then a fourth fact of 4 tokens (D) that overflows the 10-token core.
SCRIPT = (
    (0, "user", "I like tea."),  # pos 0: A inserted
    (1, "user", "I own cats."),  # pos 1: B inserted
    (2, "user", "I play chess."),  # pos 2: C inserted
    (3, "assistant", "Chess!"),  # pos 3: C accessed (count 2)
    (4, "assistant", "More chess?"),  # pos 4: C accessed (count 3)
    (5, "assistant", "Cats."),  # pos 5: B accessed (count 2)
    (6, "assistant", "Tea."),  # pos 6: A accessed (count 2)
    (8, "user", "I read chess books."),  # pos 7, day 8: D inserted, 13 tokens > 10: one eviction
)


def scripted(policy: str) -> MemGPT:
    mem = MemGPT(policy=policy, core_budget_tokens=10, access_threshold=0.9, recency_decay=0.9)
    bind(mem, KeywordEmbedder(["tea", "cat", "chess", "books"]))
    for pos, (day, role, text) in enumerate(SCRIPT):
        mem.clock.advance_to(day * DAY)
        mem.add_many([MemoryItem(text, session=pos, turn=0, session_id=f"s{pos}", role=role)])
    return mem


@pytest.mark.parametrize(
    ("policy", "evicted"),
    [
        # last access: A 6, B 5, C 4 -> C
        ("lru", "I play chess."),
        # accesses: A 2, B 2, C 3; the tie A/B goes to the older last access, B (5 < 6)
        ("lfu", "I own cats."),
        # exp(-t/S) at day 8: A exp(-2/2) = .368, B exp(-3/2) = .223, C exp(-4/3) = .264 -> B
        ("strength", "I own cats."),
        # 0.9 ** (7 - last) * (1 + cos(entry, "I read chess books.")) / 2:
        # A .9 * .5 = .45, B .81 * .5 = .405, C .729 * (1 + 1/sqrt2) / 2 = .622 -> B (pure recency would evict C)
        ("recency_relevance", "I own cats."),
    ],
)
def test_pager_evicts_by_policy(policy: str, evicted: str) -> None:
    mem = scripted(policy)
    assert mem.evictions == [evicted]
    assert [m.text for m in mem.archival] == [evicted]
    kept = [t for t in ("I like tea.", "I own cats.", "I play chess.") if t != evicted] + ["I read chess books."]
    assert [m.text for m in mem.core] == kept
    assert mem.core_tokens() == 10
    assert len(mem) == len(SCRIPT) + 4  # every message in recall storage, the four facts in core or archival


def test_pager_values_by_hand() -> None:
    mem = scripted("strength")
    entries = {e.item.text: e for e in mem._core}
    assert (entries["I like tea."].count, entries["I like tea."].strength) == (2, 2.0)
    values = {t: mem.value(e, 7, None)[0] for t, e in entries.items()}
    assert values["I like tea."] == pytest.approx(np.exp(-1.0))
    assert values["I play chess."] == pytest.approx(np.exp(-4 / 3))


def test_eviction_order_over_several_overflows() -> None:
    mem = MemGPT(policy="lru", core_budget_tokens=6)
    bind(mem, KeywordEmbedder(["tea", "cat", "chess", "books"]))
    for pos, text in enumerate(["I like tea.", "I own cats.", "I play chess.", "I read books."]):
        mem.add_many([MemoryItem(text, session=pos, turn=0)])
    assert mem.evictions == ["I like tea.", "I own cats."]
    too_long = MemGPT(core_budget_tokens=2)
    bind(too_long, KeywordEmbedder(["tea"]))
    too_long.add(MemoryItem("I like tea."))
    assert too_long.core == [] and [m.text for m in too_long.archival] == ["I like tea."]  # alone over the budget


def test_search_core_then_archival_then_recall() -> None:
    mem = scripted("lru")
    hits = mem.search("chess", 100)
    # core: "I read chess books." (cos 1/sqrt2) above the other two (cos 0); then archival "I play chess." (cos 1)
    assert [h.item.text for h in hits[:4]] == ["I read chess books.", "I like tea.", "I own cats.", "I play chess."]
    assert [m.text for m in mem.archival] == ["I play chess."]  # the fourth hit came from archival storage
    assert hits[0].score == pytest.approx(2 + (1 + 1 / np.sqrt(2)) / 2) and hits[3].score == pytest.approx(2.0)
    assert len(hits) == len(mem) and all(a.score >= b.score for a, b in itertools.pairwise(hits))
    recall = [h.item for h in hits[4:]]
    assert {m.text for m in recall} == {t for _, _, t in SCRIPT} and "chess" in recall[0].text.lower()
    assert mem.search("chess", 2) == hits[:2] and mem.search("chess", 0) == []


def test_memory_breakdown_is_what_it_holds() -> None:
    mem = scripted("lru")
    texts = sum(len(t.encode()) for _, _, t in SCRIPT) + sum(
        len(t.encode()) for t in ("I like tea.", "I own cats.", "I play chess.", "I read chess books.")
    )
    archival_vectors = 1 * 5 * 4
    assert mem.memory_breakdown() == {
        "text_bytes": texts,
        "vector_bytes": 3 * 5 * 4 + archival_vectors,
        "index_bytes": (mem._vectors.index.memory_bytes() - archival_vectors)
        + mem._bm25.memory_bytes()
        + 3 * CORE_ENTRY_BYTES,
    }


@pytest.mark.parametrize("policy", POLICIES)
def test_save_load_round_trip(policy: str, tmp_path: Path) -> None:
    mem, back = round_trip(lambda: MemGPT(policy=policy, core_budget_tokens=30), tmp_path)
    assert mem.evictions and back.evictions == mem.evictions  # the pager ran, and the copy pages alike


def test_family_run_metrics_in_unit_interval() -> None:
    check_rows(family_rows(lambda: MemGPT(core_budget_tokens=40, policy="recency_relevance")))


# Texts without a first-person statement: no fact enters core, so each add is one item (recall storage).
PLAIN = (
    "The dentist appointment is on Tuesday at 9am near the old harbour.",
    "Grandma's lemon cake needs three eggs and a cup of sugar.",
    "The flight to Osaka leaves from gate 42 on Friday evening.",
    "Alice recommended a bakery in Lisbon that sells lemon tarts.",
    "The museum opens at ten and closes at six on weekdays.",
    "Bazel replaced make as the build system this quarter.",
)


class TestMemGPTConformance(AgentMemoryConformance):
    @pytest.fixture(params=["lru-flat", "strength-hnsw"])
    def make_memory(self, request: pytest.FixtureRequest) -> Callable[[], AgentMemory]:
        policy, index = request.param.split("-")
        return lambda: bind(MemGPT(policy=policy, index=index))

    @pytest.fixture
    def memory_items(self) -> list[MemoryItem]:
        return [MemoryItem(text, session=0, turn=i) for i, text in enumerate(PLAIN)]
