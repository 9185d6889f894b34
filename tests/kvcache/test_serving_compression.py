"""A kv_compression method's measured bytes per token in the serving family (issue 16, item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memarena.errors import InvalidConfigError
from memarena.families.kvcache.methods import FullCache
from memarena.families.serving import ModelSpec, generate_requests, simulate
from memarena.families.serving.compression import bytes_per_token, measure_kv_ratio, require_torch
from memarena.models import ByteLlama, ByteLlamaConfig
from tests.integration.test_cli import ROOT, memarena, records
from tests.kvcache.serving_fakes import Int8Test

torch.set_num_threads(1)

PLUGIN = {
    "MEMARENA_PLUGINS": "tests.kvcache.serving_fakes",
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
}


@pytest.fixture(scope="module")
def tiny() -> ByteLlama:
    """A seeded random ByteLlama (bytes do not depend on the weights): 2 layers, 2 kv heads of 16."""
    torch.manual_seed(0)
    return ByteLlama(ByteLlamaConfig(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=128)).eval()


def test_full_cache_ratio_is_exactly_one(tiny: ByteLlama) -> None:
    m = measure_kv_ratio(FullCache(), 20, 5, model=tiny)
    # 25 tokens x K and V x 2 layers x 2 kv heads x 16 dims x 2 bytes (fp16)
    assert m.kv_bytes == m.full_bytes == 25 * 2 * 2 * 2 * 16 * 2
    assert m.ratio == 1.0 and m.model == "given" and m.tokens == 25
    assert bytes_per_token(m.ratio, 524_288) == 524_288  # the model's own figure: serving unchanged


@pytest.mark.parametrize(("window", "prompt", "output"), [(0, 20, 10), (8, 20, 10), (8, 6, 0), (16, 3, 27)])
def test_fake_int8_ratio_by_hand(tiny: ByteLlama, window: int, prompt: int, output: int) -> None:
    m = measure_kv_ratio(Int8Test(window_tokens=window), prompt, output, model=tiny)
    n = prompt + output
    fp16 = min(n, window)
    per_head = (n - fp16) * 16 * 2 * 1 + fp16 * 16 * 2 * 2  # int8 codes + fp16 window, K and V
    assert m.kv_bytes == per_head * 2 * 2  # x kv heads x layers
    assert m.full_bytes == n * 16 * 2 * 2 * 2 * 2
    assert m.ratio == pytest.approx((n + fp16) / (2 * n))


def test_kivi_ratio_by_hand(tiny: ByteLlama) -> None:
    """KIVI-2 (G = 32, R = 128) at the mem_spd_test.py request, 160 + 338 = 498 tokens, head_dim 32."""
    kivi = pytest.importorskip("memarena.families.kvcache.methods.kivi", reason="KIVI not merged yet")
    torch.manual_seed(0)
    model = ByteLlama().eval()  # the fixture's shape: 4 layers, 2 kv heads of 32
    m = measure_kv_ratio(kivi.Kivi(), 160, 338, model=model)
    keys = 384 * 32 * 2 // 8 + (384 // 32) * 32 * 2 * 2 + 114 * 32 * 2  # codes, scale+min per channel/group, residual
    values = 370 * 32 * 2 // 8 + 370 * 1 * 2 * 2 + 128 * 32 * 2  # codes, scale+min per token/group, residual
    assert m.kv_bytes == (keys + values) * 2 * 4 == 196_288
    assert bytes_per_token(m.ratio, 524_288) == 201_807  # Llama-2-7B: ceil(196288 / 509952 x 512 KiB)


def test_bytes_per_token_rounds_up_and_refuses_nonsense() -> None:
    assert bytes_per_token(0.5, 524_288) == 262_144
    assert bytes_per_token(1 / 3, 10) == 4
    assert bytes_per_token(1e-9, 10) == 1
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidConfigError, match="kv_compression"):
            bytes_per_token(bad, 10)


def test_missing_torch_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    with pytest.raises(InvalidConfigError, match=r"kv_compression.*memarena\[torch\]"):
        require_torch()


def test_batch_grows_as_one_over_the_ratio_when_memory_bound() -> None:
    """Every request at once, each reserving its 160 + 338 tokens: the batch is the pool over a request's bytes."""
    reqs = generate_requests(
        {
            "kind": "synthetic",
            "num_requests": 600,
            "arrivals": {"kind": "poisson", "rate": 1e6},
            "prompt_tokens": 160,
            "output_tokens": 338,
        },
        0,
    )
    model = ModelSpec.builtin("llama2_7b")
    from memarena.backends import A100_80GB
    from memarena.families.serving import StaticKV

    def run(bpt: int | None) -> dict[str, float]:
        return simulate(
            reqs,
            model=model,
            hardware=A100_80GB,
            kv_manager=StaticKV(variant="oracle"),
            scheduler={"max_num_seqs": 4096},
            kv_bytes_per_token=bpt,
            sample_interval_s=0.0,
        ).row()

    full, half = run(None), run(bytes_per_token(0.5, model.kv_bytes_per_token))
    assert full["kv_bytes_per_token"] == 524_288 and half["kv_bytes_per_token"] == 262_144
    # The oracle reserves prompt + output - 1 slots (the last token's KV is never written).
    for row in (full, half):
        assert row["max_batch_seqs"] == row["kv_pool_bytes"] // (497 * row["kv_bytes_per_token"])
    assert half["max_batch_seqs"] / full["max_batch_seqs"] == pytest.approx(2.0, abs=0.01)
    # Decode reads half the KV bytes per token and twice the requests share the weights: more throughput.
    assert half["throughput_output_tokens_per_s"] > 1.3 * full["throughput_output_tokens_per_s"]
    # The same figure as the model's: exactly the uncompressed run.
    same = run(model.kv_bytes_per_token)
    assert same == full
    assert np.isfinite(full["throughput_output_tokens_per_s"])


