"""The ``agent`` family: agent memories scored as LongMemEval scores retrievers.

One run evaluates one memory (``agent_memory=<name>``) on one workload (a
generated haystack or a LongMemEval file). Each question is its own user:

1. a fresh memory is built from its ``Config`` and bound
   (:meth:`~memarena.api.AgentMemory.bind`) to the user (the question id),
   the run's embedder (``embedder=<name>``; its time is measured apart) and
   a :class:`~memarena.api.Clock`; an embedder with corpus statistics is
   fitted on the user's turns first (:meth:`~memarena.api.Embedder.fit`);
2. the haystack's sessions are added in time order (ties in file order),
   one :meth:`~memarena.api.AgentMemory.add_many` per session, one
   :class:`~memarena.api.MemoryItem` per turn (user and assistant; no
   evidence label), the clock at the session's date;
3. the memory is searched for the question, the clock at the question's
   date, for ``family.retrieve_k`` items (0: every item it holds, so the
   metrics are exact at every k);
4. the results become a ranking of LongMemEval's corpus
   (:func:`~memarena.families.agent.metrics.build_corpus`): when every
   result names a turn (``turn >= 0``), of the user turns (results that are
   assistant turns are left out), scored at turn level and, through
   ``evaluate_retrieval_turn2session``, at session level, as upstream's turn
   granularity; otherwise of the sessions (each once, first place), scored
   at session level. Then :func:`~memarena.families.agent.metrics.question_metrics`.

Rows, one per question type and one ``all`` (means over the questions
LongMemEval scores: abstention and questions without a user evidence turn
are skipped, :func:`~memarena.families.agent.metrics.aggregate`):

* ``<level>_<metric>_at_<k>`` for level ``session``/``turn``, metric
  ``recall_any``/``recall_all``/``ndcg_any``, k in 1, 3, 5, 10, 30, 50; the
  same as lists over ``ks`` (``session_recall_any``...) for the plots;
* ``ku_latest_first`` (knowledge-update and ``all`` rows): the share of
  knowledge-update questions whose latest evidence session is ranked above
  every stale one (``stale_session_ids``; in a file without them, the
  evidence sessions but the latest-dated are stale); a question where
  neither is retrieved scores 0;
* ``memory_bytes`` (mean over the group's users, all its questions),
  ``memory_bytes_max``, ``items_stored`` (mean), and on the ``all`` row the
  parts ``memory_text_bytes``, ``memory_vector_bytes``, ``memory_index_bytes``;
* ``ingest_s`` and ``retrieve_s`` (totals over the group, embedding time
  left out) and ``embed_s`` (the embedder's fit and embed calls);
* ``user_violations``: results holding another user's item (must be 0;
  they are left out of the ranking).

``memarena report`` draws recall_any@k per question type (sessions and
turns) and the memory bytes of each memory, by part.

Durable users (``family.durable_dir=<dir>``): question ``i``'s memory is a
:class:`~memarena.families.agent.persist.DurableMemory` in
``<dir>/users/<i>_<question id>``: each session added is journaled (and
fsynced) before the next, a snapshot is written when the user's ingest
ends. Rerunning the same run with the same directory resumes: a user whose
snapshot holds every session is loaded, not re-ingested; an interrupted
one replays its journal and goes on from the first session not
acknowledged. The search is not journaled, so the rows equal an
uninterrupted run's (times aside). ``<dir>/run.json`` records the config
(agent_memory, embedder, workload, seed, family.retrieve_k); a run of
another config is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, overload

import numpy as np

from memarena.api import (
    AgentMemory,
    Clock,
    Embedder,
    Family,
    MemoryContext,
    MemoryEstimate,
    MemoryItem,
    PlotSpec,
    ScoredItem,
    param,
)
from memarena.errors import InvalidConfigError, InvariantError, MalformedInputError
from memarena.families.agent.longmemeval import Instance, Turn, parse_date
from memarena.families.agent.metrics import ALL, KS, aggregate, build_corpus, is_scored, question_metrics
from memarena.families.agent.persist import DurableMemory

if TYPE_CHECKING:
    from memarena.run import Run

__all__ = [
    "AgentFamily",
    "QuestionResult",
    "SessionItems",
    "TimedEmbedder",
    "estimate",
    "evaluate_question",
    "latest_first",
    "open_durable_dir",
    "session_dates",
    "user_dir_name",
]

log = logging.getLogger("memarena")

_METRICS = ("recall_any", "recall_all", "ndcg_any")
_PARTS = ("text_bytes", "vector_bytes", "index_bytes")


class TimedEmbedder(Embedder):
    """The run's embedder, timing every :meth:`fit` and :meth:`embed` call (``embed_s``)."""

    name: ClassVar[str] = "timed"

    def __init__(self, inner: Embedder) -> None:  # no Config of its own: a wrapper, never registered
        self.inner = inner
        self.embed_s = 0.0

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def embed(self, texts: Sequence[str]) -> Any:
        t0 = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            self.embed_s += time.perf_counter() - t0

    def fit(self, texts: Sequence[str]) -> None:
        t0 = time.perf_counter()
        try:
            self.inner.fit(texts)
        finally:
            self.embed_s += time.perf_counter() - t0


