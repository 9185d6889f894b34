"""LongMemEval's released JSON: its schema as dataclasses, a validating loader, an atomic writer.

The schema is the one the README of github.com/xiaowu0162/LongMemEval
("Dataset Format") describes and ``src/retrieval/run_retrieval.py`` reads.
A file (``longmemeval_oracle.json``, ``longmemeval_s.json``,
``longmemeval_m.json``) is a JSON list of question instances::

    question_id           str   ends with "_abs" for an abstention question
    question_type         str   single-session-user | single-session-assistant |
                                single-session-preference | temporal-reasoning |
                                knowledge-update | multi-session
    question              str
    answer                str   (a few released answers are JSON numbers; kept as read)
    question_date         str   e.g. "2023/05/30 (Tue) 23:40"
    haystack_session_ids  [str]
    haystack_dates        [str] one per session
    haystack_sessions     [[{"role": "user"|"assistant", "content": str, "has_answer"?: bool}]]
    answer_session_ids    [str] the evidence sessions

One optional field is memarena's own (absent from the released files, written
only when non-empty): ``stale_session_ids``, the evidence sessions of a
knowledge-update question that hold the value the later evidence replaced
(the generator knows them; the ``agent`` family scores "latest value ranked
above the stale one" with them, and falls back to the evidence sessions'
dates where a file has none).

Conventions of the upstream code that the rest of this family relies on:

* **Evidence sessions** have ids containing ``answer`` (the generator that
  built the benchmark, ``data/custom_history/sample_haystack_and_timestamp.py``,
  names them ``'answer_' + <source session id>``, with ``_1``, ``_2`` for
  multi-session sources); ``run_retrieval.batch_get_retrieved_context_and_eval``
  takes as correct every corpus id with ``"answer" in doc_id``.
* **Evidence turns** carry ``has_answer: true``. In an evidence session every
  user turn carries ``has_answer`` (``run_retrieval.process_item_flat_index``
  asserts ``'has_answer' in turn`` for the user turns of an ``answer`` session);
  the turns of other sessions carry none (the sampler strips them:
  "clean up the potential has_answer labels in the turns of non-answer sessions").
* **Abstention** questions are those with ``'_abs' in question_id`` (the test
  ``run_retrieval.main`` and ``print_retrieval_metrics.py`` use; the README
  says the id *ends* with ``_abs``). They keep the question type of the
  question they were derived from; retrieval metrics skip them.

Fields this module does not know are ignored on load and not written back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from memarena.errors import MalformedInputError
from memarena.results import atomic_write

__all__ = [
    "ABSTENTION_MARK",
    "EVIDENCE_MARK",
    "QUESTION_TYPES",
    "ROLES",
    "Instance",
    "Turn",
    "dump",
    "label_problems",
    "load",
    "parse",
    "parse_date",
    "save",
]

#: The six question types of the README ("Dataset Format"); abstention is marked by the id, not the type.
QUESTION_TYPES: tuple[str, ...] = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "temporal-reasoning",
    "knowledge-update",
    "multi-session",
)
ROLES: tuple[str, ...] = ("user", "assistant")
#: ``'_abs' in entry['question_id']`` (run_retrieval.main, print_retrieval_metrics.py).
ABSTENTION_MARK = "_abs"
#: ``"answer" in doc_id`` (run_retrieval.batch_get_retrieved_context_and_eval); the sampler's prefix is ``answer_``.
EVIDENCE_MARK = "answer"


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a session. ``has_answer`` is ``None`` where the file has no such key."""

    role: str
    content: str
    has_answer: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.has_answer is not None:
            out["has_answer"] = self.has_answer
        return out


@dataclass(frozen=True, slots=True)
class Instance:
    """One question with its haystack, field for field as in the released JSON."""

    question_id: str
    question_type: str
    question: str
    answer: str | int | float
    question_date: str
    haystack_session_ids: tuple[str, ...]
    haystack_dates: tuple[str, ...]
    haystack_sessions: tuple[tuple[Turn, ...], ...]
    answer_session_ids: tuple[str, ...]
    #: Evidence sessions holding a value that later evidence replaced (memarena's field; empty if unknown).
    stale_session_ids: tuple[str, ...] = ()

    @property
    def is_abstention(self) -> bool:
        """``'_abs' in question_id``, the test upstream's retrieval scoring skips on."""
        return ABSTENTION_MARK in self.question_id

    @property
    def num_sessions(self) -> int:
        return len(self.haystack_sessions)

    def to_json(self) -> dict[str, Any]:
        """The instance as the released files spell it (keys in the README's order)."""
        out: dict[str, Any] = {
            "question_id": self.question_id,
            "question_type": self.question_type,
            "question": self.question,
            "answer": self.answer,
            "question_date": self.question_date,
            "haystack_session_ids": list(self.haystack_session_ids),
            "haystack_dates": list(self.haystack_dates),
            "haystack_sessions": [[t.to_json() for t in s] for s in self.haystack_sessions],
            "answer_session_ids": list(self.answer_session_ids),
        }
        if self.stale_session_ids:
            out["stale_session_ids"] = list(self.stale_session_ids)
        return out


