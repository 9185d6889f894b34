"""experiment=vllm_fig2: the ShareGPT-like workload, the A100-40GB, the paper's numbers beside memarena's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from memarena.backends import A100_40GB
from memarena.config import compose
from memarena.errors import InvalidConfigError
from memarena.families.serving.workloads import (
    SHAREGPT_MEAN_OUTPUT_TOKENS,
    SHAREGPT_MEAN_PROMPT_TOKENS,
    ShareGPTLike,
)
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import execute

PM = get_plugin_manager(autoload=False)
REGISTRY = Registry.from_plugin_manager(PM)


def run_fig2(tmp_path: Path, *overrides: str) -> dict:
    cfg = compose(["experiment=vllm_fig2", *overrides], pm=PM)
    record = execute(cfg, tmp_path, pm=PM, registry=REGISTRY, overrides=list(overrides))
    (row,) = record.rows
    return row


def test_sharegpt_like_has_the_published_means_and_is_seeded() -> None:
    # The vLLM paper's Fig. 11a: ShareGPT input mean 161.31, output mean 337.99 tokens.
    assert (SHAREGPT_MEAN_PROMPT_TOKENS, SHAREGPT_MEAN_OUTPUT_TOKENS) == (161.31, 337.99)
    w = ShareGPTLike(n_requests=40_000)
    a, b, c = w.load(1), w.load(1), w.load(2)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens) and np.array_equal(a.arrival_s, b.arrival_s)
    assert not np.array_equal(a.prompt_tokens, c.prompt_tokens)
    # Exponential lengths rounded up to whole tokens: the mean plus about half a token.
    assert np.mean(a.prompt_tokens) == pytest.approx(161.31 + 0.5, rel=0.03)
    assert np.mean(a.output_tokens) == pytest.approx(337.99 + 0.5, rel=0.03)
    assert a.offered_load_requests_per_s == pytest.approx(2.0, rel=0.03)
    assert "161.31" in ShareGPTLike.attribution and "Fig. 11a" in ShareGPTLike.attribution


def test_a100_40gb_is_the_datasheet_part() -> None:
    b = A100_40GB()
    assert b.tier("hbm").capacity_bytes == 40 * 10**9
    assert b.tier("hbm").bandwidth_bytes_per_s == 1555 * 10**9
    assert b.peak_flops["fp16"] == 312e12


@pytest.mark.parametrize(("manager", "share", "batch"), [("static_max", 0.204, 7.00), ("paged", 0.963, 30.42)])
def test_rows_carry_the_papers_numbers(tmp_path: Path, manager: str, share: float, batch: float) -> None:
    row = run_fig2(tmp_path, f"kv_manager={manager}", "workload.n_requests=150")
    assert (row["model"], row["backend"], row["kv_manager"]) == ("opt_13b", "a100_40gb", manager)
    assert row["workload"] == "sharegpt_like(rate=2)"
    assert (row["paper_token_states_share_of_used"], row["paper_mean_batch_requests"]) == (share, batch)
    # 95% of 40 GB less 25.7 GB of weights, in 800 KiB tokens (whole blocks of 16 for paged).
    assert 14_990 <= row["kv_pool_bytes"] // row["kv_bytes_per_token"] <= 15_006


def test_orca_is_on_the_buddy_allocator(tmp_path: Path) -> None:
    # The paper's section 6.1: "We assume Orca uses the buddy allocation algorithm to determine the
    # memory address to store KV cache."
    import memarena.families.serving as serving

    preset = OmegaConf.load(Path(serving.__file__).parent / "conf" / "experiment" / "vllm_fig2.yaml")
    managers = preset.hydra.sweeper.params.kv_manager.split(",")
    assert managers == ["static_max_buddy", "static_pow2_buddy", "static_oracle_buddy", "paged"]
    for m in managers[:3]:
        assert compose(["experiment=vllm_fig2", f"kv_manager={m}"], pm=PM).kv_manager.allocator == "buddy"
    row = run_fig2(tmp_path, "kv_manager=static_pow2_buddy", "workload.n_requests=150")
    assert row["kv_manager"] == "static_pow2_buddy"
    assert (row["paper_token_states_share_of_used"], row["paper_mean_batch_requests"]) == (0.268, 9.81)
    # Rounded to a power of two, a reservation holds at least as many slots as on first fit.
    first_fit = run_fig2(tmp_path / "ff", "kv_manager=static_pow2", "workload.n_requests=150")
    assert row["internal_frag_share"] > first_fit["internal_frag_share"]


def test_a_manager_without_published_numbers_gets_none(tmp_path: Path) -> None:
    row = run_fig2(tmp_path, "kv_manager=vattention_2mb", "workload.n_requests=50")
    assert not any(k.startswith("paper_") for k in row)


def test_a_paper_number_for_an_unknown_column_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match=r"family\.paper\.paged\.no_such_column"):
        run_fig2(tmp_path, "workload.n_requests=20", "+family.paper.paged.no_such_column=1.0")


def load_row(kv: str, rate: float, latency: float, **extra: object) -> dict:
    return {
        "workload_kind": "sharegpt_like",
        "model": "opt_13b",
        "backend": "a100_40gb",
        "preemption": "recompute",
        "kv_manager": kv,
        "offered_load_requests_per_s": rate,
        "normalized_latency_s_per_token": latency,
        "normalized_latency_bound_s_per_token": 0.5,
        **extra,
    }


def test_throughput_at_the_latency_bound_and_the_ratios() -> None:
    from memarena.families.serving.family import ServingFamily

    rows = [
        load_row("paged", 1.0, 0.05),
        load_row("paged", 2.0, 0.06),
        load_row("paged", 4.0, 0.4),
        load_row("paged", 8.0, 3.0),
        load_row("static_max", 1.0, 0.1),
        load_row("static_max", 2.0, 0.9),
        load_row("static_max", 4.0, 0.2),  # under the bound again past a rate over it: not sustained
        load_row("static_oracle", 1.0, 0.6),  # over the bound at the lowest rate: none
        load_row("static_oracle", 2.0, 5.0),
    ]
    ((title, table),) = ServingFamily.report_tables(rows)
    assert "normalized-latency bound" in title
    by = {t["kv_manager"]: t for t in table}
    assert by["paged"]["max_rate_requests_per_s"] == 4.0 and by["paged"]["first_rate_over_bound"] == 8.0
    assert by["static_max"]["max_rate_requests_per_s"] == 1.0 and by["static_max"]["first_rate_over_bound"] == 2.0
    assert by["static_oracle"]["max_rate_requests_per_s"] is None
    assert by["paged"]["x_static_max"] == 4.0 and by["static_max"]["x_paged"] == 0.25
    assert by["paged"]["x_static_oracle"] is None
    # Rows of one rate per manager are no load sweep: no table.
    assert ServingFamily.report_tables([load_row("paged", 1.0, 0.1), load_row("static_max", 1.0, 0.1)]) == [
        ("Highest request rate under the normalized-latency bound, and the ratios between managers", [])
    ]


def test_normalized_latency_is_the_mean_over_completed_requests(tmp_path: Path) -> None:
    from memarena.backends import A100_40GB
    from memarena.families.serving import Hardware, PagedKV, Requests, simulate
    from memarena.families.serving.family import ServingFamily

    # Two requests of 10 and 40 output tokens, and one too long for the 600-token context (rejected: NaN e2e).
    reqs = Requests.from_arrays([0.0, 0.0, 0.0], [100, 100, 600], [10, 40, 10])
    hw = Hardware.from_backend(A100_40GB(), dtype="fp16")
    rep = simulate(reqs, model="opt_13b", hardware=hw, kv_manager=PagedKV(), max_model_len=600)
    assert rep.completed == 2
    row = ServingFamily()._row({"kv_manager": "paged"}, rep, reqs)
    expected = (rep.e2e_s[0] / 10 + rep.e2e_s[1] / 40) / 2
    assert row["normalized_latency_s_per_token"] == pytest.approx(expected, rel=1e-12)
    assert row["normalized_latency_bound_s_per_token"] == 0.5
