"""Locret: eviction order from given CIS, chunked prefill, budgets, exact bytes, labels, the packaged heads."""

from __future__ import annotations

import torch

from memarena.families.kvcache import CacheSpec, held_tensors, storage_bytes
from memarena.families.kvcache.locret_train import features_and_labels, loss_of
from memarena.families.kvcache.methods import FullCache, Locret
from memarena.families.kvcache.methods.budgets import tokens_for
from memarena.families.kvcache.methods.locret import (
    HEADS_FILE,
    RetainingHeads,
    _heads_path,
    evict_by_cis,
    load_retaining_heads,
)
from memarena.families.kvcache.prefill import prefill
from memarena.models import ByteLlama

torch.set_num_threads(1)


def random_model() -> ByteLlama:
    torch.manual_seed(0)
    return ByteLlama().eval()


MODEL = random_model()
SPEC = CacheSpec.of(MODEL.cfg, MODEL.rope)


def heads(seed: int = 1) -> RetainingHeads:
    torch.manual_seed(seed)
    return RetainingHeads.for_spec(SPEC, 16).requires_grad_(False)


class GivenCIS(RetainingHeads):
    """Retaining heads whose CIS for the t-th token a layer scores is ``table[t]`` (every head)."""

    def __init__(self, table: list[float]) -> None:
        super().__init__(SPEC.n_layers, SPEC.n_heads, SPEC.n_kv_heads, SPEC.head_dim, 1)
        self.table = torch.tensor(table)
        self.done = [0] * SPEC.n_layers

    def forward(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[0]
        out = self.table[self.done[layer] : self.done[layer] + t]
        self.done[layer] += t
        return out[:, None].expand(t, SPEC.n_kv_heads)


def test_evict_by_cis_by_hand() -> None:
    cis = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.2, 0.05])
    assert evict_by_cis(cis, 3, 1).tolist() == [0, 2, 5]  # the last row, then 0.9 and 0.5
    assert evict_by_cis(cis, 3, 0).tolist() == [0, 2, 3]
    assert evict_by_cis(cis, 2, 4).tolist() == [4, 5]  # more protected than kept: the last ones
    assert evict_by_cis(cis, 8, 1).tolist() == list(range(6))


def test_chunked_prefill_evicts_in_cis_order() -> None:
    table = [9, 1, 8, 2, 7, 3, 6, 4, 5, 0, 10, 0.5]
    method = Locret(heads=GivenCIS(table), stabilizer_tokens=2, local_tokens=1)
    cache = method.new_cache(SPEC, 0.5)
    torch.manual_seed(4)
    tokens = torch.randint(0, 256, (12,))
    prefill(MODEL, tokens, cache, 4)
    # chunk 1 (rows 0-3): 4 <= 6 kept. chunk 2 (rows 4-7): stabilizers 6, 7, then CIS 9, 8, 7, 3 -> {0,2,4,5,6,7}.
    # chunk 3, the last (rows 8-11): the local row 11, then CIS 10, 9, 8, 7, 6 -> {0,2,4,6,10,11}.
    kept = [0, 2, 4, 6, 10, 11]
    full = FullCache().new_cache(SPEC, 1.0)
    prefill(MODEL, tokens, full)
    for h in range(SPEC.n_kv_heads):  # layer 0's keys depend only on the token and its position
        k, v, _ = cache.layers[0].heads[h].read()
        kf, vf, _ = full.layers[0].heads[h].read()
        assert torch.allclose(k, kf[kept], atol=1e-3)
        assert torch.allclose(v, vf[kept], atol=1e-3)
    assert cache.tokens_held() == [[6, 6]] * SPEC.n_layers


def test_chunked_prefill_with_budget_one_is_the_full_cache() -> None:
    torch.manual_seed(5)
    tokens = torch.randint(0, 256, (150,))
    method = Locret(heads=heads())
    cache = method.new_cache(SPEC, 1.0)
    logits = prefill(MODEL, tokens, cache, method.prefill_chunk_tokens)
    full = FullCache().new_cache(SPEC, 1.0)
    full_logits = prefill(MODEL, tokens, full)
    assert logits.shape == full_logits.shape == (1, 150, 256)
    assert torch.allclose(logits, full_logits, atol=1e-3)
    for layer, ref in zip(cache.layers, full.layers, strict=True):
        for s, r in zip(layer.heads, ref.heads, strict=True):
            assert torch.allclose(s.read()[0], r.read()[0], atol=2e-3)


