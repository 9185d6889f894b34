"""LongMemEval's own flat retrieval against memarena's ``flat_rag``, on the same generated data, in one run.

Data: :func:`memarena.families.agent.generate.generate` (seeded), sizes
``oracle``, ``s`` (50 sessions a haystack, S-like) and ``m`` (500, M-like),
``--questions`` questions each (question ``i`` has kind ``i mod 8``), at
each ``--session-words`` length: 0 keeps the templates' short sessions
(~95 words), 1700 pads every session to LongMemEval_S/_M's volume (~2.3k
tokens a session; the generator's "Session length").

**Peer** (:func:`peer_question`): the loop of LongMemEval's released
``src/retrieval/run_retrieval.py`` (github xiaowu0162/LongMemEval,
``batch_get_retrieved_context_and_eval``), on each question's JSON entry:

* step 1, ``process_item_flat_index`` for every haystack session in file
  order: at session granularity one document per session, the user turns'
  contents joined by ``' '``, id the session id, with ``'answer'`` replaced
  by ``'noans'`` when none of its user turns ``has_answer``; at turn
  granularity one document per user turn, id ``<session id>_<i_turn + 1>``
  (``'noans'`` for a user turn of an answer session without ``has_answer``);
  then ``correct_docs = list(set(doc_id for doc_id in corpus_ids if "answer" in doc_id))``;
* step 2, ``DenseRetrievalMaster.run_flat_retrieval``: ``flat-bm25`` is
  ``BM25Okapi([doc.split(" ") for doc in corpus]).get_scores(query.split(" "))``
  then ``np.argsort(scores)[::-1]`` (``rank_bm25`` itself); the dense
  retrievers embed the query and the corpus, score
  ``query_vectors @ all_docs_vectors.T`` and rank with
  ``scores.argsort(descending=True)``: here the same embedder as memarena's
  run (``embedder=hashing``, unit rows), float32 inner products, and
  ``np.argsort(-scores, kind="stable")`` (ties to the lower index: torch's
  order among equal scores is unspecified);
* step 3, ``eval_utils.evaluate_retrieval`` at ``k in [1, 3, 5, 10, 30, 50]``
  under the granularity's level and, at turn granularity,
  ``evaluate_retrieval_turn2session`` under ``session`` (written again here
  from ``src/retrieval/eval_utils.py``, not memarena's copy).

**memarena**: the agent family's own per-question path
(:func:`memarena.families.agent.family.evaluate_question`) with
``agent_memory=flat_rag`` (``retriever=bm25``, ``tokenizer=whitespace_split``;
``retriever=dense``, ``index=flat``, the Rust flat index): a fresh memory per
question, one ``add_many`` per session in time order, one search for every
value, the ranking scored by :mod:`memarena.families.agent.metrics`.

Checked: every question's metrics (every level, metric and k) are equal,
float for float, between the two (``identical``; a difference stops the run
naming the question and the metric). Timed: the peer's steps 1-2 (corpus,
index, scores, sort) against memarena's ingest + search (``ingest_s +
retrieve_s``), both without embedding, which is timed apart (``embed_s``,
the same embedder on the same texts, a fresh embedder for each side and
repeat). Each (size, retriever, granularity) is run ``--repeats`` times,
the sides alternating; medians are printed with the load average before and
after. One core: the process is pinned to one CPU (``sched_setaffinity``, so
the Rust index sees one core), and OpenMP/MKL/OpenBLAS and torch use one
thread.

``--sweep`` also times every registered agent memory (default config, the
hashing embedder) over the M-like questions, as ``memarena -m
experiment=agent workload.size=m`` would, one core.

    python benchmarks/agent_vs_longmemeval.py [--sizes oracle,s,m] [--questions 16] [--repeats 3] [--sweep]
        [--session-words 0,1700]
"""

from __future__ import annotations

import itertools
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads its BLAS

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from rank_bm25 import BM25Okapi  # noqa: E402

from memarena.api import AgentMemory, Embedder  # noqa: E402
from memarena.families.agent.family import TimedEmbedder, evaluate_question  # noqa: E402
from memarena.families.agent.generate import generate, num_sessions  # noqa: E402
from memarena.families.agent.longmemeval import Instance  # noqa: E402
from memarena.families.agent.memories.flat_rag import FlatRAG  # noqa: E402
from memarena.families.agent.retrievers import HashingEmbedder  # noqa: E402

KS = (1, 3, 5, 10, 30, 50)
Metrics = dict[str, dict[str, float]]

# ---------------------------------------------------------------------------
# The peer: LongMemEval's run_retrieval.py loop, written again from the source
# ---------------------------------------------------------------------------


