"""The serving family and its workloads, composed as the CLI composes them."""

from __future__ import annotations

from pathlib import Path

import pytest

from memarena.config import compose
from memarena.errors import InvalidConfigError
from memarena.families.serving import Requests
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import execute

PM = get_plugin_manager(autoload=False)
REGISTRY = Registry.from_plugin_manager(PM)


def run_once(tmp_path: Path, *overrides: str) -> dict:
    cfg = compose(["experiment=serving", *overrides], pm=PM)
    record = execute(cfg, tmp_path, pm=PM, registry=REGISTRY, overrides=list(overrides))
    (row,) = record.rows
    return row


def test_default_single_run_on_a_synthetic_workload(tmp_path: Path) -> None:
    row = run_once(tmp_path, "workload=poisson", "workload.n_requests=300", "workload.rate=20", "workload.time_scale=1")
    assert (row["workload"], row["model"], row["backend"], row["kv_manager"]) == (
        "poisson(rate=20)",
        "llama3_8b",
        "h100_sxm",
        "paged",
    )
    assert row["completed"] == 300 and row["rejected"] == 0
    shares = sum(row[f"{k}_share"] for k in ("token_states", "reserved", "internal_frag", "external_frag", "free"))
    assert shares == pytest.approx(1.0, abs=1e-6)
    assert row["throughput_requests_per_s"] > 0 and row["e2e_p99_s"] >= row["e2e_p50_s"] > 0
    assert len(row["time_s_over_time"]) == len(row["batch_seqs_over_time"]) == len(row["free_share_over_time"])
    assert row["offered_load_requests_per_s"] == pytest.approx(20, rel=0.2)


def test_shared_prefix_and_multi_turn_hit_the_prefix_cache(tmp_path: Path) -> None:
    sp = run_once(tmp_path / "a", "workload=shared_prefix", "kv_manager=paged_prefix_v1", "workload.n_requests=300")
    assert sp["kv_manager"] == "paged_prefix_v1" and sp["prefix_hit_rate"] > 0.5
    mt = run_once(tmp_path / "b", "workload=multi_turn", "kv_manager=paged_prefix_v1", "workload.num_conversations=50")
    assert mt["prefix_hit_rate"] > 0.3
    off = run_once(tmp_path / "c", "workload=multi_turn", "kv_manager=paged", "workload.num_conversations=50")
    assert off["prefix_hit_rate"] == 0


def test_long_requests_are_counted_not_fatal(tmp_path: Path) -> None:
    row = run_once(tmp_path, "workload=poisson", "workload.n_requests=200", "family.max_model_len=600")
    assert row["rejected_too_long"] > 0
    assert row["completed"] + row["rejected"] == 200


def test_model_and_backend_by_name(tmp_path: Path) -> None:
    row = run_once(tmp_path, "workload=gamma", "workload.n_requests=200", "model=opt_13b", "backend=a100_80gb")
    assert (row["model"], row["backend"]) == ("opt_13b", "a100_80gb")
    assert row["kv_bytes_per_token"] == 800 * 1024  # the vLLM paper's 800 KB per OPT-13B token


def test_weights_that_do_not_fit_fail_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="llama3_70b needs .* GB of weights but l4 offers"):
        run_once(tmp_path, "workload=poisson", "model=llama3_70b", "backend=l4")


def test_a_paging_backend_or_workload_is_refused_by_name(tmp_path: Path) -> None:
    # The serving family declares what it needs (Family.backend_requirements); memarena checks it first.
    need = r"'cpu_ddr5_nvme' lacks tier 'hbm', tier 'host', peak_flops\['bf16'\], which family 'serving' requires"
    with pytest.raises(InvalidConfigError, match=need + r" \(it has tiers dram, nvme; peak_flops for none\)"):
        run_once(tmp_path / "a", "workload=poisson", "backend=cpu_ddr5_nvme")
    with pytest.raises(InvalidConfigError, match="'zipf' is a paging workload"):
        run_once(tmp_path / "b", "workload=zipf")


