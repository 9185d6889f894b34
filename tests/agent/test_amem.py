"""agent_memory=amem: notes by hand, similarity and keyword links, tag evolution, expansion, cost, state, family."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.api import AgentMemory
from memarena.errors import InvalidConfigError
from memarena.families.agent.memories import amem as amem_module
from memarena.families.agent.memories.amem import LINK_BYTES, NOTE_BUILDERS, AMem, Note, NoteFields, words
from memarena.testing.conformance import AgentMemoryConformance
from tests.agent.memory_helpers import DIM, bound, check_rows, family_rows, isolated_hits, save_load, snapshot, turns

PUPPY = "I adopted a puppy named Biscuit from the shelter."
BEACH = "Biscuit the puppy loves the beach trip and the cake."
SISTER = "My sister Alice moved to Lisbon."


def amem(**params: object) -> AMem:
    mem = AMem(**params)  # type: ignore[arg-type]
    bound(mem)
    return mem


class TestAMemConformance(AgentMemoryConformance):
    @pytest.fixture(params=["after_each", "none", "symmetric-hnsw"])
    def make_memory(self, request: pytest.FixtureRequest) -> Callable[[], AgentMemory]:
        if request.param == "symmetric-hnsw":
            return lambda: amem(symmetric_links=True, index="hnsw")
        return lambda: amem(expansion=request.param)


def three(**params: object) -> AMem:
    mem = amem(n_keywords=6, link_k=0, **params)
    mem.add_many(turns(PUPPY, BEACH, SISTER))
    return mem


def test_rule_notes_keyword_links_and_tag_evolution_by_hand() -> None:
    mem = three(max_tags=2)
    n1, n2, n3 = mem.notes()
    # note 1 alone: every word's idf is ln(2/2)+1 = 1, so the order of first occurrence
    assert n1.keywords == ["adopted", "puppy", "named", "biscuit", "shelter"]
    assert n1.context == PUPPY
    # note 2: loves/beach/trip/cake are new (idf ln(3/2)+1 = 1.405), biscuit/puppy are in note 1 (idf 1)
    assert n2.keywords == ["loves", "beach", "trip", "cake", "biscuit", "puppy"]
    assert n2.tags == ["pets", "travel", "food"]  # puppy, trip, cake: in TAG_RULES order
    # note 2 shares biscuit and puppy (2 >= min_shared_keywords) with note 1: a link from 2 to 1
    assert (n1.links, n2.links, n3.links) == ([], [0], [])
    # note 1 had ["pets"]; it absorbs note 2's tags until max_tags = 2
    assert n1.tags == ["pets", "travel"]
    assert n3.tags == ["family", "home"] and n3.keywords == ["sister", "alice", "moved", "lisbon"]
    assert words("The DOG's bowl, it's here") == ["dog's", "bowl"]


def test_tags_evolve_without_bound_below_max_tags_and_not_at_all_when_off() -> None:
    assert three().notes()[0].tags == ["pets", "travel", "food"]
    assert three(evolve_tags=False).notes()[0].tags == ["pets"]
    assert three(min_shared_keywords=3).notes()[1].links == []  # only 2 keywords shared


def test_similarity_links_above_the_threshold() -> None:
    mem = amem(link_k=2, link_threshold=0.99, min_shared_keywords=0, symmetric_links=True)
    mem.add_many(turns(PUPPY, SISTER, SISTER))  # the repeat has cosine 1 with note 2 only
    n1, n2, n3 = mem.notes()
    assert n3.links == [1] and n2.links == [2] and n1.links == []
    emb = mem.embedder.embed([PUPPY, SISTER])
    assert float(emb[0] @ emb[1]) < 0.99  # so note 1 is not linked
    low = amem(link_k=2, link_threshold=-1.0, min_shared_keywords=0)
    low.add_many(turns(PUPPY, SISTER, BEACH))
    assert sorted(low.notes()[2].links) == [0, 1]  # any cosine passes -1: the link_k nearest


def test_search_expands_each_hit_with_its_links() -> None:
    mem = three()
    hits = mem.search(BEACH, 2)
    assert [h.item.text for h in hits] == [BEACH, PUPPY]
    assert hits[1].score == hits[0].score == pytest.approx(1.0, abs=1e-5)  # the link carries its hit's score
    assert hits[0].item.metadata["links"] == [0] and hits[1].item.metadata["tags"] == ["pets", "travel", "food"]
    plain = three(expansion="none").search(BEACH, 3)
    assert plain[0].item.text == BEACH
    assert all(a.score >= b.score for a, b in itertools.pairwise(plain))
    cos = float(mem.embedder.embed([BEACH])[0] @ mem.embedder.embed([PUPPY])[0])
    assert [h.score for h in plain if h.item.text == PUPPY] == [pytest.approx(cos, abs=1e-5)]
    assert len(mem.search(BEACH, 10)) == 3  # each note once


def test_a_note_builder_can_be_replaced() -> None:
    class Upper:
        def __init__(self, memory: AMem) -> None:
            self.memory = memory

        def build(self, content: str) -> NoteFields:
            return NoteFields([content.split()[0].upper()], ["custom"], "ctx")

        def evolve(self, note: Note, neighbours: Sequence[Note]) -> list[list[str]]:
            return [["evolved"] for _ in neighbours]

    NOTE_BUILDERS["upper"] = Upper
    try:
        mem = amem(note_builder="upper", min_shared_keywords=1, link_k=0)
        mem.add_many(turns("alpha one", "alpha two"))
        assert [(n.keywords, n.tags, n.context, n.links) for n in mem.notes()] == [
            (["ALPHA"], ["evolved"], "ctx", []),
            (["ALPHA"], ["custom"], "ctx", [0]),
        ]
    finally:
        del NOTE_BUILDERS["upper"]
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.note_builder' must be one of rules, got 'llm'"):
        AMem(note_builder="llm")
    assert amem_module.RuleNoteBuilder is NOTE_BUILDERS["rules"]


def test_breakdown_is_what_the_memory_holds() -> None:
    mem = three(symmetric_links=True)
    parts = mem.memory_breakdown()
    text = sum(
        len(n.item.text.encode()) + len(n.context.encode()) + sum(map(len, n.keywords)) + sum(map(len, n.tags))
        for n in mem.notes()
    )
    assert parts["text_bytes"] == text
    assert parts["vector_bytes"] == 3 * DIM * 4
    links = sum(len(n.links) for n in mem.notes())
    assert links == 2
    assert mem.memory_bytes() == text + mem._index.memory_bytes() + LINK_BYTES * links


def test_state_round_trip_then_the_same_future(tmp_path: Path) -> None:
    mem = three()
    back = save_load(mem, tmp_path)
    queries = (BEACH, "Lisbon", "shelter cake")
    assert snapshot(back, queries) == snapshot(mem, queries)
    for m in (mem, back):  # document frequencies and keyword postings are rebuilt
        m.add_many(turns("Alice bakes lemon cake in Lisbon.", "The shelter puppy Biscuit sleeps.", session=1))
    assert [n.to_json() for n in back.notes()] == [n.to_json() for n in mem.notes()]
    assert snapshot(back, queries) == snapshot(mem, queries)


def test_through_the_family() -> None:
    check_rows(family_rows(AMem))
    check_rows(family_rows(lambda: AMem(roles="all", expansion="none")))


@settings(max_examples=10, deadline=None)
@given(st.lists(st.sampled_from(["I live in Lisbon", "my cat Tom", "tea", "I play cello"]), min_size=1, max_size=4))
def test_a_users_memory_holds_only_that_user(texts: list[str]) -> None:
    for _, hits in isolated_hits(lambda: AMem(symmetric_links=True), texts):
        assert len(hits) == len(texts)
        assert all(math.isfinite(h.score) for h in hits)
