"""LongMemEval's retrieval metrics against hand-computed values (src/retrieval/eval_utils.py, run_retrieval.py)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.errors import InvariantError
from memarena.families.agent.longmemeval import Instance, Turn
from memarena.families.agent.metrics import (
    ALL,
    KS,
    METRIC_NAMES,
    aggregate,
    build_corpus,
    correct_docs,
    dcg,
    evaluate_retrieval,
    evaluate_retrieval_turn2session,
    is_scored,
    ndcg,
    question_metrics,
    rank_by_scores,
)

IDS = ["a", "answer_x", "b", "answer_y", "c"]
CORRECT = ["answer_x", "answer_y"]


def test_dcg_leaves_the_first_two_positions_undiscounted() -> None:
    # eval_utils.dcg: r[0] + sum(r[1:] / log2(arange(2, n + 1))): position p >= 2 is divided by log2(p).
    assert dcg([1, 1, 1, 1], 4) == pytest.approx(1 + 1 + 1 / math.log2(3) + 1 / math.log2(4))
    assert dcg([0, 0, 1], 2) == 0.0
    assert dcg([], 5) == 0.0


def test_recall_any_differs_from_recall_all_when_one_of_two_is_found() -> None:
    ranking = [1, 0, 2, 3, 4]  # answer_x first, answer_y fourth
    assert evaluate_retrieval(ranking, CORRECT, IDS, k=1)[:2] == (1.0, 0.0)
    assert evaluate_retrieval(ranking, CORRECT, IDS, k=3)[:2] == (1.0, 0.0)
    assert evaluate_retrieval(ranking, CORRECT, IDS, k=5)[:2] == (1.0, 1.0)
    assert evaluate_retrieval([0, 2, 4, 1, 3], CORRECT, IDS, k=3)[:2] == (0.0, 0.0)


def test_ndcg_by_hand() -> None:
    # relevances over the corpus: [0, 1, 0, 1, 0]; the ideal ranks both relevant first: dcg = 1 + 1/log2(2) = 2.
    assert ndcg([1, 0, 2, 3, 4], CORRECT, IDS, k=3) == pytest.approx(1 / 2)  # standard nDCG would say 0.613
    assert ndcg([1, 0, 2, 3, 4], CORRECT, IDS, k=5) == pytest.approx((1 + 1 / math.log2(4)) / 2)  # 0.75
    assert ndcg([0, 2, 1, 4, 3], CORRECT, IDS, k=5) == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / 2)
    assert ndcg([1, 3, 0, 2, 4], CORRECT, IDS, k=2) == 1.0
    assert ndcg([0, 2, 4, 1, 3], CORRECT, IDS, k=1) == 0.0
    # k = 1: the ideal DCG is 1 (one slot), whatever the number of relevant documents.
    assert ndcg([3, 0, 1, 2, 4], CORRECT, IDS, k=1) == 1.0
    assert ndcg([0, 1], [], ["a", "b"], k=2) == 0.0  # no relevant document: 0, not a division by zero


def test_k_beyond_the_ranking_scores_the_whole_ranking() -> None:
    ranking = [0, 2, 1, 4, 3]
    assert evaluate_retrieval(ranking, CORRECT, IDS, k=50) == evaluate_retrieval(ranking, CORRECT, IDS, k=5)
    assert evaluate_retrieval(ranking, CORRECT, IDS, k=50) == pytest.approx(
        (1.0, 1.0, (1 / math.log2(3) + 1 / math.log2(5)) / 2)
    )
    # a ranking shorter than k and than the corpus: what it lists, against the corpus' ideal
    assert evaluate_retrieval([1], CORRECT, IDS, k=50) == (1.0, 0.0, 0.5)


def _inst(question_id: str, sessions: dict[str, list[Turn]], qtype: str = "single-session-user") -> Instance:
    return Instance(
        question_id=question_id,
        question_type=qtype,
        question="q?",
        answer="a",
        question_date="2023/05/30 (Tue) 23:40",
        haystack_session_ids=tuple(sessions),
        haystack_dates=tuple("2023/05/01 (Mon) 10:00" for _ in sessions),
        haystack_sessions=tuple(tuple(s) for s in sessions.values()),
        answer_session_ids=tuple(s for s in sessions if s.startswith("answer_")),
    )


HAYSTACK = {
    "f1": [Turn("user", "u1"), Turn("assistant", "a1"), Turn("user", "u2")],
    "answer_q_1": [Turn("user", "x", True), Turn("assistant", "a2", False), Turn("user", "y", False)],
    "f2": [Turn("user", "z")],
}


def test_corpus_ids_follow_process_item_flat_index() -> None:
    inst = _inst("q", HAYSTACK)
    turns = build_corpus(inst, "turn")
    # user turns only; <session id>_<index among all turns, 1-based>; 'answer' -> 'noans' without has_answer
    assert turns.ids == ("f1_1", "f1_3", "answer_q_1_1", "noans_q_1_3", "f2_1")
    assert turns.texts == ("u1", "u2", "x", "y", "z")
    assert turns.session_index == (0, 0, 1, 1, 2)
    sessions = build_corpus(inst, "session")
    assert sessions.ids == ("f1", "answer_q_1", "f2")
    assert sessions.texts == ("u1 u2", "x y", "z")
    assert correct_docs(turns.ids) == ["answer_q_1_1"]


def test_an_evidence_session_with_only_assistant_evidence_is_noans_and_unscored() -> None:
    inst = _inst(
        "q",
        {"answer_q_1": [Turn("user", "ask", False), Turn("assistant", "the answer", True)], "f": [Turn("user", "u")]},
        "single-session-assistant",
    )
    assert build_corpus(inst, "session").ids == ("noans_q_1", "f")
    assert build_corpus(inst, "turn").ids == ("noans_q_1_1", "f_1")
    assert not is_scored(inst)


def test_a_user_turn_of_an_evidence_session_needs_has_answer() -> None:
    inst = _inst("q7", {"answer_q_1": [Turn("user", "x")]})
    with pytest.raises(InvariantError, match=r"q7.*answer_q_1.*turn 0"):
        build_corpus(inst, "turn")


def test_turn_to_session_grows_k_until_it_holds_k_sessions() -> None:
    inst = _inst("q", HAYSTACK)
    corpus = build_corpus(inst, "turn")
    correct = correct_docs(corpus.ids)
    ranking = [0, 1, 3, 2, 4]  # f1_1, f1_3, noans_q_1_3, answer_q_1_1, f2_1
    assert evaluate_retrieval(ranking, correct, corpus.ids, k=3) == (0.0, 0.0, 0.0)
    # sessions of the ranking: f1, f1, noans_q_1, answer_q_1, f2; three distinct sessions need the first 4 turns
    any3, all3, ndcg3 = evaluate_retrieval_turn2session(ranking, correct, corpus.ids, k=3)
    assert (any3, all3) == (1.0, 1.0)
    assert ndcg3 == pytest.approx(1 / math.log2(4))  # relevant at position 4, ideal 1
    assert evaluate_retrieval_turn2session(ranking, correct, corpus.ids, k=1) == (0.0, 0.0, 0.0)
    m = question_metrics(inst, ranking, "turn")
    assert m["session"]["recall_any@3"] == 1.0
    assert m["turn"]["recall_any@3"] == 0.0
    assert m["turn"]["recall_any@5"] == 1.0
    assert set(m["turn"]) == set(m["session"]) == set(METRIC_NAMES)


def test_session_granularity_fills_only_the_session_level() -> None:
    inst = _inst("q", HAYSTACK)
    m = question_metrics(inst, [1, 0, 2], "session")
    assert m["turn"] == {}
    assert m["session"]["recall_any@1"] == 1.0
    assert m["session"]["ndcg_any@1"] == 1.0
    m = question_metrics(inst, [0, 2, 1], "session")
    assert m["session"]["recall_all@1"] == 0.0
    assert m["session"]["ndcg_any@3"] == pytest.approx(1 / math.log2(3))


def test_bad_rankings_name_the_question() -> None:
    inst = _inst("q9", HAYSTACK)
    with pytest.raises(InvariantError, match=r"q9.*index 3"):
        question_metrics(inst, [0, 3], "session")
    with pytest.raises(InvariantError, match=r"q9.*twice"):
        question_metrics(inst, [0, 0], "session")


def test_aggregate_skips_abstention_and_groups_by_type() -> None:
    found = _inst("q1", HAYSTACK, "knowledge-update")
    missed = _inst("q2", HAYSTACK, "multi-session")
    abstain = _inst("q3_abs", HAYSTACK, "knowledge-update")
    results = [
        (found, question_metrics(found, [1, 0, 2], "session")),
        (missed, question_metrics(missed, [0, 2, 1], "session")),
        (abstain, question_metrics(abstain, [0, 2, 1], "session")),
    ]
    agg = aggregate(results)
    assert set(agg) == {ALL, "knowledge-update", "multi-session"}
    assert agg["knowledge-update"]["session"]["recall_any@1"] == 1.0  # the _abs miss is not averaged in
    assert agg["knowledge-update"]["session"]["count"] == 1
    assert agg["multi-session"]["session"]["recall_any@1"] == 0.0
    assert agg[ALL]["session"]["recall_any@1"] == 0.5
    assert agg[ALL]["session"]["count"] == 2
    assert "turn" not in agg[ALL]


def test_rank_by_scores_is_upstreams_reversed_argsort() -> None:
    scores = np.array([0.5, 2.0, 0.5, 1.0])
    assert rank_by_scores(scores).tolist() == [1, 3, 2, 0]  # the tie: higher index first (short array)


@st.composite
def _ranked(draw: st.DrawFn) -> tuple[list[str], list[str], list[int]]:
    n_sessions = draw(st.integers(1, 12))
    ids: list[str] = []
    for s in range(n_sessions):
        evidence = draw(st.booleans())
        for t in range(draw(st.integers(1, 4))):
            relevant = evidence and draw(st.booleans())
            ids.append(f"{'answer' if relevant else 'noans' if evidence else 'f'}_{s}_{t + 1}")
    ranking = draw(st.permutations(range(len(ids))))
    return ids, correct_docs(ids), list(ranking)


@settings(max_examples=150, deadline=None)
@given(_ranked())
def test_properties(case: tuple[list[str], list[str], list[int]]) -> None:
    ids, correct, ranking = case
    ks = sorted({*KS, len(ids)})
    for fn in (evaluate_retrieval, evaluate_retrieval_turn2session):
        values = [fn(ranking, correct, ids, k) for k in ks]
        for any_, all_, ndcg_ in values:
            assert any_ in (0.0, 1.0) and all_ in (0.0, 1.0)
            assert 0.0 <= ndcg_ <= 1.0 + 1e-12
            if correct:
                assert all_ <= any_
                assert (ndcg_ > 0) == (any_ > 0)
        for (any1, all1, _), (any2, all2, _) in itertools.pairwise(values):  # monotone in k
            assert any1 <= any2 and all1 <= all2
        if correct:  # the whole ranking finds everything
            assert values[-1][:2] == (1.0, 1.0)
