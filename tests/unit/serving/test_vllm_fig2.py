"""experiment=vllm_fig2: the ShareGPT-like workload, the A100-40GB, the paper's numbers beside memarena's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def test_a_manager_without_published_numbers_gets_none(tmp_path: Path) -> None:
    row = run_fig2(tmp_path, "kv_manager=vattention_2mb", "workload.n_requests=50")
    assert not any(k.startswith("paper_") for k in row)


def test_a_paper_number_for_an_unknown_column_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match=r"family\.paper\.paged\.no_such_column"):
        run_fig2(tmp_path, "workload.n_requests=20", "+family.paper.paged.no_such_column=1.0")