def peer_corpus(entry: dict[str, Any], granularity: str) -> tuple[list[str], list[str]]:
    """Documents and ids of one question, as ``process_item_flat_index`` over every session in file order."""
    corpus: list[str] = []
    ids: list[str] = []
    for sess_id, data in zip(entry["haystack_session_ids"], entry["haystack_sessions"], strict=True):
        user = [turn for turn in data if turn["role"] == "user"]
        if granularity == "session":
            corpus.append(" ".join(turn["content"] for turn in user))
            noans = "answer" in sess_id and all(not turn["has_answer"] for turn in user)
            ids.append(sess_id.replace("answer", "noans") if noans else sess_id)
            continue
        for i_turn, turn in enumerate(data):
            if turn["role"] != "user":
                continue
            corpus.append(turn["content"])
            doc_id = f"{sess_id}_{i_turn + 1}"
            if "answer" in sess_id and not turn["has_answer"]:
                doc_id = doc_id.replace("answer", "noans")
            ids.append(doc_id)
    return corpus, ids


def _dcg(relevances: Sequence[float], k: int) -> float:
    # eval_utils.dcg: r = asfarray(relevances)[:k]; r[0] + sum(r[1:] / log2(arange(2, r.size + 1)))
    r = np.asarray(relevances, dtype=np.float64)[:k]
    if r.size:
        return float(r[0] + np.sum(r[1:] / np.log2(np.arange(2, r.size + 1))))
    return 0.0


def _evaluate(ranking: Sequence[int], correct: Sequence[str], ids: Sequence[str], k: int) -> tuple[float, ...]:
    # eval_utils.evaluate_retrieval and ndcg: recall over set(ids[i] for i in ranking[:k]), binary relevances
    recalled = {ids[i] for i in ranking[:k]}
    relevances = [1 if doc_id in correct else 0 for doc_id in ids]
    ideal = _dcg(sorted(relevances, reverse=True), k)
    ndcg = 0.0 if ideal == 0 else _dcg([relevances[i] for i in ranking[:k]], k) / ideal
    return float(any(d in recalled for d in correct)), float(all(d in recalled for d in correct)), ndcg


def _evaluate_turn2session(
    ranking: Sequence[int], correct: Sequence[str], ids: Sequence[str], k: int
) -> tuple[float, ...]:
    # eval_utils.evaluate_retrieval_turn2session: strip '_<turn>' from every id, then grow k until it
    # covers k distinct sessions (or passes the corpus' length)
    def strip(doc_id: str) -> str:
        return "_".join(doc_id.split("_")[:-1])

    sessions_correct = list({strip(x) for x in correct})
    session_ids = [strip(x) for x in ids]
    effective_k = k
    while effective_k <= len(session_ids) and len({session_ids[i] for i in ranking[:effective_k]}) < k:
        effective_k += 1
    return _evaluate(ranking, sessions_correct, session_ids, effective_k)


def peer_metrics(ranking: Sequence[int], ids: Sequence[str], granularity: str) -> Metrics:
    """Step 3 of the loop: the question's ``metrics`` dict."""
    correct = list({doc_id for doc_id in ids if "answer" in doc_id})
    out: Metrics = {"session": {}, "turn": {}}
    for k in KS:
        for level, fn in ((granularity, _evaluate), ("session", _evaluate_turn2session)):
            if fn is _evaluate_turn2session and granularity != "turn":
                continue
            any_, all_, ndcg = fn(ranking, correct, ids, k)
            out[level].update({f"recall_any@{k}": any_, f"recall_all@{k}": all_, f"ndcg_any@{k}": ndcg})
    return out


@dataclass
class SideResult:
    """One side's pass over the questions: metrics per question and its times."""

    metrics: list[Metrics] = field(default_factory=list)
    search_s: float = 0.0  # ingest + search (peer: corpus, index, scores, sort), embedding left out
    embed_s: float = 0.0


def peer_question(
    entry: dict[str, Any], granularity: str, retriever: str, embedder: Embedder | None
) -> tuple[Metrics, float, float]:
    """One question by LongMemEval's loop: ``(metrics, seconds of steps 1-2 without embedding, embedding seconds)``."""
    t0 = time.perf_counter()
    corpus, ids = peer_corpus(entry, granularity)
    query = entry["question"]
    embed_s = 0.0
    if retriever == "bm25":
        bm25 = BM25Okapi([doc.split(" ") for doc in corpus])
        scores = bm25.get_scores(query.split(" "))
        ranking = np.argsort(scores)[::-1]
    else:
        assert embedder is not None, "the dense peer needs an embedder"
        e0 = time.perf_counter()
        q = np.asarray(embedder.embed([query]), dtype=np.float32)
        docs = np.asarray(embedder.embed(corpus), dtype=np.float32)
        embed_s = time.perf_counter() - e0
        dense = (q @ docs.T)[0]
        ranking = np.argsort(-dense, kind="stable")
    seconds = time.perf_counter() - t0 - embed_s
    return peer_metrics([int(i) for i in ranking], ids, granularity), seconds, embed_s


