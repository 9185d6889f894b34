"""``agent_memory=tim``: Think-in-Memory's thoughts in LSH buckets (Liu et al. 2023, arXiv 2311.08719).

The paper (section 3): after each answer the LLM "post-thinks" and stores
**inductive thoughts**, relation triples ``(head, relation, tail)`` with their
text; the memory supports **insert**, **forget** (remove thoughts that
contradict or are outdated) and **merge** (thoughts with the same head are
merged into one); thoughts are organised by **locality-sensitive hashing**:
"each thought is hashed into a group by F(x) = argmax([xR; -xR])", a query
is hashed the same way, and "retrieval first finds the group by LSH, then
ranks the thoughts within the group by similarity". No code was released.

Here, without an LLM, thoughts come from rules over the **user's** turns
(:func:`extract_thoughts`): in each sentence that is not a question,

* ``my X is|was|are Y`` → ``(my X, is, Y)``; ``my X is not Y`` negated;
* ``I live in|moved to|relocated to Y`` → ``(I, live in, Y)``;
* ``I work as|am a|am an Y`` → ``(I, work as, Y)``; ``I work at|for Y`` → ``(I, work at, Y)``;
* ``I have|own|got|bought|adopted a|an|the|my Y`` → ``(I, have, Y)`` (many values);
* ``I like|love|enjoy Y`` → ``(I, like, Y)`` (many values);
* negations ``I don't|do not|no longer|never|didn't ...`` (and ``I am not a``,
  ``I'm not a``) give the negated relation (``not have``).

``Y`` runs to the clause's end (``,;.!`` or `` and ``/`` but ``/`` because ``),
without a trailing ``now``, ``anymore``, ``these days``, ``last <word>``,
``this <word>``, ``since ...``. A user turn with no thought gives one
**fallback** thought, ``(I, said, <the turn>)`` whose text is the turn
(``fallback: none`` drops it).

**Merge and forget** (``update``): a thought's key is ``(head, relation)``
for single-valued relations (``is``, ``live in``, ``work as``, ``work at``)
and ``(head, relation, tail)`` for the others. A new thought with the key of
a held one **merges** into it when the tails are equal (case and articles
aside: one thought, its sources joined) and **forgets** it otherwise (the
old thought is deleted; the new one takes its place). A negated thought
forgets the positive one with the same head, relation and tail, and the
other way round. A thought keeps the ``session``/``session_id`` of its
newest source and ``turn`` of that source when it has one source turn, -1
when merged from several.

**Buckets**: thoughts' texts are embedded and held in the Rust SimHash index
with one table of ``n_hyperplanes`` sign bits (``2**n_hyperplanes``
buckets; the paper's ``argmax([xR; -xR])`` has ``2b`` buckets from ``b``
directions, a cross-polytope hash: the sign-bit hash is the registered
component this project has). A query is hashed, the ``n_probes`` nearest
buckets (multi-probe by Hamming distance; 1 is the paper's single group, 0
scans every bucket) are gathered, and their thoughts ranked by inner product;
a search returns only thoughts of the probed buckets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from memarena.api import AgentMemory, MemoryItem, ScoredItem, param
from memarena.families.agent.memories._vectors import restore_index

__all__ = ["SINGLE_VALUED", "Thought", "ThoughtMemory", "extract_thoughts", "thought_key"]

#: Relations a head has one value of: a new tail forgets the old one.
SINGLE_VALUED: frozenset[str] = frozenset({"is", "live in", "work as", "work at"})

_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_CLAUSE_END = re.compile(r"[,;.!?]|\s+(?:and|but|because|so|which|who)\s+", re.IGNORECASE)
_TRAILING = re.compile(
    r"\s+(?:now|anymore|any more|these days|nowadays|today|last \w+|this \w+|since .*|for \w+ \w+)$", re.IGNORECASE
)
_ARTICLE = re.compile(r"^(?:a|an|the|my)\s+", re.IGNORECASE)
_NEG = r"(?:don't|do not|no longer|never|didn't|did not|doesn't|does not)"
# (pattern over a sentence, relation, negated): the tail is group "tail"
_RULES: tuple[tuple[re.Pattern[str], str, bool], ...] = tuple(
    (re.compile(p, re.IGNORECASE), rel, neg)
    for p, rel, neg in (
        (rf"\bI {_NEG} (?:live in|live at)\s+(?P<tail>.+)", "live in", True),
        (r"\bI (?:now )?(?:live in|live at|moved to|relocated to|have moved to)\s+(?P<tail>.+)", "live in", False),
        (r"\bI(?:'m| am) not (?:a|an)\s+(?P<tail>.+)", "work as", True),
        (rf"\bI {_NEG} work as\s+(?:a |an )?(?P<tail>.+)", "work as", True),
        (r"\bI (?:now )?work as\s+(?:a |an )?(?P<tail>.+)", "work as", False),
        (r"\bI(?:'m| am) (?:a|an)\s+(?P<tail>.+)", "work as", False),
        (rf"\bI {_NEG} work (?:at|for)\s+(?P<tail>.+)", "work at", True),
        (r"\bI (?:now )?work (?:at|for)\s+(?P<tail>.+)", "work at", False),
        (rf"\bI {_NEG} (?:have|own)\s+(?P<tail>(?:a|an|the|my|any)\s+.+)", "have", True),
        (r"\bI (?:have|own|got|bought|adopted|just got|recently got)\s+(?P<tail>(?:a|an|the|my)\s+.+)", "have", False),
        (rf"\bI {_NEG} (?:like|love|enjoy)\s+(?P<tail>.+)", "like", True),
        (r"\bI (?:really )?(?:like|love|enjoy)\s+(?P<tail>.+)", "like", False),
    )
)
_MY = re.compile(r"\bmy (?P<head>[\w' ]{1,40}?) (?:is|was|are) (?P<neg>not )?(?P<tail>.+)", re.IGNORECASE)


@dataclass
class Thought:
    """One thought: a triple, its text, and the turns it came from.

    ``sources`` are ``[session, session_id, turn]`` of each statement, oldest first.
    """

    head: str
    relation: str
    tail: str
    text: str
    negated: bool = False
    sources: list[list[Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "head": self.head,
            "relation": self.relation,
            "tail": self.tail,
            "text": self.text,
            "negated": self.negated,
            "sources": [list(s) for s in self.sources],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Thought:
        return cls(
            data["head"],
            data["relation"],
            data["tail"],
            data["text"],
            bool(data["negated"]),
            [list(s) for s in data["sources"]],
        )


def _norm(text: str) -> str:
    return _ARTICLE.sub("", text.strip().lower()).strip()


def thought_key(t: Thought) -> tuple[str, str, str]:
    """The key merge and forget compare (the tail only for relations of many values); negation aside."""
    tail = "" if t.relation in SINGLE_VALUED else _norm(t.tail)
    return (t.head.lower(), t.relation, tail)


def _tail(raw: str) -> str:
    tail = _CLAUSE_END.split(raw, maxsplit=1)[0].strip()
    prev = None
    while prev != tail:
        prev, tail = tail, _TRAILING.sub("", tail).strip()
    return tail


def _render(head: str, relation: str, tail: str, negated: bool) -> str:
    if head == "I":
        verb = {"live in": "live in", "work as": "work as", "work at": "work at", "have": "have", "like": "like"}
        return f"I {'do not ' if negated else ''}{verb[relation]} {tail}"
    return f"{head} {'is not' if negated else 'is'} {tail}"


def extract_thoughts(text: str) -> list[Thought]:
    """The thoughts the rules find in one user turn, in order (see the module docstring).

    >>> [(t.head, t.relation, t.tail, t.negated) for t in extract_thoughts("My dog is Rex. I moved to Porto now.")]
    [('my dog', 'is', 'Rex', False), ('I', 'live in', 'Porto', False)]
    """
    out: list[Thought] = []
    for raw in _SENTENCES.split(text):
        sentence = raw.strip()
        if not sentence or sentence.endswith("?"):
            continue
        m = _MY.search(sentence)
        if m:
            tail = _tail(m.group("tail"))
            if tail:
                head = "my " + m.group("head").strip().lower()
                neg = m.group("neg") is not None
                out.append(Thought(head, "is", tail, _render(head, "is", tail, neg), neg))
        for pattern, relation, neg in _RULES:
            r = pattern.search(sentence)
            if r:
                tail = _tail(r.group("tail"))
                if tail:
                    out.append(Thought("I", relation, tail, _render("I", relation, tail, neg), neg))
                break  # one I-statement per sentence: the first rule that matches
    return out


class ThoughtMemory(AgentMemory):
    """Think-in-Memory: rule-extracted thoughts, merged and forgotten by head and relation, in SimHash buckets.

    Invariants: the index holds exactly the held thoughts' ids; no two held
    thoughts share a key (:func:`thought_key`) and negation; a search returns
    only thoughts of the probed buckets, each once, best first.
    """

    name: ClassVar[str] = "tim"
    state_version: ClassVar[int] = 1

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.memories.tim.ThoughtMemory"
        #: Sign bits of the one hash table: 2**n_hyperplanes buckets.
        n_hyperplanes: int = param(4, ge=1, le=32)
        #: Buckets probed per query, nearest first by Hamming distance (1: the query's own; 0: every bucket).
        n_probes: int = param(1, ge=0)
        #: Seed of the hyperplanes.
        seed: int = 0
        #: A user turn without a thought: stored as a (I, said, turn) thought (turn) or dropped (none).
        fallback: str = param("turn", choices=("turn", "none"))

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._thoughts: dict[int, Thought] = {}  # by index id, in insertion order
        self._by_key: dict[tuple[str, str, str], list[int]] = {}  # thought_key -> held ids
        self._user = ""
        self._next_id = 0
        self._merged = 0
        self._forgotten = 0
        self._index: Any = None

    # -- thoughts --------------------------------------------------------------------

    def thoughts(self) -> list[Thought]:
        """The held thoughts, oldest first."""
        return list(self._thoughts.values())

    @property
    def merged(self) -> int:
        """Thoughts merged into a held one so far."""
        return self._merged

    @property
    def forgotten(self) -> int:
        """Thoughts forgotten so far (replaced by a newer tail, or negated)."""
        return self._forgotten

    def _item_of(self, t: Thought) -> MemoryItem:
        session, session_id, turn = t.sources[-1]
        return MemoryItem(
            t.text,
            session=int(session),
            turn=int(turn) if len(t.sources) == 1 else -1,
            metadata={"head": t.head, "relation": t.relation, "tail": t.tail, "negated": t.negated},
            user=self._user,
            session_id=str(session_id),
            role="thought",
        )

    def _thoughts_of(self, item: MemoryItem) -> list[Thought]:
        found = extract_thoughts(item.text)
        if not found and self.config.fallback == "turn" and item.text.strip():
            found = [Thought("I", "said", item.text, item.text)]
        for t in found:
            t.sources = [[item.session, item.session_id, item.turn]]
        return found

    def update(self, new: Thought) -> tuple[str, list[int]]:
        """Insert, merge or forget for one new thought.

        :returns: ``("merge", [id])`` when it joined a held thought, else
            ``("insert", forgotten ids)``; the caller indexes an inserted one.
        """
        gone: list[int] = []
        for tid in self._by_key.get(thought_key(new), ()):
            held = self._thoughts[tid]
            same_tail = _norm(held.tail) == _norm(new.tail)
            if held.negated == new.negated:
                if same_tail:
                    held.sources += new.sources
                    # keep the thought where it is; the newest wording wins
                    held.tail, held.text = new.tail, new.text
                    return "merge", [tid]
                gone.append(tid)  # same head and relation, another value: forget the old one
            elif same_tail:
                gone.append(tid)  # "I have a dog" then "I don't have a dog": the negation forgets it
        return "insert", gone

    def _forget(self, ids: list[int]) -> None:
        if not ids:
            return
        for tid in ids:
            self._by_key[thought_key(self._thoughts.pop(tid))].remove(tid)
        self._index.delete(np.asarray(ids, dtype=np.uint64))
        self._forgotten += len(ids)

    def _new_index(self, dim: int) -> Any:
        from memarena.indexes import SimHash

        c = self.config
        return SimHash(dim=dim, metric="ip", n_bits=c.n_hyperplanes, n_tables=1, seed=c.seed, n_probes=c.n_probes)

    # -- AgentMemory ---------------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        """Extract, merge/forget and store the thoughts of one user turn (other roles give none)."""
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Each user turn's thoughts, in order: merged into, replacing, or added beside the held ones."""
        for item in items:
            if item.role != "user":
                continue
            self._user = self._user or item.user
            for t in self._thoughts_of(item):
                op, ids = self.update(t)
                if op == "merge":
                    self._merged += 1
                    continue
                vector = np.ascontiguousarray(self.embedder.embed([t.text]), dtype=np.float32)
                if self._index is None:
                    self._index = self._new_index(vector.shape[1])
                self._forget(ids)
                tid = self._next_id
                self._next_id += 1
                self._thoughts[tid] = t
                self._by_key.setdefault(thought_key(t), []).append(tid)
                self._index.add(vector, np.asarray([tid], dtype=np.uint64))

    def search(self, query: str, k: int) -> list[ScoredItem]:
        """The best ``k`` thoughts of the query's ``n_probes`` buckets, by inner product."""
        if k <= 0 or not self._thoughts:
            return []
        q = np.ascontiguousarray(self.embedder.embed([query]), dtype=np.float32)
        n = len(self._thoughts)
        params = {"n_probes": self.config.n_probes, "rerank": n}
        dist, ids = self._index.search(q, min(k, n), params=params)
        return [
            ScoredItem(self._item_of(self._thoughts[int(j)]), float(d))
            for d, j in zip(dist[0], ids[0], strict=True)
            if j >= 0
        ]

    def __len__(self) -> int:
        return len(self._thoughts)

    def items(self) -> list[MemoryItem]:
        return [self._item_of(t) for t in self._thoughts.values()]

    # -- cost ----------------------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """UTF-8 of each thought's text, head, relation and tail (a fallback's tail is its text, counted once);
        the vectors; the SimHash tables beyond them."""
        text = 0
        for t in self._thoughts.values():
            text += len(t.text.encode()) + len(t.head.encode()) + len(t.relation.encode())
            text += 0 if t.relation == "said" else len(t.tail.encode())
        if self._index is None:
            return {"text_bytes": text, "vector_bytes": 0, "index_bytes": 0}
        vectors = len(self._thoughts) * int(self._index.dim) * 4
        return {"text_bytes": text, "vector_bytes": vectors, "index_bytes": self._index.memory_bytes() - vectors}

    # -- durability ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        return {
            "thoughts": [[tid, t.to_json()] for tid, t in self._thoughts.items()],
            "user": self._user,
            "next_id": self._next_id,
            "merged": self._merged,
            "forgotten": self._forgotten,
            "index": None if self._index is None else self._index.to_bytes(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._thoughts = {int(tid): Thought.from_json(t) for tid, t in state["thoughts"]}
        self._by_key = {}
        for tid, t in self._thoughts.items():
            self._by_key.setdefault(thought_key(t), []).append(tid)
        self._user = str(state["user"])
        self._next_id = int(state["next_id"])
        self._merged = int(state["merged"])
        self._forgotten = int(state["forgotten"])
        self._index = restore_index(state["index"], self._new_index)
