"""Each optimizer's bytes_by_category() (computed from shapes) equals the storage of the tensors it holds."""

from __future__ import annotations

import pytest
import torch
from galore_torch import GaLoreAdamW

from memarena.families.training.optimizers import CATEGORIES, FRUGAL, Adam8bit, AdamW, GaLore, GaLore8bit
from tests.training.helpers import batches, held_tensors, storage_bytes, tiny_model, train

#: Which held tensors belong to which category, by the last key of their path in the state.
KEY_CATEGORY = {
    "exp_avg": "moments_bytes",
    "exp_avg_sq": "moments_bytes",
    "proj": "projectors_bytes",
    "proj_left": "projectors_bytes",
    "proj_right": "projectors_bytes",
    "qmap_signed": "quant_maps_bytes",
    "qmap_unsigned": "quant_maps_bytes",
    "exp_avg_absmax": "absmax_bytes",
    "exp_avg_sq_absmax": "absmax_bytes",
    "step": "steps_bytes",
}

CASES = {
    "adamw": lambda: AdamW(),
    "galore_std": lambda: GaLore(rank=8),
    "galore_full": lambda: GaLore(rank=8, proj_type="full"),
    "adam8bit": lambda: Adam8bit(block_size=256),
    "galore8bit": lambda: GaLore8bit(rank=8, block_size=64, min_8bit_size=256),
    "frugal_svd": lambda: FRUGAL(selection="svd", density=0.25, update_gap=2),
    "frugal_random": lambda: FRUGAL(selection="random", density=0.25, proj_side="full", update_gap=2),
    "frugal_blocks": lambda: FRUGAL(selection="blocks", density=0.5, update_gap=2),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_category_equals_the_storage_of_the_tensors_held(case: str) -> None:
    model = tiny_model()
    opt = CASES[case]().make(model.named_parameters())
    assert opt.bytes_by_category() == dict.fromkeys(CATEGORIES, 0)  # no state before the first update
    train(model, opt, batches(3))
    params = {id(p) for p in model.parameters()}
    held = list(held_tensors(opt, skip=params))
    by_cat: dict[str, list[torch.Tensor]] = {c: [] for c in CATEGORIES}
    for path, t in held:
        key = path.rsplit("/", 1)[-1]
        assert key in KEY_CATEGORY, f"{case}: uncategorized tensor at {path}"
        by_cat[KEY_CATEGORY[key]].append(t)
    reported = opt.bytes_by_category()
    for cat in CATEGORIES:
        assert reported[cat] == storage_bytes(by_cat[cat]), f"{case}: {cat}"
    assert sum(reported.values()) == storage_bytes([t for _, t in held]) > 0
    if case.startswith("galore") or case in ("frugal_svd", "frugal_random"):
        assert reported["projectors_bytes"] > 0
    if "8bit" in case:
        assert reported["absmax_bytes"] > 0 and reported["quant_maps_bytes"] == 2 * 256 * 4


def test_galore_holds_fewer_bytes_than_galore_torch_whose_projector_views_the_whole_svd_factor() -> None:
    data = batches(2)
    ours, peer = tiny_model(), tiny_model()
    opt = GaLore(rank=4).make(ours.named_parameters())
    gal = [p for n, p in peer.named_parameters() if p.dim() == 2 and ("attn" in n or "mlp" in n)]
    ids = {id(p) for p in gal}
    groups = [
        {"params": [p for p in peer.parameters() if id(p) not in ids]},
        {"params": gal, "rank": 4, "update_proj_gap": 50, "scale": 1.0, "proj_type": "std"},
    ]
    peer_opt = GaLoreAdamW(groups, no_deprecation_warning=True)
    train(ours, opt, data)
    train(peer, peer_opt, data)
    peer_held = [t for _, t in held_tensors(peer_opt, skip={id(p) for p in peer.parameters()})]
    peer_proj = [t for path, t in held_tensors(peer_opt.state, skip=set()) if path.endswith(".ortho_matrix")]
    assert peer_proj, "galore-torch's projector is an object in state['projector']: its ortho_matrix is found"
    mine = opt.bytes_by_category()
    assert mine["moments_bytes"] == storage_bytes(
        [t for path, t in held_tensors(peer_opt.state, skip=set()) if path.endswith("exp_avg") or path.endswith("_sq")]
    )
    # rank 4 of a 32-wide factor: galore-torch keeps the whole 32x32 (or 64x32) factor alive through the view
    assert storage_bytes(peer_proj) > mine["projectors_bytes"] == sum(p.numel() for p in peer_proj) * 4
    assert sum(mine.values()) < storage_bytes(peer_held)
