"""The AgentMemory contract: items, scored search, context, cost; save/load; the journal after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from memarena.api import AgentMemory, Clock, MemoryContext, MemoryItem, ScoredItem
from memarena.errors import InvalidConfigError, MalformedInputError
from memarena.families.agent.memories.flat_rag import FlatRAG
from memarena.families.agent.persist import DurableMemory, load_memory, save_memory
from memarena.families.agent.retrievers import HashingEmbedder, TfidfEmbedder
from tests.agent.memory_helpers import QUERIES
from tests.agent.memory_helpers import sessions as haystack_sessions

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------
# Items, search and retrieve, the clock, the context
# ---------------------------------------------------------------------------


def test_memory_item_keeps_its_positional_fields_and_round_trips() -> None:
    item = MemoryItem("I moved to Lisbon", 3, 5, {"k": 1})
    assert (item.text, item.session, item.turn, item.metadata) == ("I moved to Lisbon", 3, 5, {"k": 1})
    assert (item.user, item.session_id, item.role, item.timestamp_s) == ("", "", "user", None)
    full = MemoryItem("x", session=1, turn=-1, user="u", session_id="s", role="assistant", timestamp_s=1.5)
    assert MemoryItem.from_json(full.to_json()) == full
    with pytest.raises(ValueError, match="unknown field 'speaker'"):
        MemoryItem.from_json({"text": "x", "speaker": "me"})


class RetrieveOnly(AgentMemory):
    """Newest first, whatever the query (an old-style memory: retrieve, no search)."""

    name: ClassVar[str] = "retrieve_only"

    @dataclass
    class Config:
        _target_: str = "tests.agent.test_agent_memory_contract.RetrieveOnly"

    def __init__(self) -> None:
        self._items: list[MemoryItem] = []

    def add(self, item: MemoryItem) -> None:
        self._items.append(item)

    def retrieve(self, query: str, k: int) -> list[MemoryItem]:
        return self._items[::-1][: max(k, 0)]

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[MemoryItem]:
        return list(self._items)


class SearchOnly(RetrieveOnly):
    name: ClassVar[str] = "search_only"
    retrieve = AgentMemory.retrieve  # type: ignore[assignment]

    def search(self, query: str, k: int) -> list[ScoredItem]:
        return [ScoredItem(m, 10.0 - i) for i, m in enumerate(self._items[: max(k, 0)])]


class Neither(RetrieveOnly):
    name: ClassVar[str] = "neither"
    retrieve = AgentMemory.retrieve  # type: ignore[assignment]


def test_search_and_retrieve_default_to_each_other() -> None:
    old = RetrieveOnly()
    old.add_many([MemoryItem("a"), MemoryItem("b"), MemoryItem("c")])
    assert old.search("q", 2) == [ScoredItem(MemoryItem("c"), -0.0), ScoredItem(MemoryItem("b"), -1.0)]
    new = SearchOnly()
    new.add_many([MemoryItem("a"), MemoryItem("b")])
    assert [m.text for m in new.retrieve("q", 5)] == ["a", "b"]
    with pytest.raises(NotImplementedError, match="neither implements neither search nor retrieve"):
        Neither().search("q", 1)
    with pytest.raises(NotImplementedError, match="neither"):
        Neither().retrieve("q", 1)


def test_cost_defaults_to_the_texts_and_sums_its_parts() -> None:
    old = RetrieveOnly()
    old.add_many([MemoryItem("héllo"), MemoryItem("abc")])
    assert old.memory_breakdown() == {"text_bytes": 9, "vector_bytes": 0, "index_bytes": 0}
    assert old.memory_bytes() == 9
    with pytest.raises(NotImplementedError, match="retrieve_only does not support save"):
        old.save("/nonexistent/x")


def test_clock_never_goes_back_and_context_defaults() -> None:
    clock = Clock(100.0)
    clock.advance_to(50.0)
    assert clock.now_s == 100.0
    clock.advance_to(86400.0 * 2)
    assert clock.now_days == 2.0
    mem = RetrieveOnly()
    assert mem.context.user == "" and mem.clock.now_s == 0.0  # unbound: an empty context of its own
    ctx = MemoryContext(user="u7", clock=clock)
    mem.bind(ctx)
    assert mem.context is ctx and mem.clock is clock
    with pytest.raises(InvalidConfigError, match=r"config key 'embedder'.*agent_memory=retrieve_only"):
        _ = mem.embedder


# ---------------------------------------------------------------------------
# Save and load
# ---------------------------------------------------------------------------


def sessions(n_questions: int = 2) -> list[list[MemoryItem]]:
    """The sessions of generated haystacks (10 per question), as the family adds them (one list per session)."""
    return haystack_sessions(n_questions, size=10, seed=5)


def snapshot(mem: AgentMemory | DurableMemory) -> tuple[Any, ...]:
    return (
        len(mem),
        [m.to_json() for m in (mem.memory if isinstance(mem, DurableMemory) else mem).items()],
        [[(h.item.session_id, h.item.turn, h.score) for h in mem.search(q, 50)] for q in QUERIES],
    )


MEMORIES = {
    "bm25-session": lambda: FlatRAG(),
    "bm25-turn-merge": lambda: FlatRAG(granularity="turn", fact_keys="merge"),
    "dense-flat": lambda: FlatRAG(retriever="dense"),
    "dense-hnsw-separate": lambda: FlatRAG(retriever="dense", index="hnsw", fact_keys="separate"),
}


def context(user: str = "u") -> MemoryContext:
    return MemoryContext(user=user, embedder=HashingEmbedder(dim=128), clock=Clock(5.0))


@pytest.mark.parametrize("which", list(MEMORIES))
def test_save_load_round_trip(which: str, tmp_path: Path) -> None:
    mem = MEMORIES[which]()
    mem.bind(context())
    for s in sessions():
        mem.add_many(s)
    mem.clock.advance_to(2e9)
    path = tmp_path / "m.mam"
    mem.save(path)
    back = AgentMemory.load(path, context())
    assert type(back) is FlatRAG and back.config == mem.config
    assert back.clock.now_s == 2e9
    before, after = mem.memory_breakdown(), back.memory_breakdown()
    assert after["text_bytes"] == before["text_bytes"] and after["vector_bytes"] == before["vector_bytes"]
    # the Rust index reports its heap: a loaded one holds no growth slack of its incremental adds
    assert 0 < after["index_bytes"] <= before["index_bytes"]
    assert snapshot(back) == snapshot(mem)
    back.add_many(sessions(3)[-1])  # keeps working after a load
    mem.add_many(sessions(3)[-1])
    assert snapshot(back) == snapshot(mem)
    assert FlatRAG.load(path).context.user == "u"  # the saved user and clock when no context is given


def test_load_refuses_damaged_or_foreign_files(tmp_path: Path) -> None:
    mem = FlatRAG()
    mem.bind(context())
    for s in sessions(1):
        mem.add_many(s)
    path = save_memory(mem, tmp_path / "m.mam")
    data = path.read_bytes()

    def write(name: str, raw: bytes) -> Path:
        p = tmp_path / name
        p.write_bytes(raw)
        return p

    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    with pytest.raises(MalformedInputError, match=r"flipped.mam: checksum mismatch"):
        load_memory(write("flipped.mam", bytes(flipped)))
    with pytest.raises(MalformedInputError, match=r"cut.mam: checksum mismatch"):
        load_memory(write("cut.mam", data[:-100]))
    with pytest.raises(MalformedInputError, match=r"tiny.mam: 10 bytes, too short"):
        load_memory(write("tiny.mam", data[:10]))
    with pytest.raises(MalformedInputError, match=r"other.mam: not a memarena agent memory file"):
        load_memory(write("other.mam", b"NOTMINE!" + data[8:]))
    newer = bytearray(data)
    newer[8] = 9  # format version 9
    with pytest.raises(MalformedInputError, match=r"file format version 9; this memarena reads 1"):
        load_memory(write("newer.mam", bytes(newer)))

    class Evolved(FlatRAG):
        state_version: ClassVar[int] = 2

    with pytest.raises(MalformedInputError, match=r"holds agent_memory=flat_rag, not a Evolved"):
        load_memory(path, expect=Evolved)
    with pytest.raises(InvalidConfigError, match=r"memory of user 'u' cannot be loaded for 'v'"):
        load_memory(path, context("v"))


def test_load_refuses_another_embedder(tmp_path: Path) -> None:
    mem = FlatRAG(retriever="dense")
    mem.bind(context())
    mem.add_many(sessions(1)[0])
    mem.save(tmp_path / "d.mam")
    other = MemoryContext(user="u", embedder=TfidfEmbedder(dim=128))
    with pytest.raises(InvalidConfigError, match=r"'embedder'.*saved with embedder=hashing.*not embedder=tfidf"):
        AgentMemory.load(tmp_path / "d.mam", other)


# ---------------------------------------------------------------------------
# The journal: nothing acknowledged is lost
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["bm25-session", "dense-hnsw-separate"])
def test_journal_replays_acknowledged_calls_after_a_crash(which: str, tmp_path: Path) -> None:
    make = MEMORIES[which]
    reference = make()
    reference.bind(context())
    all_sessions = sessions()
    durable = DurableMemory(tmp_path / "d", make, context(), fsync=False)
    for i, s in enumerate(all_sessions):
        durable.memory.clock.advance_to(1e9 + i)
        reference.clock.advance_to(1e9 + i)
        durable.add_many(s)
        reference.add_many(s)
        if i == 7:
            durable.checkpoint()  # a snapshot mid-way; the rest is only in the journal
    # The process dies: the journal is not closed, and a last record was being written.
    with open(tmp_path / "d" / DurableMemory.JOURNAL, "ab") as f:
        f.write(b'0badf00d {"seq": 999, "op": "add_ma')
    reopened = DurableMemory(tmp_path / "d", make, context(), fsync=False)
    assert reopened.replayed == len(all_sessions) - 8
    assert reopened.memory.clock.now_s == reference.clock.now_s
    assert snapshot(reopened) == snapshot(reference)  # searches are journaled too
    reopened.add_many(sessions(3)[-1])  # the torn tail was cut: appends go on cleanly
    reopened.close()
    reference.search(QUERIES[0], 50)
    reference.add_many(sessions(3)[-1])
    again = DurableMemory(tmp_path / "d", make, context(), fsync=False)
    assert snapshot(again) == snapshot(reference)


def test_a_corrupted_record_before_good_ones_is_an_error(tmp_path: Path) -> None:
    with DurableMemory(tmp_path / "d", FlatRAG, context()) as durable:
        for s in sessions(1)[:3]:
            durable.add_many(s)
    journal = tmp_path / "d" / DurableMemory.JOURNAL
    lines = journal.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b'"user"', b'"usex"', 1)
    journal.write_bytes(b"\n".join(lines))
    offset = len(lines[0]) + 1
    with pytest.raises(MalformedInputError, match=rf"journal.log: journal record at byte {offset} is corrupted"):
        DurableMemory(tmp_path / "d", FlatRAG, context())


CHILD = textwrap.dedent(
    """
    import sys
    from memarena.api import MemoryContext
    from memarena.families.agent.memories.flat_rag import FlatRAG
    from memarena.families.agent.persist import DurableMemory
    from tests.agent.test_agent_memory_contract import sessions

    durable = DurableMemory(sys.argv[1], FlatRAG, MemoryContext(user="u"))
    for i, s in enumerate(sessions() * 50):
        durable.add_many(s)
        print(i, flush=True)  # acknowledged
    """
)


def test_a_killed_ingest_keeps_every_acknowledged_session(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), str(ROOT)])}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "d")], stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    assert proc.stdout is not None
    acked = -1
    for line in proc.stdout:
        acked = int(line)
        if acked >= 40:
            break
    os.kill(proc.pid, signal.SIGKILL)  # mid-ingest, no chance to clean up
    proc.wait()
    proc.stdout.close()
    durable = DurableMemory(tmp_path / "d", FlatRAG, MemoryContext(user="u"))
    assert len(durable) >= acked + 1  # every acknowledged session (and maybe the one after)
    expected = FlatRAG()
    for s in (sessions() * 50)[: len(durable)]:
        expected.add_many(s)
    assert snapshot(durable) == snapshot(expected)
