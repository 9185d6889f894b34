"""The serving config crosses to the core once, with serde: every field arrives, bad input names the key.

The Python ``Config`` dataclasses hold the defaults; the core requires every
field and refuses unknown ones. These tests set every CLI-settable field that
reaches the core to a non-default value (as ``memarena key=value`` would) and
read back what the core deserialized (``_core.config_debug``: the Rust struct's
``Debug`` form).
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from memarena import _core
from memarena.config import compose
from memarena.errors import InvalidConfigError
from memarena.families.serving import Hardware, ModelSpec, PagedKV, StaticKV, VAttentionKV, simulate
from memarena.families.serving.family import PREEMPTION, VICTIMS, ServingFamily
from memarena.families.serving.model import FFN_KINDS
from memarena.families.serving.requests import generate_requests
from memarena.families.serving.workloads import GammaRequests, MultiTurnRequests, PoissonRequests, SharedPrefixRequests
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import execute

PM = get_plugin_manager(autoload=False)
REGISTRY = Registry.from_plugin_manager(PM)

#: Choices of the string fields, as the core exports them.
CHOICES: dict[str, tuple[Any, ...]] = {
    "preemption": PREEMPTION,
    "victim": VICTIMS,
    "variant": StaticKV.VARIANTS,
    "allocator": StaticKV.ALLOCATORS,
    "prefix_caching": PagedKV.PREFIX_CACHING,
    "page_size_bytes": VAttentionKV.PAGE_SIZES,
    "ffn": FFN_KINDS,
}

#: Family fields that do not reach the core, and why.
NOT_IN_CORE = {
    "series_points": "downsamples the record's series in Python",
    "dtype": "selects the backend's peak_flops entry (checked below through the backend)",
    "device_tier": "selects the backend tier (checked below through the backend)",
    "host_tier": "selects the backend tier (checked below through the backend)",
    "normalized_latency_bound_s_per_token": "copied into the rows for report_tables (tested in test_vllm_fig2)",
    **dict.fromkeys(
        ("kv_compression_budget", "kv_compression_prompt_tokens", "kv_compression_output_tokens"),
        "measure a kv_compression method in Python (tests/kvcache/test_serving_compression.py)",
    ),
}

#: Workload fields the Python side applies itself, and fields named differently in the core.
WORKLOAD_PYTHON_ONLY = {"time_scale", "n_requests_cap"}
WORKLOAD_RENAMED = {"n_requests": "num_requests"}


def other_value(name: str, default: Any, annotation: Any) -> Any:
    """A valid non-default value of a config field."""
    if name in CHOICES:
        choices = CHOICES[name]
        return next(c for c in choices if c != default)
    if isinstance(default, bool) or annotation in ("bool", bool):
        return not default
    if isinstance(default, float) or annotation in ("float", float):
        return default * 0.5 if default else 0.25
    if default is None or isinstance(default, int):
        return 4099 if default is None else default + 3
    raise AssertionError(f"no non-default value for {name}={default!r}")


def rust_debug(value: Any) -> str:
    """``value`` as Rust's ``Debug`` prints it (enums by variant name)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "".join(p.capitalize() for p in value.split("_"))
    return repr(value)


def scalar_fields(config_cls: type) -> dict[str, dataclasses.Field[Any]]:
    out = {}
    for f in dataclasses.fields(config_cls):
        if f.name == "_target_" or f.default is dataclasses.MISSING:
            continue
        out[f.name] = f
    return out


class Captured(Exception):
    """Raised by the patched core entry points once they have the config."""


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    real_generate = _core.generate_requests

    def generate(spec: Any, seed: int) -> Any:
        seen["spec"] = spec
        return real_generate(spec, seed)

    def simulate_serving(*args: Any, **kwargs: Any) -> Any:
        seen["config"] = args[3]
        raise Captured

    monkeypatch.setattr(_core, "generate_requests", generate)
    monkeypatch.setattr(_core, "simulate_serving", simulate_serving)
    return seen


def run_until_core(tmp_path: Path, overrides: list[str]) -> None:
    cfg = compose(["experiment=serving", *overrides], pm=PM)
    try:
        execute(cfg, tmp_path, pm=PM, registry=REGISTRY, overrides=overrides)
    except Captured:
        return
    # execute may record a failed job instead of raising
    raise AssertionError("the core was not reached")


