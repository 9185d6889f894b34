"""The ``training`` family: rows, bytes by category against hand counts, the peak trace, offload transfers,
seeding, errors naming their keys, and the run without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memarena.config import compose
from memarena.errors import InvalidConfigError, MemarenaError
from memarena.families.training.family import STACK, TrainingFamily
from memarena.families.training.transfer import Transfers, offload_chunks, overlap, swap_chunks
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import execute
from tests.kvcache.test_torch_extra import memarena_without_torch

PM = get_plugin_manager(autoload=False)
REG = Registry.from_plugin_manager(PM)
GB = 10**9


def train(tmp_path: Path, *overrides: str) -> dict[str, Any]:
    args = ["experiment=training", "debug=tiny", *overrides]
    choices = {a.split("=")[0]: a.split("=")[1] for a in overrides if a.split("=")[0] in ("optimizer", "activation")}
    record = execute(compose(args, pm=PM), tmp_path, pm=PM, registry=REG, overrides=args, choices=choices)
    assert record.status == "complete", record.error
    (row,) = record.rows
    return row


def fixture_shape() -> tuple[int, int]:
    """(parameters, parameter tensors) of the fixture's architecture."""
    from memarena.models import ByteLlama, ByteLlamaConfig, fixture_card

    m = ByteLlama(ByteLlamaConfig.from_dict(fixture_card()["config"]))
    return sum(p.numel() for p in m.parameters()), len(list(m.parameters()))


def test_adamw_row_bytes_by_category_and_the_trace(tmp_path: Path) -> None:
    row = train(tmp_path)
    n, tensors = fixture_shape()
    assert row["optimizer"] == "adamw" and row["activation"] == "none" and row["offload_optimizer"] is False
    assert row["steps"] == 3 and row["loss_steps"] == [1, 2, 3] and len(row["loss_curve"]) == 3
    assert row["parameters_bytes"] == 4 * n
    assert row["gradients_bytes"] == 4 * n  # every gradient held at the optimizer's step
    assert row["moments_bytes"] == 2 * 4 * n and row["steps_bytes"] == 4 * tensors
    assert row["optimizer_state_bytes"] == row["moments_bytes"] + row["steps_bytes"] == row["optimizer_device_bytes"]
    assert row["projectors_bytes"] == row["quant_maps_bytes"] == row["absmax_bytes"] == 0
    assert row["activations_bytes"] > 0 and row["recompute_bytes"] == 0 and row["host_bytes"] == 0
    # the peak is at least every category at the optimizer's step, and at most all of them at their most
    assert row["peak_bytes"] >= 4 * n * 4 + 4 * tensors
    assert row["peak_bytes"] <= sum(row[c] for c in STACK)
    assert row["transfer_bytes"] == 0 and row["transfer_s"] == 0.0
    assert 0 < row["bits_per_byte"] < 9 and row["time_per_step_s"] > 0 and row["fits_device"] is True


def test_policies_trade_device_activations_for_recompute_and_host(tmp_path: Path) -> None:
    none = train(tmp_path / "a", "activation=none")
    ckpt = train(tmp_path / "b", "activation=checkpoint")
    memo = train(tmp_path / "c", "activation=memo", "activation.alpha=0.5")
    assert ckpt["activations_bytes"] < memo["activations_bytes"] + 1 < none["activations_bytes"]
    # checkpoint rematerialises a layer's saved set with its input (held on the device too); memo at alpha 0.5
    # swaps the first half of each of the layer's saved storages, and swaps them back in for its backward
    from memarena.models import fixture_card

    cfg = fixture_card()["config"]
    n_layers, layer_input = cfg["n_layers"], memo["batch_size"] * (memo["seq_len_tokens"] - 1) * cfg["dim"] * 4
    assert (memo["seq_len_tokens"] - 1) % 2 == 0
    assert ckpt["recompute_bytes"] - layer_input == 2 * memo["host_bytes"] // n_layers > 0
    # ... plus the recompute of the other half (attending to the first half's keys and values)
    assert memo["recompute_bytes"] > memo["host_bytes"] // n_layers
    assert memo["activations_host_bytes"] == memo["host_bytes"] > 0 and ckpt["host_bytes"] == 0
    # the same model, data and update rule: the same losses whatever is kept
    assert ckpt["loss_curve"] == none["loss_curve"] == memo["loss_curve"]
    # memo's swaps cross the host link twice (out in the forward, back in the backward)
    assert memo["transfer_bytes"] == 2 * memo["host_bytes"]
    assert 0 <= memo["transfer_overlapped_s"] <= memo["transfer_s"]


