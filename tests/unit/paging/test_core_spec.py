"""Synthetic trace specs cross to the core with serde: every workload field arrives, bad input names the key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hydra.utils import instantiate

from memarena import _core
from memarena.config import compose
from memarena.errors import InvalidConfigError
from memarena.families.paging import Trace
from memarena.families.paging.policies import NATIVE_POLICIES
from memarena.families.paging.workloads import (
    SIZE_DISTRIBUTIONS,
    LoopTrace,
    PhaseShiftTrace,
    ScanMixTrace,
    UniformTrace,
    ZipfTrace,
)
from memarena.plugins import get_plugin_manager

PM = get_plugin_manager(autoload=False)

#: The size fields each distribution reads, and their names in the core's spec.
SIZE_FIELDS = {
    "constant": {"size_bytes": "bytes"},
    "uniform": {"min_size_bytes": "min_bytes", "max_size_bytes": "max_bytes"},
    "lognormal": {"size_mu": "mu", "size_sigma": "sigma"},
}


def changed(name: str, default: Any) -> Any:
    if isinstance(default, float):
        return default * 0.5 if name != "scan_fraction" else 0.35
    return default + 3 if name != "min_size_bytes" else default - 3


@pytest.mark.parametrize("cls", [ZipfTrace, UniformTrace, LoopTrace, ScanMixTrace, PhaseShiftTrace])
@pytest.mark.parametrize("sizes", sorted(SIZE_FIELDS))
def test_every_workload_field_arrives_in_the_core(monkeypatch: pytest.MonkeyPatch, cls: type[Any], sizes: str) -> None:
    seen: dict[str, Any] = {}

    def synthetic(spec: Any, n_requests: int, *, seed: int = 0) -> None:
        seen.update(spec=spec, n_requests=n_requests, seed=seed)

    monkeypatch.setattr(Trace, "synthetic", synthetic)
    defaults = {f.name: f.default for f in dataclasses.fields(cls.Config) if f.name != "_target_"}
    size_keys = {k for fields in SIZE_FIELDS.values() for k in fields}
    values = {k: changed(k, v) for k, v in defaults.items() if k not in size_keys and k != "sizes"}
    values.update({k: changed(k, defaults[k]) for k in SIZE_FIELDS[sizes]})
    overrides = [f"workload.{k}={v}" for k, v in values.items()]
    cfg = compose(["experiment=paging", f"workload={cls.name}", f"workload.sizes={sizes}", *overrides], pm=PM)
    instantiate(cfg.workload).load(5)
    assert seen["n_requests"] == values.pop("n_requests")
    assert seen["seed"] == 5 + values.pop("seed_offset")
    got = _core.config_debug("trace", seen["spec"])
    assert got.startswith("Sized {")
    for k, core_key in SIZE_FIELDS[sizes].items():
        assert f"{core_key}: {values.pop(k)!r}" in got, (k, got)
    frac = values.pop("scan_fraction", None)
    if frac is not None:
        assert f"components: [({1 - frac!r}, Zipf" in got and f"({frac!r}, Scan)" in got, got
    for k, v in values.items():
        assert f"{k}: {v!r}" in got, (k, got)


def test_vocabularies_come_from_the_core() -> None:
    assert SIZE_DISTRIBUTIONS == ("unit", "constant", "uniform", "lognormal")
    assert _core.trace_generator_kinds() == ["zipf", "uniform", "loop", "scan", "mix", "phase_shift", "sized"]


def test_the_kind_may_come_anywhere_in_a_spec_dict() -> None:
    inner = {"n_objects": 10, "kind": "loop"}  # a tagged enum reads `kind` first; the binding reorders
    spec = {"components": [[0.5, inner], (0.5, {"kind": "scan"})], "kind": "mix"}
    a = Trace.synthetic({"sizes": {"bytes": 5, "kind": "constant"}, "inner": spec, "kind": "sized"}, 100, seed=0)
    assert a.num_objects > 10 and set(a.sizes.tolist()) == {5}
    assert "Loop { n_objects: 10 }" in _core.config_debug("trace", spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "zipf", "alpha": 1.0, "n_object": 3}, r"spec\.n_object: unknown key; allowed: alpha, n_objects"),
        ({"kind": "zipf", "alpha": "steep", "n_objects": 3}, r"spec\.alpha: wrong type or range"),
        ({"kind": "loop", "n_objects": -3}, r"spec\.n_objects: wrong type or range"),
        (
            {"kind": "mix", "components": [[1.0, {"kind": "zipf", "n_objects": 3}]]},
            r"spec\.components\[0\]\[1\]\.alpha: is required",
        ),
        (
            {"kind": "sized", "inner": {"kind": "scan"}, "sizes": {"kind": "pareto"}},
            r"spec\.sizes\.kind: unknown kind \"pareto\"; available: constant, uniform, lognormal",
        ),
        ({"kind": "scan", "sizes": {"kind": "constant", "bytes": 1}}, r"spec\.sizes: unknown key; allowed: none"),
    ],
)
def test_bad_specs_name_the_key(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        Trace.synthetic(spec, 10, seed=0)


@pytest.mark.parametrize("cls", NATIVE_POLICIES, ids=lambda c: c.name)
def test_rust_policy_defaults_equal_the_python_configs(cls: Any) -> None:
    """The core's parameter defaults (kept for pure-Rust tests and examples) equal the Python Config's."""
    python = _core.config_debug("policy", {"kind": cls.core_name, **cls(capacity=1).core_params()})
    assert _core.default_debug(f"policy.{cls.core_name}") == python


class Captured(Exception):
    """Raised by the patched core entry point once it has the arguments."""


#: Every native policy that has parameters (all of them are CLI-settable).
POLICIES_WITH_PARAMS = [
    cls.name for cls in NATIVE_POLICIES if any(f.name != "_target_" for f in dataclasses.fields(cls.Config))
]


def test_the_policies_with_parameters() -> None:
    expected = {"clock", "twoq", "lirs", "s3fifo", "marker", "predictive_marker", "mark0", "mark_and_predict"}
    assert set(POLICIES_WITH_PARAMS) == {*expected, "mark0_robust"}


@pytest.mark.parametrize("policy", POLICIES_WITH_PARAMS)
def test_every_family_and_policy_field_arrives_in_the_core(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any, policy: str
) -> None:
    from memarena.families.paging import policies
    from memarena.families.paging.family import PREDICTION_KINDS, PagingFamily
    from memarena.registry import Registry
    from memarena.run import execute

    cls = next(c for c in vars(policies).values() if getattr(c, "name", None) == policy and hasattr(c, "Config"))
    seen: dict[str, Any] = {}

    def paging_sim(name: str, capacity: int, params: dict[str, float], **opts: Any) -> None:
        seen.update(name=name, capacity=capacity, params=params, opts=opts)
        raise Captured

    real_predictions, real_noise = Trace.with_oracle_predictions, Trace.with_noise

    def with_oracle_predictions(self: Trace, kind: str, cache_size: int) -> Trace:
        seen["predictions"] = (kind, cache_size)
        return real_predictions(self, kind, cache_size)

    def with_noise(self: Trace, error: float, *, seed: int = 0) -> Trace:
        seen["noise"] = error
        return real_noise(self, error, seed=seed)

    real_sim = _core.PagingSim
    monkeypatch.setattr(_core, "PagingSim", paging_sim)
    monkeypatch.setattr(Trace, "with_oracle_predictions", with_oracle_predictions)
    monkeypatch.setattr(Trace, "with_noise", with_noise)
    params = {
        f.name: changed(f.name, f.default) + (0.5 if f.name == "switch_factor" else 0)
        for f in dataclasses.fields(cls.Config)
        if f.name != "_target_"
    }
    family = {
        "cache_size": 123,
        "ignore_size": not PagingFamily.Config.ignore_size,
        "warmup_requests": 7,
        "window_requests": 11,
        "predictions": next(k for k in PREDICTION_KINDS if k and k != PagingFamily.Config.predictions),
        "prediction_error": 0.25,
    }
    overrides = [
        "experiment=paging",
        f"policy={policy}",
        "workload=zipf",
        "workload.n_requests=2000",
        "workload.n_objects=500",
        *(f"policy.{k}={v}" for k, v in params.items()),
        *(f"family.{k}={v}" for k, v in family.items()),
    ]
    cfg = compose(overrides, pm=PM)
    with pytest.raises(Captured):
        execute(cfg, tmp_path, pm=PM, registry=Registry.from_plugin_manager(PM), overrides=overrides)
    assert seen["name"] == cls.core_name and seen["capacity"] == family["cache_size"]
    assert seen["params"] == params
    got = _core.config_debug("policy", {"kind": seen["name"], **seen["params"]})
    for k, v in params.items():
        assert f"{k}: {v!r}" in got, (k, got)
    assert seen["opts"] == {k: family[k] for k in ("ignore_size", "warmup_requests", "window_requests")}
    assert seen["predictions"] == (family["predictions"], family["cache_size"])
    assert seen["noise"] == family["prediction_error"]
    # and the core reads them (it refuses unknown names and out-of-range values)
    assert real_sim(seen["name"], seen["capacity"], seen["params"], **seen["opts"]).policy == cls.core_name


def test_policy_parameters_cross_with_serde_and_name_the_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"policy\.n_bit_counter: wrong type or range"):
        _core.PagingSim("clock", 10, {"n_bit_counter": "two", "init_freq": 0})
    with pytest.raises(InvalidConfigError, match=r"policy\.n_bit_counter: wrong type or range"):
        _core.PagingSim("clock", 10, {"n_bit_counter": 1.5, "init_freq": 0})
    with pytest.raises(InvalidConfigError, match=r"policy\.bits: unknown key; allowed: n_bit_counter, init_freq"):
        _core.PagingSim("clock", 10, {"n_bit_counter": 1, "init_freq": 0, "bits": 2})
    with pytest.raises(InvalidConfigError, match=r"policy\.init_freq: is required"):
        _core.PagingSim("clock", 10, {"n_bit_counter": 1})
    with pytest.raises(InvalidConfigError, match=r"policy\.seed: is required"):
        _core.PagingSim("marker", 10)
    with pytest.raises(InvalidConfigError, match=r"policy\.n_bit_counter: must be an integer in 1\.\.=16, got 99"):
        _core.PagingSim("clock", 10, {"n_bit_counter": 99, "init_freq": 0})
    with pytest.raises(InvalidConfigError, match=r"policy\.switch_factor: must be a finite number > 1, got 1"):
        _core.PagingSim("mark0_robust", 10, {"seed": 0, "switch_factor": 1.0})
    with pytest.raises(InvalidConfigError, match=r"policy\.ratio: unknown key; allowed: none"):
        _core.PagingSim("lru", 10, {"ratio": 0.1})
