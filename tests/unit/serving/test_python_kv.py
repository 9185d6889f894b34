"""KV managers written in Python: the callback adapter, its errors, and the paged reference.

The reference :class:`PagedPythonKV` must reproduce the native ``paged``
report (prefix caching off) exactly: every scalar, every sample of the time
series and every per-request outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from memarena import hookimpl
from memarena.api import KVBreakdown, KVManager, KVRequest
from memarena.backends import H100_SXM, L4
from memarena.config import compose
from memarena.errors import CallbackError, InvalidConfigError, InvariantError
from memarena.families.serving import (
    Hardware,
    ModelSpec,
    PagedKV,
    PagedPythonKV,
    Requests,
    ServingReport,
    generate_requests,
    read_azure_csv,
    simulate,
)
from memarena.families.serving.workloads import azure_conv_path
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.results import RECORD_FILE, RunRecord
from memarena.run import execute

H100 = Hardware.from_backend(H100_SXM())
L4_HW = Hardware.from_backend(L4())  # 24 GB: a small pool, so memory runs out and requests are preempted
LLAMA3_8B = ModelSpec.builtin("llama3_8b")


def assert_same_report(py: ServingReport, native: ServingReport) -> None:
    """Every scalar, latency summary, sample and per-request outcome, bit for bit (NaN == NaN)."""
    assert py.summary.pop("kv_manager") == "paged_python"
    assert native.summary.pop("kv_manager") == "paged"
    assert py.summary == native.summary
    assert py.samples.keys() == native.samples.keys()
    for k, v in native.samples.items():
        assert py.samples[k].dtype == v.dtype, k
        assert np.array_equal(py.samples[k], v), k
    assert np.array_equal(py.status, native.status)
    assert np.array_equal(py.ttft_s, native.ttft_s, equal_nan=True)
    assert np.array_equal(py.e2e_s, native.e2e_s, equal_nan=True)


def both(requests: Requests, **kw: Any) -> tuple[ServingReport, ServingReport]:
    block_size = kw.pop("block_size", 16)
    watermark = kw.pop("watermark", 0.01)
    py = simulate(requests, kv_manager=PagedPythonKV(block_size=block_size, watermark=watermark), **kw)
    native = simulate(requests, kv_manager=PagedKV(block_size=block_size, watermark=watermark), **kw)
    return py, native


def test_the_reference_matches_paged_on_the_azure_trace() -> None:
    # 400 requests of the shipped trace replayed 8x faster, on a 24 GB device: preemptions happen.
    reqs = read_azure_csv(azure_conv_path()).head(400).time_scaled(8)
    py, native = both(reqs, model="llama2_7b", hardware=L4_HW, sample_interval_s=0.25)
    assert native.preemptions_recompute > 0 and native.completed > 300
    assert len(native.samples["time_s"]) > 10
    assert_same_report(py, native)


@pytest.mark.parametrize(
    ("preemption", "victim", "block_size"),
    [("recompute", "last_admitted", 16), ("swap", "most_kv", 16), ("recompute", "least_progress", 7)],
)
def test_the_reference_matches_paged_with_parallel_sampling_and_preemption(
    preemption: str, victim: str, block_size: int
) -> None:
    reqs = generate_requests(
        {
            "kind": "synthetic",
            "num_requests": 300,
            "arrivals": {"kind": "gamma", "rate": 40.0, "cv": 2.0},
            "prompt_tokens": {"kind": "lognormal", "median": 500, "sigma": 1.0},
            "output_tokens": {"kind": "lognormal", "median": 150, "sigma": 1.0},
            "n_parallel": 3,
        },
        seed=5,
    )
    py, native = both(
        reqs,
        block_size=block_size,
        model="llama2_7b",
        hardware=L4_HW,
        scheduler={"preemption": preemption, "victim": victim},
        sample_interval_s=0.1,
    )
    assert native.cow_copies > 0
    assert native.preemptions_recompute + native.preemptions_swap > 0
    if preemption == "swap":
        assert native.preemptions_swap > 0 and native.swap_out_bytes > 0
    assert_same_report(py, native)


def test_the_reference_checks_its_invariants_and_matches_with_checks_on() -> None:
    reqs = generate_requests(
        {
            "kind": "synthetic",
            "num_requests": 80,
            "arrivals": {"kind": "all_at_once"},
            "prompt_tokens": {"kind": "uniform", "min": 100, "max": 1500},
            "output_tokens": {"kind": "uniform", "min": 1, "max": 300},
            "n_parallel": 2,
        },
        seed=2,
    )
    py, native = both(reqs, model="llama2_7b", hardware=L4_HW, sample_interval_s=0.05, check_invariants=True)
    assert native.preemptions_recompute > 0
    assert_same_report(py, native)


def test_the_reference_unit_semantics() -> None:
    kv = PagedPythonKV(block_size=4, watermark=0.0)
    assert (
        kv.setup(budget_bytes=10 * 4 * 2 + 3, bytes_per_token=2, max_model_len=100, max_num_seqs=8, num_layers=1) == 80
    )
    req = KVRequest(prompt_tokens=6, max_tokens=9, n_parallel=2)
    assert kv.can_ever_fit(req)  # 1 shared block + 2 x 2 blocks <= 10
    assert kv.admit(0, req, 0, 6)  # 2 blocks, the second half full
    assert kv.breakdown(None) == KVBreakdown(6 * 2, 0, 2 * 2, 0, 8 * 4 * 2, 0)
    assert kv.grow(0, 7, 2)  # fork, then both sequences write into the shared partial block: one copy
    assert kv.counters().cow_copies == 1
    assert kv.take_step_overhead() == (2 * 2 * 2, 0.0) and kv.take_step_overhead() == (0, 0.0)
    assert kv.resident_bytes(0) == 3 * 4 * 2  # 2 blocks of the first sequence + 1 private copy
    kv.check_invariants()
    kv.free(0)
    kv.free(0)  # a no-op
    assert kv.breakdown(None).free_bytes == 80
    with pytest.raises(InvalidConfigError, match="hold no block"):
        kv.setup(budget_bytes=7, bytes_per_token=2, max_model_len=100, max_num_seqs=8, num_layers=1)


# ---------------------------------------------------------------------------
# Errors of the adapter
# ---------------------------------------------------------------------------

SMALL = Requests.from_arrays([0.0, 0.1, 0.2], [100, 200, 300], [20, 20, 20])


class Raising(PagedPythonKV):
    name = "raising"

    def __init__(self, after: int) -> None:
        super().__init__()
        self.calls = 0
        self.after = after

    def grow(self, rid: int, tokens: int, n_seqs: int) -> bool:
        self.calls += 1
        if self.calls > self.after:
            raise ZeroDivisionError("boom in grow")
        return super().grow(rid, tokens, n_seqs)


def test_a_raising_callback_names_the_manager_and_the_call() -> None:
    mgr = Raising(after=5)
    with pytest.raises(
        CallbackError, match=r"KV manager \"raising\": grow\(\d+, \d+, 1\) raised ZeroDivisionError: boom"
    ) as e:
        simulate(SMALL, model=LLAMA3_8B, hardware=H100, kv_manager=mgr)
    assert isinstance(e.value.__cause__, ZeroDivisionError)
    assert mgr.calls == 6  # no Python call after the failure


class WrongType(PagedPythonKV):
    name = "wrong_type"

    def grow(self, rid: int, tokens: int, n_seqs: int) -> Any:
        return "yes"


class BadBreakdown(PagedPythonKV):
    name = "bad_breakdown"

    def breakdown(self, pending: KVRequest | None) -> KVBreakdown:
        b = super().breakdown(pending)
        return b._replace(free_bytes=b.free_bytes + 1)


class BadSetup(PagedPythonKV):
    name = "bad_setup"

    def setup(
        self, budget_bytes: int, bytes_per_token: int, max_model_len: int, max_num_seqs: int, num_layers: int
    ) -> int:
        return budget_bytes + 1


class BadLookup(PagedPythonKV):
    name = "bad_lookup"

    def lookup(self, rid: int, req: KVRequest, num_tokens: int) -> int:
        return num_tokens


@pytest.mark.parametrize(
    ("mgr", "message"),
    [
        (WrongType(), r"KV manager \"wrong_type\": grow\(0, \d+, 1\) returned 'yes' \(str\); expected a bool"),
        (BadBreakdown(), r"KV manager \"bad_breakdown\": breakdown\(.*\) returned .*must sum to the pool"),
        (
            BadSetup(),
            r"KV manager \"bad_setup\": setup\(budget_bytes=\d+.*\) returned \d+ \(int\); expected the pool size",
        ),
        (
            BadLookup(),
            r"KV manager \"bad_lookup\": lookup\(0, KVRequest\(prompt_tokens=100.*\) returned 100; expected at most",
        ),
    ],
)
def test_a_wrong_return_value_names_the_manager_and_the_call(mgr: KVManager, message: str) -> None:
    with pytest.raises(CallbackError, match=message):
        simulate(SMALL, model=LLAMA3_8B, hardware=H100, kv_manager=mgr, sample_interval_s=0.01)


def test_an_object_missing_protocol_methods_is_refused_by_name() -> None:
    class Half:
        name = "half"

        def setup(self, **kw: Any) -> int:
            return 1

    with pytest.raises(
        InvalidConfigError, match=r"\"half\" \(Half\) is not a Python KV manager: it lacks can_ever_fit, admit"
    ):
        simulate(SMALL, model=LLAMA3_8B, hardware=H100, kv_manager=Half())  # type: ignore[arg-type]


def test_a_duck_typed_manager_without_the_base_class_runs() -> None:
    """The protocol, not the base class, is the contract: optional methods may be left out."""

    class Bare:
        name = "bare"

        def __init__(self) -> None:
            self.inner = PagedPythonKV()

        def setup(self, **kw: int) -> int:
            return self.inner.setup(**kw)

        def __getattr__(self, attr: str) -> Any:
            if attr in ("can_ever_fit", "admit", "grow", "free", "resident_bytes", "breakdown"):
                return getattr(self.inner, attr)
            raise AttributeError(attr)

    rep = simulate(SMALL, model=LLAMA3_8B, hardware=H100, kv_manager=Bare())  # type: ignore[arg-type]
    assert rep.kv_manager == "bare" and rep.completed == 3 and rep.cow_copies == 0


# ---------------------------------------------------------------------------
# Through the family and the CLI's config
# ---------------------------------------------------------------------------

PM = get_plugin_manager(autoload=False)
REGISTRY = Registry.from_plugin_manager(PM)


def test_paged_python_is_a_registered_kv_manager_and_runs_in_the_family(tmp_path: Path) -> None:
    overrides = ["kv_manager=paged_python", "workload=poisson", "workload.n_requests=200"]
    cfg = compose(["experiment=serving", *overrides], pm=PM)
    rec = execute(cfg, tmp_path / "py", pm=PM, registry=REGISTRY, overrides=overrides)
    (row,) = rec.rows
    native_overrides = [*overrides[:0], "kv_manager=paged", *overrides[1:]]
    cfg = compose(["experiment=serving", *native_overrides], pm=PM)
    (native,) = execute(cfg, tmp_path / "n", pm=PM, registry=REGISTRY, overrides=native_overrides).rows
    assert row["kv_manager"] == "paged_python" and native["kv_manager"] == "paged"
    for k, v in native.items():
        if k not in ("kv_manager", "wall_s"):
            assert row[k] == v, k


class FailingKV(PagedPythonKV):
    """A plugin's Python KV manager whose grow raises after a few calls."""

    name = "failing_kv_test"

    @dataclass
    class Config(PagedPythonKV.Config):  # a subclass's parameters extend its base's
        _target_: str = "tests.unit.serving.test_python_kv.FailingKV"
        fail_after: int = 50

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.grows = 0

    def grow(self, rid: int, tokens: int, n_seqs: int) -> bool:
        self.grows += 1
        if self.grows > self.fail_after:
            raise RuntimeError(f"out of ideas after {self.fail_after} grows")
        return super().grow(rid, tokens, n_seqs)


