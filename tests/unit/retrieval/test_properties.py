"""Property tests: random add / delete / search sequences with tenants.

A pure-numpy reference (the live vectors, their tenant sets, brute force)
checks every index: no query ever sees a vector its tenant may not read
(no leak across tenants), deleted vectors never come back, counts match, and
the flat index returns exactly the reference's neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memarena.families.retrieval import Index
from tests.unit.retrieval.conftest import DIM, KINDS

N_TENANTS = 6
# One fast setting per core kind (recall does not matter here, isolation does).
KIND_PARAMS: dict[str, tuple[dict[str, float], dict[str, Any]]] = {
    "flat": ({}, {}),
    "simhash": ({"n_bits": 8, "n_tables": 4}, {"n_probes": 4, "rerank": 50}),
    "e2lsh": ({}, {"n_probes": 4}),
    "ivf": ({"nlist": 4}, {"nprobe": 2, "exact_filter_max": 0}),
    "spann": ({"nlist": 4}, {"nprobe": 2, "exact_filter_max": 0}),
    "hnsw": ({"m": 6, "ef_construction": 20}, {"ef_search": 16, "exact_filter_max": 0}),
    "curator": ({"branching": 4, "leaf_size": 8, "split_threshold": 4}, {"ef_search": 20}),
}
assert set(KIND_PARAMS) == {cls.core_kind for cls, _, _ in KINDS}

op = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 40)),
    st.tuples(st.just("delete"), st.integers(1, 15)),
    st.tuples(st.just("search"), st.integers(1, 12)),
)


class Reference:
    """Live vectors and their tenant sets; exact search by brute force."""

    def __init__(self) -> None:
        self.vectors: dict[int, np.ndarray] = {}
        self.tenants: dict[int, set[int]] = {}

    def readable(self, tenant: int | None) -> list[int]:
        return [i for i in self.vectors if tenant is None or tenant in self.tenants[i]]

    def knn(self, q: np.ndarray, k: int, tenant: int | None) -> list[int]:
        ids = self.readable(tenant)
        d = [float(((self.vectors[i] - q) ** 2).sum()) for i in ids]
        return [ids[j] for j in np.argsort(d, kind="stable")[:k]]


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(sorted(KIND_PARAMS)), ops=st.lists(op, min_size=1, max_size=12), seed=st.integers(0, 2**16))
def test_random_workloads_never_leak_across_tenants(kind: str, ops: list[tuple[str, int]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    build, search = KIND_PARAMS[kind]
    idx = Index(kind, dim=DIM, params=build, search=search)
    idx.train(rng.standard_normal((64, DIM), dtype=np.float32))
    ref = Reference()
    next_id = 0
    for name, n in ops:
        if name == "add":
            x = rng.standard_normal((n, DIM), dtype=np.float32)
            ids = np.arange(next_id, next_id + n, dtype=np.uint64)
            next_id += n
            rows = [sorted({int(t) for t in rng.integers(0, N_TENANTS, rng.integers(0, 3))}) for _ in range(n)]
            idx.add(x, ids=ids, tenants=rows)
            for i, v, r in zip(ids.tolist(), x, rows, strict=True):
                ref.vectors[i], ref.tenants[i] = v, set(r)
        elif name == "delete":
            victims = rng.integers(0, max(1, next_id + 3), n).astype(np.uint64)  # some unknown or repeated
            present = len({int(v) for v in victims} & set(ref.vectors))
            assert idx.delete(victims) == present
            for v in victims.tolist():
                ref.vectors.pop(v, None)
                ref.tenants.pop(v, None)
        else:
            q = rng.standard_normal((n, DIM), dtype=np.float32)
            qt = rng.integers(0, N_TENANTS + 1, n).astype(np.uint32)  # tenant N_TENANTS owns nothing
            k = 5
            _, got = idx.search(q, k, tenant=qt)
            _, unfiltered = idx.search(q, k)
            for j in range(n):
                t = int(qt[j])
                found = [int(i) for i in got[j] if i >= 0]
                allowed = set(ref.readable(t))
                assert set(found) <= allowed, f"{kind}: tenant {t} saw {set(found) - allowed}"
                assert len(set(found)) == len(found)
                assert set(int(i) for i in unfiltered[j] if i >= 0) <= set(ref.vectors)
                if kind == "flat":
                    assert found == ref.knn(q[j], k, t)
                    assert [int(i) for i in unfiltered[j] if i >= 0] == ref.knn(q[j], k, None)
        assert len(idx) == len(ref.vectors)
        for t in range(N_TENANTS + 1):
            assert idx.tenant_len(t) == len(ref.readable(t))
    # and the state survives a round trip through the file format
    back = Index.from_bytes(idx.to_bytes())
    assert len(back) == len(ref.vectors)
    q = rng.standard_normal((4, DIM), dtype=np.float32)
    np.testing.assert_array_equal(back.search(q, 5, search)[1], idx.search(q, 5)[1])
