"""family.durable_dir: a killed run resumes to the same rows; estimate_memory; the benchmark against LongMemEval."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest

from memarena.api import MemoryItem
from memarena.errors import InvalidConfigError
from memarena.families.agent.family import (
    FILE_BYTES_FACTOR,
    MEMORY_BYTES_PER_SESSION,
    SESSION_BYTES,
    estimate,
    evaluate_question,
)
from memarena.families.agent.generate import generate
from memarena.families.agent.longmemeval import save
from memarena.families.agent.memories.flat_rag import FlatRAG
from memarena.families.agent.persist import DurableMemory
from memarena.families.agent.workloads import LongMemEvalFile, LongMemEvalGenerated
from memarena.testing.conformance import run_family

ROOT = Path(__file__).resolve().parents[2]
TIMING = ("ingest_s", "retrieve_s", "embed_s")

# ---------------------------------------------------------------------------
# One user: resume from the first session not acknowledged
# ---------------------------------------------------------------------------

#: Session ordinals every Counting memory was given, in order (replays included).
SEEN: list[int] = []
#: Raise in add_many at this ordinal (a crash before the session is acknowledged); None: never.
FAIL_AT: list[int | None] = [None]


class Counting(FlatRAG):
    """flat_rag that records the sessions it is given and can fail at one."""

    name: ClassVar[str] = "counting"

    @dataclass
    class Config(FlatRAG.Config):
        _target_: str = "tests.agent.test_durable_family.Counting"

    def add_many(self, items: Any) -> None:
        ordinal = items[0].session if items else -1
        if FAIL_AT[0] == ordinal:
            raise RuntimeError(f"crash at session {ordinal}")
        SEEN.append(ordinal)
        super().add_many(items)


def test_a_user_resumes_from_the_first_unacknowledged_session(tmp_path: Path) -> None:
    inst = generate(size=20, questions=6, seed=3)[5]  # knowledge-update: ku_latest_first too
    plain = evaluate_question(inst, FlatRAG(), None)
    SEEN.clear()
    FAIL_AT[0] = 7
    with pytest.raises(RuntimeError, match="crash at session 7"):
        evaluate_question(inst, Counting, None, durable=tmp_path / "u")
    assert list(range(7)) == SEEN
    assert not (tmp_path / "u" / DurableMemory.SNAPSHOT).exists()
    journal = (tmp_path / "u" / DurableMemory.JOURNAL).read_bytes().splitlines()
    assert len(journal) == 7  # sessions 0-6 acknowledged, 7 never
    SEEN.clear()
    FAIL_AT[0] = None
    resumed = evaluate_question(inst, Counting, None, durable=tmp_path / "u")
    assert list(range(20)) == SEEN  # 0-6 replayed from the journal, 7-19 added: each session once
    assert resumed.metrics == plain.metrics and resumed.latest_first == plain.latest_first
    assert (resumed.items_stored, resumed.memory_parts) == (plain.items_stored, plain.memory_parts)
    assert (tmp_path / "u" / DurableMemory.JOURNAL).read_bytes() == b""  # checkpointed
    snapshot = (tmp_path / "u" / DurableMemory.SNAPSHOT).stat().st_mtime_ns
    SEEN.clear()
    loaded = evaluate_question(inst, Counting, None, durable=tmp_path / "u")
    assert SEEN == []  # complete: loaded from the snapshot, not re-ingested
    assert (tmp_path / "u" / DurableMemory.SNAPSHOT).stat().st_mtime_ns == snapshot  # nor rewritten
    assert loaded.metrics == plain.metrics


def test_a_durable_dense_memory_loads_to_the_same_search(tmp_path: Path) -> None:
    from memarena.families.agent.family import TimedEmbedder
    from memarena.families.agent.retrievers import TfidfEmbedder

    inst = generate(size=15, questions=1, seed=4)[0]

    def dense() -> FlatRAG:
        return FlatRAG(retriever="dense", granularity="turn", index="hnsw", index_params={"m": 8})

    embedder = TimedEmbedder(TfidfEmbedder())  # fitted per user: the replay must embed after the fit
    plain = evaluate_question(inst, dense(), embedder)
    first = evaluate_question(inst, dense, embedder, durable=tmp_path / "u")
    again = evaluate_question(inst, dense, embedder, durable=tmp_path / "u")
    assert first.metrics == plain.metrics == again.metrics
    assert first.items_stored == again.items_stored == plain.items_stored


# ---------------------------------------------------------------------------
# A run killed mid-ingest, rerun
# ---------------------------------------------------------------------------

OVERRIDES = ["experiment=agent", "workload.size=300", "workload.questions=4", "progress=false"]

CHILD = textwrap.dedent(
    """
    import sys
    from memarena.testing.conformance import run_family

    run_family({overrides!r} + ["family.durable_dir=" + sys.argv[1]], sys.argv[2])
    """
)


def _journal_lines(user: Path) -> int:
    journal = user / DurableMemory.JOURNAL
    return journal.read_bytes().count(b"\n") if journal.exists() else 0


def _rows_without_timing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def test_a_run_killed_mid_ingest_reruns_to_the_rows_of_an_uninterrupted_run(tmp_path: Path) -> None:
    durable = tmp_path / "durable"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), str(ROOT)])}
    child = CHILD.format(overrides=OVERRIDES)
    proc = subprocess.Popen(
        [sys.executable, "-c", child, str(durable), str(tmp_path / "killed")],
        env=env,
        cwd=ROOT,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    try:
        while True:  # kill once user 0 is complete and user 1 has journaled some sessions
            users = sorted((durable / "users").glob("*")) if (durable / "users").exists() else []
            if len(users) >= 2 and (users[0] / DurableMemory.SNAPSHOT).exists() and _journal_lines(users[1]) >= 20:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"the child ended (rc {proc.returncode}) or stalled before user 1's ingest: {err[-2000:]}")
            time.sleep(0.002)
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no chance to clean up
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
    users = sorted((durable / "users").glob("*"))
    assert (users[0] / DurableMemory.SNAPSHOT).exists()
    assert not (users[1] / DurableMemory.SNAPSHOT).exists()
    acked = _journal_lines(users[1])
    assert 20 <= acked < 300  # killed mid-ingest
    complete = (users[0] / DurableMemory.SNAPSHOT).read_bytes()

    rerun = run_family([*OVERRIDES, f"family.durable_dir={durable}"], tmp_path / "rerun")
    assert rerun.record.status == "complete", rerun.record.error
    assert (users[0] / DurableMemory.SNAPSHOT).read_bytes() == complete  # loaded, not re-ingested
    for user in sorted((durable / "users").glob("*")):
        assert (user / DurableMemory.SNAPSHOT).exists() and _journal_lines(user) == 0
    plain = run_family(OVERRIDES, tmp_path / "plain")
    assert _rows_without_timing(rerun.record.rows) == _rows_without_timing(plain.record.rows)

    with pytest.raises(
        InvalidConfigError, match=r"config key 'family.durable_dir'.*\(config key 'agent_memory' differs"
    ):
        run_family([*OVERRIDES, "agent_memory.granularity=turn", f"family.durable_dir={durable}"], tmp_path / "bad")
    meta = json.loads((durable / "run.json").read_text())
    assert meta["config"]["agent_memory"]["granularity"] == "session"


# ---------------------------------------------------------------------------
# estimate_memory
# ---------------------------------------------------------------------------


def test_estimate_memory_from_the_workload_size(tmp_path: Path) -> None:
    est = estimate(LongMemEvalGenerated(size="m", questions=40))
    assert est is not None and est.keys == ("workload.questions", "workload.size")
    assert est.bytes == 40 * 500 * SESSION_BYTES + 500 * MEMORY_BYTES_PER_SESSION
    capped = estimate(LongMemEvalGenerated(size="m", questions=40), max_questions=8)
    assert capped is not None and capped.bytes == 8 * 500 * SESSION_BYTES + 500 * MEMORY_BYTES_PER_SESSION
    path = save(generate(size=10, questions=2, seed=0), tmp_path / "f.json")
    on_file = estimate(LongMemEvalFile(path=str(path)))
    assert on_file is not None and on_file.bytes == FILE_BYTES_FACTOR * path.stat().st_size
    assert estimate(LongMemEvalFile(path=str(tmp_path / "missing.json"))) is None
    # the loaded questions, as measured, are within 2x of the estimate's share for them
    tracemalloc.start()
    try:
        data = generate(size=100, questions=4, seed=0)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) == 4
    assert 0.5 <= (4 * 100 * SESSION_BYTES) / held <= 2.0


# ---------------------------------------------------------------------------
# The benchmark's core
# ---------------------------------------------------------------------------


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "agent_vs_longmemeval", ROOT / "benchmarks" / "agent_vs_longmemeval.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_finds_identical_metrics_and_fails_on_another_tokenizer() -> None:
    bench = _benchmark()
    data = generate(size=12, questions=8, seed=0)
    for retriever, granularity in (("bm25", "session"), ("bm25", "turn"), ("dense", "session"), ("dense", "turn")):
        c = bench.compare(data, retriever=retriever, granularity=granularity)
        assert c.difference is None and len(c.ours.metrics) == 8
        assert c.peer_s[0] > 0 and c.ours_s[0] > 0
    with pytest.raises(AssertionError, match=r"bm25/session at size \?: metrics differ: question '.*': session "):
        bench.compare(data, retriever="bm25", granularity="session", tokenizer="regex_words")


def test_the_peer_corpus_and_metrics_by_hand() -> None:
    bench = _benchmark()
    entry = {
        "haystack_session_ids": ["answer_a_1", "s_2"],
        "haystack_sessions": [
            [
                {"role": "user", "content": "hi", "has_answer": False},
                {"role": "assistant", "content": "yo", "has_answer": False},
                {"role": "user", "content": "I live in Porto", "has_answer": True},
            ],
            [{"role": "user", "content": "tea?"}],
        ],
    }
    assert bench.peer_corpus(entry, "session") == (["hi I live in Porto", "tea?"], ["answer_a_1", "s_2"])
    assert bench.peer_corpus(entry, "turn") == (
        ["hi", "I live in Porto", "tea?"],
        ["noans_a_1_1", "answer_a_1_3", "s_2_1"],
    )
    # ranking [s_2, answer]: recall_any@1 = 0, @3 = 1; ndcg@3 = (0 + 1/log2(2)) / 1 = 1.0 (upstream's dcg)
    m = bench.peer_metrics([1, 0], ["answer_a_1", "s_2"], "session")
    assert (m["session"]["recall_any@1"], m["session"]["recall_any@3"], m["session"]["ndcg_any@3"]) == (0.0, 1.0, 1.0)
    assert m["turn"] == {}
    # turn level [s_2_1, noans, answer]: turn ndcg@3 = (1/log2(3)) / 1;
    # session level strips to [s_2, noans_a_1, answer_a_1]
    t = bench.peer_metrics([2, 0, 1], ["noans_a_1_1", "answer_a_1_3", "s_2_1"], "turn")
    assert t["turn"]["ndcg_any@3"] == pytest.approx(1 / 1.584962500721156)
    assert t["turn"]["recall_any@1"] == 0.0 and t["session"]["recall_any@3"] == 1.0


def test_memory_items_of_a_resumed_user_keep_their_sessions(tmp_path: Path) -> None:
    """The journal's items come back field for field (ordinals, ids, roles, timestamps)."""
    inst = generate(size=6, questions=1, seed=1)[0]
    evaluate_question(inst, FlatRAG, None, durable=tmp_path / "u")
    with DurableMemory(tmp_path / "u", FlatRAG) as d:
        values = d.memory.items()
        assert d.seq == 6
    assert [v.session for v in values] == list(range(6))
    assert [v.session_id for v in values] == list(inst.haystack_session_ids)
    assert all(isinstance(v, MemoryItem) and v.user == inst.question_id for v in values)
