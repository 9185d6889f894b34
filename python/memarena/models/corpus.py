"""Text every machine has: CPython's standard-library ``.py`` sources, split by file.

The fixture model trains on the ``train`` files and is evaluated on the
``heldout`` ones; a file's split depends only on its path relative to the
stdlib root (``crc32(path) % 10 == 0``: held out), so it is the same on
every machine and Python version that has the file. Test suites are left
out (``test/``, ``tests/``, ``idle_test/``: some distributions do not ship
them) as are installed packages.

The associative-recall task (:func:`recall_sample`) mixes into training
and makes the needle probe (:func:`needle_probe`): key/value assignments
early in a window of code, one of them restated at the end. A model that
can read its context back completes the value; a KV cache that dropped or
blurred the early tokens cannot.
"""

from __future__ import annotations

import random
import string
import sysconfig
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "SKIP_DIRS",
    "Corpus",
    "NeedleProbe",
    "dense_recall_sample",
    "load_corpus",
    "needle_probe",
    "recall_sample",
    "split_of",
    "stdlib_root",
]

#: Directory names under the stdlib whose files are not in the corpus.
SKIP_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"})
_ALNUM = string.ascii_lowercase + string.digits


def stdlib_root() -> Path:
    """The running interpreter's standard-library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def split_of(relpath: str) -> str:
    """``"heldout"`` for one file in ten (by the CRC-32 of its ``/``-separated relative path), else ``"train"``."""
    return "heldout" if zlib.crc32(relpath.encode()) % 10 == 0 else "train"


@dataclass(frozen=True)
class Corpus:
    """The files of one split, as bytes, in sorted path order."""

    split: str
    root: Path
    paths: tuple[str, ...]
    texts: tuple[bytes, ...]

    @property
    def n_bytes(self) -> int:
        return sum(len(t) for t in self.texts)

    def windows(self, n: int, length: int, seed: int) -> list[bytes]:
        """``n`` seeded windows of ``length`` bytes, each inside one file (files shorter than ``length`` skipped).

        :raises ValueError: no file is that long.
        """
        long = [t for t in self.texts if len(t) >= length]
        if not long:
            raise ValueError(f"no {self.split} file under {self.root} has {length} bytes")
        weights = [len(t) - length + 1 for t in long]
        rng = random.Random(seed)
        out = []
        for t in rng.choices(long, weights=weights, k=n):
            s = rng.randrange(len(t) - length + 1)
            out.append(t[s : s + length])
        return out


@lru_cache(maxsize=4)
def load_corpus(split: str, root: str | None = None) -> Corpus:
    """The ``train`` or ``heldout`` files under ``root`` (default: :func:`stdlib_root`).

    :raises ValueError: an unknown split, or a root with no such file.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    base = Path(root) if root is not None else stdlib_root()
    paths, texts = [], []
    for p in sorted(base.rglob("*.py")):
        rel = p.relative_to(base)
        if SKIP_DIRS.intersection(rel.parts[:-1]) or split_of(rel.as_posix()) != split:
            continue
        try:
            data = p.read_bytes()
        except OSError:
            continue
        if data:
            paths.append(rel.as_posix())
            texts.append(data)
    if not paths:
        raise ValueError(f"no {split} .py file under {base}")
    return Corpus(split, base, tuple(paths), tuple(texts))


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(_ALNUM) for _ in range(n))


@dataclass(frozen=True)
class NeedleProbe:
    """One probe: ``prompt`` ends just before the value; ``answer`` is the value's bytes."""

    prompt: bytes
    answer: bytes
    #: Byte offset of the asserted key's definition in ``prompt``.
    needle_offset: int


