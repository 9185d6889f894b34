"""The generator: LongMemEval's schema, every question type, labels by construction, determinism, sizes."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest

from memarena.errors import InvalidConfigError
from memarena.families.agent import generate as gen
from memarena.families.agent.longmemeval import QUESTION_TYPES, Instance, dump, label_problems, load
from memarena.families.agent.metrics import build_corpus, is_scored

FMT = "%Y/%m/%d (%a) %H:%M"


@pytest.fixture(scope="module")
def s_data() -> list[Instance]:
    return gen.generate(size="s", questions=48, seed=3)


def _evidence(inst: Instance) -> list[tuple[str, str, tuple]]:
    return [
        (sid, date, session)
        for sid, date, session in zip(
            inst.haystack_session_ids, inst.haystack_dates, inst.haystack_sessions, strict=True
        )
        if sid in inst.answer_session_ids
    ]


def _labelled(inst: Instance) -> list[str]:
    return [t.content for _, _, s in _evidence(inst) for t in s if t.has_answer]


def test_every_question_type_and_abstention(s_data: list[Instance]) -> None:
    assert {i.question_type for i in s_data} == set(QUESTION_TYPES)
    abstention = [i for i in s_data if i.is_abstention]
    assert abstention and {i.question_type for i in abstention} == {"single-session-user", "temporal-reasoning"}
    two_hop = [i for i in s_data if i.question_type == "multi-session" and not i.question.startswith(("How", "In"))]
    assert two_hop and all(len(i.answer_session_ids) == 2 for i in two_hop)


def test_labels_are_consistent(s_data: list[Instance]) -> None:
    for inst in s_data:
        assert label_problems(inst) == [], inst.question_id
        assert inst.answer_session_ids and all(s.startswith("answer_") for s in inst.answer_session_ids)
        assert set(inst.answer_session_ids) <= set(inst.haystack_session_ids)
        for sid, session in zip(inst.haystack_session_ids, inst.haystack_sessions, strict=True):
            evidence = sid in inst.answer_session_ids
            assert ("answer" in sid) == evidence
            # every turn of an evidence session is labelled true/false; other sessions carry no label
            assert all((t.has_answer is not None) == evidence for t in session)
            assert [t.role for t in session] == ["user", "assistant"] * (len(session) // 2)
        assert _labelled(inst)
        # upstream's corpus builds without tripping its has_answer assertions
        assert build_corpus(inst, "turn").ids and build_corpus(inst, "session").ids


def test_abstention_shape(s_data: list[Instance]) -> None:
    for inst in s_data:
        if not inst.is_abstention:
            assert not str(inst.answer).startswith(gen.INSUFFICIENT)
            continue
        assert inst.question_id.endswith("_abs") and inst.question_type in QUESTION_TYPES
        assert str(inst.answer).startswith(gen.INSUFFICIENT)
        assert not is_scored(inst)
        user_text = " ".join(t.content.lower() for s in inst.haystack_sessions for t in s if t.role == "user")
        for rel in gen.RELATIVES:  # the relative asked about is never mentioned
            if f"my {rel}" in inst.question.lower():
                assert f"my {rel}" not in user_text
        if inst.question_type == "temporal-reasoning":  # the second event never happened
            never = re.search(r"and the day I (.+)\?$", inst.question)
            assert never and never.group(1) not in user_text


def test_answers_follow_from_the_labelled_evidence(s_data: list[Instance]) -> None:
    for inst in s_data:
        if inst.is_abstention:
            continue
        labelled = " ".join(_labelled(inst))
        if inst.question_type in ("single-session-user", "single-session-assistant", "knowledge-update"):
            assert str(inst.answer) in labelled
        if inst.question_type == "knowledge-update":
            (_, _, old), (_, _, new) = _evidence(inst)
            assert any(str(inst.answer) in t.content for t in new if t.has_answer)
            assert not any(str(inst.answer) in t.content for t in old)
        if inst.question_type == "multi-session" and str(inst.answer).isdigit():
            assert int(inst.answer) == len(inst.answer_session_ids)
        if inst.question_type == "temporal-reasoning":
            dates = [datetime.strptime(d, FMT).date() for _, d, _ in _evidence(inst)]
            asked = datetime.strptime(inst.question_date, FMT).date()
            if str(inst.answer).endswith(" days ago"):
                assert str(inst.answer) == f"{(asked - dates[-1]).days} days ago"
            elif str(inst.answer).endswith(" days"):
                assert str(inst.answer) == f"{(dates[1] - dates[0]).days} days"


def test_no_unlabelled_statement_of_the_asked_fact(s_data: list[Instance]) -> None:
    for inst in s_data:
        facts = [f for f in gen.FACTS if inst.question in f.question]
        if not facts or inst.is_abstention:
            continue
        [fact] = facts
        stated = {t.format(v=inst.answer) for t in (*fact.say, *fact.update)}
        for sid, session in zip(inst.haystack_session_ids, inst.haystack_sessions, strict=True):
            if sid not in inst.answer_session_ids:
                assert not any(s in t.content for t in session for s in stated), (inst.question_id, sid)


def test_near_miss_distractors_are_in_the_haystack(s_data: list[Instance]) -> None:
    filler = " ".join(
        t.content
        for inst in s_data
        for sid, s in zip(inst.haystack_session_ids, inst.haystack_sessions, strict=True)
        if sid not in inst.answer_session_ids
        for t in s
    )
    assert any(t.split("{")[0] in filler for t in gen.FRIEND_TEMPLATES)  # a friend's value
    assert any(t.split("{")[1].split("}")[1][:20] in filler for t in gen.PLAN_TEMPLATES)  # a plan not carried out
    negations = {n.split("{")[0] for f in gen.FACTS for n in f.negation if not n.startswith("{")}
    assert any(n in filler for n in negations)


def test_paraphrase_templates() -> None:
    for fact in gen.FACTS:
        assert len(set(fact.say)) >= 5, fact.name
    for pref in gen.PREFERENCES:
        assert len(set(pref.statements)) >= 5
    for coll in gen.COLLECTIONS:
        assert len(set(coll.say)) >= 5
    assert min(len(gen.EVENT_TEMPLATES), len(gen.ASK_RECOMMENDATION), len(gen.GIVE_RECOMMENDATION)) >= 5


def test_dates_are_in_order_and_before_the_question(s_data: list[Instance]) -> None:
    for inst in s_data:
        dates = [datetime.strptime(d, FMT) for d in inst.haystack_dates]
        assert dates == sorted(dates) and len({d.date() for d in dates}) == len(dates)
        assert datetime.strptime(inst.question_date, FMT) > dates[-1]


def test_deterministic_for_a_seed() -> None:
    a = dump(gen.generate(size=20, questions=10, seed=7))
    assert a == dump(gen.generate(size=20, questions=10, seed=7))
    assert a != dump(gen.generate(size=20, questions=10, seed=8))
    # question i depends on (seed, i, size) only: more questions extend the list
    assert gen.generate(size=20, questions=3, seed=7) == gen.generate(size=20, questions=10, seed=7)[:3]


def test_sizes(s_data: list[Instance]) -> None:
    assert all(inst.num_sessions == 50 for inst in s_data)
    oracle = gen.generate(size="oracle", questions=48, seed=3)
    for o, s in zip(oracle, s_data, strict=True):  # the S haystack cut to its evidence
        assert o.haystack_session_ids == o.answer_session_ids == s.answer_session_ids
        assert (o.question, o.answer, o.question_date) == (s.question, s.answer, s.question_date)
        assert [e[2] for e in _evidence(s)] == list(o.haystack_sessions)
    m = gen.generate(size="m", questions=2, seed=0)
    assert [inst.num_sessions for inst in m] == [500, 500]
    assert [inst.num_sessions for inst in gen.generate(size=7, questions=3, seed=0)] == [7, 7, 7]
    # a haystack smaller than the evidence holds the evidence only
    assert [inst.num_sessions for inst in gen.generate(size=1, questions=8, seed=0)] == [1, 1, 1, 2, 2, 2, 2, 1]
    assert gen.generate(size="50", questions=2, seed=1) == gen.generate(size="s", questions=2, seed=1)


@pytest.mark.parametrize("size", ["xl", 0, "-3", True])
def test_bad_size(size: object) -> None:
    with pytest.raises(InvalidConfigError, match="size must be"):
        gen.generate(size=size, questions=1)  # type: ignore[arg-type]


def test_cli_writes_a_loadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.json"
    assert gen.main(["--size", "12", "--questions", "9", "--seed", "0", "--out", str(out)]) == 0
    data = load(out)
    assert len(data) == 9 and all(i.num_sessions == 12 for i in data)
    assert data == gen.generate(size=12, questions=9, seed=0)
    assert "wrote 9 questions" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gen.main(["--size", "huge", "--out", str(out)])
    assert "size must be one of" in capsys.readouterr().err


def test_padding_vocabulary_is_zipf_over_distinct_seeded_words() -> None:
    words, cum = gen.padding_vocabulary()
    assert len(words) == len(set(words)) == gen.PADDING_VOCABULARY == len(cum)
    assert all(re.fullmatch(r"(?:[bcdfghjklmnprstvwz][aeiou]){2,4}", w) for w in words)
    # word r (0-based) weighs 1 / (r + 1): cumulative 1, 1.5, 1.5 + 1/3, ...
    assert cum[:3] == (1.0, 1.5, 1.5 + 1 / 3)
    assert cum[-1] == pytest.approx(sum(1 / r for r in range(1, gen.PADDING_VOCABULARY + 1)))


def test_session_words_pads_every_session_and_changes_nothing_else() -> None:
    plain = gen.generate(size=12, questions=8, seed=5)
    padded = gen.generate(size=12, questions=8, seed=5, session_words=400)
    assert gen.generate(size=12, questions=8, seed=5, session_words=0) == plain
    words, _ = gen.padding_vocabulary()
    vocabulary = set(words)
    for p, q in zip(plain, padded, strict=True):
        assert (p.question_id, p.question, p.answer, p.question_date, p.haystack_dates) == (
            q.question_id,
            q.question,
            q.answer,
            q.question_date,
            q.haystack_dates,
        )
        assert (p.haystack_session_ids, p.answer_session_ids) == (q.haystack_session_ids, q.answer_session_ids)
        for sid, short, long in zip(q.haystack_session_ids, p.haystack_sessions, q.haystack_sessions, strict=True):
            assert long[: len(short)] == short  # the session's own turns first, unchanged
            assert sum(len(t.content.split()) for t in long) >= 400
            added = long[len(short) :]
            assert added and [t.role for t in added] == ["user", "assistant"] * (len(added) // 2)
            for t in added:  # padding words only, no evidence: false in an evidence session, unlabelled elsewhere
                assert set(t.content.rstrip("?.").split(" ")) <= vocabulary
                assert t.has_answer is (False if sid in q.answer_session_ids else None)
                low, high = gen.PADDING_USER_WORDS if t.role == "user" else gen.PADDING_ASSISTANT_WORDS
                assert low <= len(t.content.split(" ")) <= high
        assert label_problems(q) == []
        assert build_corpus(q, "turn").ids and build_corpus(q, "session").ids
    assert dump(padded) == dump(gen.generate(size=12, questions=8, seed=5, session_words=400))


@pytest.mark.parametrize("bad", [-1, 2.5, True, "100"])
def test_bad_session_words(bad: object) -> None:
    with pytest.raises(InvalidConfigError, match="session_words must be a whole number >= 0"):
        gen.generate(size=3, questions=1, session_words=bad)  # type: ignore[arg-type]


def test_the_workload_passes_session_words_on() -> None:
    from memarena.families.agent.workloads import LongMemEvalGenerated

    w = LongMemEvalGenerated(size="7", questions=2, session_words=300)
    assert w.describe() == "generated_7_q2_w300"
    assert w.load(0) == gen.generate(size=7, questions=2, seed=0, session_words=300)
    assert LongMemEvalGenerated(size="7", questions=2).describe() == "generated_7_q2"
