"""Saving agent memories: a versioned, checksummed snapshot file and a write-ahead journal.

**Snapshot** (:func:`save_memory`, :func:`load_memory`, ``AgentMemory.save``
/ ``AgentMemory.load``), the shape of the retrieval indexes' files (a magic,
a format version, the payload, a checksum over all of it), little-endian::

    magic          8 bytes   b"MAMEMORY"
    format         u32       FORMAT_VERSION
    header_bytes   u64       length of the header
    header         JSON      memory name, class, state_version, config, user,
                             clock, embedder, journal_seq, the state's JSON part,
                             and the length, dtype and shape of every blob
    blobs          bytes     numpy arrays (C order) and bytes values of the state
    sha256         32 bytes  of everything before it

A memory's :meth:`~memarena.api.AgentMemory.get_state` returns JSON values,
``bytes`` and numpy arrays nested in dicts and lists; arrays and bytes go to
the blobs, the rest into the header. The file is written to a temporary
name, fsynced and renamed, so a reader sees the old file or the new one.

**Journal** (:class:`DurableMemory`): every add and search of a memory is
appended to ``journal.log`` as one line ``<crc32 hex> <JSON>\\n`` and
fsynced before the call returns: that return is the acknowledgement. On
open, the snapshot (if any) is loaded and the journal's records after the
snapshot's sequence number are replayed, with the clock of each record, so
a memory that is deterministic given its calls, config and clock comes back
exactly as it was after its last acknowledged call. A torn last line (a
crash mid-write, never acknowledged) is dropped; a bad line before good
ones is corruption and raises, naming the file and the byte offset.
:meth:`DurableMemory.checkpoint` writes a snapshot and empties the journal.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import struct
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from memarena.api import AgentMemory, Clock, MemoryContext, MemoryItem, ScoredItem
from memarena.errors import InvalidConfigError, MalformedInputError
from memarena.results import atomic_write

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "DurableMemory",
    "load_memory",
    "memory_config",
    "save_memory",
]

MAGIC = b"MAMEMORY"
#: Version of the snapshot layout above (not of a memory's state: that is ``AgentMemory.state_version``).
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sIQ")
_DIGEST_BYTES = 32


# ---------------------------------------------------------------------------
# State encoding: JSON with blobs
# ---------------------------------------------------------------------------


def _encode(value: Any, blobs: list[bytes], specs: list[dict[str, Any]], where: str) -> Any:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        if arr.dtype.hasobject:
            raise TypeError(f"get_state: {where} is an object array; only plain dtypes can be saved")
        specs.append({"kind": "ndarray", "dtype": arr.dtype.str, "shape": list(arr.shape), "bytes": arr.nbytes})
        blobs.append(arr.tobytes())
        return {"__blob__": len(blobs) - 1}
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        specs.append({"kind": "bytes", "bytes": len(data)})
        blobs.append(data)
        return {"__blob__": len(blobs) - 1}
    if isinstance(value, dict):
        if "__blob__" in value:
            raise TypeError(f"get_state: {where} uses the reserved key '__blob__'")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"get_state: {where} has a non-string key {k!r}")
            out[k] = _encode(v, blobs, specs, f"{where}.{k}")
        return out
    if isinstance(value, list | tuple):
        return [_encode(v, blobs, specs, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"get_state: {where} is a {type(value).__name__}; save JSON values, bytes or numpy arrays")


def _decode(value: Any, blobs: list[Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__blob__"}:
            return blobs[value["__blob__"]]
        return {k: _decode(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v, blobs) for v in value]
    return value


# ---------------------------------------------------------------------------
# Snapshots
# ---------------------------------------------------------------------------


def memory_config(memory: AgentMemory) -> dict[str, Any]:
    """The memory's ``Config`` fields as a plain dict (read from ``config`` or, failing that, attributes)."""
    config = getattr(memory, "config", None)
    if config is not None and dataclasses.is_dataclass(config):
        return memory.config_dict()
    out: dict[str, Any] = {}
    for f in dataclasses.fields(memory.Config):
        if f.name != "_target_" and hasattr(memory, f.name):
            out[f.name] = getattr(memory, f.name)
    return out


def _embedder_id(context: MemoryContext) -> dict[str, Any] | None:
    emb = context.embedder
    if emb is None:
        return None
    inner = getattr(emb, "inner", emb)  # the family's timing wrapper
    config = getattr(inner, "config", None)
    fields = inner.config_dict() if config is not None and dataclasses.is_dataclass(config) else {}
    return {"name": getattr(inner, "name", type(inner).__name__), "config": fields}