def session_dates(inst: Instance) -> tuple[list[float], float]:
    """Seconds since the epoch of every haystack session and of the question.

    :raises MalformedInputError: a date of another shape, naming the question and field.
    """

    def seconds(text: str, field: str) -> float:
        try:
            return parse_date(text).timestamp()
        except ValueError as exc:
            raise MalformedInputError(f"question {inst.question_id!r}, field {field!r}: {exc}") from None

    dates = [seconds(d, f"haystack_dates[{i}]") for i, d in enumerate(inst.haystack_dates)]
    return dates, seconds(inst.question_date, "question_date")


def latest_first(inst: Instance, session_order: Sequence[int], dates: Sequence[float]) -> float | None:
    """1.0 if the latest evidence session is ranked above every stale one, else 0.0; None when it does not apply.

    :param session_order: Haystack positions of the retrieved sessions, best first, each once.
    :param dates: The sessions' dates (for a file without ``stale_session_ids``).
    """
    if inst.question_type != "knowledge-update" or inst.is_abstention:
        return None
    pos = {sid: p for p, sid in enumerate(inst.haystack_session_ids)}
    evidence = [sid for sid in inst.answer_session_ids if sid in pos]
    stale = [sid for sid in inst.stale_session_ids if sid in pos]
    if not stale:
        if len(evidence) < 2:
            return None
        newest = max(evidence, key=lambda sid: (dates[pos[sid]], pos[sid]))
        stale = [sid for sid in evidence if sid != newest]
    latest = [sid for sid in evidence if sid not in stale]
    if not latest:
        return None
    rank = {p: r for r, p in enumerate(session_order)}
    best_latest = min((rank.get(pos[sid], np.inf) for sid in latest), default=np.inf)
    best_stale = min((rank.get(pos[sid], np.inf) for sid in stale), default=np.inf)
    return 1.0 if best_latest < best_stale else 0.0


@dataclass
class QuestionResult:
    """What one question gave: its metrics and its memory's cost and times."""

    inst: Instance
    metrics: dict[str, dict[str, float]]
    level: str
    latest_first: float | None
    user_violations: int
    items_stored: int
    memory_parts: dict[str, int]
    ingest_s: float
    retrieve_s: float
    embed_s: float


def _ranking(inst: Instance, hits: Sequence[ScoredItem], order: Sequence[int]) -> tuple[str, list[int], list[int]]:
    """``(level, ranking of build_corpus(inst, level), haystack positions of the sessions retrieved)``.

    ``order[i]`` is the haystack position of the session added ``i``-th (``MemoryItem.session``).
    """
    n = len(order)
    positions: list[int] = []  # haystack position of each hit's session
    for hit in hits:
        item = hit.item
        if not 0 <= item.session < n:
            raise InvariantError(
                f"question {inst.question_id!r}: the memory returned an item of session {item.session}, "
                f"outside the {n} sessions added"
            )
        p = order[item.session]
        if item.session_id and item.session_id != inst.haystack_session_ids[p]:
            raise InvariantError(
                f"question {inst.question_id!r}: the memory returned an item of session {item.session} "
                f"with session_id {item.session_id!r}, but that session is {inst.haystack_session_ids[p]!r}"
            )
        positions.append(p)
    sessions = list(dict.fromkeys(positions))
    if hits and all(hit.item.turn >= 0 for hit in hits):
        doc_of: dict[tuple[int, int], int] = {}
        for p, session in enumerate(inst.haystack_sessions):
            for i, turn in enumerate(session):
                if turn.role == "user":
                    doc_of[(p, i)] = len(doc_of)
        docs = [doc_of.get((p, hit.item.turn)) for p, hit in zip(positions, hits, strict=True)]
        return "turn", list(dict.fromkeys(d for d in docs if d is not None)), sessions
    return "session", sessions, sessions