def run_peer(
    entries: Sequence[dict[str, Any]], granularity: str, retriever: str, make_embedder: Callable[[], Embedder]
) -> SideResult:
    out = SideResult()
    embedder = make_embedder() if retriever == "dense" else None
    for entry in entries:
        metrics, seconds, embed_s = peer_question(entry, granularity, retriever, embedder)
        out.metrics.append(metrics)
        out.search_s += seconds
        out.embed_s += embed_s
    return out


def run_memarena(
    instances: Sequence[Instance],
    granularity: str,
    retriever: str,
    make_embedder: Callable[[], Embedder],
    tokenizer: str = "whitespace_split",
) -> SideResult:
    out = SideResult()
    embedder = TimedEmbedder(make_embedder()) if retriever == "dense" else None
    for inst in instances:
        memory = FlatRAG(granularity=granularity, retriever=retriever, tokenizer=tokenizer, index="flat")
        result = evaluate_question(inst, memory, embedder)
        out.metrics.append(result.metrics)
        out.search_s += result.ingest_s + result.retrieve_s
        out.embed_s += result.embed_s
    return out


def first_difference(instances: Sequence[Instance], peer: Sequence[Metrics], ours: Sequence[Metrics]) -> str | None:
    """``None`` when every question's metrics are equal, else where they first differ."""
    for inst, a, b in zip(instances, peer, ours, strict=True):
        for level in ("session", "turn"):
            if a[level].keys() != b[level].keys():
                names = f"{sorted(a[level])} vs {sorted(b[level])}"
                return f"question {inst.question_id!r}: level {level!r} has metrics {names}"
            for name, value in a[level].items():
                if value != b[level][name]:
                    got = b[level][name]
                    return f"question {inst.question_id!r}: {level} {name} is {value} (LongMemEval) vs {got} (memarena)"
    return None


def scored_mean(instances: Sequence[Instance], metrics: Sequence[Metrics], level: str, name: str) -> float:
    """``run_retrieval.main``'s average: skip ``_abs`` and questions with no user ``has_answer`` turn."""
    values = [
        m[level][name]
        for inst, m in zip(instances, metrics, strict=True)
        if "_abs" not in inst.question_id
        and any(t.role == "user" and t.has_answer for s in inst.haystack_sessions for t in s)
    ]
    return float(np.mean(values)) if values else float("nan")


@dataclass
class Comparison:
    """Both sides on one (size, retriever, granularity): the last repeat's metrics, every repeat's times."""

    size: str
    retriever: str
    granularity: str
    instances: list[Instance]
    peer: SideResult
    ours: SideResult
    peer_s: list[float]
    ours_s: list[float]
    peer_embed_s: list[float]
    ours_embed_s: list[float]

    @property
    def difference(self) -> str | None:
        return first_difference(self.instances, self.peer.metrics, self.ours.metrics)

    @property
    def ratio(self) -> float:
        """Peer time over memarena time (medians): above 1, memarena is faster."""
        return statistics.median(self.peer_s) / statistics.median(self.ours_s)


def compare(
    instances: Sequence[Instance],
    *,
    size: str = "?",
    retriever: str = "bm25",
    granularity: str = "session",
    repeats: int = 1,
    tokenizer: str = "whitespace_split",
    make_embedder: Callable[[], Embedder] = HashingEmbedder,
) -> Comparison:
    """Run both sides ``repeats`` times on ``instances`` (alternating); raise if their metrics differ.

    :param tokenizer: memarena's BM25 tokenizer (the peer always splits on ``" "``);
        another one makes the metrics differ, and the comparison raise.
    :raises AssertionError: a question whose metrics differ, naming it and the metric.
    """
    entries = [inst.to_json() for inst in instances]
    peer_s: list[float] = []
    ours_s: list[float] = []
    peer_embed: list[float] = []
    ours_embed: list[float] = []
    peer = ours = SideResult()
    for _ in range(repeats):
        peer = run_peer(entries, granularity, retriever, make_embedder)
        ours = run_memarena(instances, granularity, retriever, make_embedder, tokenizer)
        peer_s.append(peer.search_s)
        ours_s.append(ours.search_s)
        peer_embed.append(peer.embed_s)
        ours_embed.append(ours.embed_s)
    result = Comparison(
        size, retriever, granularity, list(instances), peer, ours, peer_s, ours_s, peer_embed, ours_embed
    )
    problem = result.difference
    assert problem is None, f"{retriever}/{granularity} at size {size}: metrics differ: {problem}"
    return result


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


