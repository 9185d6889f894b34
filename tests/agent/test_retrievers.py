"""The agent family's retrievers: tokenizers, BM25 against rank_bm25, and the hashing embedders."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rank_bm25 import BM25Okapi

from memarena.errors import InvalidConfigError
from memarena.families.agent.retrievers import BM25, TOKENIZERS, HashingEmbedder, TfidfEmbedder, get_tokenizer

ROOT = Path(__file__).resolve().parents[2]

# ---------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------


def test_tokenizers_exact_outputs() -> None:
    text = "I moved to Lisbon.  Don't  forget\tcafé Zürich!\n"
    assert TOKENIZERS["whitespace_split"](text) == [
        "I",
        "moved",
        "to",
        "Lisbon.",
        "",
        "Don't",
        "",
        "forget\tcafé",
        "Zürich!\n",
    ]
    assert TOKENIZERS["whitespace"](text) == ["I", "moved", "to", "Lisbon.", "Don't", "forget", "café", "Zürich!"]
    assert TOKENIZERS["regex_words"](text) == ["i", "moved", "to", "lisbon", "don", "t", "forget", "café", "zürich"]
    assert TOKENIZERS["whitespace_split"]("") == [""]  # str.split(" ") of an empty text: one empty term
    assert TOKENIZERS["regex_words"]("?!") == []


def test_an_unknown_tokenizer_names_its_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"'agent_memory.tokenizer'.*whitespace_split.*'nltk'"):
        get_tokenizer("nltk", "agent_memory.tokenizer")
    with pytest.raises(InvalidConfigError, match="'tokenizer'"):
        BM25(tokenizer="nltk")
    with pytest.raises(ValueError, match="k1 > 0"):
        BM25(k1=0.0)


# ---------------------------------------------------------------------------
# BM25
# ---------------------------------------------------------------------------


def test_bm25_hand_computed() -> None:
    # N = 3, lengths 2, 2, 1 (avgdl 5/3). "a" is in all three documents: idf
    # ln(0.5) - ln(3.5) < 0, floored to 0.25 * mean idf, itself negative here.
    bm25 = BM25()
    bm25.add(["a b", "a c", "a"])
    idf_b = math.log(2.5) - math.log(1.5)
    mean = (math.log(0.5) - math.log(3.5) + 2 * idf_b) / 3
    assert mean < 0
    assert bm25.idf("b") == pytest.approx(idf_b, abs=1e-15)
    assert bm25.idf("a") == pytest.approx(0.25 * mean, abs=1e-15)
    assert bm25.idf("zzz") == 0.0

    def term(idf: float, f: int, dl: int) -> float:
        return idf * f * 2.5 / (f + 1.5 * (1 - 0.75 + 0.75 * dl / (5 / 3)))

    want = [term(0.25 * mean, 1, 2) + term(idf_b, 1, 2), term(0.25 * mean, 1, 2), term(0.25 * mean, 1, 1)]
    np.testing.assert_allclose(bm25.scores("a b"), want, rtol=0, atol=1e-12)
    # a repeated query term counts twice, an unknown one not at all
    np.testing.assert_allclose(bm25.scores("b b zzz"), [2 * term(idf_b, 1, 2), 0, 0], rtol=0, atol=1e-12)
    assert [int(i) for i in bm25.ranking("c")] == [1, 0, 2]  # ties (0 and 2 score 0) to the lower id


CORPORA = [
    ["I moved to Lisbon in March", "my cat Tom likes tuna", "Lisbon is sunny in March", "I I I like Lisbon"],
    ["the the the", "the cat", "the dog", "a cat and a dog", "the"],  # "the" in 4 of 5: negative idf
    ["x", "", "x y", "y y y y y y y y"],  # an empty document
]
QUERIES = ["where did I move", "Lisbon March", "the cat", "cat dog the a", "y x", "", "unknown words only"]


@pytest.mark.parametrize("corpus", CORPORA, ids=range(len(CORPORA)))
@pytest.mark.parametrize("tokenizer", sorted(TOKENIZERS))
def test_bm25_equals_rank_bm25_on_hand_built_corpora(corpus: list[str], tokenizer: str) -> None:
    split = TOKENIZERS[tokenizer]
    ref = BM25Okapi([split(d) for d in corpus])
    ours = BM25(tokenizer=tokenizer)
    ours.add(corpus)
    for query in QUERIES:
        want = ref.get_scores(split(query))
        got = ours.scores(query)
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
        assert np.array_equal(got, want), f"{query!r}: not bit-equal to rank_bm25 ({got} vs {want})"


WORDS = st.sampled_from(["a", "b", "c", "d", "e", "f", "g"])


@settings(max_examples=150, deadline=None)
@given(
    docs=st.lists(st.lists(WORDS, max_size=12), min_size=1, max_size=25).filter(lambda ds: any(ds)),
    query=st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "unseen"]), max_size=8),
    cut=st.integers(min_value=0, max_value=25),
    params=st.tuples(st.floats(0.01, 3.0), st.floats(0.0, 0.99), st.floats(0.0, 1.0)),  # b = 1: see below
)
def test_bm25_equals_rank_bm25_on_generated_corpora(
    docs: list[list[str]], query: list[str], cut: int, params: tuple[float, float, float]
) -> None:
    k1, b, epsilon = params
    ref = BM25Okapi(docs, k1=k1, b=b, epsilon=epsilon)
    ours = BM25(k1=k1, b=b, epsilon=epsilon)
    ours.add_tokens(docs[:cut])
    ours.scores_tokens(query)  # a query between two adds: the idf is recomputed at the next one
    ours.add_tokens(docs[cut:])
    got = ours.scores_tokens(query)
    np.testing.assert_allclose(got, ref.get_scores(query), rtol=0, atol=1e-9)
    assert np.array_equal(got, ref.get_scores(query))
    for term in {w for d in docs for w in d}:
        assert ours.idf(term) == ref.idf[term]


def test_an_empty_document_at_b_1_scores_0() -> None:
    # rank_bm25 divides 0 by 0 there (k1 * (1 - b + b * 0 / avgdl) = 0) and returns nan
    bm25 = BM25(b=1.0)
    bm25.add(["a b", ""])
    assert bm25.scores("a")[1] == 0.0
    with np.errstate(invalid="ignore"):
        assert np.isnan(BM25Okapi([["a", "b"], []], b=1.0).get_scores(["a"])[1])


def test_bm25_before_any_term() -> None:
    bm25 = BM25(tokenizer="regex_words")
    assert bm25.scores("anything").shape == (0,)
    bm25.add(["", "?!"])  # two documents with no term: every score 0, no division by zero
    assert bm25.scores("anything").tolist() == [0.0, 0.0]
    assert len(bm25) == 2


# ---------------------------------------------------------------------------
# The Rust index (memarena._core.BM25Index): tokenizers and scores against Python
# ---------------------------------------------------------------------------


def test_rust_whitespace_is_pythons_on_every_code_point() -> None:
    from memarena._core import BM25Index

    index = BM25Index(tokenizer="whitespace")
    split = BM25Index(tokenizer="whitespace_split")
    differing = []
    for cp in range(sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:  # lone surrogates cannot be UTF-8
            continue
        text = f"a{chr(cp)}b"
        if index.tokenize(text) != text.split() or split.tokenize(text) != text.split(" "):
            differing.append(hex(cp))
    assert differing == []
    assert sum(chr(cp).isspace() for cp in range(sys.maxunicode + 1)) == 29  # the set matched above is not empty


TEXT = st.text(
    alphabet=st.sampled_from(["a", "b", "é", " ", "\t", "\n", "\x1c", "\xa0", "\u3000", "\u200b"]), max_size=20
)


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(TEXT, min_size=1, max_size=12),
    query=TEXT,
    tokenizer=st.sampled_from(["whitespace_split", "whitespace"]),
)
def test_rust_tokenizers_and_scores_equal_python_and_rank_bm25(docs: list[str], query: str, tokenizer: str) -> None:
    from memarena._core import BM25Index

    split = TOKENIZERS[tokenizer]
    index = BM25Index(tokenizer=tokenizer)
    for text in [*docs, query]:
        assert index.tokenize(text) == split(text), repr(text)
    index.add(docs)
    tokenized = [split(d) for d in docs]
    assert len(index) == len(docs)
    assert index.n_terms == len({t for d in tokenized for t in d})
    if not any(tokenized):
        return  # rank_bm25 divides by a zero average length
    with np.errstate(invalid="ignore", divide="ignore"):
        want = BM25Okapi(tokenized).get_scores(split(query))
    got = index.scores(query)
    defined = ~np.isnan(want)  # rank_bm25's 0/0 on empty documents at b = 1 cannot happen at b = 0.75
    assert defined.all()
    assert np.array_equal(got, want), f"{docs!r} / {query!r}: {got} vs {want}"
    back = BM25Index.from_bytes(index.to_bytes(), tokenizer)
    assert np.array_equal(back.scores(query), got)


def test_rust_index_errors_name_the_input() -> None:
    from memarena._core import BM25Index
    from memarena.errors import MalformedInputError

    index = BM25Index()
    with pytest.raises(TypeError, match=r"texts\[1\] must be str, not int"):
        index.add(["a", 3])
    with pytest.raises(TypeError, match="list of str, not one str"):
        index.add("abc")
    with pytest.raises(InvalidConfigError, match="k1"):
        BM25Index(k1=0.0)
    with pytest.raises(InvalidConfigError, match="tokenizer"):
        BM25Index(tokenizer="regex_words")
    with pytest.raises(InvalidConfigError, match="add_tokens"):
        BM25Index(tokenizer=None).add(["a"])
    index.add(["a b", "b"])
    with pytest.raises(MalformedInputError, match="byte"):
        BM25Index.from_bytes(index.to_bytes()[:-1])
    # 3 postings x 8, the terms' 2 bytes + 40 a term, 20 a document (memarena_ann::bm25::Bm25::memory_bytes)
    assert index.memory_bytes() == 8 * 3 + 2 + 40 * 2 + 20 * 2


# ---------------------------------------------------------------------------
# Hashing embedders
# ---------------------------------------------------------------------------

SENTENCES = [
    "I moved to Lisbon last March.",
    "Last March I moved to Lisbon.",
    "My cat likes tuna and sleeping in the sun.",
    "",
    "!!!",
]


def test_hashing_buckets_are_blake2b_of_the_feature() -> None:
    emb = HashingEmbedder(dim=1000, seed=3)
    h = int.from_bytes(hashlib.blake2b(b"lisbon", digest_size=8, salt=(3).to_bytes(16, "little")).digest(), "little")
    assert emb.bucket("lisbon") == (h % 1000, -1 if h >= 2**63 else 1)
    assert emb.features("Moved to Lisbon") == ["moved", "to", "lisbon", "moved to", "to lisbon"]
    chars = HashingEmbedder(word_ngrams=1, char_ngrams=3).features("Tom")
    assert chars == ["tom", "\x01<to", "\x01tom", "\x01om>"]


def test_hashing_embedder_unit_norm_and_similar_texts_closer() -> None:
    v = HashingEmbedder().embed(SENTENCES)
    assert v.dtype == np.float32 and v.shape == (5, 1024)
    np.testing.assert_allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-6)
    assert not v[3:].any()  # nothing to embed: zero rows
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]
    # the same row whatever the batch
    np.testing.assert_array_equal(HashingEmbedder().embed([SENTENCES[1]])[0], v[1])


def test_hashing_embedder_is_the_same_in_another_process() -> None:
    code = (
        "import sys; from memarena.families.agent.retrievers import HashingEmbedder;"
        "v = HashingEmbedder(dim=256, char_ngrams=4).embed(['I moved to Lisbon last March.']);"
        "sys.stdout.write(v.tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT / "python")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    here = HashingEmbedder(dim=256, char_ngrams=4).embed(["I moved to Lisbon last March."])
    assert bytes.fromhex(out) == here.tobytes()


def test_sublinear_tf() -> None:
    emb = HashingEmbedder(dim=4096, word_ngrams=1)
    (ca, sa), (cb, _) = emb.bucket("a"), emb.bucket("b")
    assert ca != cb
    v = emb.embed(["a a a b"])[0]
    assert v[ca] * sa == pytest.approx((1 + math.log(3)) / math.hypot(1 + math.log(3), 1), rel=1e-6)
    raw = HashingEmbedder(dim=4096, word_ngrams=1, sublinear_tf=False).embed(["a a a b"])[0]
    assert raw[ca] * sa == pytest.approx(3 / math.hypot(3, 1), rel=1e-6)


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(max_size=60), min_size=1, max_size=6), dim=st.integers(1, 300))
def test_rows_are_unit_or_zero(texts: list[str], dim: int) -> None:
    emb = HashingEmbedder(dim=dim, char_ngrams=3)
    v = emb.embed(texts)
    assert v.shape == (len(texts), dim)
    for text, row in zip(texts, v, strict=True):
        norm = float(np.linalg.norm(row))
        if emb.features(text):
            # signed features can cancel exactly in a tiny dim; otherwise the row is unit norm
            assert norm == pytest.approx(1.0, abs=1e-5) or norm == 0.0
        else:
            assert norm == 0.0


def test_tfidf_idf_hand_computed() -> None:
    emb = TfidfEmbedder(dim=4096, word_ngrams=1)
    corpus = ["apple banana", "apple cherry", "banana banana date"]
    assert emb.idf("apple") == 1.0  # unfitted: every idf 1
    emb.fit(corpus)
    assert emb.idf("apple") == pytest.approx(math.log(4 / 3) + 1)  # df 2 of n 3
    assert emb.idf("banana") == pytest.approx(math.log(4 / 3) + 1)  # in two documents (three times)
    assert emb.idf("date") == pytest.approx(math.log(4 / 2) + 1)
    assert emb.idf("fig") == pytest.approx(math.log(4 / 1) + 1)  # unseen: the largest idf

    (cb, sb), (cd, sd) = emb.bucket("banana"), emb.bucket("date")
    assert cb != cd
    wb, wd = (1 + math.log(2)) * (math.log(4 / 3) + 1), math.log(2) + 1
    v = emb.embed(["banana banana date"])[0]
    assert v[cb] * sb == pytest.approx(wb / math.hypot(wb, wd), rel=1e-6)
    assert v[cd] * sd == pytest.approx(wd / math.hypot(wb, wd), rel=1e-6)
    assert np.count_nonzero(v) == 2


def test_unfitted_tfidf_is_the_hashing_embedder() -> None:
    np.testing.assert_array_equal(TfidfEmbedder().embed(SENTENCES), HashingEmbedder().embed(SENTENCES))


def test_a_bad_embedder_parameter_names_its_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"'embedder.tokenizer' must be one of"):
        HashingEmbedder(tokenizer="bpe")
    with pytest.raises(InvalidConfigError, match=r"'embedder.dim' must be >= 1"):
        TfidfEmbedder(dim=0)