def _only(memory: AgentMemory) -> Callable[[], AgentMemory]:
    """A factory handing out ``memory`` once (a durable directory without a snapshot builds it)."""

    def make() -> AgentMemory:
        return memory

    return make


class SessionItems(Sequence[MemoryItem]):
    """One session's turns as the :class:`MemoryItem` sequence ``add_many`` receives, each item made on first use.

    Item ``i`` is ``MemoryItem(turns[i].content, session=session, turn=i,
    user=user, session_id=session_id, role=turns[i].role,
    timestamp_s=timestamp_s)``; indexing or iterating makes them all once.
    A memory that needs only the texts reads :meth:`contents` (and
    :meth:`of_role` for some of the items) without making the others: at
    M-like size the family's ingest would otherwise spend most of its time
    making thousands of items per question that such a memory drops.
    """

    __slots__ = ("_items", "session", "session_id", "timestamp_s", "turns", "user")

    def __init__(
        self, turns: Sequence[Turn], *, session: int, user: str, session_id: str, timestamp_s: float | None
    ) -> None:
        self.turns = turns
        self.session, self.user, self.session_id, self.timestamp_s = session, user, session_id, timestamp_s
        self._items: list[MemoryItem] | None = None

    def _make(self, i: int) -> MemoryItem:
        t = self.turns[i]
        return MemoryItem(
            t.content,
            session=self.session,
            turn=i,
            user=self.user,
            session_id=self.session_id,
            role=t.role,
            timestamp_s=self.timestamp_s,
        )

    def _all(self) -> list[MemoryItem]:
        if self._items is None:
            self._items = [self._make(i) for i in range(len(self.turns))]
        return self._items

    @overload
    def __getitem__(self, index: int) -> MemoryItem: ...
    @overload
    def __getitem__(self, index: slice) -> list[MemoryItem]: ...
    def __getitem__(self, index: int | slice) -> MemoryItem | list[MemoryItem]:
        return self._all()[index]

    def __len__(self) -> int:
        return len(self.turns)

    def __iter__(self) -> Iterator[MemoryItem]:
        return iter(self._all())

    def contents(self, role: str | None = None) -> list[str]:
        """The turns' texts in order, only ``role``'s when given."""
        if role is None:
            return [t.content for t in self.turns]
        return [t.content for t in self.turns if t.role == role]

    def of_role(self, role: str) -> list[MemoryItem]:
        """The items of ``role``'s turns, in order (made now if not yet)."""
        if self._items is not None:
            return [item for item in self._items if item.role == role]
        session, user, sid, ts = self.session, self.user, self.session_id, self.timestamp_s
        return [
            MemoryItem(t.content, session=session, turn=i, user=user, session_id=sid, role=role, timestamp_s=ts)
            for i, t in enumerate(self.turns)
            if t.role == role
        ]