class _Where:
    """Builds error messages naming the file, the question and the field."""

    def __init__(self, source: str, index: int, question_id: object) -> None:
        self.source = source
        self.index = index
        self.question_id = question_id

    def error(self, field: str, problem: str) -> MalformedInputError:
        qid = f"question {self.question_id!r}" if isinstance(self.question_id, str) else "question without an id"
        return MalformedInputError(f"{self.source}: {qid} (instance {self.index}), field {field!r}: {problem}")


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _str(entry: dict[str, Any], key: str, where: _Where) -> str:
    if key not in entry:
        raise where.error(key, "missing")
    value = entry[key]
    if not isinstance(value, str):
        raise where.error(key, f"expected a string, got {_kind(value)} {value!r:.60}")
    return value


def _str_list(entry: dict[str, Any], key: str, where: _Where) -> tuple[str, ...]:
    if key not in entry:
        raise where.error(key, "missing")
    value = entry[key]
    if not isinstance(value, list):
        raise where.error(key, f"expected a list of strings, got {_kind(value)}")
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise where.error(f"{key}[{i}]", f"expected a string, got {_kind(item)} {item!r:.60}")
    return tuple(value)


def _turn(raw: object, field: str, where: _Where) -> Turn:
    if not isinstance(raw, dict):
        raise where.error(field, f"expected a turn object {{role, content, has_answer?}}, got {_kind(raw)}")
    role = raw.get("role")
    if role not in ROLES:
        problem = "missing" if "role" not in raw else f"expected 'user' or 'assistant', got {role!r:.60}"
        raise where.error(f"{field}.role", problem)
    content = raw.get("content")
    if not isinstance(content, str):
        problem = "missing" if "content" not in raw else f"expected a string, got {_kind(content)}"
        raise where.error(f"{field}.content", problem)
    has_answer = raw.get("has_answer")
    if has_answer is not None and not isinstance(has_answer, bool):
        raise where.error(f"{field}.has_answer", f"expected true or false, got {has_answer!r:.60}")
    return Turn(role, content, has_answer)


def _instance(raw: object, index: int, source: str) -> Instance:
    if not isinstance(raw, dict):
        raise MalformedInputError(f"{source}: instance {index}: expected a JSON object, got {_kind(raw)}")
    where = _Where(source, index, raw.get("question_id"))
    question_id = _str(raw, "question_id", where)
    question_type = _str(raw, "question_type", where)
    if question_type not in QUESTION_TYPES:
        raise where.error("question_type", f"expected one of {list(QUESTION_TYPES)}, got {question_type!r}")
    question = _str(raw, "question", where)
    if "answer" not in raw:
        raise where.error("answer", "missing")
    answer = raw["answer"]
    if isinstance(answer, bool) or not isinstance(answer, str | int | float):
        raise where.error("answer", f"expected a string (or a number), got {_kind(answer)}")
    question_date = _str(raw, "question_date", where)
    session_ids = _str_list(raw, "haystack_session_ids", where)
    dates = _str_list(raw, "haystack_dates", where)
    if "haystack_sessions" not in raw:
        raise where.error("haystack_sessions", "missing")
    raw_sessions = raw["haystack_sessions"]
    if not isinstance(raw_sessions, list):
        raise where.error("haystack_sessions", f"expected a list of sessions, got {_kind(raw_sessions)}")
    sessions: list[tuple[Turn, ...]] = []
    for s, raw_session in enumerate(raw_sessions):
        if not isinstance(raw_session, list):
            raise where.error(f"haystack_sessions[{s}]", f"expected a list of turns, got {_kind(raw_session)}")
        sessions.append(tuple(_turn(t, f"haystack_sessions[{s}][{i}]", where) for i, t in enumerate(raw_session)))
    for key, n in (("haystack_session_ids", len(session_ids)), ("haystack_dates", len(dates))):
        if n != len(sessions):
            raise where.error(key, f"has {n} entries but haystack_sessions has {len(sessions)}")
    answer_ids = _str_list(raw, "answer_session_ids", where)
    stale_ids: tuple[str, ...] = ()
    if "stale_session_ids" in raw:
        stale_ids = _str_list(raw, "stale_session_ids", where)
        for i, sid in enumerate(stale_ids):
            if sid not in answer_ids:
                raise where.error(f"stale_session_ids[{i}]", f"{sid!r} is not one of answer_session_ids")
    return Instance(
        question_id=question_id,
        question_type=question_type,
        question=question,
        answer=answer,
        question_date=question_date,
        haystack_session_ids=session_ids,
        haystack_dates=dates,
        haystack_sessions=tuple(sessions),
        answer_session_ids=answer_ids,
        stale_session_ids=stale_ids,
    )