class FailingPlugin:
    @hookimpl
    def memarena_register_methods(self) -> list[type[Any]]:
        return [FailingKV]


def test_a_plugin_manager_that_raises_fails_the_run_and_is_recorded(tmp_path: Path) -> None:
    pm = get_plugin_manager(autoload=False, plugins=[FailingPlugin()])
    registry = Registry.from_plugin_manager(pm)
    overrides = ["kv_manager=failing_kv_test", "workload=poisson", "workload.n_requests=50"]
    cfg = compose(["experiment=serving", *overrides], pm=pm)
    with pytest.raises(CallbackError, match=r"KV manager \"failing_kv_test\": grow\(.*\) raised RuntimeError: out of"):
        execute(cfg, tmp_path, pm=pm, registry=registry, overrides=overrides)
    (rec,) = [RunRecord.from_json(p.read_text()) for p in tmp_path.rglob(RECORD_FILE)]
    assert rec.status == "failed" and rec.rows == []
    assert rec.error is not None and rec.error.startswith('CallbackError: KV manager "failing_kv_test": grow(')


def test_a_keyboard_interrupt_in_a_callback_is_raised_unchanged() -> None:
    class Interrupted(PagedPythonKV):
        name = "interrupted"

        def grow(self, rid: int, tokens: int, n_seqs: int) -> bool:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        simulate(SMALL, model=LLAMA3_8B, hardware=H100, kv_manager=Interrupted())


