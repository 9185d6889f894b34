"""LongMemEval's retrieval metrics, computed as its released code computes them.

Upstream (github.com/xiaowu0162/LongMemEval):

* ``src/retrieval/run_retrieval.py`` ``process_item_flat_index`` builds the
  corpus of one question: only **user** turns are indexed. Session
  granularity: one document per session, the user turns' contents joined by
  ``' '``, id the session id, except an ``answer`` session none of whose user
  turns has ``has_answer`` gets ``'answer'`` replaced by ``'noans'``. Turn
  granularity: one document per user turn, id ``<session id>_<i+1>`` where
  ``i`` is the turn's index among *all* turns of the session (user and
  assistant); in an ``answer`` session a user turn without ``has_answer``
  gets ``'answer'`` replaced by ``'noans'`` in its id.
* ``batch_get_retrieved_context_and_eval``: the correct documents are
  ``list(set(doc_id for doc_id in corpus_ids if "answer" in doc_id))``; for
  k in (1, 3, 5, 10, 30, 50) it records ``evaluate_retrieval`` under the
  granularity's level and, at turn granularity, also
  ``evaluate_retrieval_turn2session`` under ``session``.
* ``main``: the average over questions skips ``'_abs' in question_id`` and
  questions with no user turn having ``has_answer`` (``np.mean`` per metric).
* ``src/retrieval/eval_utils.py``: ``dcg``, ``ndcg``, ``evaluate_retrieval``,
  ``evaluate_retrieval_turn2session`` (quoted beside each function below).

A *ranking* is what upstream calls ``rankings``: corpus indices, best first
(upstream passes the whole ``argsort``). Ties are whatever order the
ranking has; :func:`rank_by_scores` reproduces upstream's BM25 order
(``np.argsort(scores)[::-1]``). A ranking shorter than the corpus scores as
upstream would score its prefix; pass the full ranking for exact equality at
turn-to-session level, whose cut-off grows until it holds k distinct sessions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from memarena.errors import InvalidConfigError, InvariantError
from memarena.families.agent.longmemeval import EVIDENCE_MARK, Instance

__all__ = [
    "ALL",
    "KS",
    "METRIC_NAMES",
    "Corpus",
    "aggregate",
    "build_corpus",
    "correct_docs",
    "dcg",
    "evaluate_retrieval",
    "evaluate_retrieval_turn2session",
    "is_scored",
    "ndcg",
    "question_metrics",
    "rank_by_scores",
]

Granularity = Literal["session", "turn"]

#: ``for k in [1, 3, 5, 10, 30, 50]`` (run_retrieval.batch_get_retrieved_context_and_eval).
KS: tuple[int, ...] = (1, 3, 5, 10, 30, 50)
#: The metric names per level, as upstream's result files spell them.
METRIC_NAMES: tuple[str, ...] = tuple(f"{m}@{k}" for k in KS for m in ("recall_any", "recall_all", "ndcg_any"))
_NOANS = "noans"
#: The group of :func:`aggregate` that holds every scored question.
ALL = "all"


@dataclass(frozen=True, slots=True)
class Corpus:
    """The documents of one question as upstream indexes them: ``texts[i]`` has id ``ids[i]``.

    ``session_index[i]`` is the haystack position of the session document
    ``i`` comes from (useful to map results back; upstream does not keep it).
    """

    granularity: Granularity
    texts: tuple[str, ...]
    ids: tuple[str, ...]
    session_index: tuple[int, ...]


def build_corpus(inst: Instance, granularity: Granularity) -> Corpus:
    """The corpus ``process_item_flat_index`` builds for ``inst`` (see the module docstring).

    Upstream::

        session: text = ' '.join(user contents); ids = [sess_id]
                 if 'answer' in sess_id and all(not turn['has_answer'] for user turns):
                     ids = [sess_id.replace('answer', 'noans')]
        turn:    for i_turn, turn in enumerate(data): if turn['role'] == 'user':
                     id = sess_id + '_' + str(i_turn+1), with 'answer' -> 'noans'
                     when 'answer' in sess_id and not turn['has_answer']

    Upstream raises ``KeyError``/``AssertionError`` for a user turn of an
    ``answer`` session without ``has_answer``; here that raises
    :class:`InvariantError` naming the question, session and turn.
    """
    texts: list[str] = []
    ids: list[str] = []
    where: list[int] = []
    for s, (sid, session) in enumerate(zip(inst.haystack_session_ids, inst.haystack_sessions, strict=True)):
        evidence_session = EVIDENCE_MARK in sid
        user_turns = [(i, t) for i, t in enumerate(session) if t.role == "user"]
        if evidence_session:
            for i, t in user_turns:
                if t.has_answer is None:
                    raise InvariantError(
                        f"question {inst.question_id!r}: session {sid!r} turn {i} is a user turn of an "
                        "evidence session without has_answer (LongMemEval's run_retrieval asserts it)"
                    )
        if granularity == "session":
            texts.append(" ".join(t.content for _, t in user_turns))
            noans = evidence_session and not any(t.has_answer for _, t in user_turns)
            ids.append(sid.replace(EVIDENCE_MARK, _NOANS) if noans else sid)
            where.append(s)
        elif granularity == "turn":
            for i, t in user_turns:
                doc_id = f"{sid}_{i + 1}"
                if evidence_session and not t.has_answer:
                    doc_id = doc_id.replace(EVIDENCE_MARK, _NOANS)
                texts.append(t.content)
                ids.append(doc_id)
                where.append(s)
        else:
            raise InvalidConfigError(f"granularity must be 'session' or 'turn', got {granularity!r}")
    return Corpus(granularity, tuple(texts), tuple(ids), tuple(where))


def correct_docs(corpus_ids: Iterable[str]) -> list[str]:
    """``list(set([doc_id for doc_id in corpus_ids if "answer" in doc_id]))``, sorted for determinism
    (the metrics do not depend on its order)."""
    return sorted({doc_id for doc_id in corpus_ids if EVIDENCE_MARK in doc_id})


def dcg(relevances: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of the first ``k`` relevances, as ``eval_utils.dcg``::

        relevances = np.asfarray(relevances)[:k]
        if relevances.size:
            return relevances[0] + np.sum(relevances[1:] / np.log2(np.arange(2, relevances.size + 1)))
        return 0.

    The first *and* second positions are undiscounted: position ``p``
    (1-based, ``p >= 2``) is divided by ``log2(p)``, not ``log2(p + 1)``.
    """
    head = np.asarray(relevances, dtype=np.float64)[:k]
    if not head.size:
        return 0.0
    # numpy's sum (pairwise) and log2, as upstream: a Python sum differs in the last bit beyond ~8 terms
    return float(head[0] + np.sum(head[1:] / np.log2(np.arange(2, head.size + 1))))