def test_every_family_and_kv_manager_field_arrives_in_the_core(tmp_path: Path, captured: dict[str, Any]) -> None:
    family = {n: f for n, f in scalar_fields(ServingFamily.Config).items() if n not in NOT_IN_CORE}
    expected: dict[str, Any] = {}
    overrides = ["workload=poisson", "workload.n_requests=50"]
    for name, f in family.items():
        v = other_value(name, f.default, f.type)
        if name == "gpu_memory_utilization":
            v = 0.85
        expected[name] = v
        overrides.append(f"family.{name}={v}")
    for kv_cls, preset in [(PagedKV, "paged"), (VAttentionKV, "vattention"), (StaticKV, "static")]:
        kv_expected = {}
        kv_overrides = [f"kv_manager={preset}"]
        for name, f in scalar_fields(kv_cls.Config).items():
            v = other_value(name, f.default, f.type)
            kv_expected[name] = v
            kv_overrides.append(f"kv_manager.{name}={v}")
        run_until_core(tmp_path / preset, overrides + kv_overrides)
        got = _core.config_debug("serving", captured["config"])
        for name, v in expected.items():
            want = f"Some({v!r})" if family[name].default is None else rust_debug(v)
            assert f"{name}: {want}" in got, (name, got)
        if kv_cls is StaticKV:
            variant, allocator = rust_debug(kv_expected["variant"]), rust_debug(kv_expected["allocator"])
            assert f"kv: Some(Static(StaticConfig {{ variant: {variant}, allocator: {allocator} }}))" in got, got
        else:
            for name, v in kv_expected.items():
                assert f"{name}: {rust_debug(v)}" in got, (name, got)


def test_every_model_field_and_the_backend_figures_arrive(tmp_path: Path, captured: dict[str, Any]) -> None:
    spec = ModelSpec()
    overrides = ["workload=poisson", "workload.n_requests=50", "backend=h200"]
    expected = {}
    for f in dataclasses.fields(ModelSpec):
        if f.name in ("name", "source"):
            continue
        v = other_value(f.name, getattr(spec, f.name), f.type)
        if f.name in ("num_attention_heads", "num_kv_heads"):
            v = {"num_attention_heads": 40, "num_kv_heads": 10}[f.name]  # GQA groups must divide
        expected[f.name] = v
        overrides.append(f"model.{f.name}={v}")
    overrides += ["model.name=custom", "backend.peak_flops.bf16=123000000000000.0"]
    run_until_core(tmp_path, overrides)
    got = _core.config_debug("serving", captured["config"])
    assert 'name: "custom"' in got
    for name, v in expected.items():
        assert f"{name}: {rust_debug(v)}" in got, (name, got)
    assert "peak_flops: 123000000000000.0" in got and 'name: "h200"' in got


@pytest.mark.parametrize("cls", [PoissonRequests, GammaRequests, SharedPrefixRequests, MultiTurnRequests])
def test_every_workload_field_arrives_in_the_generator(
    tmp_path: Path, captured: dict[str, Any], cls: type[Any]
) -> None:
    overrides = [f"workload={cls.name}"]
    expected = {}
    for name, f in scalar_fields(cls.Config).items():
        if name in WORKLOAD_PYTHON_ONLY or (cls is MultiTurnRequests and name == "n_requests"):
            continue
        v = other_value(name, f.default, f.type)
        expected[WORKLOAD_RENAMED.get(name, name)] = v
        overrides.append(f"workload.{name}={v}")
    lengths = {}
    for f in dataclasses.fields(cls.Config):
        if f.default_factory is dataclasses.MISSING:
            continue
        dist = f.default_factory()
        if dist["kind"] == "lognormal":
            new = {"median": dist["median"] * 0.5 + 0.25, "sigma": dist["sigma"] * 0.5}
            lengths[f.name] = f"LogNormal {{ median: {new['median']!r}, sigma: {new['sigma']!r} }}"
        else:
            new = {"min": dist["min"] + 1, "max": dist["max"] + 3}
            lengths[f.name] = f"Uniform {{ min: {new['min']}, max: {new['max']} }}"
        overrides += [f"workload.{f.name}.{k}={v}" for k, v in new.items()]
    assert lengths, "the length distributions are CLI-settable too"
    run_until_core(tmp_path, overrides)
    got = _core.config_debug("generator", captured["spec"])
    for name, v in expected.items():
        assert f"{name}: {rust_debug(v)}" in got, (name, got)
    for name, want in lengths.items():
        assert f"{name}: {want}" in got, (name, got)


# ---------------------------------------------------------------------------
# Defaults: the Python Config dataclasses, and the Rust defaults kept for pure-Rust users equal them
# ---------------------------------------------------------------------------