def test_workload_caps_and_time_scale() -> None:
    from memarena.families.serving.workloads import AzureLLM2023Conv

    full = AzureLLM2023Conv().load(0)
    some = AzureLLM2023Conv(n_requests=100, time_scale=4).load(0)
    assert isinstance(some, Requests) and len(some) == 100
    assert some.arrival_s[99] == pytest.approx(full.arrival_s[99] / 4)
    assert AzureLLM2023Conv(time_scale=4).describe() == "azure_llm_2023_conv(x4)"
    assert "Splitwise" in AzureLLM2023Conv.attribution and "CC-BY 4.0" in AzureLLM2023Conv.attribution


def test_serving_experiment_composes_with_debug_tiny() -> None:
    cfg = compose(["experiment=serving", "debug=tiny"], pm=PM)
    assert cfg.family._target_.endswith("ServingFamily") and cfg.workload.time_scale == 8
    assert cfg.get("policy") is None and cfg.backend._target_.endswith("H100_SXM")
    paging = compose(["experiment=paging"], pm=PM)
    assert paging.get("kv_manager") is None and paging.get("model") is None
    assert paging.backend._target_.endswith("CpuDdr5Nvme") and paging.policy._target_.endswith("LRU")


@pytest.mark.parametrize(
    ("workload", "override", "key"),
    [
        ("poisson", "workload.rate=inf", "workload.rate"),  # the core's arrivals.rate
        ("gamma", "workload.cv=1e-300", "workload.cv"),  # arrivals.cv (the gamma sampler looped forever)
        ("gamma", "workload.cv=1e300", "workload.cv"),  # named arrivals.rate
        ("multi_turn", "workload.conversation_rate=inf", "workload.conversation_rate"),  # named arrivals.rate
        ("shared_prefix", "workload.prompt_tokens={kind:lognormal,median:-1,sigma:1}", "workload.prompt_tokens"),
    ],
)
def test_core_errors_of_a_workload_name_the_config_key(tmp_path: Path, workload: str, override: str, key: str) -> None:
    with pytest.raises(InvalidConfigError, match=rf"^config key '{key}[.']") as info:
        run_once(tmp_path, f"workload={workload}", override)
    assert "arrivals." not in str(info.value)


def test_core_key_error_keeps_keys_it_cannot_map() -> None:
    from memarena.errors import core_key_error

    exc = InvalidConfigError("invalid value for seed: x")
    assert str(core_key_error(exc, "workload", "w", ["rate"], {})) == (
        "config key 'workload' (workload=w): invalid value for seed: x"
    )
    mapped = core_key_error(InvalidConfigError("invalid value for a.b: r"), "workload", "w", [], {"a.b": "c"})
    assert str(mapped) == "config key 'workload.c' (workload=w): r"


def test_the_series_error_names_what_stretches_the_simulated_time() -> None:
    from memarena.families.serving.family import config_keys

    core = (
        "invalid value for sample_interval_s: the simulation reached 1e7 s, at sample_interval_s=1: check "
        "(cost.compute_efficiency, cost.bandwidth_efficiency, cost.iteration_overhead_s, kv.page_map_latency_s)"
    )
    assert config_keys(core) == (
        "invalid value for family.sample_interval_s: the simulation reached 1e7 s, at family.sample_interval_s=1: "
        "check (family.compute_efficiency, family.bandwidth_efficiency, family.iteration_overhead_s, "
        "kv_manager.page_map_latency_s)"
    )
    assert config_keys("config key 'family.sample_interval_s'") == "config key 'family.sample_interval_s'"


def test_a_simulated_time_stretched_past_the_memory_is_refused_naming_its_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Iterations of ~1e290 s: the series outgrows the memory (here 16 MiB: 104857 samples) at any interval; it grew
    # until an allocation failed (or the machine ran out of memory) and named only sample_interval_s.
    import memarena.resources

    monkeypatch.setattr(memarena.resources, "available_memory_bytes", lambda: 16 << 20)
    with pytest.raises(InvalidConfigError, match=r"104857 samples at family\.sample_interval_s=1 ") as info:
        run_once(tmp_path, "workload=poisson", "workload.n_requests=3", "family.compute_efficiency=1e-300")
    assert "family.compute_efficiency" in str(info.value) and "kv_manager.page_map_latency_s" in str(info.value)