def ndcg(ranking: Sequence[int], correct: Iterable[str], corpus_ids: Sequence[str], k: int = 10) -> float:
    """``eval_utils.ndcg``: binary relevance of every corpus document, the ideal DCG from all of them::

        relevances = [1 if doc_id in correct_docs else 0 for doc_id in corpus_ids]
        sorted_relevances = [relevances[idx] for idx in rankings[:k]]
        ideal_relevance = sorted(relevances, reverse=True)
        ideal_dcg = dcg(ideal_relevance, k); actual_dcg = dcg(sorted_relevances, k)
        return 0. if ideal_dcg == 0 else actual_dcg / ideal_dcg

    Duplicate ids (the turn-to-session level) each count as relevant.
    """
    wanted = set(correct)
    relevances = [1 if doc_id in wanted else 0 for doc_id in corpus_ids]
    ideal = dcg(sorted(relevances, reverse=True), k)
    if ideal == 0:
        return 0.0
    return dcg([relevances[i] for i in ranking[:k]], k) / ideal


def evaluate_retrieval(
    ranking: Sequence[int], correct: Sequence[str], corpus_ids: Sequence[str], k: int = 10
) -> tuple[float, float, float]:
    """``(recall_any, recall_all, ndcg_any)`` at ``k``, as ``eval_utils.evaluate_retrieval``::

        recalled_docs = set(corpus_ids[idx] for idx in rankings[:k])
        recall_any = float(any(doc in recalled_docs for doc in correct_docs))
        recall_all = float(all(doc in recalled_docs for doc in correct_docs))

    With no correct document, recall_any is 0 and recall_all is 1 (Python's
    ``any``/``all`` of nothing); scored questions always have one.
    """
    recalled = {corpus_ids[i] for i in ranking[:k]}
    recall_any = float(any(doc in recalled for doc in correct))
    recall_all = float(all(doc in recalled for doc in correct))
    return recall_any, recall_all, ndcg(ranking, correct, corpus_ids, k)


def _strip_turn_id(doc_id: str) -> str:
    # eval_utils.evaluate_retrieval_turn2session.strip_turn_id: '_'.join(docid.split('_')[:-1])
    return doc_id.rsplit("_", 1)[0] if "_" in doc_id else ""


def evaluate_retrieval_turn2session(
    ranking: Sequence[int], correct: Sequence[str], corpus_ids: Sequence[str], k: int = 10
) -> tuple[float, float, float]:
    """Session-level metrics from a turn ranking, as ``eval_utils.evaluate_retrieval_turn2session``::

        correct_docs = list(set([strip_turn_id(x) for x in correct_docs]))
        corpus_ids = [strip_turn_id(x) for x in corpus_ids]
        effective_k = k
        unique_docids = set(corpus_ids[idx] for idx in rankings[:effective_k])
        while effective_k <= len(corpus_ids) and len(unique_docids) < k:
            effective_k += 1
            unique_docids = set(corpus_ids[idx] for idx in rankings[:effective_k])
        return evaluate_retrieval(rankings, correct_docs, corpus_ids, k=effective_k)

    A session counts as correct through its ``has_answer`` turns only (its
    other turns were renamed ``noans``); ndcg's ideal counts every evidence
    turn, since each stripped turn id is a document of its own.
    """
    sessions_correct = sorted({_strip_turn_id(x) for x in correct})
    session_ids = [_strip_turn_id(x) for x in corpus_ids]
    effective_k = k
    unique = {session_ids[i] for i in ranking[:effective_k]}
    while effective_k <= len(session_ids) and len(unique) < k:
        effective_k += 1
        unique = {session_ids[i] for i in ranking[:effective_k]}
    return evaluate_retrieval(ranking, sessions_correct, session_ids, k=effective_k)


