"""agent_memory=flat_rag: LongMemEval's flat retrieval, exactly; facts; dense indexes; cost; the conformance suite."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from memarena.api import AgentMemory, MemoryContext, MemoryItem
from memarena.errors import InvalidConfigError
from memarena.families.agent.family import evaluate_question, rows_of
from memarena.families.agent.generate import generate
from memarena.families.agent.longmemeval import Instance
from memarena.families.agent.memories.flat_rag import FlatRAG
from memarena.families.agent.metrics import aggregate, build_corpus, question_metrics
from memarena.families.agent.retrievers import BM25, HashingEmbedder
from memarena.testing.conformance import AgentMemoryConformance


@pytest.fixture(scope="module")
def data() -> list[Instance]:
    return generate(size=30, questions=16, seed=3)


def dense(index: str = "flat", **params: object) -> FlatRAG:
    mem = FlatRAG(retriever="dense", index=index, **params)  # type: ignore[arg-type]
    mem.bind(MemoryContext(user="u", embedder=HashingEmbedder(dim=256)))
    return mem


class TestFlatRAGConformance(AgentMemoryConformance):
    @pytest.fixture(
        params=["bm25-session", "bm25-turn", "bm25-merge", "bm25-separate", "dense-flat", "dense-hnsw"],
    )
    def make_memory(self, request: pytest.FixtureRequest) -> Callable[[], AgentMemory]:
        kind, variant = request.param.split("-")
        if kind == "dense":
            return lambda: dense(variant)
        if variant in ("merge", "separate"):
            return lambda: FlatRAG(fact_keys=variant)
        return lambda: FlatRAG(granularity=variant)


# ---------------------------------------------------------------------------
# LongMemEval's flat BM25, computed independently
# ---------------------------------------------------------------------------


def upstream_ranking(inst: Instance, granularity: str) -> tuple[list[str], np.ndarray]:
    """run_retrieval.py's flat-bm25 for one question: rank_bm25 over split(" "), np.argsort(scores)[::-1]."""
    corpus = build_corpus(inst, granularity)  # type: ignore[arg-type]
    bm25 = BM25Okapi([doc.split(" ") for doc in corpus.texts])
    scores = bm25.get_scores(inst.question.split(" "))
    return list(corpus.ids), np.argsort(scores)[::-1]


@pytest.mark.parametrize("granularity", ["session", "turn"])
def test_bm25_equals_longmemeval_flat_bm25_exactly(data: list[Instance], granularity: str) -> None:
    ours = [evaluate_question(inst, FlatRAG(granularity=granularity), None) for inst in data]
    theirs = []
    for inst in data:
        _, ranking = upstream_ranking(inst, granularity)
        theirs.append((inst, question_metrics(inst, ranking, granularity)))  # type: ignore[arg-type]
    for ours_q, (inst, metrics) in zip(ours, theirs, strict=True):
        assert ours_q.level == granularity
        assert ours_q.metrics == metrics, inst.question_id
    expected = aggregate(theirs)
    rows = {r["question_type"]: r for r in rows_of(ours)}
    assert set(rows) == set(expected)
    levels = ("session", "turn") if granularity == "turn" else ("session",)
    for group, per_level in expected.items():
        for level in levels:
            for name, value in per_level[level].items():
                if name == "count":
                    assert rows[group]["questions"] == value
                    continue
                metric, k = name.split("@")
                assert rows[group][f"{level}_{metric}_at_{k}"] == value, (group, level, name)
    assert rows["all"]["user_violations"] == 0


