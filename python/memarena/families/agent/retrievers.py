"""Retrievers of the agent family: tokenizers, BM25 and torch-free embedders.

* :data:`TOKENIZERS`: named ways to split a text into terms, chosen in a
  config (``tokenizer: whitespace_split``). ``whitespace_split`` is exactly
  the tokenisation of LongMemEval's released BM25 baseline.
* :class:`BM25`: Okapi BM25 with the scores of ``rank_bm25.BM25Okapi``
  (LongMemEval's BM25), bit for bit, over an inverted index that grows one
  document at a time.
* :class:`HashingEmbedder` (``embedder=hashing``, the default) and
  :class:`TfidfEmbedder` (``embedder=tfidf``): word n-grams hashed into a
  fixed number of signed buckets, unit-norm rows, no model and no torch.
  The hash is blake2b, so a text embeds to the same row in every process.

>>> bm25 = BM25()
>>> bm25.add(["I moved to Lisbon", "my cat is called Tom", "Lisbon is sunny"])
>>> [int(i) for i in bm25.ranking("where did I move to Lisbon", k=2)]
[0, 2]
>>> v = HashingEmbedder(dim=64).embed(["I moved to Lisbon", ""])
>>> v.shape, round(float((v[0] ** 2).sum()), 5), float(abs(v[1]).sum())
((2, 64), 1.0, 0.0)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from memarena.api import Embedder, param
from memarena.errors import InvalidConfigError

__all__ = [
    "BM25",
    "EMBEDDERS",
    "TOKENIZERS",
    "HashingEmbedder",
    "TfidfEmbedder",
    "get_tokenizer",
]


def _whitespace_split(text: str) -> list[str]:
    # LongMemEval, src/retrieval/run_retrieval.py, DenseRetrievalMaster.run_flat_retrieval:
    #   tokenized_corpus = [doc.split(" ") for doc in corpus]; ...; bm25.get_scores(query.split(" "))
    # Case and punctuation kept; two spaces in a row give an empty-string term.
    return text.split(" ")


def _whitespace(text: str) -> list[str]:
    return text.split()


_WORD = re.compile(r"\w+")


def _regex_words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


#: Tokenizer name -> function from a text to its terms, in order.
#:
#: * ``whitespace_split``: ``text.split(" ")``, exactly LongMemEval's BM25
#:   tokenisation (no lower-casing; ``"Lisbon."`` and ``"lisbon"`` differ;
#:   ``"a  b"`` gives ``["a", "", "b"]``);
#: * ``whitespace``: ``text.split()``, runs of any whitespace, case kept;
#: * ``regex_words``: lower-cased runs of word characters (``\w+``), punctuation dropped.
TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace_split": _whitespace_split,
    "whitespace": _whitespace,
    "regex_words": _regex_words,
}


def get_tokenizer(name: str, key: str = "tokenizer") -> Callable[[str], list[str]]:
    """The tokenizer called ``name``.

    :param key: The config key that named it, for the error.
    :raises InvalidConfigError: an unknown name, listing the known ones.
    """
    try:
        return TOKENIZERS[name]
    except KeyError:
        raise InvalidConfigError(f"config key {key!r} must be one of {', '.join(TOKENIZERS)}, got {name!r}") from None


# ---------------------------------------------------------------------------
# BM25
# ---------------------------------------------------------------------------


class BM25:
    """Okapi BM25 over a growing set of documents, scoring as ``rank_bm25.BM25Okapi`` does.

    rank_bm25 0.2.2 (dorianbrown/rank_bm25, ``rank_bm25.py``), the scorer
    LongMemEval's ``flat-bm25`` baseline uses:

    * ``BM25Okapi._calc_idf``: ``idf = log(N - n + 0.5) - log(n + 0.5)`` for a
      term in ``n`` of the ``N`` documents; ``average_idf`` is the mean of
      these over the vocabulary, and every term whose idf is negative (it is
      in more than half the documents) gets ``epsilon * average_idf`` instead;
    * ``BM25Okapi.get_scores``: for each query term ``q`` in turn (a repeated
      term counts again; an unknown one adds nothing),
      ``score += idf(q) * (f * (k1 + 1) / (f + k1 * (1 - b + b * dl / avgdl)))``
      with ``f`` the term's count in the document, ``dl`` the document's
      length in terms and ``avgdl`` the mean length.

    The index and the arithmetic are the Rust core's
    (:class:`memarena._core.BM25Index`, ``memarena_ann::bm25``): the same
    IEEE operations in the same order (the idf sum over the vocabulary in
    order of first appearance, the C library's ``log`` as ``math.log``), so
    the scores are equal to rank_bm25's to the last bit; they are computed
    from an inverted index, touching only the documents that hold a query
    term. ``whitespace_split`` and ``whitespace`` tokenise in Rust (Python's
    ``str.split(" ")`` and ``str.split()``, whitespace set included);
    ``regex_words`` tokenises here and passes the terms. :meth:`add` appends
    documents; the idf and the lengths are recomputed at the next query.
    Empty documents count (in ``N`` and in ``avgdl``) as they do in
    rank_bm25; an empty document scores 0 where rank_bm25 divides 0 by 0
    (every document empty, or ``b = 1``) and returns nan.

    :param k1: Term-frequency saturation, above 0.
    :param b: Length normalisation, 0 (none) to 1 (full).
    :param epsilon: The floor of negative idfs, as a fraction of the mean idf.
    :param tokenizer: A name of :data:`TOKENIZERS`, used by :meth:`add` and :meth:`scores`.
    """

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25, tokenizer: str = "whitespace_split"
    ) -> None:
        from memarena._core import BM25Index, bm25_tokenizers

        if not (k1 > 0 and 0 <= b <= 1 and epsilon >= 0 and math.isfinite(k1) and math.isfinite(epsilon)):
            # k1 = 0 makes a document without the term score 0/0 (rank_bm25 returns nan there)
            raise ValueError(f"BM25 needs k1 > 0, 0 <= b <= 1 and epsilon >= 0; got k1={k1}, b={b}, epsilon={epsilon}")
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self.tokenizer = tokenizer
        self._tokenize = get_tokenizer(tokenizer)
        native = tokenizer if tokenizer in bm25_tokenizers() else None
        #: True when the core tokenises (add and scores take texts straight to Rust).
        self._native = native is not None
        self._index = BM25Index(self.k1, self.b, self.epsilon, native)

    def __len__(self) -> int:
        return len(self._index)

    def add(self, texts: Iterable[str]) -> None:
        """Append documents (tokenized with :attr:`tokenizer`); ids continue from :func:`len`."""
        if self._native:
            self._index.add(texts if isinstance(texts, list | tuple) else list(texts))
        else:
            self._index.add_tokens([self._tokenize(t) for t in texts])

    def add_tokens(self, docs: Iterable[Sequence[str]]) -> None:
        """Append already tokenized documents."""
        self._index.add_tokens(docs)

    def idf(self, term: str) -> float:
        """The term's idf after the epsilon floor (0 for a term no document holds)."""
        return self._index.idf(term)

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """BM25 score of every document for ``query`` (tokenized with :attr:`tokenizer`), by document id."""
        if self._native:
            return self._index.scores(query)
        return self._index.scores_tokens(self._tokenize(query))

    def scores_tokens(self, terms: Sequence[str]) -> npt.NDArray[np.float64]:
        """BM25 score of every document for an already tokenized query."""
        return self._index.scores_tokens(terms)

    def ranking(self, query: str, k: int | None = None) -> npt.NDArray[np.int64]:
        """Document ids by descending score, ties to the lower id; the first ``k`` (all when None).

        LongMemEval ranks with ``np.argsort(scores)[::-1]``, whose order
        among tied scores differs; compare rankings on distinct scores.
        """
        s = self.scores(query)
        order = np.lexsort((np.arange(len(s)), -s))
        return order if k is None else order[:k]

    def memory_bytes(self) -> int:
        """Bytes of the index: 8 per posting (id and count), the terms' UTF-8 bytes plus 32 a term, 12 a document."""
        return self._index.memory_bytes()


# ---------------------------------------------------------------------------
# Hashing embedders
# ---------------------------------------------------------------------------

#: Bucket cache entries kept per embedder before the cache is cleared.
_CACHE_ENTRIES = 1 << 20


class HashingEmbedder(Embedder):
    """Word n-grams hashed into signed buckets: fast, torch-free, deterministic (the default embedder).

    The feature hashing of Weinberger et al. (2009), as in scikit-learn's
    ``HashingVectorizer(alternate_sign=True)``: every feature (a word, a pair
    of adjacent words, optionally the character n-grams of each word) is
    hashed with blake2b (8 bytes, salted with ``seed``) to a 64-bit number
    ``h``; it adds its weight to bucket ``h mod dim`` with the sign of bit 63,
    so that colliding features cancel on average instead of piling up. The
    weight is ``1 + ln(tf)`` for a feature ``tf`` times in the text
    (``sublinear_tf``; else ``tf``); rows are L2-normalised. A text with no
    features (empty, or punctuation under ``regex_words``) gives a zero row.
    """

    name: ClassVar[str] = "hashing"

    @dataclass
    class Config:
        _target_: str = "memarena.families.agent.retrievers.HashingEmbedder"
        #: Columns of every vector (hash buckets).
        dim: int = param(1024, ge=1)
        #: How a text is split into words: a name of memarena.families.agent.retrievers.TOKENIZERS.
        tokenizer: str = param("regex_words", choices=tuple(TOKENIZERS))
        #: Longest word n-gram hashed: 1 = words, 2 = words and adjacent pairs, 3 = and triples.
        word_ngrams: int = param(2, ge=1, le=3)
        #: Length of the character n-grams hashed inside each word (padded with < and >); 0: none.
        char_ngrams: int = param(0, ge=0, le=8)
        #: Weigh a feature seen tf times as 1 + ln(tf) (else tf).
        sublinear_tf: bool = True
        #: Salt of the hash: another seed, another (equally good) random projection.
        seed: int = param(0, ge=0, lt=2**64)

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._tokenize = get_tokenizer(self.config.tokenizer, "embedder.tokenizer")
        self._salt = int(self.config.seed).to_bytes(16, "little")
        self._buckets: dict[str, int] = {}

    @property
    def dim(self) -> int:
        return int(self.config.dim)

    def features(self, text: str) -> list[str]:
        """The features of ``text``, in order, repeated as often as they occur.

        Words as they are; n-grams of words joined by a space; character
        n-grams prefixed with ``"\\x01"`` (so no feature of one kind equals
        one of another).
        """
        words = self._tokenize(text)
        out = list(words)
        for n in range(2, self.config.word_ngrams + 1):
            out += [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        c = self.config.char_ngrams
        if c:
            for w in words:
                padded = f"<{w}>"
                out += ["\x01" + padded[i : i + c] for i in range(len(padded) - c + 1)]
        return out

    def _code(self, feature: str) -> int:
        """``±(bucket + 1)`` with the feature's sign (never 0, so ``cache.get(f) or self._code(f)`` works)."""
        code = self._buckets.get(feature)
        if code is None:
            h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8, salt=self._salt).digest(), "little")
            code = (h % self.dim + 1) * (-1 if h >> 63 else 1)
            if len(self._buckets) >= _CACHE_ENTRIES:
                self._buckets.clear()
            self._buckets[feature] = code
        return code

    def bucket(self, feature: str) -> tuple[int, int]:
        """``(bucket, sign)`` of a feature: blake2b-64 of its UTF-8 bytes mod ``dim``, sign from bit 63."""
        code = self._code(feature)
        return abs(code) - 1, (1 if code > 0 else -1)

    def weights(self, features: Sequence[str], counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """The weights of distinct features seen ``counts`` times in a text (before the sign and the norm)."""
        return 1.0 + np.log(counts) if self.config.sublinear_tf else counts

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        dim = self.dim
        out = np.zeros((len(texts), dim), dtype=np.float32)
        cache_get, code_of = self._buckets.get, self._code
        batch = 4096
        for r0 in range(0, len(texts), batch):
            part = texts[r0 : r0 + batch]
            rows: list[int] = []
            codes: list[int] = []
            vals: list[npt.NDArray[np.float64]] = []
            for i, text in enumerate(part):
                counted = Counter(self.features(text))
                if not counted:
                    continue
                features = list(counted)
                codes += [cache_get(f) or code_of(f) for f in features]
                rows += [i] * len(features)
                vals.append(self.weights(features, np.fromiter(counted.values(), np.float64, len(features))))
            if not codes:
                continue
            signed = np.array(codes, dtype=np.int64)
            flat = np.array(rows, dtype=np.int64) * dim + (np.abs(signed) - 1)
            acc = np.bincount(flat, np.sign(signed) * np.concatenate(vals), minlength=len(part) * dim)
            acc = acc.reshape(len(part), dim)
            norms = np.sqrt((acc * acc).sum(axis=1, keepdims=True))
            out[r0 : r0 + len(part)] = np.divide(acc, norms, out=np.zeros_like(acc), where=norms > 0)
        return out


class TfidfEmbedder(HashingEmbedder):
    """Hashed TF-IDF: the hashing embedder's features weighed by their idf over the fitted corpus.

    :meth:`fit` counts, for every feature, the documents ``df`` that hold it
    among the ``n`` fitted texts; a feature's weight is then its term weight
    times scikit-learn's smoothed idf (``TfidfTransformer(smooth_idf=True)``:
    "idf(t) = log [ (1 + n) / (1 + df(t)) ] + 1", as if one extra document
    held every term once). The idf is computed on the exact features, before
    hashing. A feature no fitted text holds gets the largest idf,
    ``ln(1 + n) + 1``; before any :meth:`fit` every idf is 1 (the hashing
    embedder). :meth:`fit` replaces the statistics of an earlier call.
    """

    name: ClassVar[str] = "tfidf"

    @dataclass
    class Config(HashingEmbedder.Config):
        _target_: str = "memarena.families.agent.retrievers.TfidfEmbedder"

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self._df: dict[str, int] = {}
        self._n_docs = 0

    def fit(self, texts: Sequence[str]) -> None:
        df: Counter[str] = Counter()
        for text in texts:
            df.update(set(self.features(text)))
        self._df = dict(df)
        self._n_docs = len(texts)

    def idf(self, feature: str) -> float:
        """``ln((1 + n) / (1 + df)) + 1`` for a feature in ``df`` of the ``n`` fitted texts."""
        return math.log((1 + self._n_docs) / (1 + self._df.get(feature, 0))) + 1.0

    def weights(self, features: Sequence[str], counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        n, df = self._n_docs, self._df
        idf = np.fromiter((math.log((1 + n) / (1 + df.get(f, 0))) + 1.0 for f in features), np.float64, len(features))
        return super().weights(features, counts) * idf


#: The embedders this family registers (``embedder=<name>``).
EMBEDDERS: tuple[type[Embedder], ...] = (HashingEmbedder, TfidfEmbedder)
