"""Config fuzzing: every registered component's every ``Config`` field, given values a user should not.

For each component in the registry (the built-ins and the suite's test
plugin, so a plugin's component is covered like a built-in one) Hypothesis
sets one field at a time to an out-of-range, wrong-typed, huge, NaN or
infinite, negative or empty value, and ``memarena`` runs end to end
(``app.main``, ``debug=tiny``-sized) in a worker with an address-space
limit. Property: exit 0, or exit 2 with exactly one ``memarena: error:``
line naming the key; never a traceback, a crash, a hang or exit 1.

The cases of issue 14 that were open when the suite was written
(:data:`ISSUE_14`) and those it found later (:data:`REGRESSIONS`) also run
as plain tests, each with the value that broke it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import string
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memarena.plugins import get_plugin_manager
from memarena.registry import Entry, Registry
from tests.reliability.harness import Outcome, Runner

#: Examples per component: this times its field count, between 3 and 10 (MEMARENA_FUZZ_SCALE raises it).
SCALE = float(os.environ.get("MEMARENA_FUZZ_SCALE", "1"))

#: The family whose experiment runs a component of a group that does not say its family itself.
FAMILY_OF_GROUP = {"policy": "paging", "kv_manager": "serving", "index": "retrieval", "kv_compression": "kvcache"}

#: Values of each kind (Hydra override syntax); Hypothesis draws from these and from generated numbers.
BAD_VALUES = {
    "wrong type": ["abc", "[1,2]", "{a:1}", "true"],
    "empty": ["''", "[]", "null"],
    "negative": ["-1", "-9223372036854775809", "-1e300"],
    "zero": ["0", "0.0"],
    "fraction": ["0.5", "1e-300"],
    "huge": ["100000000000000000000", "9223372036854775808", "18446744073709551616", "1e300"],
    "non-finite": ["nan", "inf", "-inf"],
}


def _registry() -> Registry:
    from tests.reliability import fuzz_plugin

    return Registry.from_plugin_manager(get_plugin_manager(autoload=False, plugins=[fuzz_plugin]))


def _fields(entry: Entry) -> list[str]:
    return [f.name for f in dataclasses.fields(entry.cls.Config) if f.name != "_target_"]


REGISTRY = _registry()
#: Components whose default run needs data built outside the test suite, with the reason (their
#: errors for a missing cache are tested where they are built: tests/unit/retrieval/test_real_embeddings.py).
NEEDS_EXTERNAL_DATA = {
    "workload=minilm_docstrings": "its vectors are a cache built by embedding 100k sentences (minutes)",
    "workload=longmemeval_file": "it reads a LongMemEval file the user downloads (its missing-path error is tested in "
    "tests/integration/test_agent_cli.py)",
}
FUZZED = [e for e in REGISTRY if _fields(e) and f"{e.group}={e.name}" not in NEEDS_EXTERNAL_DATA]
IDS = [f"{e.group}={e.name}" for e in FUZZED]

_BIG = "9223372036854775808"
#: The cases of issue 14 this fuzzing found open when it was written (allocation aborts and capacity
#: overflows: item 1; a missing trace file: item 6), fixed since: plain tests, each with its value.
ISSUE_14: list[tuple[str, str, str]] = [
    ("family=serving", "sample_interval_s", "1e-300"),
    ("workload=azure_llm_2023_conv", "path", "abc"),
    ("workload=csv_trace", "path", "abc"),
    ("workload=oracle_general", "path", "abc"),
    ("workload=azure_llm_2023_conv", "time_scale", "1e-300"),
    ("workload=gamma", "n_requests", _BIG),
    ("workload=gamma", "rate", "1e-300"),
    ("workload=gamma", "time_scale", "1e-300"),
    ("workload=multi_turn", "num_conversations", _BIG),
    ("workload=multi_turn", "conversation_rate", "1e-300"),
    ("workload=multi_turn", "mean_think_s", "1e300"),
    ("workload=multi_turn", "time_scale", "1e-300"),
    *[
        (f"workload={w}", f, v)
        for w in ("poisson", "shared_prefix")
        for f, v in (("n_requests", _BIG), ("rate", "1e-300"), ("time_scale", "1e-300"))
    ],
    ("workload=gaussian_mixture_128_l2", "n_tenants", "1000000000000"),  # over uint32: named no key
    ("workload=loop", "n_requests", _BIG),
    ("workload=phase_shift", "n_requests", _BIG),
    *[
        (f"workload={w}", f, _BIG)
        for w in ("gaussian_mixture", "gaussian_mixture_128_l2", "gaussian_mixture_384_cosine")
        for f in ("dim", "n_vectors", "n_queries", "n_clusters", "k_truth")
    ],
]


def test_every_component_with_parameters_is_fuzzed() -> None:
    assert {f"{e.group}={e.name}" for e in REGISTRY if e not in FUZZED} == {
        f"{e.group}={e.name}" for e in REGISTRY if not _fields(e)
    } | set(NEEDS_EXTERNAL_DATA)
    assert "policy=fuzz_fifo_test" in IDS  # the plugin's component, found through the registry
    assert len(IDS) >= 40


def _render(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return f"'{value}'"
    return str(value)


VALUES = st.one_of(
    st.sampled_from([v for vs in BAD_VALUES.values() for v in vs]),
    st.integers(min_value=-(2**70), max_value=2**70).map(_render),
    st.floats(allow_nan=True, allow_infinity=True).map(_render),
    st.text(alphabet=string.ascii_letters + string.digits + " _-.", max_size=12).map(_render),
)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small trace files for the workloads that read one."""
    from memarena.families.paging import Trace

    root = tmp_path_factory.mktemp("traces")
    rng = np.random.default_rng(0)
    ids = rng.zipf(1.2, 2000) % 300
    sizes = rng.integers(1, 4096, 2000)
    csv = root / "t.csv"
    csv.write_text("id,size\n" + "".join(f"{i},{s}\n" for i, s in zip(ids, sizes, strict=True)))
    og = root / "t.oracleGeneral"
    Trace.from_arrays(ids.astype(np.uint64), sizes.astype(np.uint32)).to_oracle_general(og)
    return {"csv_trace": csv, "oracle_general": og}


