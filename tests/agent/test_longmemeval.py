"""The LongMemEval loader: schema errors name the file, question and field; save/load round-trips."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from memarena.errors import MalformedInputError
from memarena.families.agent.longmemeval import Instance, Turn, dump, label_problems, load, parse, save

RAW: dict[str, Any] = {
    "question_id": "e47becba",
    "question_type": "single-session-user",
    "question": "What degree did I graduate with?",
    "answer": "Business Administration",
    "question_date": "2023/05/30 (Tue) 23:40",
    "haystack_session_ids": ["sharegpt_yywfPkE_0", "answer_280352e9"],
    "haystack_dates": ["2023/05/20 (Sat) 02:21", "2023/05/21 (Sun) 10:05"],
    "haystack_sessions": [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
        [
            {"role": "user", "content": "I graduated in Business Administration.", "has_answer": True},
            {"role": "assistant", "content": "Congratulations!", "has_answer": False},
        ],
    ],
    "answer_session_ids": ["answer_280352e9"],
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "longmemeval_s.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _broken(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(RAW)
    for key, value in changes.items():
        if value is KeyError:
            del raw[key]
        else:
            raw[key] = value
    return raw


def test_load_reads_the_released_schema(tmp_path: Path) -> None:
    [inst] = load(_write(tmp_path, [RAW]))
    assert inst.question_id == "e47becba"
    assert inst.haystack_sessions[1][0] == Turn("user", "I graduated in Business Administration.", True)
    assert inst.haystack_sessions[0][0].has_answer is None
    assert not inst.is_abstention
    assert label_problems(inst) == []


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"question_type": KeyError}, "question_type", "missing"),
        ({"question_type": "abstention"}, "question_type", "expected one of"),
        ({"question": 3}, "question", "expected a string, got int"),
        ({"answer": None}, "answer", "expected a string"),
        ({"haystack_dates": ["2023/05/20 (Sat) 02:21"]}, "haystack_dates", "has 1 entries but haystack_sessions has 2"),
        ({"haystack_session_ids": ["a", 7]}, "haystack_session_ids[1]", "expected a string, got int"),
        ({"haystack_sessions": {"a": 1}}, "haystack_sessions", "expected a list of sessions"),
        ({"haystack_sessions": [[], "x"]}, "haystack_sessions[1]", "expected a list of turns"),
        (
            {"haystack_sessions": [[], [{"role": "user", "content": "x", "has_answer": "yes"}]]},
            "haystack_sessions[1][0].has_answer",
            "expected true or false",
        ),
        ({"haystack_sessions": [[{"role": "system", "content": "x"}], []]}, "haystack_sessions[0][0].role", "got"),
        ({"haystack_sessions": [[{"role": "user"}], []]}, "haystack_sessions[0][0].content", "missing"),
        ({"answer_session_ids": KeyError}, "answer_session_ids", "missing"),
    ],
)
def test_schema_errors_name_file_question_and_field(
    tmp_path: Path, changes: dict[str, Any], field: str, problem: str
) -> None:
    good = copy.deepcopy(RAW) | {"question_id": "ok1"}
    path = _write(tmp_path, [good, _broken(**changes)])
    with pytest.raises(MalformedInputError) as err:
        load(path)
    message = str(err.value)
    assert str(path) in message
    assert "'e47becba' (instance 1)" in message
    assert f"field {field!r}" in message
    assert problem in message


def test_errors_without_a_question_id(tmp_path: Path) -> None:
    with pytest.raises(MalformedInputError, match=r"question without an id \(instance 0\), field 'question_id'"):
        load(_write(tmp_path, [_broken(question_id=KeyError)]))
    with pytest.raises(MalformedInputError, match=r"expected a JSON list of question instances, got dict"):
        load(_write(tmp_path, RAW))
    with pytest.raises(MalformedInputError, match=r"instance 0: expected a JSON object, got list"):
        load(_write(tmp_path, [[1]]))
    with pytest.raises(MalformedInputError, match=r"'e47becba' \(instance 1\), field 'question_id': duplicate of"):
        parse([RAW, RAW], "mem")


def test_bad_json_names_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('[{"question_id": "x",\n  oops}]', encoding="utf-8")
    with pytest.raises(MalformedInputError, match=r"broken\.json: not valid JSON at line 2 column 3"):
        load(path)


def test_numeric_answers_and_unknown_fields_are_accepted(tmp_path: Path) -> None:
    raw = _broken(answer=3) | {"extra_field": "ignored"}
    [inst] = load(_write(tmp_path, [raw]))
    assert inst.answer == 3
    assert "extra_field" not in inst.to_json()


def test_abstention_is_marked_by_the_id() -> None:
    [inst] = parse([_broken(question_id="e47becba_abs")])
    assert inst.is_abstention
    assert inst.question_type == "single-session-user"


def test_save_load_round_trip_and_same_bytes(tmp_path: Path) -> None:
    raw_abs = _broken(question_id="e47becba_abs", answer="The information provided is not enough.")
    instances = parse([RAW, raw_abs, _broken(question_id="n1", answer=2.5)])
    path = save(instances, tmp_path / "sub" / "out.json")
    again = load(path)
    assert again == instances
    assert json.loads(path.read_text(encoding="utf-8"))[0] == RAW  # the released schema, field for field
    second = save(again, tmp_path / "second.json")
    assert second.read_bytes() == path.read_bytes() == dump(instances).encode()


def test_save_is_atomic(tmp_path: Path) -> None:
    path = save(parse([RAW]), tmp_path / "out.json")
    before = path.read_bytes()
    bad = Instance(**_fields(parse([RAW])[0], answer=object()))
    with pytest.raises(TypeError):
        save([bad], path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.json"]  # no temporary file left behind


def _fields(inst: Instance, **changes: Any) -> dict[str, Any]:
    out = {name: getattr(inst, name) for name in Instance.__dataclass_fields__}
    out.update(changes)
    return out


def test_label_problems_find_broken_labels() -> None:
    [inst] = parse([RAW])
    bad = Instance(
        **_fields(
            inst,
            answer_session_ids=("answer_280352e9", "answer_gone"),
            haystack_sessions=(
                (Turn("user", "Hi", True),),
                (Turn("user", "I graduated.", None),),
            ),
        )
    )
    problems = label_problems(bad)
    assert "answer session 'answer_gone' is not in haystack_session_ids" in problems
    assert any("has_answer in a session that is not evidence" in p for p in problems)
    assert any("user turn of an evidence session without has_answer" in p for p in problems)
