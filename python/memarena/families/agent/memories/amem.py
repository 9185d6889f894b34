"""``agent_memory=amem``: A-MEM's agentic notes (Xu et al. 2025, arXiv 2502.12110), with rule-based note writing.

Upstream (github agiresearch/A-mem, ``agentic_memory/memory_system.py``):

* ``MemoryNote``: ``content``, ``keywords``, ``context``, ``tags``,
  ``links``, timestamps; an LLM writes keywords ("the most salient
  keywords", "at least three"), ``context`` ("one sentence summarizing")
  and ``tags`` ("several broad categories/themes") in ``analyze_content``.
* ``add_note`` → ``process_memory``: ``find_related_memories(note.content,
  k=5)`` (the 5 nearest notes of the vector store), then an LLM decides the
  evolution: ``strengthen`` (``note.links.extend(valid_connections)``, links
  go from the new note to its neighbours) and ``update_neighbor`` (each
  neighbour's ``tags``/``context`` replaced by the LLM's). The store
  (``ChromaRetriever.add_document(note.content, ...)``) embeds the
  **content** only; keywords and tags are metadata.
* ``search_agentic(query, k)``: the ``k`` nearest notes, then their linked
  notes (``for link_id in links: if link_id not in seen_ids and
  neighbor_count < k``), then ``memories[:k]``, which cuts every neighbour
  when the store returned ``k`` notes; ``find_related_memories_raw`` instead
  lists each hit followed by up to ``k`` of its linked notes.

Here, with no LLM (the steps an LLM takes upstream go through one
replaceable :class:`NoteBuilder`, ``note_builder``; ``rules`` is the default):

* **Notes**: one per turn of the roles in ``roles`` (default ``user``).
  :class:`RuleNoteBuilder`: ``keywords`` are the note's ``n_keywords`` words
  of highest TF-IDF among the notes held (tf = count in the note; idf =
  ``ln((1 + N) / (1 + df)) + 1`` over the ``N`` notes including this one;
  words of 3+ letters, stop words left out; ties by first occurrence);
  ``tags`` are the :data:`TAG_RULES` topics any of whose cue words the note
  has, in table order; ``context`` is the note's first sentence.
* **Links**: the new note links to each of its ``link_k`` nearest notes
  whose cosine is ``>= link_threshold``, then to up to ``max_keyword_links``
  notes sharing ``>= min_shared_keywords`` of its keywords (most recent
  first; 0 turns this off). Links go from the new note to the old ones, as
  upstream's ``strengthen``; ``symmetric_links`` also links back.
* **Evolution** (``evolve_tags``): each linked neighbour's tags absorb the
  new note's tags it lacks, in order, while it has fewer than ``max_tags``
  (:meth:`NoteBuilder.evolve`). The store keeps the content's vector, so
  evolution changes no vector (as upstream between consolidations).
* **Search**: the ``k`` nearest notes by the embedder's inner product on a
  Rust index, then link expansion (``expansion: after_each``, as
  ``find_related_memories_raw``): each hit is followed by its linked notes
  not yet listed (at most ``links_per_hit``, 0: up to ``k``), each scored
  with its hit's score, until ``k``; ``expansion: none`` is the plain
  nearest notes. Items keep their turn's ``session``/``session_id``/``turn``;
  their ``metadata`` carries the note's keywords, tags, context and links.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from memarena.api import AgentMemory, MemoryItem, ScoredItem, param
from memarena.errors import InvalidConfigError
from memarena.families.agent.memories._vectors import ALL_INDEXES, new_index, restore_index

__all__ = ["NOTE_BUILDERS", "TAG_RULES", "AMem", "Note", "NoteBuilder", "NoteFields", "RuleNoteBuilder"]

#: Bytes of one link (a note id, int64).
LINK_BYTES = 8

_WORD = re.compile(r"[a-z][a-z']+")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_STOP_WORDS_TEXT = """a about above after again against all also am an and any are aren't as at be because
    been before being
    below between both but by can can't could did didn't do does doesn't doing don't down during each few for from
    further get got had has have having he her here hers herself him himself his how i i'd i'll i'm i've if in into
    is isn't it it's its itself just let's like me more most much my myself no nor not now of off on once only or
    other our ours ourselves out over own really same she should so some such than that that's the their theirs
    them themselves then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would you your yours yourself yourselves thanks thank please yes yeah okay
    well also just one two been want need know think going make made lot lots thing things something anything"""
STOP_WORDS: frozenset[str] = frozenset(_STOP_WORDS_TEXT.split())

#: Rule-based tags: topic -> cue words (a note gets every topic one of whose words it has, in this order).
TAG_RULES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (tag, frozenset(words.split()))
    for tag, words in (
        ("family", "mother mom father dad sister brother son daughter wife husband parents grandma grandpa kids"),
        ("pets", "dog cat puppy kitten pet pets vet fish hamster parrot"),
        ("home", "live moved move apartment house flat rent neighborhood neighbourhood city town"),
        ("work", "work job office boss colleague manager career salary company promotion"),
        ("travel", "trip travel flight fly hotel vacation holiday visit visited airport"),
        ("food", "food cook cooking recipe eat dinner lunch breakfast restaurant cake bake coffee tea"),
        ("health", "doctor dentist health sick sleep exercise gym run running yoga hospital"),
        ("hobby", "play playing guitar piano cello paint painting read reading book books hobby garden gardening"),
        ("shopping", "buy bought shop shopping store purchase order ordered price"),
        ("money", "money budget pay paid savings bank loan spend spent"),
        ("schedule", "tomorrow today yesterday monday tuesday wednesday thursday friday saturday sunday appointment"),
        ("tech", "laptop phone computer app software battery bluetooth build code"),
    )
)


def words(text: str) -> list[str]:
    """Lower-cased words of 3+ letters, stop words left out, in order."""
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 3 and w not in STOP_WORDS]


@dataclass
class NoteFields:
    """What a note builder writes for a new note."""

    keywords: list[str]
    tags: list[str]
    context: str


@dataclass
class Note:
    """One A-MEM note: the turn it stores and what was written about it."""

    item: MemoryItem
    keywords: list[str]
    tags: list[str]
    context: str
    #: Positions (note ids) of the notes it links to, in the order linked.
    links: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "item": self.item.to_json(),
            "keywords": list(self.keywords),
            "tags": list(self.tags),
            "context": self.context,
            "links": list(self.links),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Note:
        return cls(
            MemoryItem.from_json(data["item"]),
            list(data["keywords"]),
            list(data["tags"]),
            str(data["context"]),
            [int(x) for x in data["links"]],
        )


class NoteBuilder(Protocol):
    """The steps an LLM takes in upstream A-MEM: writing a note, and evolving its neighbours' tags.

    A builder is made from the memory (``NOTE_BUILDERS[name](memory)``), so it
    may read the memory's config and notes. An LLM builder registers a name in
    :data:`NOTE_BUILDERS` and is chosen with ``agent_memory.note_builder=<name>``.
    """

    def build(self, content: str) -> NoteFields:
        """Keywords, tags and context of a new note with this content."""
        ...

    def evolve(self, note: Note, neighbours: Sequence[Note]) -> list[list[str]]:
        """The new tags of each neighbour ``note`` links to (upstream's ``new_tags_neighborhood``)."""
        ...


class RuleNoteBuilder:
    """Deterministic notes: TF-IDF keywords, :data:`TAG_RULES` tags, the first sentence as context."""

    def __init__(self, memory: AMem) -> None:
        self.memory = memory

    def build(self, content: str) -> NoteFields:
        mem = self.memory
        terms = words(content)
        counts = Counter(terms)
        n_docs = len(mem.notes()) + 1
        first = {w: i for i, w in reversed(list(enumerate(terms)))}

        def tfidf(w: str) -> float:
            df = mem.document_frequency(w) + 1  # the new note holds it too
            return counts[w] * (math.log((1 + n_docs) / (1 + df)) + 1.0)

        keywords = sorted(counts, key=lambda w: (-tfidf(w), first[w]))[: mem.config.n_keywords]
        present = set(terms) | set(_WORD.findall(content.lower()))
        tags = [tag for tag, cues in TAG_RULES if present & cues]
        context = next((s.strip() for s in _SENTENCE.split(content) if s.strip()), "")
        return NoteFields(keywords, tags, context)

    def evolve(self, note: Note, neighbours: Sequence[Note]) -> list[list[str]]:
        cap = self.memory.config.max_tags
        out = []
        for nb in neighbours:
            tags = list(nb.tags)
            for tag in note.tags:
                if len(tags) >= cap:
                    break
                if tag not in tags:
                    tags.append(tag)
            out.append(tags)
        return out


#: Note builders by name (``agent_memory.note_builder``): ``rules``, and whatever a plugin adds (an LLM).
NOTE_BUILDERS: dict[str, Callable[[AMem], NoteBuilder]] = {"rules": RuleNoteBuilder}


class AMem(AgentMemory):
    """A-MEM: notes with keywords, tags and context, linked by similarity and shared keywords; link-expanded search.

    Invariants: note ``i`` has index id ``i``; links point to earlier notes
    (and, with ``symmetric_links``, back); a note's tags never exceed
    ``max_tags`` through evolution; a search lists each note at most once.
    """

    name: ClassVar[str] = "amem"
    state_version: ClassVar[int] = 1

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.memories.amem.AMem"
        #: Whose turns become notes: user (the default) or all (user and assistant, as upstream on LoCoMo).
        roles: str = param("user", choices=("user", "all"))
        #: Who writes notes and evolves tags: a name in NOTE_BUILDERS (rules: deterministic; an LLM elsewhere).
        note_builder: str = "rules"
        #: Keywords per note (upstream's prompt: at least three).
        n_keywords: int = param(3, ge=1)
        #: Tags a note may reach through evolution.
        max_tags: int = param(6, ge=1)
        #: Nearest notes a new note considers (upstream: find_related_memories(k=5)).
        link_k: int = param(5, ge=0)
        #: Cosine a nearest note needs to be linked.
        link_threshold: float = param(0.3, ge=-1, le=1)
        #: Shared keywords that link two notes (0: no keyword links).
        min_shared_keywords: int = param(2, ge=0)
        #: Keyword links per new note at most (most recent notes first).
        max_keyword_links: int = param(5, ge=0)
        #: Also link each neighbour back to the new note (upstream: one way).
        symmetric_links: bool = False
        #: Neighbours' tags absorb the new note's tags.
        evolve_tags: bool = True
        #: Search: after_each (each hit followed by its links) or none (the nearest notes only).
        expansion: str = param("after_each", choices=("after_each", "none"))
        #: Linked notes listed after each hit at most (0: up to k, as upstream).
        links_per_hit: int = param(0, ge=0)
        #: The registered index holding the content vectors.
        index: str = param("flat", choices=ALL_INDEXES)
        #: Build and search parameters of that index.
        index_params: dict[str, Any] = param(factory=dict)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.config.note_builder not in NOTE_BUILDERS:
            raise InvalidConfigError(
                f"config key 'agent_memory.note_builder' must be one of {', '.join(NOTE_BUILDERS)}, "
                f"got {self.config.note_builder!r}"
            )
        self.builder: NoteBuilder = NOTE_BUILDERS[self.config.note_builder](self)
        self._notes: list[Note] = []
        self._df: Counter[str] = Counter()
        self._by_keyword: dict[str, list[int]] = {}
        self._index: Any = None

    # -- notes -----------------------------------------------------------------------

    def notes(self) -> list[Note]:
        """Every note, by id."""
        return self._notes

    def document_frequency(self, word: str) -> int:
        """Notes held whose content has ``word`` (as :func:`words` splits it)."""
        return self._df[word]

    def _item_of(self, i: int) -> MemoryItem:
        n = self._notes[i]
        meta = {**n.item.metadata, "keywords": n.keywords, "tags": n.tags, "context": n.context, "links": n.links}
        return MemoryItem(
            n.item.text,
            session=n.item.session,
            turn=n.item.turn,
            metadata=meta,
            user=n.item.user,
            session_id=n.item.session_id,
            role=n.item.role,
            timestamp_s=n.item.timestamp_s,
        )

    def _register(self, note: Note) -> int:
        nid = len(self._notes)
        self._notes.append(note)
        self._df.update(set(words(note.item.text)))
        for kw in note.keywords:
            self._by_keyword.setdefault(kw, []).append(nid)
        return nid

    def _link_targets(self, nid: int, vector: np.ndarray) -> list[int]:
        c = self.config
        note = self._notes[nid]
        targets: list[int] = []
        if c.link_k and nid:
            dist, ids = self._index.search(vector[None, :], min(c.link_k, nid))
            targets += [int(j) for d, j in zip(dist[0], ids[0], strict=True) if j >= 0 and d >= c.link_threshold]
        if c.min_shared_keywords and c.max_keyword_links:
            shared: Counter[int] = Counter()
            for kw in note.keywords:
                shared.update(j for j in self._by_keyword.get(kw, ()) if j != nid)
            added = 0
            for j in sorted(shared, reverse=True):  # most recent first
                if added == c.max_keyword_links:
                    break
                if shared[j] >= c.min_shared_keywords and j not in targets:
                    targets.append(j)
                    added += 1
        return targets

    def _add_note(self, item: MemoryItem, vector: np.ndarray) -> None:
        fields = self.builder.build(item.text)
        note = Note(item, fields.keywords, fields.tags, fields.context)
        nid = self._register(note)
        targets = self._link_targets(nid, vector)
        note.links = targets
        neighbours = [self._notes[j] for j in targets]
        if self.config.evolve_tags and neighbours:
            for nb, tags in zip(neighbours, self.builder.evolve(note, neighbours), strict=True):
                nb.tags = list(tags)
        if self.config.symmetric_links:
            for nb in neighbours:
                nb.links.append(nid)
        self._index.add(vector[None, :], np.asarray([nid], dtype=np.uint64))

    # -- AgentMemory ---------------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        """Write one note (if its role is kept), link it and evolve its neighbours."""
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Write one note per kept turn, in order (each sees the notes before it)."""
        kept = [it for it in items if self.config.roles == "all" or it.role == "user"]
        if not kept:
            return
        vectors = np.ascontiguousarray(self.embedder.embed([it.text for it in kept]), dtype=np.float32)
        if self._index is None:
            self._index = new_index(self.config.index, self.config.index_params, vectors.shape[1])
        for item, vector in zip(kept, vectors, strict=True):
            self._add_note(item, vector)

    def nearest(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest notes of ``query``: ``(note id, inner product)``, best first."""
        q = np.ascontiguousarray(self.embedder.embed([query]), dtype=np.float32)
        dist, ids = self._index.search(q, min(k, len(self._notes)))
        return [(int(j), float(d)) for d, j in zip(dist[0], ids[0], strict=True) if j >= 0]

    def search(self, query: str, k: int) -> list[ScoredItem]:
        """The ``k`` nearest notes, each followed by its linked notes (``expansion``), at most ``k`` in all."""
        if k <= 0 or not self._notes:
            return []
        seeds = self.nearest(query, k)
        if self.config.expansion == "none":
            return [ScoredItem(self._item_of(j), d) for j, d in seeds]
        per_hit = self.config.links_per_hit or k
        out: list[ScoredItem] = []
        seen: set[int] = set()
        for j, d in seeds:
            if j not in seen:
                seen.add(j)
                out.append(ScoredItem(self._item_of(j), d))
            listed = 0
            for link in self._notes[j].links:
                if len(out) >= k or listed >= per_hit:
                    break
                if link not in seen:
                    seen.add(link)
                    out.append(ScoredItem(self._item_of(link), d))
                    listed += 1
            if len(out) >= k:
                break
        return out[:k]

    def __len__(self) -> int:
        return len(self._notes)

    def items(self) -> list[MemoryItem]:
        return [self._item_of(i) for i in range(len(self._notes))]

    # -- cost ----------------------------------------------------------------------

    def memory_breakdown(self) -> dict[str, int]:
        """UTF-8 of contents, contexts, keywords and tags; the vectors; the index beyond them plus 8 bytes a link."""
        text = sum(
            len(n.item.text.encode())
            + len(n.context.encode())
            + sum(len(w.encode()) for w in n.keywords)
            + sum(len(t.encode()) for t in n.tags)
            for n in self._notes
        )
        links = LINK_BYTES * sum(len(n.links) for n in self._notes)
        if self._index is None:
            return {"text_bytes": text, "vector_bytes": 0, "index_bytes": links}
        vectors = len(self._notes) * int(self._index.dim) * 4
        return {
            "text_bytes": text,
            "vector_bytes": vectors,
            "index_bytes": self._index.memory_bytes() - vectors + links,
        }

    # -- durability ----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        return {
            "notes": [n.to_json() for n in self._notes],
            "index": None if self._index is None else self._index.to_bytes(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._notes, self._df, self._by_keyword = [], Counter(), {}
        for data in state["notes"]:
            self._register(Note.from_json(data))
        c = self.config
        self._index = restore_index(state["index"], lambda dim: new_index(c.index, c.index_params, dim))