def rank_by_scores(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Corpus indices by score, best first, ties as upstream's BM25 breaks them.

    ``run_flat_retrieval`` (flat-bm25): ``return np.argsort(scores)[::-1]``
    (numpy's default sort kind, reversed: among equal scores the higher index
    usually comes first, but the default sort is not stable for long arrays,
    so only the same call reproduces upstream's order exactly).
    """
    return np.argsort(np.asarray(scores))[::-1]


def _check_ranking(ranking: Sequence[int], n: int, question_id: str) -> list[int]:
    out = [int(i) for i in ranking]
    if any(i < 0 or i >= n for i in out):
        bad = next(i for i in out if i < 0 or i >= n)
        raise InvariantError(f"question {question_id!r}: ranking holds index {bad}, outside the corpus of {n}")
    if len(set(out)) != len(out):
        raise InvariantError(f"question {question_id!r}: ranking holds a corpus index twice")
    return out


def is_scored(inst: Instance) -> bool:
    """Whether upstream's average includes ``inst`` (``run_retrieval.main``)::

        if '_abs' in eval_entry['question_id']: skip
        if not any(('has_answer' in turn) and (turn['has_answer'])
                   for turn in <every user turn of every haystack session>): skip

    So a question whose only evidence is an assistant turn is not scored.
    """
    if inst.is_abstention:
        return False
    return any(t.role == "user" and t.has_answer for session in inst.haystack_sessions for t in session)


def question_metrics(
    inst: Instance, ranking: Sequence[int], granularity: Granularity, corpus: Corpus | None = None
) -> dict[str, dict[str, float]]:
    """``{"session": {...}, "turn": {...}}`` for one question, as upstream records them.

    ``ranking`` ranks :func:`build_corpus` ``(inst, granularity)`` (pass
    ``corpus`` to reuse one already built). At session granularity the
    ``turn`` level stays empty; at turn granularity the ``session`` level
    comes from :func:`evaluate_retrieval_turn2session`. Abstention questions
    get metrics too (upstream computes them and skips them when averaging).
    """
    if corpus is None:
        corpus = build_corpus(inst, granularity)
    elif corpus.granularity != granularity:
        raise InvalidConfigError(f"corpus was built at {corpus.granularity!r} granularity, not {granularity!r}")
    order = _check_ranking(ranking, len(corpus.ids), inst.question_id)
    correct = correct_docs(corpus.ids)
    out: dict[str, dict[str, float]] = {"session": {}, "turn": {}}
    for k in KS:
        any_, all_, ndcg_ = evaluate_retrieval(order, correct, corpus.ids, k)
        out[granularity].update({f"recall_any@{k}": any_, f"recall_all@{k}": all_, f"ndcg_any@{k}": ndcg_})
        if granularity == "turn":
            any_, all_, ndcg_ = evaluate_retrieval_turn2session(order, correct, corpus.ids, k)
            out["session"].update({f"recall_any@{k}": any_, f"recall_all@{k}": all_, f"ndcg_any@{k}": ndcg_})
    return out


def aggregate(
    results: Iterable[tuple[Instance, Mapping[str, Mapping[str, float]]]],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Mean of every metric per question type and over all questions (key ``"all"``).

    ``results`` pairs each question with its :func:`question_metrics`.
    Questions that :func:`is_scored` rejects are left out, as upstream's
    ``main`` leaves them out. Each group also has ``"count"`` (the questions
    averaged) under each level. A type none of whose questions is scored is
    absent.
    """
    groups: dict[str, dict[str, dict[str, list[float]]]] = {}
    for inst, metrics in results:
        if not is_scored(inst):
            continue
        for group in (ALL, inst.question_type):
            levels = groups.setdefault(group, {})
            for level, values in metrics.items():
                if not values:
                    continue
                bucket = levels.setdefault(level, {})
                for name, value in values.items():
                    bucket.setdefault(name, []).append(float(value))
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for group, levels in sorted(groups.items()):
        out[group] = {}
        for level, names in levels.items():
            row: dict[str, Any] = {name: float(np.mean(vals)) for name, vals in names.items()}
            row["count"] = len(next(iter(names.values())))
            out[group][level] = row
    return out