def save_memory(memory: AgentMemory, path: str | os.PathLike[str], journal_seq: int = 0) -> Path:
    """Write ``memory``'s :meth:`~memarena.api.AgentMemory.get_state` to ``path`` (see the module docstring).

    :param journal_seq: The last journal record the state includes (0: none).
    :returns: The path written.
    """
    blobs: list[bytes] = []
    specs: list[dict[str, Any]] = []
    state = _encode(memory.get_state(), blobs, specs, "state")
    cls = type(memory)
    header = {
        "memory": cls.name,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "state_version": cls.state_version,
        "config": memory_config(memory),
        "user": memory.context.user,
        "clock_now_s": memory.clock.now_s,
        "embedder": _embedder_id(memory.context),
        "journal_seq": journal_seq,
        "state": state,
        "blobs": specs,
    }
    head = json.dumps(header, ensure_ascii=False, allow_nan=True).encode()
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head))
    digest = hashlib.sha256()
    for chunk in (prefix, head, *blobs):
        digest.update(chunk)
    final = Path(path)
    atomic_write(final, [prefix, head, *blobs, digest.digest()])
    return final


def _read_snapshot(path: Path) -> dict[str, Any]:
    """The checked header of a snapshot with its blobs decoded into ``state``."""
    data = path.read_bytes()
    where = os.fspath(path)
    if len(data) < _PREFIX.size + _DIGEST_BYTES:
        raise MalformedInputError(f"{where}: {len(data)} bytes, too short for a memarena agent memory file")
    magic, version, head_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise MalformedInputError(f"{where}: not a memarena agent memory file (magic {magic!r}, expected {MAGIC!r})")
    if version != FORMAT_VERSION:
        raise MalformedInputError(f"{where}: file format version {version}; this memarena reads {FORMAT_VERSION}")
    body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
    if hashlib.sha256(body).digest() != digest:
        raise MalformedInputError(f"{where}: checksum mismatch (truncated or corrupted file of {len(data)} bytes)")
    head_end = _PREFIX.size + head_len
    try:
        header = json.loads(data[_PREFIX.size : head_end])
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedInputError(f"{where}: unreadable header at byte {_PREFIX.size}: {exc}") from exc
    blobs: list[Any] = []
    offset = head_end
    for spec in header["blobs"]:
        raw = body[offset : offset + spec["bytes"]]
        if len(raw) != spec["bytes"]:
            raise MalformedInputError(f"{where}: blob at byte {offset} runs past the end of the file")
        offset += spec["bytes"]
        if spec["kind"] == "ndarray":
            blobs.append(np.frombuffer(raw, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"]).copy())
        else:
            blobs.append(bytes(raw))
    if offset != len(body):
        raise MalformedInputError(f"{where}: {len(body) - offset} unexpected bytes after the last blob")
    header["state"] = _decode(header["state"], blobs)
    return header  # type: ignore[no-any-return]


def _memory_class(header: dict[str, Any], where: str) -> type[AgentMemory]:
    module, _, qualname = str(header["class"]).partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise MalformedInputError(
            f"{where}: saved by agent_memory={header['memory']} ({header['class']}), which cannot be imported: {exc}"
        ) from exc
    if not (isinstance(obj, type) and issubclass(obj, AgentMemory)):
        raise MalformedInputError(f"{where}: {header['class']} is not an AgentMemory")
    return obj


def _check_context(header: dict[str, Any], context: MemoryContext, where: str) -> None:
    saved_user = header.get("user", "")
    if saved_user and context.user and context.user != saved_user:
        raise InvalidConfigError(f"{where}: the memory of user {saved_user!r} cannot be loaded for {context.user!r}")
    saved, given = header.get("embedder"), _embedder_id(context)
    if saved is not None and given is not None and saved != given:
        raise InvalidConfigError(
            f"config key 'embedder': {where} was saved with embedder={saved['name']} {saved['config']}, "
            f"not embedder={given['name']} {given['config']}"
        )


def load_memory(
    path: str | os.PathLike[str], context: MemoryContext | None = None, expect: type[AgentMemory] = AgentMemory
) -> AgentMemory:
    """The memory saved in ``path``: built from its saved config, bound to ``context``, its state restored.

    ``context`` defaults to the saved user and clock with no embedder; a
    given context's clock is advanced to the saved time.

    :raises MalformedInputError: not a memory file, another format version or
        state version, a truncated or corrupted file (naming the path).
    :raises InvalidConfigError: ``context`` names another user, or an
        embedder other than the one the memory was saved with.
    """
    p = Path(path)
    where = os.fspath(p)
    header = _read_snapshot(p)
    cls = _memory_class(header, where)
    if not issubclass(cls, expect):
        raise MalformedInputError(f"{where}: holds agent_memory={header['memory']}, not a {expect.__name__}")
    if header["state_version"] != cls.state_version:
        raise MalformedInputError(
            f"{where}: agent_memory={cls.name} state version {header['state_version']}; "
            f"this {cls.__qualname__} reads version {cls.state_version}"
        )
    if context is None:
        context = MemoryContext(user=header.get("user", ""), clock=Clock(header.get("clock_now_s", 0.0)))
    _check_context(header, context, where)
    context.clock.advance_to(float(header.get("clock_now_s", 0.0)))
    memory = cls(**header["config"])
    memory.bind(context)
    memory.set_state(header["state"])
    memory.__dict__["_journal_seq"] = int(header.get("journal_seq", 0))
    return memory


# ---------------------------------------------------------------------------
# The journal
# ---------------------------------------------------------------------------


def _line(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def _read_journal(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The journal's intact records and the byte length they cover (a torn tail is left out)."""
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    offset = 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        if end < 0:  # no newline: a write cut short, never acknowledged
            break
        line = data[offset:end]
        record = None
        if len(line) > 9 and line[8:9] == b" ":
            try:
                crc, body = int(line[:8], 16), line[9:]
                if zlib.crc32(body) == crc:
                    record = json.loads(body)
            except ValueError:
                record = None
        if record is None:
            if data.find(b"\n", end + 1) < 0 and not data[end + 1 :].strip():
                break  # the last line is torn: dropped
            raise MalformedInputError(f"{path}: journal record at byte {offset} is corrupted (bad checksum or JSON)")
        records.append(record)
        offset = end + 1
    return records, offset


class DurableMemory:
    """An agent memory whose every acknowledged add and search survives a crash (see the module docstring).

    Files in ``directory``: ``snapshot.mam`` (the last :meth:`checkpoint`,
    absent before the first) and ``journal.log`` (the calls since). Opening
    loads the snapshot, else builds ``make_memory()``, binds ``context`` and
    replays the journal; the memory is then :attr:`memory`. Each
    :meth:`add`, :meth:`add_many` and :meth:`search` applies the call, then
    appends its record and (with ``fsync``) fsyncs before returning.

    :param directory: Where the snapshot and the journal live (created).
    :param make_memory: Builds the empty memory (when there is no snapshot).
    :param context: The user, embedder and clock to bind.
    :param fsync: fsync each record (off: faster, and a crash of the machine,
        not of the process, may lose the last records).
    """

    SNAPSHOT = "snapshot.mam"
    JOURNAL = "journal.log"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        make_memory: Callable[[], AgentMemory],
        context: MemoryContext | None = None,
        *,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        context = context or MemoryContext()
        snapshot = self.directory / self.SNAPSHOT
        if snapshot.exists():
            self.memory = load_memory(snapshot, context)
            self._seq = int(self.memory.__dict__.get("_journal_seq", 0))
        else:
            self.memory = make_memory()
            self.memory.bind(context)
            self._seq = 0
        journal = self.directory / self.JOURNAL
        records, good_bytes = _read_journal(journal)
        #: Records replayed on open (after the snapshot's).
        self.replayed = 0
        for record in records:
            if record["seq"] <= self._seq:
                continue  # already in the snapshot (a crash between snapshot and journal reset)
            self._apply(record)
            self._seq = record["seq"]
            self.replayed += 1
        self._file = open(journal, "ab")  # noqa: SIM115 (kept open for appends; closed by close())
        if self._file.tell() != good_bytes:
            self._file.truncate(good_bytes)  # drop the torn tail before appending
            self._file.seek(good_bytes)

    # -- replay and journal ----------------------------------------------------------

    def _apply(self, record: dict[str, Any]) -> Any:
        self.memory.clock.advance_to(float(record["now_s"]))
        op = record["op"]
        if op == "add_many":
            self.memory.add_many([MemoryItem.from_json(x) for x in record["items"]])
            return None
        if op == "search":
            return self.memory.search(record["query"], int(record["k"]))
        raise MalformedInputError(f"{self.directory / self.JOURNAL}: record {record['seq']} has unknown op {op!r}")

    def _log(self, record: dict[str, Any]) -> None:
        self._seq += 1
        self._file.write(_line({"seq": self._seq, **record}))
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    # -- the memory's calls ------------------------------------------------------

    def add(self, item: MemoryItem) -> None:
        """Store ``item``; journaled when this returns."""
        self.add_many([item])

    def add_many(self, items: Sequence[MemoryItem]) -> None:
        """Store ``items`` (one session); journaled when this returns."""
        record = {"op": "add_many", "now_s": self.memory.clock.now_s, "items": [i.to_json() for i in items]}
        self.memory.add_many(items)
        self._log(record)

    def search(self, query: str, k: int) -> list[ScoredItem]:
        """The memory's search; journaled (a search may change a memory, e.g. reinforce what it returns)."""
        record = {"op": "search", "now_s": self.memory.clock.now_s, "query": query, "k": k}
        hits = self.memory.search(query, k)
        self._log(record)
        return hits

    def __len__(self) -> int:
        return len(self.memory)

    @property
    def seq(self) -> int:
        """The sequence number of the last acknowledged call: the adds and searches since the memory was empty."""
        return self._seq

    # -- snapshots ---------------------------------------------------------------

    def checkpoint(self) -> None:
        """Save a snapshot holding every call so far, then empty the journal."""
        save_memory(self.memory, self.directory / self.SNAPSHOT, journal_seq=self._seq)
        self._file.close()
        atomic_write(self.directory / self.JOURNAL, [])
        self._file = open(self.directory / self.JOURNAL, "ab")  # noqa: SIM115

    def close(self) -> None:
        """Close the journal (every acknowledged call is already on disk)."""
        self._file.close()

    def __enter__(self) -> DurableMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
