"""memarena.families.paging.Trace: zero-copy columns, derived columns, readers, writers, generators, errors."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from memarena.errors import InvalidConfigError, MalformedInputError, MemarenaError
from memarena.families.paging import NEVER, Trace
from memarena.families.paging.reference import next_access


def test_from_arrays_does_not_copy_uint64_columns() -> None:
    ids = np.arange(1_000_000, dtype=np.uint64) % 1000
    sizes = np.full(ids.shape, 7, dtype=np.uint64)
    t = Trace.from_arrays(ids, sizes)
    assert np.shares_memory(t.ids, ids)
    assert np.shares_memory(t.sizes, sizes)
    assert not t.ids.flags.writeable
    assert len(t) == 1_000_000 and t.num_objects == 1000


def test_from_arrays_converts_other_integer_dtypes() -> None:
    t = Trace.from_arrays([3, 1, 3])
    assert t.ids.dtype == np.uint64
    assert t.ids.tolist() == [3, 1, 3]


def test_derived_columns_are_cached_views() -> None:
    ids = np.array([1, 2, 1, 3, 2, 1], dtype=np.uint64)
    t = Trace.from_arrays(ids)
    assert t.next_vtime.tolist() == [2, 4, 5, NEVER, NEVER, NEVER]
    assert t.first_access.tolist() == [True, True, False, True, False, False]
    # Computed once: two reads view the same buffer.
    assert np.shares_memory(t.next_vtime, t.next_vtime)
    with pytest.raises(ValueError, match="read-only"):
        t.next_vtime[0] = 0


def test_views_of_owned_traces_keep_the_trace_alive() -> None:
    t = Trace.synthetic("zipf", 10_000, alpha=1.0, n_objects=100, seed=3)
    ids = t.ids
    expected = ids.copy()
    del t
    gc.collect()
    assert np.array_equal(ids, expected)
    with pytest.raises(ValueError, match="read-only"):
        ids[0] = 1
    with pytest.raises(ValueError, match="cannot set WRITEABLE"):
        ids.setflags(write=True)


def test_next_vtime_matches_reference() -> None:
    t = Trace.synthetic("uniform", 5000, n_objects=300, seed=1)
    assert t.next_vtime.tolist() == next_access(t.ids.tolist())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ids": [1, 2], "sizes": [1]}, "sizes"),
        ({"ids": [1, -2]}, "non-negative"),
        ({"ids": [[1, 2]]}, "one-dimensional"),
        ({"ids": [1.5, 2.0]}, "integers"),
        ({"ids": [1, 2], "sizes": [1, 0]}, r"sizes\[1\]"),
    ],
)
def test_from_arrays_rejects_bad_columns(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        Trace.from_arrays(**kwargs)


def test_synthetic_is_seeded_and_deterministic() -> None:
    a = Trace.synthetic("zipf", 20_000, alpha=0.8, n_objects=500, seed=42)
    b = Trace.synthetic({"kind": "zipf", "alpha": 0.8, "n_objects": 500}, 20_000, seed=42)
    c = Trace.synthetic("zipf", 20_000, alpha=0.8, n_objects=500, seed=43)
    assert np.array_equal(a.ids, b.ids)
    assert not np.array_equal(a.ids, c.ids)
    assert a.sizes is None and not a.has_sizes


def test_synthetic_sized_mix_and_phase_shift() -> None:
    spec = {
        "kind": "sized",
        "inner": {
            "kind": "mix",
            "components": [[0.5, {"kind": "loop", "n_objects": 10}], (0.5, {"kind": "scan"})],
        },
        "sizes": {"kind": "uniform", "min_bytes": 10, "max_bytes": 20},
    }
    t = Trace.synthetic(spec, 1000, seed=0)
    assert t.has_sizes and t.sizes.min() >= 10 and t.sizes.max() <= 20
    first = t.first_access
    assert t.footprint_bytes == int(t.sizes[first].sum())
    ps = Trace.synthetic("phase_shift", 1000, inner={"kind": "loop", "n_objects": 10}, period=100, shift=1000, seed=0)
    assert ps.num_objects == 100


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"kind": "zipf", "n_objects": 10}, r"spec\.alpha"),
        ({"kind": "nope"}, "available: zipf"),
        ({"kind": "mix", "components": [[1.0, {"kind": "zipf", "alpha": -1, "n_objects": 3}]]}, "components"),
        ({"kind": "sized", "inner": {"kind": "scan"}, "sizes": {"kind": "constant", "bytes": 0}}, "bytes"),
    ],
)
def test_bad_synthetic_spec_names_the_parameter(spec: dict, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        Trace.synthetic(spec, 10, seed=0)


def test_csv_by_name_index_and_hash(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("time,key,size\n1,10,100\n2,20,200\n3,10,100\n")
    by_name = Trace.from_csv(p, id_column="key", size_column="size", time_column="time")
    assert by_name.ids.tolist() == [10, 20, 10]
    assert by_name.sizes.tolist() == [100, 200, 100]
    assert by_name.timestamps.tolist() == [1, 2, 3]
    by_index = Trace.from_csv(p, id_column=1, size_column=2)
    assert np.array_equal(by_index.ids, by_name.ids)
    q = tmp_path / "s.tsv"
    q.write_text("a\tx\nb\ty\na\tz\n")
    hashed = Trace.from_csv(q, id_column=0, delimiter="\t", header=False, id_format="hash")
    assert hashed.num_objects == 2 and hashed.ids[0] == hashed.ids[2]


def test_malformed_csv_names_file_and_row(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("key\n1\n2\nnot-a-number\n")
    with pytest.raises(MalformedInputError, match=r"bad\.csv.*(row|line) 4") as exc:
        Trace.from_csv(p, id_column="key")
    assert isinstance(exc.value, MemarenaError)


def test_unknown_csv_column_is_named(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text("key\n1\n")
    with pytest.raises(MemarenaError, match="nope"):
        Trace.from_csv(p, id_column="nope")


def test_missing_files_raise_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        Trace.from_csv(tmp_path / "missing.csv")
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        Trace.from_oracle_general(tmp_path / "missing.bin")


def test_oracle_general_round_trip(tmp_path: Path) -> None:
    spec = {
        "kind": "sized",
        "inner": {"kind": "zipf", "alpha": 1.0, "n_objects": 50},
        "sizes": {"kind": "constant", "bytes": 4096},
    }
    t = Trace.synthetic(spec, 2000, seed=5)
    p = tmp_path / "t.oracleGeneral"
    t.to_oracle_general(p)
    assert p.stat().st_size == 24 * len(t)
    back = Trace.from_oracle_general(p)
    assert np.array_equal(back.ids, t.ids)
    assert np.array_equal(back.sizes, t.sizes)
    assert np.array_equal(back.next_vtime, t.next_vtime)
    # A numpy-backed trace writes the same bytes.
    q = tmp_path / "u.oracleGeneral"
    Trace.from_arrays(t.ids.copy(), t.sizes.copy()).to_oracle_general(q)
    assert q.read_bytes() == p.read_bytes()


def test_truncated_oracle_general_names_byte_offset(tmp_path: Path) -> None:
    t = Trace.from_arrays([1, 2, 3])
    p = tmp_path / "t.oracleGeneral"
    t.to_oracle_general(p)
    p.write_bytes(p.read_bytes()[:-5])
    with pytest.raises(MalformedInputError, match=r"t\.oracleGeneral.*byte offset 48"):
        Trace.from_oracle_general(p)


def test_oracle_predictions_share_ids() -> None:
    t = Trace.synthetic("zipf", 5000, alpha=1.0, n_objects=200, seed=2)
    nxt = t.with_oracle_predictions("next_arrival", cache_size=20)
    assert nxt.has_predictions and not t.has_predictions
    assert np.shares_memory(nxt.ids, t.ids)
    assert np.array_equal(nxt.pred_next_vtime, t.next_vtime)
    bits = t.with_oracle_predictions("discard_bit", cache_size=20)
    assert bits.pred_bit is not None and bits.pred_bit.dtype == np.bool_
    noisy = bits.with_noise(0.5, seed=1)
    flips = np.count_nonzero(noisy.pred_bit != bits.pred_bit)
    assert 0.4 * len(t) < flips < 0.6 * len(t)
    assert np.array_equal(noisy.with_oracle_predictions("phase_bit", 20).ids, t.ids)


def test_prediction_errors() -> None:
    t = Trace.from_arrays([1, 2, 1])
    with pytest.raises(InvalidConfigError, match="next_arrival, discard_bit, phase_bit"):
        t.with_oracle_predictions("psychic", 2)
    with pytest.raises(InvalidConfigError, match="no predictions"):
        t.with_noise(0.1)
    with pytest.raises(InvalidConfigError, match="k"):
        t.with_oracle_predictions("discard_bit", 0)


def test_footprint_of_sizes_near_2_63_does_not_wrap() -> None:
    # Two objects of 2**63 bytes: a uint64 sum wraps to 0 (issue 14 item 7).
    big = 2**63
    t = Trace.from_arrays([1, 2, 1], sizes=[big, big, big])
    assert t.footprint_bytes == 2**64
    t = Trace.from_arrays([1, 2, 3], sizes=np.array([2**64 - 1, 2**64 - 1, 5], dtype=np.uint64))
    assert t.footprint_bytes == 2 * (2**64 - 1) + 5


def test_a_fractional_cache_size_of_a_huge_footprint_gets_the_right_capacity() -> None:
    from memarena.families.paging.family import resolve_cache_sizes

    big = 2**63
    t = Trace.from_arrays([1, 2], sizes=[big, big])
    assert resolve_cache_sizes(0.5, t, ignore_size=False) == [big]
    t = Trace.from_arrays([1, 2, 3], sizes=np.full(3, 2**64 - 1, dtype=np.uint64))
    with pytest.raises(InvalidConfigError, match=r"'cache_size': 0\.5 of the footprint .* above the largest"):
        resolve_cache_sizes(0.5, t, ignore_size=False)
