"""The Index facade over every registered kind: recall floors against the flat
index, batch == single query, tenants, errors, zero-copy outputs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from memarena.errors import InvalidConfigError
from memarena.families.retrieval import Index, ground_truth, recall_at_k, tenants_to_csr
from memarena.indexes import HNSW, Curator
from tests.unit.retrieval.conftest import DIM, data, make


def test_recall_floor_against_flat(kind: tuple[type[Any], dict[str, Any], float]) -> None:
    cls, params, floor = kind
    base, queries = data()
    for metric in ("l2", "cosine"):
        if cls.name == "e2lsh" and metric != "l2":
            continue  # p-stable hashing is an L2 scheme
        truth = ground_truth(base, queries, 10, metric)
        idx = make(cls, params, base, metric)
        idx.add(base)
        assert len(idx) == len(base)
        dist, ids = idx.search(queries, 10)
        assert ids.shape == dist.shape == (len(queries), 10)
        r = recall_at_k(ids, truth, 10)
        assert r >= floor, f"{cls.name} {metric} {params}: recall@10 {r:.3f} < {floor}"


def test_batch_equals_single_query_and_threads(kind: tuple[type[Any], dict[str, Any], float]) -> None:
    cls, params, _ = kind
    base, queries = data(1200, 20, seed=3)
    idx = make(cls, params, base)
    idx.add(base, ids=np.arange(len(base), dtype=np.uint64) * 3 + 1)
    d_batch, i_batch = idx.search(queries, 7, {"threads": 2})
    _, i_one_thread = idx.search(queries, 7, {"threads": 1})
    np.testing.assert_array_equal(i_batch, i_one_thread)
    for q in range(len(queries)):
        d, i = idx.search(queries[q], 7, {"threads": 1})
        np.testing.assert_array_equal(i[0], i_batch[q], err_msg=f"{cls.name}: query {q} differs alone")
        np.testing.assert_array_equal(d[0], d_batch[q])


def test_tenant_lists_and_csr_agree_and_filter() -> None:
    base, queries = data(900, 12)
    rows = [[i % 4] if i % 5 else [i % 4, 9] for i in range(len(base))]
    a = Index("hnsw", metric="l2")
    a.add(base, tenants=rows)
    b = Index("hnsw", metric="l2")
    b.add(base, tenants=tenants_to_csr(rows, len(base)))
    qt = np.arange(len(queries), dtype=np.uint32) % 4
    np.testing.assert_array_equal(a.search(queries, 5, tenant=qt)[1], b.search(queries, 5, tenant=qt)[1])
    _, ids = a.search(queries, 5, tenant=9)
    assert set(ids[ids >= 0].tolist()) <= {i for i, r in enumerate(rows) if 9 in r}
    assert a.tenant_len(9) == sum(9 in r for r in rows)
    assert a.tenant_len(123) == 0
    _, none = a.search(queries, 5, tenant=123)  # a tenant with no vectors sees nothing
    assert (none == -1).all()


def test_padding_and_output_arrays() -> None:
    base, queries = data(30, 3)
    idx = Index("flat", metric="l2")
    idx.add(base)
    d, ids = idx.search(queries, 50)
    assert ids.dtype == np.int64 and d.dtype == np.float32
    assert (ids[:, 30:] == -1).all() and np.isinf(d[:, 30:]).all()
    assert ids.flags.c_contiguous and ids.flags.writeable
    # non-contiguous and float64 inputs are converted once by the facade
    _, ids2 = idx.search(np.asfortranarray(queries.astype(np.float64)), 50)
    np.testing.assert_array_equal(ids, ids2)


def test_errors_name_the_problem() -> None:
    base, _ = data(100, 1)
    idx = Index("ivf", dim=DIM, params={"nlist": 8})
    with pytest.raises(InvalidConfigError, match="dim 16"):
        idx.train(np.zeros((10, 3), dtype=np.float32))
    with pytest.raises(InvalidConfigError, match="train"):
        idx.add(base)  # untrained IVF
    with pytest.raises(InvalidConfigError, match="unknown index kind"):
        Index("annoy")
    with pytest.raises(InvalidConfigError, match="nprob"):
        Index("ivf", search={"nprob": 3})
    flat = Index("flat")
    flat.add(base)
    with pytest.raises(InvalidConfigError, match="already"):
        flat.add(base[:1], ids=[0])
    with pytest.raises(InvalidConfigError, match="nlist"):
        Index("ivf", dim=DIM, params={"nlist": 0})


def test_delete_reset_contains() -> None:
    base, queries = data(500, 10)
    idx = Index("ivf", params={"nlist": 16}, search={"nprobe": 16})
    idx.train(base)
    idx.add(base)
    assert idx.delete(np.arange(0, 500, 2)) == 250
    assert idx.delete([0, 10_000]) == 0
    assert len(idx) == 250 and 1 in idx and 0 not in idx
    _, ids = idx.search(queries, 10)
    assert (ids % 2 == 1).all()
    idx.reset()
    assert len(idx) == 0 and idx.is_trained
    idx.add(base[:5])  # trained state kept
    assert len(idx) == 5


@pytest.mark.parametrize("cls", [HNSW, Curator], ids=["hnsw", "curator"])
def test_tenant_block_max_from_config_trades_memory_not_answers(cls: type[Any]) -> None:
    base, queries = data(1200, 20)
    rows = [[i % 6] for i in range(len(base))]
    qt = np.arange(len(queries), dtype=np.uint32) % 6
    built = {}
    for block_max in (16384, 0):
        idx = make(cls, {"tenant_block_max": block_max, "ef_search": 64}, base)
        idx.add(base, tenants=rows)
        built[block_max] = (idx.memory_bytes(), idx.search(queries, 5, tenant=qt))
    (mem_copies, (d_a, i_a)), (mem_none, (d_b, i_b)) = built[16384], built[0]
    # Small tenants are scanned exactly either way: the same answers.
    np.testing.assert_array_equal(i_a, i_b)
    np.testing.assert_allclose(d_a, d_b, rtol=1e-5)
    # Without the per-tenant copies the index holds about one copy of the vectors less.
    assert mem_none < mem_copies - 0.8 * base.nbytes, (mem_none, mem_copies, base.nbytes)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (np.array([1, 2**64 - 1], dtype=np.uint64), r"ids: id 18446744073709551615 \(row 1\) is above"),
        (np.array([2**63], dtype=np.uint64), r"ids: id 9223372036854775808 \(row 0\) is above"),
        ([3, -1], r"ids: id -1 \(row 1\) is negative"),
        ([1.0, 2.5], r"ids: id 2\.5 \(row 1\) is not an integer"),
        (["a", "b"], r"ids: must be integers"),
    ],
)
def test_ids_a_search_could_not_return_intact_are_refused(ids: object, message: str) -> None:
    # Results carry ids as int64 with -1 for "no result" (as faiss does): an id
    # that would come back altered (-1, negative, truncated) is refused at add.
    index = Index("flat", metric="l2")
    x = np.random.default_rng(0).standard_normal((2, 4), dtype=np.float32)
    n = len(ids) if isinstance(ids, list) else ids.shape[0]  # type: ignore[attr-defined]
    with pytest.raises(InvalidConfigError, match=message):
        index.add(x[:n], ids=ids)
    index.add(x[:1], ids=np.array([2**63 - 1], dtype=np.uint64))  # the largest id round-trips
    assert index.search(x[:1], 1)[1][0, 0] == 2**63 - 1


def test_search_before_train_or_add_says_what_to_do() -> None:
    # Issue 14 item 8: "has no dimension yet" although dim=16 was given.
    q = np.zeros((1, 16), dtype=np.float32)
    with pytest.raises(InvalidConfigError, match=r"ivf index \(dim=16\) is not trained yet: .*call train\(vectors\)"):
        Index("ivf", dim=16).search(q, 3)
    with pytest.raises(InvalidConfigError, match=r"spann index is empty, no dimension yet: call train\(vectors\)"):
        Index("spann").search(q, 3)
    with pytest.raises(InvalidConfigError, match=r"flat index is empty, no dimension yet: call add\(vectors\)"):
        Index("flat").search(q, 3)


def test_the_indexes_old_module_paths_still_load() -> None:
    # configs saved before the indexes moved to memarena.indexes name the retrieval family's modules
    from hydra.utils import instantiate

    import memarena.indexes
    from memarena.families.retrieval import index as old_index
    from memarena.families.retrieval import indexes as old_indexes

    assert old_indexes.Flat is memarena.indexes.Flat and old_index.Index is memarena.indexes.Index
    assert old_indexes.BUILTIN_INDEXES == memarena.indexes.BUILTIN_INDEXES
    made = instantiate({"_target_": "memarena.families.retrieval.indexes.HNSW", "dim": 8, "metric": "ip", "m": 8})
    assert isinstance(made, memarena.indexes.HNSW) and made.dim == 8
    assert memarena.indexes.Flat.Config._target_ == "memarena.indexes.Flat"
