"""The one interface every LLM-driven step of the agent memories goes through.

The memories of issue 17 (SCM, MemGPT-style tiers, mem0-style updates, ...)
were designed around an LLM that summarises, decides whether to recall,
extracts facts and decides memory updates. Here each of those **steps** is
a method of :class:`Deciders`, with two implementations:

* :class:`RuleDeciders` (the default): deterministic rules, no network, the
  same calls always give the same answers;
* :class:`LLMDeciders`: the same steps asked of an OpenAI-compatible chat
  completions endpoint through :class:`ChatClient` (stdlib ``urllib`` only),
  **off by default**; switched on with ``agent_memory.llm.enabled=true``.

A memory takes its LLM settings as one ``llm`` mapping in its ``Config``
(config keys ``agent_memory.llm.*``, fields of :class:`LLMConfig`) and calls
:func:`make_deciders`. The API key is never in a config: ``api_key_env``
names the environment variable that holds it (none set: no
``Authorization`` header, as local servers expect).

Errors (:class:`LLMError`) name the step and the URL: a server that is down
or answers 5xx after ``max_retries`` retries, a 4xx, a body that is not
JSON, a completion without ``choices[0].message.content``, or content that
is not the JSON a step asked for.

Steps (what each rule does):

``summarize(text, max_tokens)``
    the first sentence of ``text``, cut to ``max_tokens`` whitespace tokens;
``should_recall(query, flash, best_similarity, threshold)``
    ``best_similarity >= threshold`` (SCM's activation);
``extract_facts(text)``
    :func:`memarena.families.agent.facts.extract_facts`;
``decide(memories, fact)``
    mem0's ADD/UPDATE/DELETE/NONE by :func:`rule_decide` (subject and relation
    parsed by :func:`parse_fact`).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from memarena.errors import InvalidConfigError, MemarenaError
from memarena.families.agent.facts import extract_facts

__all__ = [
    "EVENTS",
    "ChatClient",
    "Deciders",
    "Decision",
    "LLMConfig",
    "LLMDeciders",
    "LLMError",
    "ParsedFact",
    "RuleDeciders",
    "first_sentence_summary",
    "make_deciders",
    "parse_fact",
    "rule_decide",
    "whitespace_tokens",
]

#: mem0's four events (upstream ``mem0/configs/prompts.py``, DEFAULT_UPDATE_MEMORY_PROMPT: "ADD", "UPDATE",
#: "DELETE", "NONE"; NONE is the brief's NOOP).
EVENTS: tuple[str, ...] = ("ADD", "UPDATE", "DELETE", "NONE")


class LLMError(MemarenaError):
    """An LLM step failed: the message names the step and the URL."""


def whitespace_tokens(text: str) -> int:
    """Tokens of ``text`` as the memories count them: ``len(text.split())`` (whitespace runs; no model tokenizer)."""
    return len(text.split())


# ---------------------------------------------------------------------------
# Configuration and the HTTP client
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LLMConfig:
    """``agent_memory.llm.*``: the OpenAI-compatible endpoint behind :class:`LLMDeciders` (off by default)."""

    #: Use the LLM for every step (false: the deterministic rules).
    enabled: bool = False
    #: The API root; requests go to ``{base_url}/chat/completions``.
    base_url: str = "http://127.0.0.1:8000/v1"
    #: The ``model`` field of each request.
    model: str = "gpt-4o-mini"
    #: Name of the environment variable holding the API key (unset or empty: no Authorization header).
    api_key_env: str = "OPENAI_API_KEY"
    #: Seconds to wait for one response.
    timeout_s: float = 30.0
    #: Retries after a connection error, a timeout or a 5xx (4xx are not retried).
    max_retries: int = 2
    #: Seconds before the first retry; doubled for each next one.
    retry_backoff_s: float = 0.5
    #: Sampling temperature (0: as deterministic as the server allows).
    temperature: float = 0.0
    #: ``max_tokens`` of each completion.
    max_tokens: int = 512

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, key: str = "agent_memory.llm") -> LLMConfig:
        """The config from ``data`` (unknown keys and wrong types are refused, naming ``key.<field>``)."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in dict(data or {}).items():
            if name not in known:
                raise InvalidConfigError(f"config key '{key}.{name}' is unknown; known: {', '.join(known)}")
            default = getattr(cls, name)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise InvalidConfigError(f"config key '{key}.{name}': expected true or false, got {value!r}")
            elif isinstance(default, int | float):
                if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                    raise InvalidConfigError(f"config key '{key}.{name}': expected a number >= 0, got {value!r}")
                value = type(default)(value)
            elif not isinstance(value, str) or not value:
                raise InvalidConfigError(f"config key '{key}.{name}': expected a non-empty string, got {value!r}")
            values[name] = value
        return cls(**values)