def evaluate_question(
    inst: Instance,
    memory: AgentMemory | Callable[[], AgentMemory],
    embedder: TimedEmbedder | None,
    retrieve_k: int = 0,
    durable: str | os.PathLike[str] | None = None,
) -> QuestionResult:
    """Ingest ``inst``'s haystack into the fresh ``memory`` and score its search (steps 1-4 of the module docstring).

    :param memory: The fresh memory, or (with ``durable``) what builds one.
    :param durable: A directory for this user's :class:`~memarena.families.agent.persist.DurableMemory`:
        every session added is journaled before the next, a snapshot is
        written when the ingest ends; what the directory already holds is
        resumed (a complete memory is loaded, an interrupted one replays
        its journal and goes on from the first session not acknowledged).
        The search is not journaled: the memory stays as its ingest left it.
    """
    user = inst.question_id
    clock = Clock()
    context = MemoryContext(user=user, embedder=embedder, clock=clock)
    dates, asked_s = session_dates(inst)
    embed_before = embedder.embed_s if embedder is not None else 0.0
    if embedder is not None:  # before a durable memory opens: its replay embeds
        embedder.fit([t.content for s in inst.haystack_sessions for t in s])
    order = sorted(range(len(dates)), key=lambda p: (dates[p], p))
    t0 = time.perf_counter()
    log: DurableMemory | None = None
    if durable is None:
        if not isinstance(memory, AgentMemory):
            memory = memory()
        memory.bind(context)
        target: AgentMemory | DurableMemory = memory
        start = 0
    else:
        make = memory if not isinstance(memory, AgentMemory) else _only(memory)
        log = target = DurableMemory(durable, make, context)
        memory = log.memory
        start = log.seq
        if start > len(order):
            log.close()
            raise InvariantError(
                f"question {user!r}: {os.fspath(durable)} holds {start} calls, more than the {len(order)} sessions; "
                "it is another run's (config key 'family.durable_dir')"
            )
    for ordinal in range(start, len(order)):
        p = order[ordinal]
        clock.advance_to(dates[p])
        sid = inst.haystack_session_ids[p]
        target.add_many(
            SessionItems(inst.haystack_sessions[p], session=ordinal, user=user, session_id=sid, timestamp_s=dates[p])
        )
    if log is not None:
        if log.replayed or start < len(order):  # the journal holds calls the snapshot lacks
            log.checkpoint()
        log.close()
    ingest_s = time.perf_counter() - t0
    embed_ingest = (embedder.embed_s if embedder is not None else 0.0) - embed_before

    clock.advance_to(asked_s)
    stored = len(memory)
    k = retrieve_k or max(stored, 1)
    t0 = time.perf_counter()
    hits = memory.search(inst.question, k)
    retrieve_s = time.perf_counter() - t0
    embed_s = (embedder.embed_s if embedder is not None else 0.0) - embed_before
    if len(hits) > k:
        raise InvariantError(f"question {inst.question_id!r}: agent_memory={memory.name} returned {len(hits)} > k={k}")
    own = [h for h in hits if h.item.user == user]
    level, ranking, sessions = _ranking(inst, own, order)
    corpus = build_corpus(inst, "turn" if level == "turn" else "session")
    metrics = question_metrics(inst, ranking, "turn" if level == "turn" else "session", corpus)
    parts = memory.memory_breakdown()
    return QuestionResult(
        inst=inst,
        metrics=metrics,
        level=level,
        latest_first=latest_first(inst, sessions, dates),
        user_violations=len(hits) - len(own),
        items_stored=stored,
        memory_parts={p: int(parts.get(p, 0)) for p in _PARTS},
        ingest_s=ingest_s - embed_ingest,
        retrieve_s=retrieve_s - (embed_s - embed_ingest),
        embed_s=embed_s,
    )


