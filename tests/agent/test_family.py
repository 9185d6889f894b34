"""The agent family: per-user memories, rankings, knowledge updates, rows, workloads and their errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.api import AgentMemory, MemoryContext, MemoryItem
from memarena.errors import InvalidConfigError, InvariantError
from memarena.families.agent.family import evaluate_question, latest_first, rows_of
from memarena.families.agent.generate import generate
from memarena.families.agent.longmemeval import Instance, Turn, save
from memarena.families.agent.memories.flat_rag import FlatRAG
from memarena.families.agent.workloads import LongMemEvalFile, LongMemEvalGenerated
from memarena.testing.conformance import run_family


def instance(**changes: object) -> Instance:
    """A knowledge-update question: the old city (answer_1), filler, the new city (answer_2)."""
    base = Instance(
        question_id="q1",
        question_type="knowledge-update",
        question="Where do I live?",
        answer="Porto",
        question_date="2023/06/01 (Thu) 10:00",
        haystack_session_ids=("answer_q1_1", "f_2", "answer_q1_2"),
        haystack_dates=("2023/01/01 (Sun) 10:00", "2023/02/01 (Wed) 10:00", "2023/03/01 (Wed) 10:00"),
        haystack_sessions=(
            (Turn("user", "I live in Lisbon", True), Turn("assistant", "Nice", False)),
            (Turn("user", "Tips for sleep?"), Turn("assistant", "Sleep early")),
            (Turn("user", "I moved, I live in Porto now", True), Turn("assistant", "Congrats", False)),
        ),
        answer_session_ids=("answer_q1_1", "answer_q1_2"),
        stale_session_ids=("answer_q1_1",),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_latest_first_by_hand() -> None:
    inst = instance()
    dates = [0.0, 1.0, 2.0]
    assert latest_first(inst, [2, 0, 1], dates) == 1.0
    assert latest_first(inst, [1, 0, 2], dates) == 0.0
    assert latest_first(inst, [1], dates) == 0.0  # neither retrieved
    assert latest_first(inst, [2], dates) == 1.0  # the stale one never retrieved
    # a file without stale_session_ids: the latest-dated evidence is the latest value
    bare = instance(stale_session_ids=())
    assert latest_first(bare, [2, 0], dates) == 1.0
    assert latest_first(bare, [2, 0], [5.0, 1.0, 2.0]) == 0.0
    assert latest_first(instance(question_type="multi-session"), [2], dates) is None


def test_one_question_end_to_end_by_hand() -> None:
    result = evaluate_question(instance(), FlatRAG(), None)
    assert result.level == "session" and result.items_stored == 3
    # BM25 over split(" "): "I" and "live" are in both evidence sessions, "Where", "do", "live?" nowhere
    assert result.metrics["session"]["recall_all@3"] == 1.0
    assert result.user_violations == 0
    turns = evaluate_question(instance(), FlatRAG(granularity="turn"), None)
    assert turns.level == "turn" and turns.items_stored == 3
    assert set(turns.metrics["turn"]) and set(turns.metrics["session"])


def test_generated_knowledge_updates_name_the_stale_session() -> None:
    data = generate(size=12, questions=16, seed=1)
    updates = [i for i in data if i.question_type == "knowledge-update"]
    assert updates
    for inst in updates:
        (stale,) = inst.stale_session_ids
        assert stale in inst.answer_session_ids
        others = [s for s in inst.answer_session_ids if s != stale]
        p = inst.haystack_session_ids.index
        assert all(p(stale) < p(s) for s in others)  # the stale value was said first
    assert all(not i.stale_session_ids for i in data if i.question_type != "knowledge-update")


def test_rows_per_type_and_all(tmp_path: Path) -> None:
    data = generate(size=12, questions=8, seed=0)
    rows = rows_of([evaluate_question(inst, FlatRAG(), None) for inst in data])
    assert rows[-1]["question_type"] == "all"
    assert rows[-1]["questions"] == sum(r["questions"] for r in rows[:-1])
    assert rows[-1]["ks"] == [1, 3, 5, 10, 30, 50]
    assert rows[-1]["session_recall_any"] == [rows[-1][f"session_recall_any_at_{k}"] for k in (1, 3, 5, 10, 30, 50)]
    assert "turn_recall_any_at_1" not in rows[-1]
    assert rows[-1]["memory_bytes"] == pytest.approx(
        rows[-1]["memory_text_bytes"] + rows[-1]["memory_vector_bytes"] + rows[-1]["memory_index_bytes"]
    )
    assert rows[-1]["items_stored"] == 12  # one value per session
    assert "ku_latest_first" in next(r for r in rows if r["question_type"] == "knowledge-update")
    assert all(r["user_violations"] == 0 for r in rows)


# ---------------------------------------------------------------------------
# One memory per user
# ---------------------------------------------------------------------------


TEXTS = st.lists(
    st.sampled_from(["I live in Lisbon", "my cat Tom", "Lisbon is sunny", "I play cello", "tea"]),
    min_size=1,
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["ana", "bo", "cy", "di"]), TEXTS, min_size=2), st.sampled_from(["session", "turn"])
)
def test_a_users_memory_returns_only_that_users_items(histories: dict[str, list[str]], granularity: str) -> None:
    memories = {}
    for user, texts in histories.items():
        mem = FlatRAG(granularity=granularity)
        mem.bind(MemoryContext(user=user))
        for s, text in enumerate(texts):
            mem.add_many([MemoryItem(text, session=s, turn=0, user=user, session_id=f"{user}{s}")])
        memories[user] = mem
    for user, mem in memories.items():
        for query in ("Lisbon", "I live in Lisbon", "cello tea", "nothing"):
            hits = mem.search(query, 100)
            assert {h.item.user for h in hits} <= {user}
            assert len(hits) == len(mem)


class SharedStore(AgentMemory):
    """A broken memory: every instance shares one store, so users see each other's items."""

    name: ClassVar[str] = "shared_store"
    store: ClassVar[list[MemoryItem]] = []

    @dataclass
    class Config:
        _target_: str = "tests.agent.test_family.SharedStore"

    def __init__(self) -> None:
        pass

    def add(self, item: MemoryItem) -> None:
        self.store.append(item)

    def retrieve(self, query: str, k: int) -> list[MemoryItem]:
        return self.store[::-1][:k]

    def __len__(self) -> int:
        return len(self.store)

    def items(self) -> list[MemoryItem]:
        return list(self.store)


