"""agent_memory=mem0: ADD/UPDATE/DELETE/NONE on a hand-checked fact sequence, history, cost, state, the LLM path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from memarena.api import AgentMemory, MemoryItem
from memarena.families.agent.llm import Decision
from memarena.families.agent.memories.mem0 import HISTORY_ENTRY_BYTES, Mem0
from memarena.testing.conformance import AgentMemoryConformance
from tests.agent.memory_helpers import bind, check_rows, family_rows, round_trip
from tests.agent.test_llm import FakeServer

DAY = 86400.0
FACTS = ("I live in Lisbon.", "I live in Lisbon.", "I live in Porto.", "I don't live in Porto.")


def said(text: str, session: int) -> MemoryItem:
    return MemoryItem(text, session=session, turn=0, session_id=f"s{session}", role="user")


def test_four_facts_give_add_none_update_delete() -> None:
    mem = bind(Mem0())
    assert isinstance(mem, Mem0)
    decisions = []
    for day, fact in enumerate(FACTS):
        mem.clock.advance_to(day * DAY)
        decisions.append(mem.apply(fact, said(fact, day)))
        if day == 2:
            (item,) = mem.items()
            assert (item.text, item.session_id, item.role) == ("I live in Porto.", "s2", "memory")  # the newest source
    assert decisions == [
        Decision("ADD", "", "I live in Lisbon."),
        Decision("NONE", "0", "I live in Lisbon."),
        Decision("UPDATE", "0", "I live in Porto.", "I live in Lisbon."),
        Decision("DELETE", "0", "I live in Porto."),
    ]
    assert len(mem) == 0 and mem.items() == [] and mem.search("Where do I live?", 5) == []
    assert mem.history == [
        {"memory_id": 0, "event": "ADD", "old_memory": None, "new_memory": "I live in Lisbon.", "timestamp_s": 0.0},
        {
            "memory_id": 0,
            "event": "NONE",
            "old_memory": "I live in Lisbon.",
            "new_memory": "I live in Lisbon.",
            "timestamp_s": DAY,
        },
        {
            "memory_id": 0,
            "event": "UPDATE",
            "old_memory": "I live in Lisbon.",
            "new_memory": "I live in Porto.",
            "timestamp_s": 2 * DAY,
        },
        {
            "memory_id": 0,
            "event": "DELETE",
            "old_memory": "I live in Porto.",
            "new_memory": None,
            "timestamp_s": 3 * DAY,
        },
    ]
    # the cost counts the history: 3+17, 4+17+17, 6+17+16, 6+16 text bytes and 16 bytes an entry
    breakdown = mem.memory_breakdown()
    assert breakdown["text_bytes"] == 20 + 38 + 39 + 22
    assert breakdown["vector_bytes"] == 0
    assert breakdown["index_bytes"] == mem._vectors.index_bytes() + 4 * HISTORY_ENTRY_BYTES


def test_add_many_reads_user_turns_and_keeps_other_facts() -> None:
    mem = bind(Mem0())
    mem.add_many(
        [said("Hi! I live in Lisbon. My dog is called Rex.", 0), MemoryItem("I love Lisbon too.", role="assistant")]
    )
    mem.add_many([said("Guess what? I live in Porto now.", 1)])
    assert [m.text for m in mem.items()] == ["I live in Porto now.", "My dog is called Rex."]
    assert [h["event"] for h in mem.history] == ["ADD", "ADD", "UPDATE"]
    text = sum(len(m.text.encode()) for m in mem.items()) + sum(
        len(h["event"]) + len((h["old_memory"] or "").encode()) + len((h["new_memory"] or "").encode())
        for h in mem.history
    )
    live = 2 * 128 * 4
    assert mem.memory_breakdown() == {
        "text_bytes": text,
        "vector_bytes": live,
        "index_bytes": mem._vectors.index.memory_bytes() - live + 16 * 2 + HISTORY_ENTRY_BYTES * 3,
    }
    assert mem.search("Where do I live?", 1)[0].item.text == "I live in Porto now."


def test_save_load_round_trip(tmp_path: Path) -> None:
    mem, back = round_trip(lambda: Mem0(), tmp_path)
    assert isinstance(back, Mem0) and isinstance(mem, Mem0)
    assert back.history == mem.history and len(mem.history) > len(mem)


def test_family_run_metrics_in_unit_interval() -> None:
    check_rows(family_rows(lambda: Mem0()))


def test_llm_extraction_and_decision_against_a_fake_server() -> None:
    server = FakeServer()
    try:
        mem = bind(Mem0(llm=server.llm()))
        server.reply(json.dumps({"facts": ["Lives in Lisbon"]}))  # extract_facts
        server.reply(json.dumps({"memory": [{"id": "0", "text": "Lives in Lisbon", "event": "ADD"}]}))
        mem.add(said("I live in Lisbon.", 0))
        server.reply(json.dumps({"facts": ["Moved to Porto"]}))
        server.reply(
            json.dumps(
                {
                    "memory": [
                        {"id": "0", "text": "Lives in Porto", "event": "UPDATE", "old_memory": "Lives in Lisbon"},
                    ]
                }
            )
        )
        mem.add(said("I just moved to Porto.", 1))
        assert [m.text for m in mem.items()] == ["Lives in Porto"]
        assert [(h["event"], h["old_memory"], h["new_memory"]) for h in mem.history] == [
            ("ADD", None, "Lives in Lisbon"),
            ("UPDATE", "Lives in Lisbon", "Lives in Porto"),
        ]
        bodies = [r["json"] for r in server.requests]
        assert len(bodies) == 4 and all(b["response_format"] == {"type": "json_object"} for b in bodies)
        assert "I just moved to Porto." in bodies[2]["messages"][0]["content"]
        update = bodies[3]["messages"][0]["content"]
        assert '[{"id": "0", "text": "Lives in Lisbon"}]' in update and "New fact: Moved to Porto" in update
        server.reply(json.dumps({"facts": ["Has a cat"]}))
        server.reply("this is not json")
        with pytest.raises(
            Exception, match=rf"LLM step 'decide': POST {server.base_url}/chat/completions: the completion is not JSON"
        ):
            mem.add(said("I have a cat.", 2))
    finally:
        server.close()


# One first-person fact each, no two with the same subject and relation: every add is one ADD.
FIRST_PERSON = (
    "I adopted a grey cat called Miso from the shelter last spring.",
    "My laptop battery drains fast when the bluetooth is on.",
    "I booked a flight to Osaka for Friday evening.",
    "My sister Alice works as a nurse in Lisbon.",
    "I bake lemon cake with three eggs on Sundays.",
    "I switched our build system from make to bazel.",
)


class TestMem0Conformance(AgentMemoryConformance):
    @pytest.fixture
    def make_memory(self) -> Callable[[], AgentMemory]:
        return lambda: bind(Mem0())

    @pytest.fixture
    def memory_items(self) -> list[MemoryItem]:
        return [MemoryItem(text, session=0, turn=i) for i, text in enumerate(FIRST_PERSON)]