class AgentFamily(Family):
    """Agent memories on LongMemEval-shaped histories: recall/nDCG at session and turn level, bytes, time."""

    name: ClassVar[str] = "agent"
    label_columns: ClassVar[tuple[str, ...]] = ("workload", "agent_memory", "question_type")
    summary_columns: ClassVar[tuple[str, ...]] = (
        "questions",
        "session_recall_any_at_5",
        "session_recall_all_at_10",
        "session_ndcg_any_at_10",
        "turn_recall_any_at_10",
        "ku_latest_first",
        "memory_bytes",
        "items_stored",
        "ingest_s",
        "retrieve_s",
        "embed_s",
    )
    plots: ClassVar[tuple[PlotSpec, ...]] = (
        PlotSpec(
            x="ks",
            y="session_recall_any",
            hue="question_type",
            title="Session recall_any@k per question type",
            logx=True,
            filename="session_recall_any_at_k.png",
            series=True,
        ),
        PlotSpec(
            x="ks",
            y="turn_recall_any",
            hue="question_type",
            title="Turn recall_any@k per question type",
            logx=True,
            filename="turn_recall_any_at_k.png",
            series=True,
        ),
        PlotSpec(
            x="agent_memory",
            y="memory_bytes",
            hue="agent_memory",
            title="Bytes per user's memory (mean): text, vectors, index",
            filename="memory_bytes.png",
            stack=("memory_text_bytes", "memory_vector_bytes", "memory_index_bytes"),
        ),
    )

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.family.AgentFamily"
        #: Items each search asks for (0: every item the memory holds, so every metric is exact).
        retrieve_k: int = param(0, ge=0)
        #: Evaluate only the workload's first this many questions (0: all).
        max_questions: int = param(0, ge=0)
        #: A directory that makes every user's memory durable (null: off): each session added is
        #: journaled, a snapshot is written when the user's ingest ends, and a rerun of the same
        #: run with the same directory resumes (complete users are loaded, an interrupted one
        #: replays its journal and goes on). A directory of another config is refused.
        durable_dir: str | None = None

    def estimate_memory(self, run: Run) -> MemoryEstimate | None:
        """The workload's questions in memory plus one user's memory (see :func:`estimate`)."""
        workload = run.component("workload")
        return estimate(workload, self.max_questions) if getattr(workload, "family", None) == "agent" else None

    def run(self, run: Run) -> None:
        workload = run.component("workload")
        if getattr(workload, "family", None) != "agent":
            raise InvalidConfigError(
                f"config key 'workload': {workload.name!r} is a {getattr(workload, 'family', '?')} workload, "
                "not an agent history (workload=longmemeval_generated or longmemeval_file)"
            )
        if not run.has("agent_memory"):
            raise InvalidConfigError("config key 'agent_memory' is not set; choose one with agent_memory=<name>")
        make_memory = run.factory("agent_memory")
        embedder = None
        if run.has("embedder"):
            inner = run.component("embedder")
            if not isinstance(inner, Embedder):
                raise InvalidConfigError(f"config key 'embedder' built {type(inner).__name__}, not a memarena Embedder")
            embedder = TimedEmbedder(inner)
        instances: list[Instance] = workload.load(run.seed)
        if self.max_questions:
            instances = instances[: self.max_questions]
        durable = None if self.durable_dir is None else open_durable_dir(run, workload, self.durable_dir)

        def new_memory() -> AgentMemory:
            memory = make_memory()
            if not isinstance(memory, AgentMemory):
                raise InvalidConfigError(
                    f"config key 'agent_memory' built {type(memory).__name__}, not a memarena AgentMemory"
                )
            return memory

        results: list[QuestionResult] = []
        label = None
        with run.progress(len(instances), desc="agent", unit="question") as bar:
            for q, inst in enumerate(instances):
                if durable is None:
                    memory = new_memory()
                    label = label or run.label("agent_memory", memory.name)
                    bar.set_description(f"agent {label}")
                    results.append(evaluate_question(inst, memory, embedder, self.retrieve_k))
                else:
                    label = label or run.label("agent_memory", new_memory().name)
                    where = durable / "users" / user_dir_name(q, inst.question_id)
                    results.append(evaluate_question(inst, new_memory, embedder, self.retrieve_k, durable=where))
                bar.update(1)
        common = {"workload": workload.describe(), "agent_memory": label or run.label("agent_memory", "?")}
        if embedder is not None:
            common["embedder"] = run.label("embedder", getattr(embedder.inner, "name", "?"))
        for row in rows_of(results):
            run.emit({**common, **row})


def user_dir_name(index: int, question_id: str) -> str:
    """The directory of question ``index``'s user: its position and its id, unsafe characters as ``_``."""
    return f"{index:06d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', question_id)[:80]}"


#: The config groups whose settings a durable directory belongs to (a rerun must match them).
_DURABLE_KEYS = ("agent_memory", "embedder", "workload", "seed", "family.retrieve_k")


