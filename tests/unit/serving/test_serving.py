"""The serving facade on hand-checkable cases, error paths and invariants."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from memarena.backends import A100_80GB, H100_SXM, H200, L4
from memarena.errors import InvalidConfigError, MalformedInputError
from memarena.families.serving import (
    BREAKDOWN,
    Hardware,
    ModelSpec,
    PagedKV,
    Requests,
    StaticKV,
    VAttentionKV,
    generate_requests,
    read_azure_csv,
    simulate,
)
from memarena.families.serving.workloads import azure_conv_path

H100 = Hardware.from_backend(H100_SXM())
LLAMA3_8B = ModelSpec.builtin("llama3_8b")
BPT = LLAMA3_8B.kv_bytes_per_token  # 2 * 32 layers * 8 KV heads * 128 * 2 bytes
ONE = Requests.from_arrays([0.0], [1000], [50])


def busy_samples(kv: object, requests: Requests = ONE) -> dict[str, np.ndarray]:
    rep = simulate(requests, model=LLAMA3_8B, hardware=H100, kv_manager=kv, sample_interval_s=0.01)
    assert rep.completed == len(requests)
    busy = rep.samples["running_requests"] > 0
    assert busy.any()
    return {k: v[busy] for k, v in rep.samples.items()}


def tokens(s: dict[str, np.ndarray], key: str) -> np.ndarray:
    assert (s[key] % BPT == 0).all()
    return s[key] // BPT


def test_gqa_kv_bytes_per_token() -> None:
    assert BPT == 2 * 32 * 8 * 128 * 2  # 128 KiB: 8 KV heads, not 32
    assert ModelSpec.builtin("llama2_7b").kv_bytes_per_token == 2 * 32 * 32 * 128 * 2


@pytest.mark.parametrize("block_size", [1, 16, 32])
def test_one_request_holds_ceil_tokens_over_block_size_blocks(block_size: int) -> None:
    s = busy_samples(PagedKV(block_size=block_size))
    held = tokens(s, "token_states_bytes")
    blocks_bytes = s["token_states_bytes"] + s["internal_frag_bytes"]
    expected_blocks = -(-held // block_size)  # ceil
    assert (blocks_bytes == expected_blocks * block_size * BPT).all()
    assert (s["reserved_bytes"] == 0).all() and (s["external_frag_bytes"] == 0).all()
    assert held.min() >= 1000 and held.max() <= 1000 + 50 - 1  # the last token's KV is never computed


@pytest.mark.parametrize(("variant", "reservation"), [("max", 8192), ("pow2", 1064), ("oracle", 1049)])
def test_static_reservation_waste(variant: str, reservation: int) -> None:
    # Final length 1000 + 50 - 1 = 1049 tokens; Orca-Max reserves the context (8192),
    # Pow2 the prompt plus the output rounded up to a power of two (1000 + 64; the vLLM
    # paper, section 6.1: "if the true output length is 25, it reserves 32 positions for
    # outputs"), Oracle exactly 1049.
    s = busy_samples(StaticKV(variant=variant))
    held = tokens(s, "token_states_bytes")
    assert (tokens(s, "reserved_bytes") == 1049 - held).all()  # reserved for tokens still to come
    assert (tokens(s, "internal_frag_bytes") == reservation - 1049).all()  # never used


@pytest.mark.parametrize(("variant", "block"), [("max", 8192), ("pow2", 2048), ("oracle", 2048)])
def test_buddy_rounds_the_reservation_to_a_power_of_two(variant: str, block: int) -> None:
    # The same request (final length 1049) on the buddy allocator: the reservation (8192,
    # 1064, 1049) holds a block of its next power of two, the rounding counted as internal
    # fragmentation (allocated, never to hold a token).
    kv = StaticKV(variant=variant, allocator="buddy")
    assert kv.describe() == f"static_{variant}_buddy" and StaticKV(variant=variant).describe() == f"static_{variant}"
    s = busy_samples(kv)
    held = tokens(s, "token_states_bytes")
    assert (tokens(s, "reserved_bytes") == 1049 - held).all()
    assert (tokens(s, "internal_frag_bytes") == block - 1049).all()


def one_hole_pool(max_num_seqs: int) -> dict[str, np.ndarray]:
    """A 1000-slot Orca-Oracle pool: A holds 600 slots, B needs 600, the hole left has 400."""
    usable = int(H100.hbm_capacity_bytes * 0.9)
    reserve = usable - LLAMA3_8B.weight_bytes - 1000 * BPT
    reqs = Requests.from_arrays([0.0, 0.001], [500, 500], [101, 101])
    rep = simulate(
        reqs,
        model=LLAMA3_8B,
        hardware=H100,
        kv_manager=StaticKV(variant="oracle"),
        max_model_len=1000,
        activation_reserve_bytes=reserve,
        scheduler={"max_num_seqs": max_num_seqs},
        sample_interval_s=0.005,
    )
    assert (rep.completed, rep.pool_bytes) == (2, 1000 * BPT)
    both = (rep.samples["running_requests"] == 1) & (rep.samples["waiting_requests"] == 1)
    assert both.sum() > 10
    return {k: v[both] for k, v in rep.samples.items()}


def test_external_fragmentation_only_while_blocked_on_memory() -> None:
    # B refused by the KV manager (room for two sequences): the 400-slot hole is external
    # fragmentation (but for the sample before B's first admission try).
    ext = tokens(one_hole_pool(2), "external_frag_bytes")
    assert set(ext.tolist()) <= {0, 400} and (ext == 400).sum() >= len(ext) - 1
    # B waits for the sequence cap (compute), not memory: the hole is free.
    s = one_hole_pool(1)
    assert (s["external_frag_bytes"] == 0).all() and (tokens(s, "free_bytes") == 400).all()


def test_vattention_idle_mapped_pages_are_their_own_category() -> None:
    # One 1000 + 50 request, then one of 10 + 5 on the same slot: with 64 KiB pages (32 tokens)
    # the first maps ceil(1049 / 32) = 33 pages; after it ends they stay mapped on its slot
    # (deferred reclamation) and the second reuses the slot: 33 pages, 1 holding its tokens,
    # 32 idle mapped beyond them. Between the two, no request runs: 33 idle mapped pages.
    reqs = Requests.from_arrays([0.0, 30.0], [1000, 10], [50, 5])
    rep = simulate(
        reqs, model=LLAMA3_8B, hardware=H100, kv_manager=VAttentionKV(page_size_bytes=64 * 1024), sample_interval_s=0.5
    )
    page_group = 64 * 1024 * 2 * 32  # a page in each K and V buffer of the 32 layers
    s = rep.samples
    between = (s["running_requests"] == 0) & (s["time_s"] > 5) & (s["time_s"] < 30)
    assert between.any()
    assert (s["idle_mapped_bytes"][between] == 33 * page_group).all()
    assert (s["reserved_bytes"][between] == 0).all() and (s["token_states_bytes"][between] == 0).all()
    total = sum(rep.breakdown_over_time().values())
    assert (total == rep.pool_bytes).all()
    # Never "used": the Fig. 2 share of the first request alone is its tokens over its pages.
    row = rep.row()
    assert "idle_mapped_share" in row and "idle_mapped_bytes" in row


def test_vattention_maps_whole_pages() -> None:
    # 64 KiB per layer and K/V buffer; one token's K in one layer is 8 * 128 * 2 = 2 KiB: 32 tokens per page.
    s = busy_samples(VAttentionKV(page_size_bytes=64 * 1024))
    held = tokens(s, "token_states_bytes")
    assert (tokens(s, "internal_frag_bytes") == -(-held // 32) * 32 - held).all()


def test_prefix_hit_count() -> None:
    # Two requests share a 64-token prefix (4 blocks of 16); the second arrives after the first finished.
    reqs = Requests.from_arrays([0.0, 10.0], [100, 90], [5, 5], prefix_group=[3, 3], prefix_tokens=[64, 64])
    rep = simulate(reqs, model=LLAMA3_8B, hardware=H100, kv_manager=PagedKV(prefix_caching="v1"))
    assert (rep.prefix_query_tokens, rep.prefix_hit_tokens) == (190, 64)
    assert rep.prefix_hit_rate == pytest.approx(64 / 190)
    off = simulate(reqs, model=LLAMA3_8B, hardware=H100, kv_manager=PagedKV())
    assert off.prefix_hit_tokens == 0


@pytest.mark.parametrize(
    "kv",
    [
        StaticKV(variant="max"),
        StaticKV(variant="pow2"),
        StaticKV(variant="oracle"),
        PagedKV(),
        PagedKV(prefix_caching="v0"),
        VAttentionKV(),
    ],
    ids=lambda kv: kv.describe(),
)
def test_breakdown_sums_to_the_pool_at_every_sample(kv: object) -> None:
    reqs = generate_requests(
        {
            "kind": "shared_prefix",
            "num_requests": 600,
            "arrivals": {"kind": "gamma", "rate": 60.0, "cv": 2.0},
            "prompt_tokens": {"kind": "lognormal", "median": 600, "sigma": 1.0},
            "output_tokens": {"kind": "lognormal", "median": 200, "sigma": 1.0},
            "n_parallel": 2,
            "num_groups": 4,
            "prefix_tokens": 512,
        },
        seed=3,
    )
    l4 = Hardware.from_backend(L4())  # 24 GB: a small pool, so memory runs out and managers preempt
    rep = simulate(reqs, model="llama2_7b", hardware=l4, kv_manager=kv, sample_interval_s=0.5, check_invariants=True)
    total = sum(rep.breakdown_over_time().values())
    assert len(total) > 10
    assert (total == rep.pool_bytes).all()
    assert rep.completed + rep.rejected == len(reqs)
    row = rep.row()
    assert sum(row[f"{k}_share"] for k in BREAKDOWN) == pytest.approx(1.0, abs=1e-6)
    assert row["ttft_p50_s"] <= row["ttft_p99_s"] <= row["ttft_max_s"]


def test_swap_preemption_moves_bytes_over_the_host_link() -> None:
    reqs = generate_requests(
        {
            "kind": "synthetic",
            "num_requests": 400,
            "arrivals": {"kind": "all_at_once"},
            "prompt_tokens": 1500,
            "output_tokens": 400,
        },
        seed=1,
    )
    l4 = Hardware.from_backend(L4())
    rep = simulate(reqs, model="llama2_7b", hardware=l4, kv_manager=PagedKV(), scheduler={"preemption": "swap"})
    assert rep.preemptions_swap > 0 and rep.swap_out_bytes > 0
    assert rep.completed == 400


def test_request_longer_than_the_context_is_rejected_and_counted() -> None:
    reqs = Requests.from_arrays([0.0, 0.5, 1.0], [100, 8000, 100], [10, 500, 10])  # 8500 > 8192
    rep = simulate(reqs, model=LLAMA3_8B, hardware=H100, kv_manager=PagedKV())
    assert (rep.completed, rep.rejected_too_long, rep.rejected) == (2, 1, 1)
    assert rep.status.tolist() == [0, 1, 0]
    assert math.isnan(rep.ttft_s[1]) and not math.isnan(rep.ttft_s[0])


def test_weights_that_do_not_fit_name_the_model_and_device() -> None:
    l4 = Hardware.from_backend(L4())
    with pytest.raises(InvalidConfigError, match=r"llama2_13b needs 26\.\d GB of weights but l4 offers"):
        simulate(ONE, model="llama2_13b", hardware=l4, kv_manager=PagedKV())
    with pytest.raises(InvalidConfigError, match="llama3_70b.*h100_sxm"):
        simulate(ONE, model="llama3_70b", hardware=H100, kv_manager=PagedKV())


def test_negative_or_zero_lengths_name_the_row() -> None:
    with pytest.raises(InvalidConfigError, match=r"requests\[2\]\.prompt_tokens must be in 1\.\.\d+, got -5"):
        Requests.from_arrays([0, 1, 2], [10, 20, -5], [1, 1, 1])
    with pytest.raises(InvalidConfigError, match=r"requests\[0\]\.output_tokens"):
        Requests.from_arrays([0], [10], [0])
    with pytest.raises(InvalidConfigError, match=r"requests\[1\]\.arrival_s"):
        Requests.from_arrays([0, -1.0], [10, 10], [1, 1])
    with pytest.raises(InvalidConfigError, match="output_tokens has 1 entries but arrival_s has 2"):
        Requests.from_arrays([0, 1], [10, 10], [1])


CSV_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n"


def test_trace_with_a_missing_column_names_the_row(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(CSV_HEAD + "2023-11-16 18:15:47.0,396\n")
    with pytest.raises(MalformedInputError, match=r"t\.csv: line 3: expected 3 columns"):
        read_azure_csv(p)


def test_trace_with_a_negative_length_names_the_row(tmp_path: Path) -> None:
    p = tmp_path / "t.csv"
    p.write_text(CSV_HEAD + "2023-11-16 18:15:47.0,396,12\n2023-11-16 18:15:48.0,-7,12\n")
    with pytest.raises(MalformedInputError, match=r"t\.csv: line 4: bad ContextTokens \"-7\""):
        read_azure_csv(p)


def test_shipped_azure_trace_keeps_timestamps() -> None:
    reqs = read_azure_csv(azure_conv_path())
    assert len(reqs) == 19_366
    assert reqs.arrival_s[0] == 0.0 and reqs.arrival_s[1] == pytest.approx(4.314579)
    assert (reqs.prompt_tokens[:2] == [374, 396]).all() and (reqs.output_tokens[:2] == [44, 109]).all()
    assert 3400 < reqs.span_s < 3600


def test_config_errors_name_the_key() -> None:
    with pytest.raises(InvalidConfigError, match=r"config\.kv\.block_sise: unknown key; allowed: .*block_size"):
        simulate(ONE, model=LLAMA3_8B, hardware=H100, kv_manager={"kind": "paged", "block_sise": 16})
    with pytest.raises(InvalidConfigError, match=r"config\.scheduler\.preemption: must be one of recompute, swap"):
        simulate(ONE, model=LLAMA3_8B, hardware=H100, kv_manager=PagedKV(), scheduler={"preemption": "drop"})
    with pytest.raises(InvalidConfigError, match="kv_manager.page_size_bytes"):
        VAttentionKV(page_size_bytes=4096)
    with pytest.raises(InvalidConfigError, match="kv_manager.variant"):
        StaticKV(variant="huge")
    with pytest.raises(InvalidConfigError, match=r"kv_manager\.allocator.*first_fit, buddy"):
        StaticKV(allocator="best_fit")
    with pytest.raises(InvalidConfigError, match=r"config\.kv\.allocator: must be one of first_fit, buddy"):
        simulate(ONE, model=LLAMA3_8B, hardware=H100, kv_manager={"kind": "static", "variant": "max", "allocator": "x"})
    with pytest.raises(InvalidConfigError, match=r"model\.num_kv_heads"):
        ModelSpec(name="bad", num_attention_heads=32, num_kv_heads=6)


def test_gpu_backends_carry_their_figures_and_sources() -> None:
    for cls, hbm, bw, flops, link in [
        (A100_80GB, 80e9, 2.039e12, 312e12, 32e9),
        (H100_SXM, 80e9, 3.35e12, 989e12, 64e9),
        (H200, 141e9, 4.8e12, 989e12, 64e9),
        (L4, 24e9, 300e9, 121e12, 32e9),
    ]:
        hw = Hardware.from_backend(cls())
        assert (hw.hbm_capacity_bytes, hw.hbm_bandwidth_bytes_per_s, hw.peak_flops) == (hbm, bw, flops)
        assert hw.host_link_bandwidth_bytes_per_s == link
        assert "datasheet" in cls.Config().source


def test_cpu_backend_cannot_run_the_serving_model() -> None:
    from memarena.backends import CpuDdr5Nvme

    with pytest.raises(InvalidConfigError, match="cpu_ddr5_nvme.*hbm"):
        Hardware.from_backend(CpuDdr5Nvme())  # a backend is built from its Config's defaults alone


def test_a_backend_class_or_instance_serves_as_hardware() -> None:
    # A backend class is built from its defaults; simulate() reads a backend through Hardware.from_backend.
    assert Hardware.from_backend(H100_SXM) == Hardware.from_backend(H100_SXM()) == H100
    a = simulate(ONE, model=LLAMA3_8B, hardware=H100_SXM, kv_manager=PagedKV())
    b = simulate(ONE, model=LLAMA3_8B, hardware=H100, kv_manager=PagedKV())
    assert a.summary["e2e_s"] == b.summary["e2e_s"] and a.pool_bytes == b.pool_bytes
    with pytest.raises(InvalidConfigError, match="needs a memarena backend .* got str"):
        simulate(ONE, model=LLAMA3_8B, hardware="h100", kv_manager=PagedKV())  # type: ignore[arg-type]


def test_deferred_reclamation_does_not_change_the_share_of_used_memory() -> None:
    # Pages kept mapped for reuse hold no token and are reclaimable on demand: idle mapped, not used.
    # Under light load (the trace as recorded) the share of used memory holding token states is then
    # the same with and without deferred reclamation (14 points apart when they counted as reserved).
    reqs = read_azure_csv(azure_conv_path()).head(1500)
    rows = [
        simulate(
            reqs, model=LLAMA3_8B, hardware=H100, kv_manager=VAttentionKV(deferred_reclaim=d), max_model_len=4096
        ).row()
        for d in (True, False)
    ]
    assert rows[0]["idle_mapped_share"] > 0.01 and rows[1]["idle_mapped_share"] == 0
    assert rows[0]["reserved_share"] == rows[1]["reserved_share"] == 0
    assert rows[0]["token_states_share_of_used"] == pytest.approx(rows[1]["token_states_share_of_used"], abs=0.005)