def test_the_family_counts_and_drops_another_users_items() -> None:
    SharedStore.store.clear()
    a, b = generate(size=3, questions=2, seed=0)
    assert evaluate_question(a, SharedStore(), None).user_violations == 0
    leaked = evaluate_question(b, SharedStore(), None)
    assert leaked.user_violations == sum(len(s) for s in a.haystack_sessions)
    assert leaked.level == "turn"  # a retrieve-only memory of turns is scored at turn level


def test_an_item_of_a_session_never_added_is_an_invariant_error() -> None:
    class Liar(FlatRAG):
        def add_many(self, items: list[MemoryItem]) -> None:  # type: ignore[override]
            super().add_many([dataclasses.replace(i, session_id="elsewhere") for i in items])

    with pytest.raises(InvariantError, match=r"question 'q1'.*session_id 'elsewhere'"):
        evaluate_question(instance(), Liar(), None)


# ---------------------------------------------------------------------------
# Workloads and config errors
# ---------------------------------------------------------------------------


def test_workloads_load_and_name_bad_keys(tmp_path: Path) -> None:
    gen = LongMemEvalGenerated(size="7", questions=3)
    data = gen.load(seed=2)
    assert len(data) == 3 and all(i.num_sessions == 7 for i in data)
    assert gen.describe() == "generated_7_q3"
    with pytest.raises(InvalidConfigError, match=r"'workload.size'.*'huge'"):
        LongMemEvalGenerated(size="huge")
    path = save(data, tmp_path / "lme.json")
    assert [i.question_id for i in LongMemEvalFile(path=str(path), limit=2).load(0)] == [
        i.question_id for i in data[:2]
    ]
    with pytest.raises(InvalidConfigError, match=r"config key 'workload.path': '.*missing.json' does not exist"):
        LongMemEvalFile(path=str(tmp_path / "missing.json")).load(0)
    with pytest.raises(InvalidConfigError, match=r"'workload.path'.*is a directory"):
        LongMemEvalFile(path=str(tmp_path)).load(0)


def test_family_runs_in_process_and_names_wrong_groups(tmp_path: Path) -> None:
    run = run_family(["experiment=agent", "debug=tiny", "agent_memory.granularity=turn"], tmp_path / "ok")
    assert run.record.status == "complete", run.record.error
    rows = run.record.rows
    assert rows[-1]["question_type"] == "all" and rows[-1]["agent_memory"] == "flat_rag"
    assert rows[-1]["embedder"] == "hashing" and "turn_recall_any_at_10" in rows[-1]
    with pytest.raises(InvalidConfigError, match=r"config key 'workload': 'zipf' is a paging workload, not an agent"):
        run_family(["experiment=agent", "debug=tiny", "workload=zipf"], tmp_path / "bad")
    with pytest.raises(InvalidConfigError, match=r"config key 'embedder'.*agent_memory=flat_rag"):
        run_family(["experiment=agent", "debug=tiny", "~embedder", "agent_memory.retriever=dense"], tmp_path / "e")