def test_setup_and_check_invariants_errors_name_the_call() -> None:
    class Broken(PagedPythonKV):
        name = "broken"

        def check_invariants(self) -> None:
            raise InvariantError("block 3 is in two tables")

    with pytest.raises(CallbackError, match=r"\"broken\": check_invariants\(\) raised InvariantError: block 3") as e:
        simulate(SMALL, model=LLAMA3_8B, hardware=H100, kv_manager=Broken(), check_invariants=True)
    assert isinstance(e.value.__cause__, InvariantError)
    # A pool too small for one block: the reference's own error, as the cause.
    with pytest.raises(
        CallbackError, match=r"\"paged_python\": setup\(budget_bytes=\d+, .*\) raised InvalidConfigError"
    ):
        simulate(SMALL, model=LLAMA3_8B, hardware=H100, kv_manager=PagedPythonKV(), kv_bytes_per_token=2**40)


def test_kv_request_is_a_value() -> None:
    r = KVRequest(prompt_tokens=5, max_tokens=9, n_parallel=2, prefix_group=7, prefix_tokens=4, salt=3)
    assert (r.prompt_tokens, r.max_tokens, r.n_parallel, r.prefix_group, r.prefix_tokens, r.salt) == (5, 9, 2, 7, 4, 3)
    assert r == KVRequest(5, 9, 2, 7, 4, 3) and r != KVRequest(5, 9)
    assert repr(KVRequest(5, 9)) == (
        "KVRequest(prompt_tokens=5, max_tokens=9, n_parallel=1, prefix_group=None, prefix_tokens=0, salt=0)"
    )