def recall_sample(
    filler: bytes,
    length: int,
    rng: random.Random,
    n_pairs: int = 6,
    n_queries: int = 2,
    key_len: int = 4,
    value_len: int = 4,
) -> tuple[bytes, list[NeedleProbe]]:
    """A training or probe sequence of exactly ``length`` bytes.

    ``n_pairs`` lines ``KEY_<k> = "<v>"`` open it, code from ``filler``
    follows, and ``n_queries`` lines ``expect(KEY_<k> = "<v>")`` (keys drawn
    from the pairs) close it. Returns the bytes and one :class:`NeedleProbe`
    per query (its prompt cut right after the opening quote).

    The query restates the definition's bytes up to the value (``KEY_<k> = "``),
    which are unique among the pairs: the value follows the same bytes in the
    definition, so copying it back is an induction (match, then copy) problem.
    An earlier ``assert KEY_<k> == "<v>"`` query, whose bytes before the value
    differ from the definition's, was never learnt by the fixture (needle 0.0).
    """
    keys: list[str] = []
    while len(keys) < n_pairs:
        k = _word(rng, key_len)
        if k not in keys:
            keys.append(k)
    values = [_word(rng, value_len) for _ in keys]
    head = "".join(f'KEY_{k} = "{v}"\n' for k, v in zip(keys, values, strict=True)).encode()
    asked = rng.sample(range(n_pairs), min(n_queries, n_pairs))
    tail = "".join(f'expect(KEY_{keys[i]} = "{values[i]}")\n' for i in asked).encode()
    room = length - len(head) - len(tail)
    if room < 1:
        raise ValueError(f"length {length} leaves no room for filler")
    if len(filler) < room:
        filler = (filler * (room // max(1, len(filler)) + 1))[:room]
    s = rng.randrange(len(filler) - room + 1)
    body = filler[s : s + room]
    # end the filler on a line so the asserts start a line
    body = body[:-1] + b"\n"
    seq = head + body + tail
    probes = []
    at = len(head) + len(body)
    for i in asked:
        line = f'expect(KEY_{keys[i]} = "'.encode()
        probes.append(
            NeedleProbe(
                prompt=seq[: at + len(line)],
                answer=values[i].encode(),
                needle_offset=head.index(f"KEY_{keys[i]}".encode()),
            )
        )
        at += len(line) + value_len + 3
    return seq, probes


def dense_recall_sample(
    length: int, rng: random.Random, key_len: int = 4, value_len: int = 4, define_p: float = 0.4
) -> tuple[bytes, list[tuple[int, int]]]:
    """A sequence of exactly ``length`` bytes made of recall lines only (no code filler).

    Each line is a new definition ``KEY_<k> = "<v>"`` with probability ``define_p`` (always the first), else
    a query ``expect(KEY_<k> = "<v>")`` of a key defined earlier, drawn uniformly: the multi-query associative
    recall shape (Arora et al., "Zoology", 2023, MQAR) in :func:`recall_sample`'s line format, so the needle's
    match-then-copy step is trained at every distance up to ``length``, about 60% of the lines being queries
    (vs one or two per sequence in :func:`recall_sample`). Returns the bytes (the last line cut at ``length``)
    and the ``[start, end)`` byte spans of every queried value that fits.
    """
    keys: list[str] = []
    values: list[str] = []
    out = bytearray()
    spans: list[tuple[int, int]] = []
    while len(out) < length:
        if not keys or rng.random() < define_p:
            k = _word(rng, key_len)
            while k in keys:
                k = _word(rng, key_len)
            keys.append(k)
            values.append(_word(rng, value_len))
            out += f'KEY_{k} = "{values[-1]}"\n'.encode()
        else:
            i = rng.randrange(len(keys))
            line = f'expect(KEY_{keys[i]} = "'.encode()
            start = len(out) + len(line)
            out += line + f'{values[i]}")\n'.encode()
            if start + value_len <= length:
                spans.append((start, start + value_len))
    return bytes(out[:length]), spans


def needle_probe(corpus: Corpus, n: int, length: int, seed: int, n_pairs: int = 6) -> list[NeedleProbe]:
    """``n`` seeded probes of ``length`` bytes (to the end of the asked value) on ``corpus``'s code."""
    rng = random.Random(seed)
    out = []
    fillers = corpus.windows(n, length, seed + 1)
    for f in fillers:
        _, probes = recall_sample(f, length, rng, n_pairs=n_pairs, n_queries=1)
        out.append(probes[0])
    return out