def test_bm25_ranks_the_same_documents_in_the_same_order(data: list[Instance]) -> None:
    for inst in data[:8]:
        _ids, ranking = upstream_ranking(inst, "session")
        mem = FlatRAG()
        for p, (sid, session) in enumerate(zip(inst.haystack_session_ids, inst.haystack_sessions, strict=True)):
            mem.add_many(
                [MemoryItem(t.content, session=p, turn=i, session_id=sid, role=t.role) for i, t in enumerate(session)]
            )
        got = [hit.item.session_id for hit in mem.search(inst.question, len(mem))]
        want = [inst.haystack_session_ids[i] for i in ranking]
        assert got == want
        assert [hit.item.text for hit in mem.search(inst.question, 3)] == [
            build_corpus(inst, "session").texts[i] for i in ranking[:3]
        ]


def test_values_follow_build_corpus_user_turns_only() -> None:
    mem = FlatRAG()
    mem.add_many(
        [
            MemoryItem("hi there", session=0, turn=0, session_id="a", role="user"),
            MemoryItem("hello, how can I help", session=0, turn=1, session_id="a", role="assistant"),
            MemoryItem("I moved to Lisbon", session=0, turn=2, session_id="a", role="user"),
        ]
    )
    mem.add_many([MemoryItem("only the assistant spoke", session=1, turn=0, session_id="b", role="assistant")])
    assert [(v.text, v.session_id, v.turn, v.metadata["turns"]) for v in mem.items()] == [
        ("hi there I moved to Lisbon", "a", -1, [0, 2]),
        ("", "b", -1, []),  # an empty document, as build_corpus makes one
    ]
    turns = FlatRAG(granularity="turn")
    turns.add_many(
        [
            MemoryItem("hi there", session=0, turn=0, session_id="a", role="user"),
            MemoryItem("hello", session=0, turn=1, session_id="a", role="assistant"),
            MemoryItem("I moved to Lisbon", session=0, turn=2, session_id="a", role="user"),
        ]
    )
    assert [(v.text, v.turn) for v in turns.items()] == [("hi there", 0), ("I moved to Lisbon", 2)]


# ---------------------------------------------------------------------------
# Fact keys
# ---------------------------------------------------------------------------

SESSION = [
    MemoryItem("Can you help me plan a trip? I moved to Lisbon last month.", session=0, turn=0, session_id="s0"),
    MemoryItem("The weather is nice today.", session=1, turn=0, session_id="s1"),
]


def test_merge_keys_prefix_the_facts() -> None:
    mem = FlatRAG(fact_keys="merge")
    for item in SESSION:
        mem.add_many([item])
    assert mem.keys == [
        "I moved to Lisbon last month. Can you help me plan a trip? I moved to Lisbon last month.",
        "The weather is nice today.",  # no first-person statement: the value's own text
    ]
    extra = len(mem.keys[0].encode())
    text = sum(len(i.text.encode()) for i in SESSION)
    assert mem.memory_breakdown() == {
        "text_bytes": text + extra,
        "vector_bytes": 0,
        "index_bytes": mem._bm25.memory_bytes(),  # type: ignore[union-attr]
    }


def test_separate_keys_point_to_one_value_returned_once() -> None:
    mem = FlatRAG(fact_keys="separate")
    for item in SESSION:
        mem.add_many([item])
    assert mem.keys == [SESSION[0].text, "I moved to Lisbon last month.", SESSION[1].text]
    hits = mem.search("I moved to Lisbon", 5)
    assert [h.item.session_id for h in hits] == ["s0", "s1"]
    # the value's score is its best key's
    bm25 = BM25()
    bm25.add(mem.keys)
    key_scores = bm25.scores("I moved to Lisbon")
    assert hits[0].score == max(key_scores[0], key_scores[1])
    assert hits[1].score == key_scores[2]


# ---------------------------------------------------------------------------
# Dense retrieval on the Rust indexes
# ---------------------------------------------------------------------------

TEXTS = [f"note {i}: I {verb} the {noun}" for i, (verb, noun) in enumerate(
    (v, n) for v in ("bought", "sold", "painted", "lost") for n in ("car", "bike", "house", "boat", "piano")
)]  # fmt: skip