class ChatClient:
    """``POST {base_url}/chat/completions`` with the stdlib: JSON in, the first choice's content out.

    The request body is ``{"model", "messages", "temperature", "max_tokens"}``
    plus ``response_format: {"type": "json_object"}`` when a step wants JSON.
    """

    def __init__(self, config: LLMConfig) -> None:
        self.config = config
        self.url = config.base_url.rstrip("/") + "/chat/completions"
        self.calls = 0

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.config.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def complete(self, messages: Sequence[Mapping[str, str]], step: str, json_mode: bool = False) -> str:
        """The content of the first choice.

        :raises LLMError: naming ``step`` and the URL (see the module docstring).
        """
        c = self.config
        body: dict[str, Any] = {
            "model": c.model,
            "messages": [dict(m) for m in messages],
            "temperature": c.temperature,
            "max_tokens": c.max_tokens,
        }
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        data = json.dumps(body).encode()
        where = f"LLM step {step!r}: POST {self.url}"
        last = ""
        for attempt in range(c.max_retries + 1):
            if attempt:
                time.sleep(c.retry_backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=self._headers(), method="POST")
            self.calls += 1
            try:
                with urllib.request.urlopen(request, timeout=c.timeout_s) as response:
                    raw = response.read()
                break
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:200].decode(errors="replace")
                last = f"HTTP {exc.code} {exc.reason}: {detail}"
                if exc.code < 500:
                    raise LLMError(f"{where} failed: {last}") from None
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        else:
            raise LLMError(f"{where} failed after {c.max_retries + 1} tries: {last}")
        try:
            payload = json.loads(raw)
        except ValueError:
            raise LLMError(f"{where}: the response is not JSON: {raw[:200]!r}") from None
        try:
            content = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise LLMError(f"{where}: the response has no choices[0].message.content: {raw[:200]!r}") from None
        if not isinstance(content, str):
            raise LLMError(f"{where}: choices[0].message.content is {type(content).__name__}, not a string")
        return content

    def complete_json(self, messages: Sequence[Mapping[str, str]], step: str) -> Any:
        """:meth:`complete` in JSON mode, parsed (a ```json fence around it is allowed)."""
        content = self.complete(messages, step, json_mode=True).strip()
        fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", content, flags=re.S)
        if fenced:
            content = fenced.group(1)
        try:
            return json.loads(content)
        except ValueError:
            raise LLMError(
                f"LLM step {step!r}: POST {self.url}: the completion is not JSON: {content[:200]!r}"
            ) from None


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def first_sentence_summary(text: str, max_tokens: int) -> str:
    """SCM's rule summary: the first non-empty sentence of ``text``, cut to ``max_tokens`` whitespace tokens.

    >>> first_sentence_summary("I moved to Lisbon last month. The tram is great.", 3)
    'I moved to'
    """
    for raw in _SENTENCE.split(text):
        sentence = raw.strip()
        if sentence:
            return " ".join(sentence.split()[:max_tokens])
    return ""


@dataclass(frozen=True)
class ParsedFact:
    """A fact as ``(subject, relation, value)``, lower-cased; ``negated`` for "I don't live in Porto"."""

    subject: str
    relation: str
    value: str
    negated: bool


_NEG = r"(?P<neg>(?:do not|don't|did not|didn't|no longer|never|am not|'m not|have not|haven't|not)\s+)?"
_COPULA = re.compile(rf"^(?P<subj>my [a-z' ]+?)\s+(?:is|are|was|were)\s+{_NEG}(?P<value>.+)$")
_FIRST = re.compile(
    rf"^i(?:'m|'ve|'d| am| will)?\s+{_NEG}(?:just\s+|still\s+|now\s+|really\s+|also\s+)?"
    r"(?P<verb>[a-z']+)(?:\s+(?P<prep>in|to|at|on|for|with|as|from|into|a|an|the))?\s+(?P<value>.+)$"
)
_TRAIL = re.compile(r"[\s.!,;:]+$")


