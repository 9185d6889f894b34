"""agent_memory=memorybank: retention by hand (both formulas), seeded forgetting, recall, cost, save/load, family."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.api import AgentMemory, MemoryItem
from memarena.errors import InvalidConfigError
from memarena.families.agent.memories.memorybank import META_BYTES_PER_MEMORY, MemoryBank, retention
from memarena.testing.conformance import AgentMemoryConformance
from tests.agent.memory_helpers import DIM, bound, check_rows, family_rows, isolated_hits, save_load, snapshot, turns

DAY = 86400.0


def bank(**params: object) -> MemoryBank:
    mem = MemoryBank(**params)  # type: ignore[arg-type]
    bound(mem)
    return mem


class TestMemoryBankConformance(AgentMemoryConformance):
    @pytest.fixture(params=["round-flat", "turn-hnsw", "upstream-flat"])
    def make_memory(self, request: pytest.FixtureRequest) -> Callable[[], AgentMemory]:
        unit, index = request.param.split("-")
        if unit == "upstream":
            return lambda: bank(retention_formula="upstream_code")
        return lambda: bank(unit=unit, index=index)


# ---------------------------------------------------------------------------
# The rule, by hand
# ---------------------------------------------------------------------------


def test_retention_paper_and_upstream_code_formulas_by_hand() -> None:
    # paper: R = exp(-t/S)
    assert retention(0.0, 1.0) == 1.0
    assert retention(1.0, 1.0) == pytest.approx(0.36787944117144233, abs=1e-15)  # e^-1
    assert retention(2.0, 2.0) == pytest.approx(0.36787944117144233, abs=1e-15)  # e^-(2/2)
    assert retention(10.0, 3.0) == pytest.approx(0.035673993347252374, abs=1e-15)  # e^-(10/3)
    # upstream code: math.exp(-t / 5*S) = exp(-(t/5)*S): a stronger memory fades faster
    assert retention(2.0, 2.0, "upstream_code") == pytest.approx(0.44932896411722156, abs=1e-15)  # e^-0.8
    assert retention(10.0, 3.0, "upstream_code") == pytest.approx(0.0024787521766663585, abs=1e-15)  # e^-6
    assert retention(5.0, 1.0, "upstream_code") == pytest.approx(math.exp(-1), abs=1e-15)
    assert retention(5.0, 2.0) > retention(5.0, 1.0)  # the paper: strength slows forgetting
    assert retention(5.0, 2.0, "upstream_code") < retention(5.0, 1.0, "upstream_code")  # the code: the reverse
    with pytest.raises(ValueError, match="paper or upstream_code"):
        retention(1.0, 1.0, "other")
    with pytest.raises(InvalidConfigError, match="agent_memory.retention_formula"):
        MemoryBank(retention_formula="code")


def test_elapsed_days_whole_calendar_days_or_fractional() -> None:
    whole, frac = bank(), bank(whole_days=False)
    assert whole.elapsed_days(0.9 * DAY, 1.1 * DAY) == 1.0  # two calendar days apart
    assert whole.elapsed_days(0.1 * DAY, 0.9 * DAY) == 0.0
    assert frac.elapsed_days(0.9 * DAY, 1.1 * DAY) == pytest.approx(0.2)


def test_python_random_draws_the_hand_computation_uses() -> None:
    rng = random.Random(0)
    assert [rng.random() for _ in range(6)] == [
        0.8444218515250481,
        0.7579544029403025,
        0.420571580830845,
        0.25891675029296335,
        0.5112747213686085,
        0.4049341374504143,
    ]


def scenario(formula: str) -> MemoryBank:
    """A, B, C at day 0; B recalled at day 0 (S=2); forget at day 0.25; D at day 0.25; forget at day 1."""
    mem = bank(unit="turn", whole_days=False, recall_k=1, seed=0, retention_formula=formula)
    a, b, c = "alpha apples orchard", "bravo boats harbour", "charlie cello concert"
    mem.add_many(turns(a, b, c))
    assert [h.item.text for h in mem.search(b, 1)] == [b]
    assert mem.strengths() == [1.0, 2.0, 1.0]
    mem.clock.advance_to(0.25 * DAY)
    mem.forget_pass()
    mem.add_many(turns("delta desert dunes", session=1))
    mem.clock.advance_to(1.0 * DAY)
    mem.forget_pass()
    return mem


def test_seeded_forgetting_paper_by_hand() -> None:
    # day 0.25: A R=e^-0.25=0.7788 < u=0.8444 -> forgotten; B (S=2) R=e^-0.125=0.8825 > 0.7580 kept;
    #           C R=0.7788 > 0.4206 kept.
    # day 1:    B R=e^-0.5=0.6065 > 0.2589 kept; C R=e^-1=0.3679 < 0.5113 forgotten;
    #           D (added at 0.25) R=e^-0.75=0.4724 > 0.4049 kept.
    mem = scenario("paper")
    assert [m.text for m in mem.items()] == ["bravo boats harbour", "delta desert dunes"]
    assert mem.forgotten == 2
    assert mem.retention_of(0) == pytest.approx(math.exp(-0.5))
    hits = mem.search("alpha apples orchard charlie cello concert", 10)
    assert {h.item.text for h in hits} == {"bravo boats harbour", "delta desert dunes"}  # retained only
    assert len(mem._index) == 2


def test_seeded_forgetting_upstream_code_by_hand() -> None:
    # exp(-(t/5)*S): day 0.25: A 0.9512, B 0.9048, C 0.9512 all above 0.8444, 0.7580, 0.4206;
    # day 1: A 0.8187 > 0.2589, B 0.6703 > 0.5113, C 0.8187 > 0.4049, D exp(-0.15)=0.8607 > 0.7838: all kept.
    mem = scenario("upstream_code")
    assert len(mem) == 4 and mem.forgotten == 0


def test_recall_strengthens_and_resets_time_and_forget_false_keeps_everything() -> None:
    mem = bank(unit="turn", recall_k=2, forget=False)
    mem.add_many(turns("red kite", "blue whale", "green frog"))
    mem.clock.advance_to(3 * DAY)
    hits = mem.search("blue whale", 3)
    assert hits[0].item.text == "blue whale"
    top2 = {h.item.text for h in hits[:2]}
    assert sorted(mem.strengths()) == [1.0, 2.0, 2.0]
    for text, s, i in zip(["red kite", "blue whale", "green frog"], mem.strengths(), range(3), strict=True):
        assert s == (2.0 if text in top2 else 1.0)
        assert mem.retention_of(i) == (1.0 if text in top2 else pytest.approx(math.exp(-3)))
    mem.clock.advance_to(400 * DAY)
    assert mem.forget_pass() == [] and len(mem) == 3


def test_the_same_day_forgets_nothing_and_draws_nothing() -> None:
    mem = bank(seed=3)
    mem.add_many(turns("a b c", "d e f"))
    state = mem._rng.getstate()
    assert mem.forget_pass() == []
    mem.search("a b c", 2)
    assert mem._rng.getstate() == state


def test_rounds_pair_a_user_turn_with_the_replies() -> None:
    mem = bank()
    items = [
        MemoryItem("hello from the bot", turn=0, role="assistant", session_id="s0"),
        MemoryItem("I moved to Lisbon", turn=1, role="user", session_id="s0"),
        MemoryItem("Lovely city", turn=2, role="assistant", session_id="s0"),
        MemoryItem("Any tram tips?", turn=3, role="user", session_id="s0"),
    ]
    mem.add_many(items)
    got = [(m.text, m.turn, m.role) for m in mem.items()]
    assert got == [
        ("hello from the bot", 0, "assistant"),
        ("I moved to Lisbon\nLovely city", 1, "user"),
        ("Any tram tips?", 3, "user"),
    ]
    assert mem.items()[1].metadata["turns"] == [1, 2]


# ---------------------------------------------------------------------------
# Cost, state, family
# ---------------------------------------------------------------------------


def test_breakdown_is_what_the_memory_holds() -> None:
    mem = scenario("paper")
    parts = mem.memory_breakdown()
    assert parts["text_bytes"] == sum(len(m.text.encode()) for m in mem.items())
    assert parts["vector_bytes"] == len(mem) * DIM * 4
    assert parts["index_bytes"] == mem._index.memory_bytes() - parts["vector_bytes"] + META_BYTES_PER_MEMORY * len(mem)
    assert mem.memory_bytes() == parts["text_bytes"] + mem._index.memory_bytes() + META_BYTES_PER_MEMORY * len(mem)


QUERIES = ("bravo boats", "delta", "echo")


@pytest.mark.parametrize("formula", ["paper", "upstream_code"])
def test_state_round_trip_then_the_same_future(formula: str, tmp_path: Path) -> None:
    mem = scenario(formula)
    back = save_load(mem, tmp_path)
    assert type(back) is MemoryBank and back.strengths() == mem.strengths() and back.forgotten == mem.forgotten
    for m in (mem, back):  # the same draws continue after a load
        m.add_many(turns("echo eagles", "foxtrot ferns", session=2))
        m.clock.advance_to(2.5 * DAY)
    assert snapshot(back, QUERIES) == snapshot(mem, QUERIES)
    assert back.forgotten == mem.forgotten


def test_through_the_family() -> None:
    check_rows(family_rows(lambda: MemoryBank(forget=False)))
    rows = family_rows(MemoryBank)
    check_rows(rows)


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from(["I live in Lisbon", "my cat Tom", "tea", "I play cello"]), min_size=1, max_size=4))
def test_a_users_memory_holds_only_that_user(texts: list[str]) -> None:
    for _, hits in isolated_hits(lambda: MemoryBank(forget=False), texts):
        assert len(hits) == len(texts)
        assert np.all(np.diff([h.score for h in hits]) <= 1e-6)