def open_durable_dir(run: Run, workload: Any, directory: str) -> Path:
    """``family.durable_dir``, created; its ``run.json`` written, or checked against this run's config.

    :raises InvalidConfigError: the directory holds another config's memories, naming the key that differs.
    """
    from omegaconf import OmegaConf

    root = Path(os.path.expanduser(directory))
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidConfigError(f"config key 'family.durable_dir': cannot create {str(root)!r}: {exc}") from exc
    config: dict[str, Any] = {}
    for key in _DURABLE_KEYS:
        value = OmegaConf.select(run.config, key)
        config[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    config["workload"] = {"describe": workload.describe(), "config": config["workload"]}
    fingerprint = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()
    meta = root / "run.json"
    if meta.exists():
        saved = json.loads(meta.read_text())
        if saved.get("sha256") != fingerprint:
            differ = [
                k
                for k in config
                if json.dumps(saved["config"].get(k), sort_keys=True, default=str)
                != json.dumps(config[k], sort_keys=True, default=str)
            ]
            raise InvalidConfigError(
                f"config key 'family.durable_dir': {str(root)!r} holds the memories of another run "
                f"(config key {differ[0] if differ else '?'!r} differs); use a new directory"
            )
        log.info("agent: resuming the durable memories in %s", root)
    else:
        meta.write_text(json.dumps({"sha256": fingerprint, "config": config}, sort_keys=True, default=str, indent=1))
    return root


#: Python bytes of one generated session in memory (measured: ~1.3 kB for ~7 turns).
SESSION_BYTES = 1300
#: Python bytes in memory per byte of a LongMemEval JSON file (strings, lists and turn objects).
FILE_BYTES_FACTOR = 4
#: One memory's bytes per session of its user: the text again, items, a 1024-d float32 vector a turn.
MEMORY_BYTES_PER_SESSION = 2 * SESSION_BYTES + 7 * 1024 * 4


def estimate(workload: Any, max_questions: int = 0) -> MemoryEstimate | None:
    """Every question loaded, plus one user's memory at a time (the family keeps only the rows of the others)."""
    from memarena.families.agent.generate import num_sessions

    if getattr(workload, "name", "") == "longmemeval_file":
        try:
            file_bytes = workload.file().stat().st_size
        except (InvalidConfigError, OSError):
            return None
        total = FILE_BYTES_FACTOR * file_bytes
        return MemoryEstimate(
            bytes=int(total),
            keys=("workload.path", "workload.limit"),
            detail=f"{FILE_BYTES_FACTOR} x the file's {file_bytes:.3g} B (its questions, one user's memory within)",
        )
    try:
        sessions = num_sessions(str(workload.size) if not isinstance(workload.size, int) else workload.size)
        questions = int(workload.questions)
    except (AttributeError, TypeError, ValueError, InvalidConfigError):
        return None
    if max_questions:
        questions = min(questions, max_questions)
    total = questions * sessions * SESSION_BYTES + sessions * MEMORY_BYTES_PER_SESSION
    return MemoryEstimate(
        bytes=int(total),
        keys=("workload.questions", "workload.size"),
        detail=f"{questions} questions x {sessions} sessions x {SESSION_BYTES} B"
        f" + one memory of {sessions} sessions x {MEMORY_BYTES_PER_SESSION} B",
    )


def _metric_columns(levels: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for level in ("session", "turn"):
        values = levels.get(level)
        if not values:
            continue
        for m in _METRICS:
            for k in KS:
                out[f"{level}_{m}_at_{k}"] = values[f"{m}@{k}"]
            out[f"{level}_{m}"] = [values[f"{m}@{k}"] for k in KS]
    return out


def rows_of(results: Sequence[QuestionResult]) -> list[dict[str, Any]]:
    """The family's rows (without ``workload``/``agent_memory``): one per question type, then ``all``."""
    agg = aggregate((r.inst, r.metrics) for r in results)
    rows = []
    for group in [g for g in sorted(agg) if g != ALL] + ([ALL] if ALL in agg else []):
        members = [r for r in results if group == ALL or r.inst.question_type == group]
        levels = agg[group]
        count = next(iter(levels.values()))["count"]
        row: dict[str, Any] = {"question_type": group, "questions": count, "ks": list(KS)}
        row.update(_metric_columns(levels))
        ku = [r.latest_first for r in members if r.latest_first is not None and is_scored(r.inst)]
        if ku:
            row["ku_latest_first"] = float(np.mean(ku))
        total = [sum(r.memory_parts.values()) for r in members]
        row["memory_bytes"] = float(np.mean(total))
        row["memory_bytes_max"] = int(max(total))
        row["items_stored"] = float(np.mean([r.items_stored for r in members]))
        if group == ALL:
            for part in _PARTS:
                row[f"memory_{part}"] = float(np.mean([r.memory_parts[part] for r in members]))
        row["ingest_s"] = float(sum(r.ingest_s for r in members))
        row["retrieve_s"] = float(sum(r.retrieve_s for r in members))
        row["embed_s"] = float(sum(r.embed_s for r in members))
        row["user_violations"] = int(sum(r.user_violations for r in members))
        rows.append(row)
    return rows