def parse_fact(fact: str) -> ParsedFact | None:
    """The rule parser of mem0's decisions: ``my <noun> is <value>`` or ``I [not] <verb> [<prep>] <value>``.

    Case and the final punctuation are dropped; a contraction or
    ``not/never/no longer`` before the verb sets ``negated``. Other sentences
    have no subject+relation (None: the rule only ADDs or NOOPs them).

    >>> parse_fact("I live in Lisbon.")
    ParsedFact(subject='i', relation='live in', value='lisbon', negated=False)
    >>> parse_fact("I don't live in Porto")
    ParsedFact(subject='i', relation='live in', value='porto', negated=True)
    >>> parse_fact("My dog is called Rex.")
    ParsedFact(subject='my dog', relation='is', value='called rex', negated=False)
    """
    text = _TRAIL.sub("", " ".join(fact.lower().replace("\u2019", "'").split()))
    m = _COPULA.match(text)
    if m:
        return ParsedFact(m["subj"], "is", m["value"], m["neg"] is not None)
    m = _FIRST.match(text)
    if m:
        relation = m["verb"] + (f" {m['prep']}" if m["prep"] else "")
        return ParsedFact("i", relation, m["value"], m["neg"] is not None)
    return None


@dataclass(frozen=True)
class Decision:
    """One event of mem0's update step: ``ADD`` a new memory, ``UPDATE``/``DELETE`` memory ``id``, or ``NONE``.

    ``text`` is the memory's new text (ADD, UPDATE) or its current one;
    ``old_text`` the text an UPDATE replaces.
    """

    event: str
    id: str
    text: str
    old_text: str = ""


def _normal(text: str) -> str:
    return _TRAIL.sub("", " ".join(text.lower().split()))


def rule_decide(memories: Sequence[tuple[str, str]], fact: str) -> Decision:
    """mem0's update decision for one new ``fact`` against its most similar ``memories`` (``(id, text)``), by rules.

    In order: a memory with the same text (case, spacing and final
    punctuation aside) -> ``NONE``; the first memory with the same subject and
    relation (:func:`parse_fact`) and a different value or polarity ->
    ``DELETE`` it when the fact is a negation, else ``UPDATE`` it to the fact;
    a negation of nothing held -> ``NONE``; otherwise ``ADD`` (id ``""``: the
    memory assigns one).
    """
    new = parse_fact(fact)
    for mid, text in memories:
        if _normal(text) == _normal(fact):
            return Decision("NONE", mid, text)
    if new is not None:
        for mid, text in memories:
            old = parse_fact(text)
            if old is None or (old.subject, old.relation) != (new.subject, new.relation):
                continue
            if new.negated:
                return Decision("DELETE", mid, text)
            return Decision("UPDATE", mid, fact, old_text=text)
        if new.negated:
            return Decision("NONE", "", fact)
    return Decision("ADD", "", fact)


# ---------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------


class Deciders(Protocol):
    """Every LLM-driven step of the agent memories (see the module docstring)."""

    def summarize(self, text: str, max_tokens: int) -> str: ...

    def should_recall(self, query: str, flash: Sequence[str], best_similarity: float, threshold: float) -> bool: ...

    def extract_facts(self, text: str) -> list[str]: ...

    def decide(self, memories: Sequence[tuple[str, str]], fact: str) -> Decision: ...


class RuleDeciders:
    """The deterministic default of every step."""

    def summarize(self, text: str, max_tokens: int) -> str:
        return first_sentence_summary(text, max_tokens)

    def should_recall(self, query: str, flash: Sequence[str], best_similarity: float, threshold: float) -> bool:
        return best_similarity >= threshold

    def extract_facts(self, text: str) -> list[str]:
        return extract_facts(text)

    def decide(self, memories: Sequence[tuple[str, str]], fact: str) -> Decision:
        return rule_decide(memories, fact)