def family_defaults() -> dict[str, Any]:
    return dataclasses.asdict(ServingFamily.Config())


def test_rust_scheduler_and_cost_defaults_equal_the_family_config() -> None:
    d = family_defaults()
    sched = {k: d[k] for k in ("max_num_batched_tokens", "max_num_seqs", "chunked_prefill", "preemption", "victim")}
    cost = {k: d[k] for k in ("compute_efficiency", "bandwidth_efficiency", "iteration_overhead_s")}
    assert _core.config_debug("scheduler", sched) == _core.default_debug("scheduler")
    assert _core.config_debug("cost", cost) == _core.default_debug("cost")


def test_rust_serving_and_kv_defaults_equal_the_python_configs() -> None:
    model = ModelSpec().as_core()
    hw = Hardware("h", 80 * 10**9, 3e12, 1e15, 64e9).as_core()
    paged = PagedKV(**{k: v for k, v in dataclasses.asdict(PagedKV.Config()).items() if k != "_target_"})
    vattn = VAttentionKV(**{k: v for k, v in dataclasses.asdict(VAttentionKV.Config()).items() if k != "_target_"})
    assert _core.config_debug("kv", paged.core_config()) == _core.default_debug("kv.paged")
    assert _core.config_debug("kv", vattn.core_config()) == _core.default_debug("kv.vattention")
    d = family_defaults()
    full = {
        "model": model,
        "hardware": hw,
        "kv": paged.core_config(),
        "scheduler": {
            k: d[k] for k in ("max_num_batched_tokens", "max_num_seqs", "chunked_prefill", "preemption", "victim")
        },
        "cost": {k: d[k] for k in ("compute_efficiency", "bandwidth_efficiency", "iteration_overhead_s")},
        **{
            k: d[k]
            for k in (
                "gpu_memory_utilization",
                "activation_reserve_bytes",
                "max_model_len",
                "kv_bytes_per_token",
                "swap_space_bytes",
                "sample_interval_s",
                "check_invariants",
            )
        },
        "seed": 0,
    }
    assert _core.config_debug("serving", full) == _core.default_debug("serving", model, hw)


def test_simulate_keyword_defaults_equal_the_family_config() -> None:
    d = family_defaults()
    for name, p in inspect.signature(simulate).parameters.items():
        if name in d:
            assert p.default == d[name], name


# ---------------------------------------------------------------------------
# Errors name the key path and, for choices, the allowed values
# ---------------------------------------------------------------------------

H100 = Hardware("h100", 80 * 10**9, 3.35e12, 989e12, 64e9)


def full_config(**changes: Any) -> dict[str, Any]:
    d = family_defaults()
    cfg: dict[str, Any] = {
        "model": ModelSpec().as_core(),
        "hardware": H100.as_core(),
        "kv": PagedKV().core_config(),
        "scheduler": {
            k: d[k] for k in ("max_num_batched_tokens", "max_num_seqs", "chunked_prefill", "preemption", "victim")
        },
        "cost": {k: d[k] for k in ("compute_efficiency", "bandwidth_efficiency", "iteration_overhead_s")},
        "gpu_memory_utilization": 0.9,
        "activation_reserve_bytes": 0,
        "max_model_len": None,
        "kv_bytes_per_token": None,
        "swap_space_bytes": None,
        "sample_interval_s": 1.0,
        "seed": 0,
        "check_invariants": False,
    }
    for path, value in changes.items():
        *parents, key = path.split("__")
        node = cfg
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[key]
        else:
            node[key] = value
    return cfg


