"""agent_memory=tim: thought rules, merge/forget by hand, SimHash buckets and probes, cost, state, family."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.api import AgentMemory, MemoryItem
from memarena.errors import InvalidConfigError
from memarena.families.agent.memories.tim import ThoughtMemory, extract_thoughts
from memarena.testing.conformance import DEFAULT_ITEMS, AgentMemoryConformance
from tests.agent.memory_helpers import DIM, bound, check_rows, family_rows, isolated_hits, save_load, snapshot, turns


def tim(**params: object) -> ThoughtMemory:
    mem = ThoughtMemory(**params)  # type: ignore[arg-type]
    bound(mem)
    return mem


class TestThoughtMemoryConformance(AgentMemoryConformance):
    @pytest.fixture(params=[(4, 1), (2, 0)])
    def make_memory(self, request: pytest.FixtureRequest) -> Callable[[], AgentMemory]:
        bits, probes = request.param
        return lambda: tim(n_hyperplanes=bits, n_probes=probes)

    @pytest.fixture
    def memory_items(self) -> list[MemoryItem]:
        # the suite's texts without a rule-made thought: each is stored as its own (I, said, text) thought
        texts = [t for t in DEFAULT_ITEMS if not extract_thoughts(t)]
        assert len(texts) >= 6
        return [MemoryItem(t, session=0, turn=i) for i, t in enumerate(texts)]


def triples(text: str) -> list[tuple[str, str, str, bool]]:
    return [(t.head, t.relation, t.tail, t.negated) for t in extract_thoughts(text)]


def test_thought_rules() -> None:
    assert triples("My dog is Rex. I moved to Porto now.") == [
        ("my dog", "is", "Rex", False),
        ("I", "live in", "Porto", False),
    ]
    assert triples("I'm not a nurse anymore.") == [("I", "work as", "nurse", True)]
    assert triples("I am a nurse, and I love hiking.") == [("I", "work as", "nurse", False)]  # one I-rule a sentence
    assert triples("I work at Google since 2020.") == [("I", "work at", "Google", False)]
    assert triples("I got a new bike last week.") == [("I", "have", "a new bike", False)]
    assert triples("I don't have a car.") == [("I", "have", "a car", True)]
    assert triples("My favorite color is not red.") == [("my favorite color", "is", "red", True)]
    assert triples("Where do I live? Can you help?") == []
    assert [t.text for t in extract_thoughts("I no longer live in Paris. My cat is Tom.")] == [
        "I do not live in Paris",
        "my cat is Tom",
    ]


def test_merge_and_forget_on_three_turns_by_hand() -> None:
    mem = tim()
    mem.add_many(
        [
            MemoryItem("I live in Lisbon. My dog is Rex.", session=0, turn=0, session_id="a", user="u"),
            MemoryItem("Sounds nice!", session=0, turn=1, session_id="a", user="u", role="assistant"),
        ]
    )
    mem.add_many([MemoryItem("I moved to Porto now.", session=1, turn=0, session_id="b", user="u")])
    mem.add_many(
        [MemoryItem("My dog is Rex, he is lovely. I don't have a car.", session=2, turn=2, session_id="c", user="u")]
    )
    got = [(m.text, m.session, m.session_id, m.turn, m.role) for m in mem.items()]
    assert got == [
        ("my dog is Rex", 2, "c", -1, "thought"),  # merged: said in turns a/0 and c/2, so no one turn
        ("I live in Porto", 1, "b", 0, "thought"),  # forgot "I live in Lisbon": same head and relation
        ("I do not have a car", 2, "c", 2, "thought"),
    ]
    assert (mem.merged, mem.forgotten, len(mem._index)) == (1, 1, 3)
    assert mem.thoughts()[0].sources == [[0, "a", 0], [2, "c", 2]]
    mem.add_many(turns("I have a car. I have a dog.", session=3))
    assert [m.text for m in mem.items()] == ["my dog is Rex", "I live in Porto", "I have a car", "I have a dog"]
    assert mem.forgotten == 2  # the negation forgotten; "have" holds many values
    assert {h.item.text for h in mem.search("Lisbon", 10)} <= {m.text for m in mem.items()}


def test_fallback_thoughts_and_none() -> None:
    mem = tim()
    mem.add_many(turns("Tips for sleeping well", "Tips for sleeping well"))
    assert [m.text for m in mem.items()] == ["Tips for sleeping well"] and mem.merged == 1
    dropped = tim(fallback="none")
    dropped.add_many(turns("Tips for sleeping well"))
    assert len(dropped) == 0 and dropped.search("sleep", 3) == []


TEXTS = [f"I {v} the {n} number {i}" for i, (v, n) in enumerate(
    (v, n) for v in ("painted", "sold", "washed", "fixed") for n in ("car", "boat", "piano", "bike", "fence")
)]  # fmt: skip


def test_buckets_and_probes() -> None:
    full = {}
    for probes in (0, 1, 2, 4, 16):
        mem = tim(n_hyperplanes=4, n_probes=probes)
        mem.add_many(turns(*TEXTS))
        hits = mem.search("I painted the boat", 100)
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        full[probes] = [h.item.text for h in hits]
    assert len(full[0]) == len(TEXTS)  # 0: every bucket
    assert full[1] and len(full[1]) < len(TEXTS)  # one bucket of 16 holds only part of 20 thoughts
    for a, b in ((1, 2), (2, 4), (4, 16)):
        assert set(full[a]) <= set(full[b])  # multi-probe adds the next-nearest buckets
    assert full[16] == full[0]  # all 16 buckets of 4 bits
    # ranked within the buckets by inner product, as the exhaustive ranking
    assert full[1] == [t for t in full[0] if t in set(full[1])]
    one = tim(n_hyperplanes=4, n_probes=1)
    one.add_many(turns(*TEXTS))
    for t in TEXTS:
        assert one.search(t, 1)[0].item.text == t  # a thought is in its own text's bucket
    with pytest.raises(InvalidConfigError, match="agent_memory.n_hyperplanes"):
        ThoughtMemory(n_hyperplanes=40)


def test_breakdown_is_what_the_memory_holds() -> None:
    mem = tim()
    mem.add_many(turns("I live in Lisbon. My dog is Rex.", "Tips for sleeping well"))
    parts = mem.memory_breakdown()
    # "I live in Lisbon" + I + "live in" + Lisbon; "my dog is Rex" + "my dog" + is + Rex; the fallback once + I + said
    assert parts["text_bytes"] == (16 + 1 + 7 + 6) + (13 + 6 + 2 + 3) + (22 + 1 + 4)
    assert parts["vector_bytes"] == 3 * DIM * 4
    assert mem.memory_bytes() == parts["text_bytes"] + mem._index.memory_bytes()


def test_state_round_trip_then_the_same_future(tmp_path: Path) -> None:
    mem = tim(n_hyperplanes=3, n_probes=2)
    mem.add_many(turns("I live in Lisbon. My dog is Rex.", "I like jazz.", "Tips for sleeping well"))
    back = save_load(mem, tmp_path)
    queries = ("Where do I live?", "dog", "music")
    assert snapshot(back, queries) == snapshot(mem, queries)
    for m in (mem, back):
        m.add_many(turns("I moved to Porto. My dog is Rex.", session=1))
    assert snapshot(back, queries) == snapshot(mem, queries)
    assert (back.merged, back.forgotten) == (mem.merged, mem.forgotten) == (1, 1)


def test_through_the_family() -> None:
    check_rows(family_rows(ThoughtMemory))
    check_rows(family_rows(lambda: ThoughtMemory(n_hyperplanes=8, n_probes=0)))


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from(["I live in Lisbon", "my cat is Tom", "tea", "I play cello"]), min_size=1, max_size=4))
def test_a_users_memory_holds_only_that_user(texts: list[str]) -> None:
    for mem, hits in isolated_hits(lambda: ThoughtMemory(n_probes=0), texts):
        assert len(hits) == len(mem)


@pytest.mark.parametrize(
    "overrides",
    [
        ["experiment=agent_tim", "agent_memory.n_hyperplanes=2", "agent_memory.n_probes=2"],
        ["experiment=agent", "agent_memory=memorybank"],
        ["experiment=agent", "agent_memory=amem"],
    ],
)
def test_presets_run_by_name(overrides: list[str], tmp_path: Path) -> None:
    from memarena.testing.conformance import run_family

    run = run_family([*overrides, "debug=tiny", "workload.size=8"], tmp_path / "run")
    assert run.record.status == "complete", run.record.error
    rows = run.record.rows
    assert rows[-1]["question_type"] == "all" and rows[-1]["user_violations"] == 0
    assert rows[-1]["agent_memory"] in ("tim", "memorybank", "amem")