# Prompts: ours, shaped after the systems' own (SCM's summary and "is the history needed" prompts in
# wbbeyourself/SCM4LLMs prompts/dialogue.py; mem0's FACT_RETRIEVAL_PROMPT and DEFAULT_UPDATE_MEMORY_PROMPT in
# mem0/configs/prompts.py, whose JSON shapes {"facts": [...]} and {"memory": [{"id", "text", "event",
# "old_memory"}]} are kept).
SUMMARY_PROMPT = "Summarize the following dialogue turn in at most {n} words. Reply with the summary only.\n\n{text}"
RECALL_PROMPT = (
    "Recent dialogue:\n{flash}\n\nNew user input: {query}\n\nTo answer it, is earlier conversation history needed "
    "beyond the recent dialogue? Answer (A) yes or (B) no."
)
FACTS_PROMPT = (
    "Extract the facts, preferences and plans the user states about themself in the message below. Return JSON "
    'with the key "facts" and a list of strings as its value ({{"facts": []}} when there are none).\n\n{text}'
)
UPDATE_PROMPT = (
    "You manage a memory. Compare the new fact with the existing memories and decide one operation: ADD (new "
    "information), UPDATE (an existing memory holds the same kind of information with a different value; keep its "
    "id), DELETE (the fact contradicts an existing memory), or NONE (already present or irrelevant).\n\n"
    "Existing memories:\n{memories}\n\nNew fact: {fact}\n\nReturn JSON only: "
    '{{"memory": [{{"id": "<id>", "text": "<text>", "event": "ADD|UPDATE|DELETE|NONE", "old_memory": "<old>"}}]}}'
)


class LLMDeciders:
    """Every step asked of :class:`ChatClient` (prompts above; answers checked, errors naming step and URL)."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    @staticmethod
    def _user(text: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": text}]

    def summarize(self, text: str, max_tokens: int) -> str:
        return self.client.complete(self._user(SUMMARY_PROMPT.format(n=max_tokens, text=text)), "summarize").strip()

    def should_recall(self, query: str, flash: Sequence[str], best_similarity: float, threshold: float) -> bool:
        prompt = RECALL_PROMPT.format(flash="\n".join(flash) or "(none)", query=query)
        answer = self.client.complete(self._user(prompt), "should_recall")
        return "(B)" not in answer  # SCM4LLMs core/chat.py, is_history_need: '(B)' in the output -> False

    def extract_facts(self, text: str) -> list[str]:
        data = self.client.complete_json(self._user(FACTS_PROMPT.format(text=text)), "extract_facts")
        facts = data.get("facts") if isinstance(data, dict) else None
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            raise LLMError(
                f"LLM step 'extract_facts': POST {self.client.url}: expected {{\"facts\": [str]}}, got {data!r}"
            )
        return [f.strip() for f in facts if f.strip()]

    def decide(self, memories: Sequence[tuple[str, str]], fact: str) -> Decision:
        listing = json.dumps([{"id": mid, "text": text} for mid, text in memories]) if memories else "(empty)"
        data = self.client.complete_json(self._user(UPDATE_PROMPT.format(memories=listing, fact=fact)), "decide")
        where = f"LLM step 'decide': POST {self.client.url}"
        entries = data.get("memory") if isinstance(data, dict) else None
        if not isinstance(entries, list):
            raise LLMError(f'{where}: expected {{"memory": [...]}}, got {data!r}')
        known = {mid: text for mid, text in memories}
        # The model may list every memory (most with NONE): the first entry that changes something wins.
        chosen: dict[str, Any] | None = None
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("event") not in EVENTS:
                raise LLMError(f"{where}: an entry without an event among {', '.join(EVENTS)}: {entry!r}")
            if entry["event"] != "NONE":
                chosen = entry
                break
        if chosen is None:
            return Decision("NONE", "", fact)
        event, mid, text = chosen["event"], str(chosen.get("id", "")), str(chosen.get("text", ""))
        if event == "ADD":
            return Decision("ADD", "", text or fact)
        if mid not in known:
            raise LLMError(f"{where}: {event} names id {mid!r}, not one of the memories shown ({', '.join(known)})")
        if event == "DELETE":
            return Decision("DELETE", mid, known[mid])
        return Decision("UPDATE", mid, text or fact, old_text=known[mid])


def make_deciders(llm: Mapping[str, Any] | None, key: str = "agent_memory.llm") -> Deciders:
    """The rules, or :class:`LLMDeciders` when ``llm.enabled`` (config keys named ``key.<field>``)."""
    config = LLMConfig.from_mapping(llm, key)
    if not config.enabled:
        return RuleDeciders()
    return LLMDeciders(ChatClient(config))


def config_dict(config: LLMConfig) -> dict[str, Any]:
    """``config`` as the plain mapping a memory's ``llm`` field holds."""
    return asdict(config)
