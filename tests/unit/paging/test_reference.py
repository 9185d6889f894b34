"""Differential tests: Rust policies against the pure-Python references (exact hit masks)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena import _core
from memarena.families.paging import Trace
from memarena.families.paging.policies import NATIVE_POLICIES
from memarena.families.paging.reference import REFERENCES, reference_hit_mask

NAMES = sorted(REFERENCES)
#: The native policy classes by core name (their Config holds the parameters the core requires).
NATIVE = {cls.core_name: cls for cls in NATIVE_POLICIES}


@st.composite
def sequences(draw: st.DrawFn) -> tuple[str, list[int], list[int] | None, int]:
    name = draw(st.sampled_from(NAMES))
    n_objects = draw(st.integers(1, 30))
    ids = draw(st.lists(st.integers(0, n_objects - 1), min_size=1, max_size=300))
    sized = draw(st.booleans())
    if sized:
        size_of = draw(st.lists(st.integers(1, 20), min_size=n_objects, max_size=n_objects))
        sizes = [size_of[i] for i in ids]
        capacity = draw(st.integers(1, 120))
    else:
        sizes = None
        capacity = draw(st.integers(1, 25))
    return name, ids, sizes, capacity


@settings(max_examples=400, deadline=None, derandomize=True)
@given(sequences())
def test_rust_hit_mask_equals_reference(case: tuple[str, list[int], list[int] | None, int]) -> None:
    name, ids, sizes, capacity = case
    trace = Trace.from_arrays(ids, sizes)
    ours = _core.hit_mask(name, capacity, trace._core, NATIVE[name](capacity).core_params())
    ref = reference_hit_mask(name, ids, capacity, sizes)
    assert np.array_equal(ours, ref), f"{name} cap={capacity} first diff at {int(np.argmax(ours != ref))}"


def test_clock_with_wider_counters_matches_reference() -> None:
    from memarena.families.paging.reference import RefCache, RefCLOCK, next_access

    rng = np.random.default_rng(0)
    ids = rng.zipf(1.3, 5000) % 200
    trace = Trace.from_arrays(ids)
    ours = _core.hit_mask("clock", 30, trace._core, {"n_bit_counter": 2, "init_freq": 1})
    cache = RefCache(RefCLOCK(n_bit_counter=2, init_freq=1), 30)
    ref = [cache.access(int(i), 1, n) for i, n in zip(ids, next_access(ids.tolist()), strict=True)]
    assert np.array_equal(ours, ref)