def test_kivi_batch_preset_runs_a_method_beside_the_paper(tmp_path: Path) -> None:
    res = memarena(
        "experiment=kivi_batch",
        "kv_compression=int8_test",
        "workload.n_requests=600",
        "family.kv_compression_output_tokens=100",  # the prompt: the requests' mean (160)
        "family.kv_compression_budget=0.5",  # recorded; the fake keeps every token
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
        env=PLUGIN,
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    row = rec.rows[0]
    assert row["kv_compression"] == "int8_test" and row["kv_manager"] == "static_oracle"
    assert (row["kv_compression_prompt_tokens"], row["kv_compression_output_tokens"]) == (160, 100)
    assert row["kv_compression_budget"] == 0.5
    assert row["kv_compression_ratio"] == 0.5 and row["kv_bytes_per_token"] == 262_144
    assert row["full_kv_bytes_per_token"] == 524_288
    pool = row["kv_pool_bytes"]
    assert row["full_max_batch_seqs"] == pool // (497 * 524_288)
    assert row["max_batch_seqs"] == pool // (497 * 262_144)
    assert row["max_batch_seqs_x_full"] == row["max_batch_seqs"] / row["full_max_batch_seqs"]
    assert row["throughput_output_tokens_per_s_x_full"] > 1.3
    # Only KIVI's row carries the paper's numbers; the KIVI paper's abstract: up to 4x batch, 2.35x-3.47x throughput.
    assert "paper_max_batch_seqs_x_full" not in row
    assert "kv_compression" in res.stdout and "max_batch_seqs_x_full" in res.stdout


def test_serving_without_kv_compression_needs_no_torch(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any import of torch fails
        "from memarena.app import main\n"
        f"sys.exit(main(['experiment=serving', 'debug=tiny', 'workload.n_requests=300', "
        f"'hydra.run.dir={tmp_path}/r']))"
    )
    env = {**os.environ, "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1"}
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    row = json.loads((tmp_path / "r" / "memarena-record.json").read_text())["rows"][0]
    assert "kv_compression" not in row and "kv_compression_ratio" not in row
    assert row["kv_bytes_per_token"] == 131_072  # Llama-3-8B's own


def test_kv_compression_with_an_explicit_bytes_per_token_is_refused(tmp_path: Path) -> None:
    res = memarena(
        "experiment=serving",
        "debug=tiny",
        "workload.n_requests=100",
        "kv_compression=int8_test",
        "family.kv_bytes_per_token=1000",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
        env=PLUGIN,
    )
    assert res.returncode == 2
    assert "family.kv_bytes_per_token" in res.stderr and "kv_compression" in res.stderr
