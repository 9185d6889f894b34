"""Save/load: versioned, checksummed; deletes survive; a truncated or corrupted
file is a clear error, never a crash or a silently different index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memarena.errors import MalformedInputError
from memarena.families.retrieval import Index
from tests.unit.retrieval.conftest import data, make


def built(cls: type[Any], params: dict[str, Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    base, queries = data(600, 8, seed=11)
    idx = make(cls, params, base)
    rows = [[i % 3, 7] for i in range(len(base))]
    idx.add(base, ids=np.arange(len(base), dtype=np.uint64) + 10, tenants=rows)
    idx.delete([10, 11, 50, 300])
    qt = np.arange(len(queries), dtype=np.uint32) % 3
    return idx, queries, qt


def test_round_trip_keeps_results_and_deletes(kind: tuple[type[Any], dict[str, Any], float], tmp_path: Path) -> None:
    cls, params, _ = kind
    idx, queries, qt = built(cls, params)
    path = tmp_path / f"{cls.name}.idx"
    idx.save(path)
    back = Index.load(path)
    assert back.core_kind_name == cls.core_kind and len(back) == len(idx) == 596
    assert 10 not in back and 300 not in back and 12 in back
    sp = idx.default_search()
    for tenant in (None, qt):
        d1, i1 = idx.search(queries, 5, sp, tenant=tenant)
        d2, i2 = back.search(queries, 5, sp, tenant=tenant)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(d1, d2)
    assert Index.from_bytes(idx.to_bytes()).to_bytes() == idx.to_bytes()


@pytest.mark.parametrize("kind_name", ["flat", "hnsw", "ivf", "curator", "e2lsh", "simhash"])
def test_truncated_or_corrupted_file_is_a_clear_error(kind_name: str, tmp_path: Path) -> None:
    base, _ = data(300, 1, seed=2)
    idx = Index(kind_name, params={"nlist": 8} if kind_name == "ivf" else None)
    idx.train(base)
    idx.add(base, tenants=[[i % 2] for i in range(len(base))])
    blob = idx.to_bytes()
    rng = np.random.default_rng(0)
    for cut in [0, 5, 12, 40, len(blob) // 2, len(blob) - 1, *rng.integers(1, len(blob), 10).tolist()]:
        with pytest.raises(MalformedInputError, match="byte"):
            Index.from_bytes(blob[:cut])
    for pos in rng.integers(0, len(blob), 20).tolist():
        bad = bytearray(blob)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(MalformedInputError):
            Index.from_bytes(bytes(bad))
    path = tmp_path / "bad.idx"
    path.write_bytes(blob[:-3])
    with pytest.raises(MalformedInputError, match=r"bad\.idx"):
        Index.load(path)
    with pytest.raises(FileNotFoundError):
        Index.load(tmp_path / "missing.idx")


#: Index files written by the build before the index configs crossed with serde (same format version).
BEFORE_SERDE = Path(__file__).parents[3] / "rust" / "memarena-ann" / "tests" / "data" / "before-serde"


@pytest.mark.parametrize("kind_name", ["flat", "simhash", "e2lsh", "ivf", "spann", "hnsw", "curator"])
def test_files_written_before_load_unchanged(kind_name: str) -> None:
    path = BEFORE_SERDE / f"{kind_name}.idx"
    idx = Index.load(path)
    assert (idx.core_kind_name, idx.dim, len(idx)) == (kind_name, 8, 297)
    assert idx.to_bytes() == path.read_bytes()
    _, ids = idx.search(np.zeros((1, 8), dtype=np.float32), 5, tenant=2)
    assert ((ids == -1) | ((ids - 5) % 3 == 2)).all() and (ids >= 0).any()