def pin_one_core() -> str:
    """Pin the process (and the threads it starts) to one CPU; torch to one thread. Returns what was done."""
    done = []
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        done.append(f"cpu {cpu}")
    try:
        import torch

        torch.set_num_threads(1)
        done.append("torch 1 thread")
    except ImportError:
        pass
    done.append("OMP/MKL/OPENBLAS/RAYON=1")
    return ", ".join(done)


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def sweep(instances: Sequence[Instance]) -> list[tuple[str, float, int]]:
    """Every registered agent memory, default config, over ``instances``: ``(name, seconds, questions)``."""
    from memarena.plugins import get_plugin_manager
    from memarena.registry import Registry

    registry = Registry.from_plugin_manager(get_plugin_manager())
    out = []
    for name in registry.names("agent_memory"):
        cls = registry.get("agent_memory", name)
        embedder = TimedEmbedder(HashingEmbedder())
        t0 = time.perf_counter()
        for inst in instances:
            memory = cls()
            assert isinstance(memory, AgentMemory), f"agent_memory={name} built {type(memory).__name__}"
            evaluate_question(inst, memory, embedder)
        out.append((name, time.perf_counter() - t0, len(instances)))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", default="oracle,s,m")
    parser.add_argument("--questions", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrievers", default="bm25,dense")
    parser.add_argument("--granularities", default="session,turn")
    parser.add_argument(
        "--session-words",
        default="0",
        help="comma list: pad every session to at least this many words (0: the generator's ~95; "
        "LongMemEval's sessions hold ~1.7k-2.3k, see memarena.families.agent.generate)",
    )
    parser.add_argument("--sweep", action="store_true", help="also time every registered agent memory at size m")
    args = parser.parse_args(argv)

    pinned = pin_one_core()
    print(
        f"# agent_vs_longmemeval: python {platform.python_version()}, rank-bm25 "
        f"{importlib.metadata.version('rank-bm25')}, numpy {np.__version__}; {pinned}"
    )
    print(f"# {args.questions} questions a size, seed {args.seed}, median of {args.repeats}; {load_line()}")
    header = (
        f"{'size':<7}{'words':>6} {'retriever':<10}{'gran':<8}{'docs/q':>8}  "
        f"{'s_r_any@5':>10}{'s_ndcg@10':>10}{'t_r_any@10':>11}"
        f"  {'metrics':<10}{'LME s':>9}{'memarena s':>11}{'ratio':>8}{'embed s (LME/mem)':>20}"
    )
    print(header)
    rows = []
    lengths = [int(w) for w in args.session_words.split(",")]
    for size, words in itertools.product(args.sizes.split(","), lengths):
        instances = generate(size=size, questions=args.questions, seed=args.seed, session_words=words)
        for retriever in args.retrievers.split(","):
            for granularity in args.granularities.split(","):
                c = compare(instances, size=size, retriever=retriever, granularity=granularity, repeats=args.repeats)
                docs = np.mean([len(peer_corpus(e, granularity)[0]) for e in (i.to_json() for i in instances)])
                turn = (
                    f"{scored_mean(instances, c.ours.metrics, 'turn', 'recall_any@10'):>11.4f}"
                    if granularity == "turn"
                    else f"{'-':>11}"
                )
                print(
                    f"{size:<7}{words:>6} {retriever:<10}{granularity:<8}{docs:>8.0f}  "
                    f"{scored_mean(instances, c.ours.metrics, 'session', 'recall_any@5'):>10.4f}"
                    f"{scored_mean(instances, c.ours.metrics, 'session', 'ndcg_any@10'):>10.4f}{turn}"
                    f"  {'identical':<10}{statistics.median(c.peer_s):>9.4f}{statistics.median(c.ours_s):>11.4f}"
                    f"{c.ratio:>8.2f}"
                    f"{statistics.median(c.peer_embed_s):>10.3f}/{statistics.median(c.ours_embed_s):.3f}",
                    flush=True,
                )
                rows.append(c)
    print(f"# {load_line()}")
    for words in lengths if args.sweep else []:
        instances = generate(size="m", questions=args.questions, seed=args.seed, session_words=words)
        print(f"# sweep at size m ({num_sessions('m')} sessions, session_words={words}), {args.questions} questions")
        for name, seconds, n in sweep(instances):
            print(f"{name:<20}{seconds:>9.2f} s  ({seconds / n:.3f} s a question)")
        print(f"# {load_line()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