def test_dense_flat_ranks_by_inner_product_of_the_embeddings() -> None:
    mem = dense("flat")
    for i, t in enumerate(TEXTS):
        mem.add(MemoryItem(t, session=i, turn=0, session_id=f"s{i}"))
    emb = HashingEmbedder(dim=256)
    sims = emb.embed(TEXTS) @ emb.embed(["I painted the boat"])[0]
    hits = mem.search("I painted the boat", len(TEXTS))
    assert len(hits) == len(TEXTS)
    np.testing.assert_allclose([h.score for h in hits], np.sort(sims)[::-1], rtol=1e-5, atol=1e-6)
    assert hits[0].item.text == "note 13: I painted the boat"
    parts = mem.memory_breakdown()
    assert parts["vector_bytes"] == len(TEXTS) * 256 * 4
    assert parts["vector_bytes"] + parts["index_bytes"] == mem._index.memory_bytes()
    assert mem.memory_bytes() == sum(len(t.encode()) for t in TEXTS) + mem._index.memory_bytes()


@pytest.mark.parametrize(("index", "params"), [("hnsw", {}), ("simhash", {"n_bits": 4, "n_tables": 4, "n_probes": 0})])
def test_dense_approximate_indexes_return_stored_values_once(index: str, params: dict[str, object]) -> None:
    mem = dense(index, index_params=params)
    for i, t in enumerate(TEXTS):
        mem.add(MemoryItem(t, session=i, turn=0, session_id=f"s{i}"))
    hits = mem.search("I painted the boat", 5)
    assert 1 <= len(hits) <= 5
    assert len({h.item.session_id for h in hits}) == len(hits)
    assert hits[0].item.text == "note 13: I painted the boat"
    assert all(a.score >= b.score for a, b in itertools.pairwise(hits))


# ---------------------------------------------------------------------------
# Config errors name the key
# ---------------------------------------------------------------------------


def test_config_errors_name_the_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.granularity'.*session, turn.*'sentence'"):
        FlatRAG(granularity="sentence")
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.index'.*flat, hnsw, simhash"):
        FlatRAG(index="ivf")
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.tokenizer'"):
        FlatRAG(tokenizer="nltk")
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.index_params'.*hnsw.*'nope'"):
        dense("hnsw", index_params={"nope": 1}).add(MemoryItem("x"))
    no_embedder = FlatRAG(retriever="dense")
    with pytest.raises(InvalidConfigError, match=r"config key 'embedder'.*agent_memory=flat_rag.*embedder=hashing"):
        no_embedder.add(MemoryItem("I moved"))


# ---------------------------------------------------------------------------
# The family's lazy session (SessionItems): the same items, the same values
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("granularity", ["session", "turn"])
def test_session_items_give_the_values_a_list_gives(data: list[Instance], granularity: str) -> None:
    from memarena.families.agent.family import SessionItems

    inst = data[0]
    lazy, eager = FlatRAG(granularity=granularity), FlatRAG(granularity=granularity)
    for p, turns in enumerate([*inst.haystack_sessions, []]):  # an empty session adds nothing either way
        sid = inst.haystack_session_ids[p] if p < len(inst.haystack_session_ids) else "empty"
        batch = SessionItems(turns, session=p, user="u", session_id=sid, timestamp_s=float(p))
        items = [
            MemoryItem(t.content, session=p, turn=i, user="u", session_id=sid, role=t.role, timestamp_s=float(p))
            for i, t in enumerate(turns)
        ]
        assert batch.contents("user") == [i.text for i in items if i.role == "user"]
        assert batch.of_role("assistant") == [i for i in items if i.role == "assistant"]
        assert len(batch) == len(items) and list(batch) == items and batch[-1:] == items[-1:]
        lazy.add_many(batch)
        eager.add_many(items)
    assert lazy.items() == eager.items()
    assert lazy.keys == eager.keys
    assert [(h.item, h.score) for h in lazy.search(inst.question, 10)] == [
        (h.item, h.score) for h in eager.search(inst.question, 10)
    ]