def _candidates(entry: Entry) -> list[str]:
    if entry.group == "family":
        return [entry.name]
    own = getattr(entry.cls, "family", None) or list(getattr(entry.cls, "families", ()) or ())
    if own:
        return [own] if isinstance(own, str) else own
    if entry.group in FAMILY_OF_GROUP:
        return [FAMILY_OF_GROUP[entry.group]]
    return REGISTRY.names("family")  # a backend, or a plugin's own group: whichever family runs it


def _base_args(entry: Entry, family: str, files: dict[str, Path]) -> list[str]:
    args = [f"experiment={family}", "threads=1", "progress=false"]
    if entry.group == "workload" and entry.name in files:
        # A file trace: a small file instead of debug=tiny (which sets n_requests, a key it lacks).
        return [*args, f"workload={entry.name}", f"workload.path={files[entry.name]}"]
    args.append("debug=tiny")
    return args if entry.group == "family" else [*args, f"{entry.group}={entry.name}"]


_baselines: dict[str, list[str]] = {}


def _baseline(runner: Runner, entry: Entry, files: dict[str, Path]) -> list[str]:
    """The arguments of a run of ``entry`` with its defaults that exits 0 (asserted)."""
    key = f"{entry.group}={entry.name}"
    if key not in _baselines:
        tried = []
        for family in _candidates(entry):
            args = _base_args(entry, family, files)
            outcome = runner.run(*args, f"hydra.run.dir={runner.new_dir()}")
            if outcome.rc == 0:
                _baselines[key] = args
                break
            tried.append(str(outcome))
        else:
            pytest.fail(f"{key} with its defaults runs in no family:\n" + "\n".join(tried))
    return _baselines[key]


def _check(runner: Runner, entry: Entry, base: list[str], field: str, value: str, timeout: float = 60) -> Outcome:
    return runner.run(*base, f"{entry.group}.{field}={value}", f"hydra.run.dir={runner.new_dir()}", timeout=timeout)


def _problem(outcome: Outcome, base: list[str], field: str) -> str | None:
    """The contract (:meth:`Outcome.problem`); for a file trace, an error naming the file (and row) names the input."""
    problem = outcome.problem(field)
    trace = next((a.split("=", 1)[1] for a in base if a.startswith("workload.path=")), None)
    if problem and problem.startswith("the error does not name") and trace and outcome.problem(trace) is None:
        return None
    return problem


@cache
def _n_examples(n_fields: int) -> int:
    return max(3, min(10, round(n_fields * SCALE)))


@pytest.mark.parametrize("entry", FUZZED, ids=IDS)
def test_bad_values_exit_0_or_one_error_naming_the_key(entry: Entry, runner: Runner, files: dict[str, Path]) -> None:
    base = _baseline(runner, entry, files)
    fields = _fields(entry)

    @settings(
        max_examples=_n_examples(len(fields)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(field=st.sampled_from(fields), value=VALUES)
    def check(field: str, value: str) -> None:
        outcome = _check(runner, entry, base, field, value)
        assert _problem(outcome, base, field) is None, f"{_problem(outcome, base, field)}\n{outcome}"

    check()


#: Cases the fuzzing found, fixed here (each failed before its fix).
REGRESSIONS = [
    ("family=paging", "cache_tier", "abc"),  # named only 'backend', not the family key that asked for the tier
    ("family=serving", "dtype", "abc"),  # likewise for a dtype
    ("family=serving", "device_tier", "''"),
    ("family=serving", "kv_bytes_per_token", "9223372036854775808"),  # a wrapped block size: a core panic
    ("family=serving", "activation_reserve_bytes", "18446744073709551615"),  # a wrapped reserve
    ("family=retrieval", "repeats", "100000000000000000000"),  # timed forever
    ("kv_manager=paged_python", "block_size", "9223372036854775808"),  # named no block_size
    # A simulated span stretched past any sample series: named only sample_interval_s.
    ("family=serving", "compute_efficiency", "1e-300"),
    ("family=serving", "bandwidth_efficiency", "1e-300"),
    ("family=serving", "iteration_overhead_s", "1e300"),
    ("kv_manager=vattention", "page_map_latency_s", "1e300"),
    ("workload=gamma", "cv", "1e-300"),  # an infinite gamma shape: the sampler looped forever
    ("workload=gamma", "cv", "1e300"),  # a zero gamma shape: named arrivals.rate
    ("workload=multi_turn", "conversation_rate", "inf"),  # named the core's arrivals.rate
]


@pytest.mark.parametrize(
    ("key", "field", "value"), REGRESSIONS + ISSUE_14, ids=[f"{k}.{f}={v}" for k, f, v in REGRESSIONS + ISSUE_14]
)
def test_found_by_fuzzing(key: str, field: str, value: str, runner: Runner, files: dict[str, Path]) -> None:
    entry = next(e for e in FUZZED if f"{e.group}={e.name}" == key)
    outcome = _check(runner, entry, _baseline(runner, entry, files), field, value)
    assert outcome.rc == 2, outcome
    problem = outcome.problem(field)
    assert problem is None, f"{problem}\n{outcome}"