def test_budget_per_head_and_exact_bytes() -> None:
    torch.manual_seed(6)
    tokens = torch.randint(0, 256, (200,))
    method = Locret(heads=heads())
    weights = {p.untyped_storage().data_ptr() for p in method.heads.parameters()}
    for budget in (0.1, 0.25, 0.5):
        n_keep = tokens_for(budget, 200)
        cache = method.new_cache(SPEC, budget)
        cache.begin_prefill(200)
        with torch.no_grad():
            MODEL(tokens[None, :64], cache)  # mid-prefill: CIS held for the rows kept
        assert cache.nbytes()["scores"] == sum(len(s) * 2 for layer in cache.layers for s in layer.heads)
        for s in range(64, 200, 64):
            with torch.no_grad():
                MODEL(tokens[None, s : s + 64], cache)
            assert all(t <= n_keep for layer in cache.tokens_held() for t in layer)
        assert cache.tokens_held() == [[n_keep, n_keep]] * SPEC.n_layers
        with torch.no_grad():
            for i in range(3):
                MODEL(torch.tensor([[i]]), cache)
        assert cache.tokens_held() == [[n_keep + 3] * 2] * SPEC.n_layers  # decoding appends
        held = held_tensors(cache)
        per_sequence = [t for t in held if t.untyped_storage().data_ptr() not in weights]
        model_state = [t for t in held if t.untyped_storage().data_ptr() in weights]
        assert cache.total_bytes() == sum(storage_bytes(t) for t in per_sequence)
        assert sum(storage_bytes(t) for t in model_state) == method.model_bytes()


def test_labels_are_the_max_attention_of_later_queries() -> None:
    torch.manual_seed(7)
    window = torch.randint(0, 256, (24,))
    n_context = 16
    (x, label), *_ = features_and_labels(MODEL, SPEC, window, n_context)
    # layer 0 by hand: RMSNorm, projections, RoPE, causal softmax
    body = MODEL.model
    h = body.layers[0].input_layernorm(body.embed_tokens(window[None]))[0]
    attn = body.layers[0].self_attn
    d, g = SPEC.head_dim, SPEC.group_size
    pos = torch.arange(24)
    q = MODEL.rope.rotate(attn.q_proj(h).view(24, -1, d).transpose(0, 1), pos)
    k = MODEL.rope.rotate(attn.k_proj(h).view(24, -1, d).transpose(0, 1), pos)
    s = (q @ k.repeat_interleave(g, 0).transpose(1, 2)) / d**0.5
    p = torch.softmax(s.masked_fill(torch.ones(24, 24, dtype=torch.bool).triu(1), float("-inf")), -1)
    want = p[:, n_context:, :n_context].view(SPEC.n_kv_heads, g, -1, n_context).amax(dim=(1, 2)).T
    assert torch.allclose(label, want, atol=1e-5)
    # the heads' input: every head's pre-RoPE query, key, value
    v = attn.v_proj(h)
    assert torch.allclose(x, torch.cat([attn.q_proj(h), attn.k_proj(h), v], dim=-1)[:n_context], atol=1e-4)


def test_training_reduces_the_loss() -> None:
    torch.manual_seed(8)
    batch = features_and_labels(MODEL, SPEC, torch.randint(0, 256, (48,)), 32)
    batch = [(x, y * 100) for x, y in batch]  # a target of visible scale for the random model
    hd = RetainingHeads.for_spec(SPEC, 16)
    opt = torch.optim.AdamW(hd.parameters(), lr=5e-3)
    first = loss_of(hd, batch).item()
    for _ in range(30):
        loss = loss_of(hd, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss_of(hd, batch).item() < 0.5 * first


def test_packaged_heads_are_small_and_match_the_fixture_shape() -> None:
    path = _heads_path()
    assert path.is_file(), f"{HEADS_FILE} is missing: python -m memarena.families.kvcache.locret_train"
    assert len(path.read_bytes()) < 200_000
    hd, meta = load_retaining_heads()
    assert hd.shape["n_layers"] == SPEC.n_layers and hd.shape["n_kv_heads"] == SPEC.n_kv_heads
    assert {"model", "model_sha256", "steps", "command", "heldout"} <= set(meta)
    assert Locret().model_bytes() == sum(p.numel() * 4 for p in hd.parameters())