def test_a_complete_config_reads() -> None:
    assert _core.config_debug("serving", full_config()).startswith("ServingConfig {")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"kv__block_sise": 16},
            r"config\.kv\.block_sise: unknown key; allowed: block_size, watermark, prefix_caching",
        ),
        ({"swap_space": 1}, r"config\.swap_space: unknown key; allowed: model, .*swap_space_bytes"),
        ({"kv__block_size": "16"}, r"config\.kv\.block_size: wrong type or range: .*integer"),
        ({"scheduler__chunked_prefill": "no"}, r"config\.scheduler\.chunked_prefill: .*expected a bool"),
        (
            {"cost__compute_efficiency": "high"},
            r"config\.cost\.compute_efficiency: wrong type or range: must be real number, not str",
        ),
        ({"model__num_layers": -1}, r"config\.model\.num_layers"),
        (
            {"scheduler__victim": "oldest"},
            r"config\.scheduler\.victim: must be one of last_admitted, most_kv, least_progress, got \"oldest\"",
        ),
        ({"kv__prefix_caching": "v2"}, r"config\.kv\.prefix_caching: must be one of off, v0, v1, got \"v2\""),
        ({"kv__kind": "slab"}, r"config\.kv\.kind: unknown kind \"slab\"; available: static, paged, vattention"),
        ({"model__ffn": "moe"}, r"config\.model\.ffn: must be one of gated, plain, got \"moe\""),
        ({"kv__watermark": KeyError}, r"config\.kv\.watermark: is required"),
        ({"max_model_len": KeyError}, r"config\.max_model_len: is required"),
        ({"hardware__name": KeyError}, r"config\.hardware\.name: is required"),
    ],
)
def test_bad_keys_types_and_choices_name_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        _core.config_debug("serving", full_config(**changes))


def test_generator_errors_name_the_key() -> None:
    spec = {"kind": "synthetic", "num_requests": 3, "arrivals": {"kind": "poisson", "rate": 1.0}}
    base = {**spec, "prompt_tokens": 5, "output_tokens": 5, "n_parallel": 1}
    with pytest.raises(
        InvalidConfigError,
        match=r"spec\.arrivals\.kind: unknown kind \"burst\"; available: poisson, gamma, all_at_once",
    ):
        generate_requests({**base, "arrivals": {"kind": "burst"}}, 0)
    with pytest.raises(InvalidConfigError, match=r"spec\.prompt_tokens\.sigma: is required"):
        generate_requests({**base, "prompt_tokens": {"median": 5.0, "kind": "lognormal"}}, 0)
    with pytest.raises(InvalidConfigError, match=r"spec\.output_tokens\.mean: wrong type or range"):
        generate_requests({**base, "output_tokens": {"kind": "exponential", "mean": "long"}}, 0)
    with pytest.raises(InvalidConfigError, match=r"spec\.zipf_alpha: unknown key"):
        generate_requests({**base, "zipf_alpha": 1.0}, 0)


def test_vattention_page_sizes_are_vattentions_four() -> None:
    assert _core.vattention_page_sizes() == [64 << 10, 128 << 10, 256 << 10, 2 << 20]
    assert tuple(_core.vattention_page_sizes()) == VAttentionKV.PAGE_SIZES
    with pytest.raises(InvalidConfigError, match="page_size_bytes"):
        VAttentionKV(page_size_bytes=1 << 20)  # a power of two in range, but not a vAttention size
    cfg = full_config(
        kv={"kind": "vattention", "page_size_bytes": 1 << 20, "deferred_reclaim": True, "page_map_latency_s": 0.0}
    )
    from memarena.families.serving import Requests

    one = Requests.from_arrays([0.0], [10], [2])
    with pytest.raises(InvalidConfigError, match=r"kv\.page_size_bytes: must be one of 65536, 131072, 262144, 2097152"):
        _core.simulate_serving(one.arrival_s, one.prompt_tokens, one.output_tokens, cfg)


def test_vocabularies_come_from_the_core() -> None:
    assert StaticKV.VARIANTS == ("max", "pow2", "oracle")
    assert StaticKV.ALLOCATORS == ("first_fit", "buddy")
    assert PagedKV.PREFIX_CACHING == ("off", "v0", "v1")
    assert PREEMPTION == ("recompute", "swap") and VICTIMS == ("last_admitted", "most_kv", "least_progress")
    assert FFN_KINDS == ("gated", "plain")
    assert _core.kv_manager_kinds() == ["static", "paged", "vattention"]
    assert {c.name for c in (StaticKV, PagedKV, VAttentionKV)} == set(_core.kv_manager_kinds())


def test_model_presets_are_the_one_source_of_specs(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Python side never asks the core for a spec by name: it reads the YAML preset and sends a dict.
    real = _core.model_info

    def model_info(model: Any) -> Any:
        assert not isinstance(model, str), "the core's test specs are not a source for Python"
        return real(model)

    monkeypatch.setattr(_core, "model_info", model_info)
    spec = ModelSpec.builtin("opt_13b")
    assert (spec.ffn, spec.learned_positions, spec.tied_embeddings) == ("plain", 2050, True)
    assert "facebook/opt-13b" in spec.source
    with pytest.raises(InvalidConfigError, match=r"unknown model 'gpt5'; available: .*llama3_8b.*opt_13b"):
        ModelSpec.builtin("gpt5")