def parse(data: object, source: str = "<data>") -> list[Instance]:
    """Validate decoded JSON ``data`` (a list of instances) and return it as :class:`Instance` objects.

    :raises MalformedInputError: naming ``source``, the question id, the
        instance's position and the field (``haystack_sessions[3][1].role``).
    """
    if not isinstance(data, list):
        raise MalformedInputError(f"{source}: expected a JSON list of question instances, got {_kind(data)}")
    out = [_instance(raw, i, source) for i, raw in enumerate(data)]
    seen: dict[str, int] = {}
    for i, inst in enumerate(out):
        if inst.question_id in seen:
            raise _Where(source, i, inst.question_id).error(
                "question_id", f"duplicate of instance {seen[inst.question_id]}"
            )
        seen[inst.question_id] = i
    return out


def load(path: str | os.PathLike[str]) -> list[Instance]:
    """Read a LongMemEval file (oracle, S, M, or one written by :func:`save`) and validate its schema.

    :raises MalformedInputError: for bad JSON (naming the file, line and
        column) or a bad field (naming the file, question id and field).
    :raises OSError: if the file cannot be read.
    """
    source = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as exc:
            raise MalformedInputError(
                f"{source}: not valid JSON at line {exc.lineno} column {exc.colno} (byte {exc.pos}): {exc.msg}"
            ) from exc
        except UnicodeDecodeError as exc:
            raise MalformedInputError(f"{source}: not UTF-8 at byte {exc.start}: {exc.reason}") from exc
    return parse(data, source)


def dump(instances: Iterable[Instance]) -> str:
    """The JSON text :func:`save` writes (one line, non-ASCII kept, keys in the README's order)."""
    return json.dumps([inst.to_json() for inst in instances], ensure_ascii=False)


def save(instances: Iterable[Instance], path: str | os.PathLike[str]) -> Path:
    """Write ``instances`` to ``path`` in the released schema, atomically.

    The text is serialised first, written to a temporary file beside
    ``path``, fsynced and renamed over it, so a reader sees either the old
    file or the whole new one.
    """
    text = dump(instances)
    return atomic_write(path, [text.encode("utf-8")])


_DATE = re.compile(r"\s*(\d{4})/(\d{1,2})/(\d{1,2})(?:\s*\(\w+\))?(?:\s+(\d{1,2}):(\d{2}))?\s*")


def parse_date(text: str) -> datetime:
    """A date as the released files write it, ``"2023/05/30 (Tue) 23:40"``, as a UTC datetime.

    The weekday in brackets is ignored (not checked), the time is optional
    (midnight); no locale is involved.

    :raises ValueError: ``text`` has another shape.
    """
    m = _DATE.fullmatch(text)
    if m is None:
        raise ValueError(f"not a LongMemEval date (YYYY/MM/DD (Day) HH:MM): {text!r}")
    year, month, day, hour, minute = (int(g) if g else 0 for g in m.groups())
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def label_problems(inst: Instance) -> list[str]:
    """Where ``inst``'s evidence labels break the upstream conventions (empty if none).

    Checked: session ids are unique; every answer session id is in the
    haystack; an id contains ``answer`` iff it is an answer session; turns
    with ``has_answer`` lie only in answer sessions, where every user turn
    carries the key (``process_item_flat_index`` asserts it); an answerable
    question has at least one ``has_answer`` turn. The released files are
    not required to pass (:func:`load` does not call this); the generator's are.
    """
    problems: list[str] = []
    ids = inst.haystack_session_ids
    if len(set(ids)) != len(ids):
        problems.append("haystack_session_ids has duplicates")
    answer_ids = set(inst.answer_session_ids)
    for sid in inst.answer_session_ids:
        if sid not in ids:
            problems.append(f"answer session {sid!r} is not in haystack_session_ids")
    any_label = False
    for sid, session in zip(ids, inst.haystack_sessions, strict=True):
        evidence = sid in answer_ids
        if (EVIDENCE_MARK in sid) != evidence:
            problems.append(f"session {sid!r}: id {'lacks' if evidence else 'contains'} {EVIDENCE_MARK!r}")
        for i, turn in enumerate(session):
            if turn.has_answer and not evidence:
                problems.append(f"session {sid!r} turn {i}: has_answer in a session that is not evidence")
            if evidence and turn.role == "user" and turn.has_answer is None:
                problems.append(f"session {sid!r} turn {i}: user turn of an evidence session without has_answer")
            any_label = any_label or bool(turn.has_answer)
    if not inst.is_abstention and not any_label:
        problems.append("no turn has has_answer=true")
    return problems
