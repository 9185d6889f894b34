"""A deterministic, rule-based extractor of the user's facts from what they said.

LongMemEval expands index keys with "user facts" an LLM extracted from each
session or turn (``src/retrieval/index_expansion_utils.py``,
``resolve_expansion`` with ``session-userfact``/``turn-userfact``). Offline,
without an LLM, the rule here keeps the user's **first-person statements**:

1. split the text into sentences after ``.``, ``!`` or ``?`` followed by
   whitespace (and at line breaks);
2. keep a sentence when it is not a question (does not end with ``?``),
   has at least ``min_words`` words, and has a first-person word: ``I``
   (capital, alone or in ``I'm``, ``I've``, ``I'd``, ``I'll``), or ``my``,
   ``me``, ``mine``, ``myself``, ``we``, ``our``, ``us`` in any case;
3. strip it; keep the first of equal sentences.

The same text always gives the same facts, in order.

>>> extract_facts("Can you help me? I moved to Lisbon last month. The tram is great! My cat hates it.")
['I moved to Lisbon last month.', 'My cat hates it.']
"""

from __future__ import annotations

import re

__all__ = ["extract_facts", "is_first_person"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_FIRST_PERSON = re.compile(r"\bI\b|\b(?i:my|me|mine|myself|we|our|us)\b")


def is_first_person(sentence: str) -> bool:
    """Whether ``sentence`` has a first-person word (see the module docstring)."""
    return _FIRST_PERSON.search(sentence) is not None


def extract_facts(text: str, min_words: int = 3) -> list[str]:
    """The first-person statements of ``text``, in order, without repeats (see the module docstring)."""
    out: list[str] = []
    seen: set[str] = set()
    for raw in _SENTENCE_END.split(text):
        sentence = raw.strip()
        if not sentence or sentence.endswith("?") or len(sentence.split()) < min_words:
            continue
        if is_first_person(sentence) and sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    return out
