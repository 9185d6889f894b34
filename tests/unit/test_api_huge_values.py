"""The public Python API with huge values (issue 14): a clear error naming the argument, never an abort.

Each call is refused before its arrays are built (against the memory this
machine has available), so these are safe without a memory limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memarena.backends import H100_SXM
from memarena.errors import InvalidConfigError
from memarena.families.paging import Trace
from memarena.families.retrieval.dataset import gaussian_mixture
from memarena.families.serving import Hardware, ModelSpec, PagedKV, generate_requests, simulate

#: Sizes far over any machine's memory (with the bytes of one item, at least 1 PiB).
HUGE = st.integers(2**50, 2**63 - 1)
H100 = Hardware.from_backend(H100_SXM())


@settings(max_examples=25, deadline=None)
@given(n=HUGE, sized=st.booleans())
def test_a_huge_synthetic_trace_is_refused(n: int, sized: bool) -> None:
    spec = {"kind": "sized", "inner": {"kind": "loop", "n_objects": 4}, "sizes": {"kind": "constant", "bytes": 8}}
    with pytest.raises(InvalidConfigError, match="n_requests"):
        Trace.synthetic(spec if sized else "loop", n, n_objects=4) if not sized else Trace.synthetic(spec, n)


@settings(max_examples=25, deadline=None)
@given(n=HUGE, which=st.sampled_from(["n_base", "n_queries", "dim", "n_clusters"]))
def test_a_huge_dataset_is_refused(n: int, which: str) -> None:
    sizes = {"n_base": 10, "n_queries": 2, "dim": 4, "n_clusters": 2, which: n}
    with pytest.raises(InvalidConfigError, match="gaussian_mixture"):
        gaussian_mixture(sizes["n_base"], sizes["n_queries"], sizes["dim"], n_clusters=sizes["n_clusters"])


@settings(max_examples=25, deadline=None)
@given(n=HUGE, rate=st.sampled_from([1e-300, 5e-324, 1.0, 1e300]))
def test_a_huge_request_count_is_refused(n: int, rate: float) -> None:
    spec = {"kind": "synthetic", "num_requests": n, "arrivals": {"kind": "poisson", "rate": rate}}
    with pytest.raises(InvalidConfigError, match="num_requests"):
        generate_requests({**spec, "prompt_tokens": 8, "output_tokens": 8}, 0)


def _attempt(f: Callable[[], Any]) -> tuple[Any, InvalidConfigError | None]:
    try:
        return f(), None
    except InvalidConfigError as exc:
        return None, exc


@settings(max_examples=20, deadline=None)
@given(
    rate=st.one_of(st.floats(1e-300, 1e-6), st.just(5e-324)),
    scale=st.one_of(st.floats(1e-300, 1e-3), st.just(1.0)),
    interval=st.one_of(st.floats(1e-12, 1e-6), st.just(1.0)),
)
def test_a_series_over_a_huge_span_is_refused(rate: float, scale: float, interval: float) -> None:
    """Rates and time scales near 0, intervals near 0: a sample series no machine holds is refused up front."""
    spec = {"kind": "synthetic", "num_requests": 3, "arrivals": {"kind": "poisson", "rate": rate}}
    requests, error = _attempt(lambda: generate_requests({**spec, "prompt_tokens": 8, "output_tokens": 8}, 0))
    if error is not None:  # arrivals beyond any finite time: refused, naming the rate
        assert "arrivals.rate" in str(error) and not np.isfinite(2 / rate)
        return
    assert np.isfinite(requests.arrival_s).all()
    scaled, error = _attempt(lambda: requests.time_scaled(scale))
    if error is not None:  # likewise after scaling
        assert "time_scale" in str(error) and not np.isfinite(requests.span_s / scale)
        return
    if scaled.span_s / interval * 160 < 2**45:
        return  # a span this machine might hold: not what this test is about
    with pytest.raises(InvalidConfigError, match="sample_interval_s"):
        simulate(
            scaled,
            model=ModelSpec.builtin("llama3_8b"),
            hardware=H100,
            kv_manager=PagedKV(),
            sample_interval_s=interval,
        )


def test_a_small_series_still_runs() -> None:
    spec = {"kind": "synthetic", "num_requests": 5, "arrivals": {"kind": "poisson", "rate": 10.0}}
    requests = generate_requests({**spec, "prompt_tokens": 8, "output_tokens": 8}, 0)
    report = simulate(requests, model=ModelSpec.builtin("llama3_8b"), hardware=H100, kv_manager=PagedKV())
    assert report.row()["completed"] == 5