def test_per_layer_updates_hold_no_gradient_at_the_step(tmp_path: Path) -> None:
    row = train(tmp_path, "optimizer=galore", "optimizer.per_layer=true", "optimizer.rank=8")
    assert row["gradients_bytes"] < row["parameters_bytes"]
    assert row["projectors_bytes"] > 0


def test_offloaded_optimizer_state_lives_on_the_host_and_crosses_the_link(tmp_path: Path) -> None:
    row = train(tmp_path, "family.offload_optimizer=true")
    base = train(tmp_path / "b")
    assert row["optimizer_device_bytes"] == 0 and row["host_bytes"] == row["optimizer_state_bytes"]
    assert row["peak_bytes"] < base["peak_bytes"]
    # gradients down and parameters up, per region: twice the parameter bytes
    assert row["transfer_bytes"] == 2 * row["parameters_bytes"]
    # a100_80gb: PCIe Gen4, 32 GB/s per direction, 1 us a transfer; 6 regions (embed, 4 layers, head)
    assert row["transfer_s"] == pytest.approx(6 * 1e-6 + row["transfer_bytes"] / (32 * GB))
    assert row["host_link_bytes_per_s"] == 32 * GB


def test_seeded(tmp_path: Path) -> None:
    a = train(tmp_path / "a")
    b = train(tmp_path / "b")
    c = train(tmp_path / "c", "family.seed=1")
    assert a["loss_curve"] == b["loss_curve"] and a["bits_per_byte"] == b["bits_per_byte"]
    assert a["loss_curve"] != c["loss_curve"]


def test_overlap_is_hand_computed() -> None:
    # 100 B at 10 B/s + 1 s latency = 11 s against a 4 s window; 50 B = 6 s against 10 s; 0 B is free
    got = overlap([(100, 4.0), (50, 10.0), (0, 3.0)], 10.0, 1.0)
    assert got == Transfers(150, 17.0, 10.0) and got.exposed_s == 7.0


def test_chunk_windows_follow_the_pass_order() -> None:
    order = ["embed", "layer0", "head"]
    fwd = {"embed": 1.0, "layer0": 2.0, "head": 3.0}
    bwd = {"head": 30.0, "layer0": 20.0, "embed": 10.0}
    swap = swap_chunks(order, {"layer0": 7}, fwd, bwd)
    # out: layer0's swap hides behind the head's forward; back: its prefetch behind the head's backward
    assert swap == [(0, 2.0), (7, 3.0), (0, 0.0), (0, 0.0), (7, 30.0), (0, 20.0)]
    # offload: a region's transfer after its backward, behind the next region's backward
    assert offload_chunks(order, {"head": 1, "layer0": 2, "embed": 3}, bwd) == [(1, 20.0), (2, 10.0), (3, 0.0)]


def test_errors_name_their_keys(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="'family.init'"):
        TrainingFamily(init="pretrained")
    with pytest.raises(InvalidConfigError, match=r"'optimizer': unknown option 'nope'; available: .*galore"):
        train(tmp_path / "a", "optimizer=nope")
    with pytest.raises(InvalidConfigError, match=r"'activation': unknown option 'nope'; available: .*memo"):
        train(tmp_path / "c", "activation=nope")
    with pytest.raises(MemarenaError, match="family.seq_len_tokens"):
        train(tmp_path / "b", "family.seq_len_tokens=5000")


def test_without_torch_the_run_names_the_extra(tmp_path: Path) -> None:
    res = memarena_without_torch("experiment=training", "debug=tiny", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("memarena: error:")]
    assert len(errors) == 1 and "pip install 'memarena[torch]'" in errors[0], res.stderr


REGISTRY_SCRIPT = """
import sys
from memarena.config import compose
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

reg = Registry.from_plugin_manager(get_plugin_manager())
print("activations:", ",".join(reg.names("activation")))
cfg = compose(["experiment=training", "optimizer=galore", "activation=memo", "activation.alpha=0.25"])
family = cfg.family._target_.rsplit(".", 1)[1]
print("composed:", family, cfg.optimizer.rank, cfg.activation.alpha, cfg.backend.tiers[1].name)
print("torch:", "torch" in sys.modules)
"""


def test_registering_and_composing_import_no_torch(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "python"), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "-c", REGISTRY_SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "activations: checkpoint,memo,none" in lines, res.stdout
    assert "composed: TrainingFamily 128 0.25 host" in lines and "torch: False" in lines, res.stdout
