"""Activation policies: the same logits and gradients as plain autograd, and saved bytes that an independent walk
of what is really held agrees with, byte for byte."""

from __future__ import annotations

import gc
import math
from typing import Any

import pytest
import torch
import torch.utils.checkpoint

from memarena.families.training.accounting import Meter
from memarena.families.training.activations import Checkpoint, KeepAll, Memo
from memarena.families.training.activations.base import forward, parameter_storages
from memarena.models import ByteLlama, ByteLlamaConfig
from memarena.models.bytellama import TokenChunk

#: Two layers; head_dim (16) equals the tokens (16) to exercise the token-dimension rule.
CFG = ByteLlamaConfig(dim=32, n_layers=2, n_heads=2, n_kv_heads=1, ffn_dim=64, max_seq_len=64)
B, T = 2, 16


def model() -> ByteLlama:
    torch.manual_seed(0)
    return ByteLlama(CFG)


def tokens() -> torch.Tensor:
    return torch.randint(0, 256, (B, T + 1), generator=torch.Generator().manual_seed(3))


def loss_with(m: ByteLlama, policy: Any) -> tuple[torch.Tensor, Meter]:
    meter = Meter(parameter_storages(m))
    x = tokens()
    with meter.hooks():
        logits = forward(m, x[:, :-1], policy, meter)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1))
    return loss, meter


def graph_saved(root: Any, skip: set[int]) -> dict[tuple[Any, ...], torch.Tensor]:
    """Every tensor the autograd graph under ``root`` holds as saved (reading ``_saved_*``), by distinct view."""
    out: dict[tuple[Any, ...], torch.Tensor] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        for name in dir(node):
            if not name.startswith("_saved_"):
                continue
            try:
                v = getattr(node, name)
            except RuntimeError:
                continue
            for t in v if isinstance(v, tuple | list) else [v]:
                if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in skip:
                    key = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)
                    out[key] = t
        stack += [f for f, _ in node.next_functions]
    return out


def storage_bytes(tensors: Any) -> int:
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())


@pytest.mark.parametrize("policy", [KeepAll(), Checkpoint(), Memo(alpha=0.0), Memo(alpha=1.0)])
def test_same_logits_and_gradients_as_plain_autograd(policy: Any) -> None:
    ref = model()
    x = tokens()
    logits = ref(x[:, :-1])
    torch.nn.functional.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1)).backward()
    m = model()
    loss, _ = loss_with(m, policy)
    loss.backward()
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None and torch.equal(p.grad, q.grad), name


@pytest.mark.parametrize("alpha", [0.25, 0.5, 0.8])
def test_memo_split_into_two_chunks_gives_the_same_loss_and_gradients_within_float_rounding(alpha: float) -> None:
    """Two chunks sum the attention in another order than one: equal up to float32 rounding, not bit for bit."""
    ref = model()
    ref_loss, _ = loss_with(ref, KeepAll())
    ref_loss.backward()
    m = model()
    loss, _ = loss_with(m, Memo(alpha=alpha))
    loss.backward()
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=0)
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        assert p.grad is not None and q.grad is not None
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.parametrize("n", [0, 5, 16])
def test_a_layer_run_as_two_token_chunks_equals_the_whole_layer(n: int) -> None:
    """``TokenChunk``: chunk B (tokens n..) attending to chunk A's keys gives the layer's rows n.. and the gradients
    reach chunk A's keys and values through it."""
    layer = model().model.layers[0]
    x = torch.randn(B, T, CFG.dim, generator=torch.Generator().manual_seed(5))
    whole = layer(x, None)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    a = TokenChunk()
    out_a = layer(xa[:, :n], a)
    assert a.k is not None and a.v is not None and a.k.shape == (B, CFG.n_kv_heads, n, CFG.head_dim)
    out_b = layer(xb[:, n:], TokenChunk(start=n, past_k=a.k, past_v=a.v))
    torch.testing.assert_close(torch.cat([out_a, out_b], dim=1), whole, rtol=1e-6, atol=1e-6)
    ref = x.clone().requires_grad_()
    layer(ref, None)[:, n:].sum().backward()  # only the rows of chunk B: chunk A's rows reach them by attention
    out_b.sum().backward()
    assert xa.grad is not None and xb.grad is not None and ref.grad is not None
    torch.testing.assert_close(xa.grad + xb.grad, ref.grad, rtol=1e-5, atol=1e-6)
    assert n in (0, T) or xa.grad[:, :n].abs().sum() > 0  # the chunk-A rows got a gradient from chunk B


def test_none_counts_every_saved_storage_once() -> None:
    m = model()
    loss, meter = loss_with(m, KeepAll())
    walked = graph_saved(loss.grad_fn, parameter_storages(m))
    assert meter.activation_bytes == storage_bytes(walked.values()) > 0
    assert meter.host_activation_bytes == 0 and meter.transient == {}


def test_checkpoint_holds_the_layer_inputs_and_rematerialises_a_layer() -> None:
    m = model()
    _, plain = loss_with(m, KeepAll())
    gc.collect()
    loss, meter = loss_with(m, Checkpoint())
    frames = [o for o in gc.get_objects() if type(o) is torch.utils.checkpoint._CheckpointFrame]
    held = [t for f in frames for t in f.get_inputs() if isinstance(t, torch.Tensor)]
    assert len(frames) == CFG.n_layers and len(held) == CFG.n_layers
    layer_inputs = storage_bytes(held)
    assert layer_inputs == CFG.n_layers * B * T * CFG.dim * 4
    outside = sum(v for r, v in plain.device.items() if not r.startswith("layer"))
    assert meter.activation_bytes == outside + layer_inputs
    for i, layer in enumerate(m.model.layers):  # each layer's transient: what plain autograd saves in that layer
        leaf = torch.randn(B, T, CFG.dim, requires_grad=True)
        walked = graph_saved(layer(leaf, None).grad_fn, parameter_storages(m))
        assert meter.transient[f"layer{i}"] == storage_bytes(walked.values()) > layer_inputs // CFG.n_layers
    del loss


@pytest.mark.parametrize("alpha", [0.0, 0.25, 0.5, 1.0])
def test_memo_swaps_chunk_a_holds_the_input_and_rematerialises_chunk_b(alpha: float) -> None:
    m = model()
    layer = m.model.layers[0]
    skip = parameter_storages(m)
    x = torch.randn(B, T, CFG.dim, requires_grad=True)
    not_counted = skip | {x.untyped_storage().data_ptr()}
    # plain autograd's saved storages of the layer, read from its graph (the input a leaf, not counted): each has
    # one token dimension of T, so chunk A's (its first n tokens) are n / T of them
    plain = storage_bytes(graph_saved(layer(x, None).grad_fn, not_counted).values())
    n = math.ceil(alpha * T)
    assert plain * n % T == 0
    # what plain autograd saves running chunk B (chunk A's keys and values leaves): the recompute's set
    k, v = (torch.randn(B, CFG.n_kv_heads, n, CFG.head_dim, requires_grad=True) for _ in "kv")
    chunk_b = layer(x[:, n:], TokenChunk(start=n, past_k=k if n else None, past_v=v if n else None))
    recompute = storage_bytes(graph_saved(chunk_b.grad_fn, not_counted).values()) if n < T else 0
    meter = Meter(skip)
    with meter.hooks(), meter.enter("layer0"):
        out = Memo(alpha=alpha).run_layer(layer, x, meter, "layer0")
    assert meter.host.get("layer0", 0) == plain * n // T
    assert meter.device["layer0"] == x.untyped_storage().nbytes()  # the input only
    # backward holds the swapped-in copies and chunk B's recomputed tensors together
    assert meter.transient["layer0"] == plain * n // T + recompute
    out.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize(("alpha", "rows"), [(0.0, B * 16), (0.25, B * 12), (0.5, B * 8), (1.0, 0)])
def test_memo_recomputes_only_the_dropped_tokens(alpha: float, rows: int) -> None:
    """In backward (the recompute: the only forward then), every linear layer of a decoder layer sees the rows of
    the T - ceil(alpha * T) dropped tokens of each sequence, once: T = 16, B = 2."""
    m = model()
    loss, _ = loss_with(m, Memo(alpha=alpha))
    seen: dict[str, int] = {}
    linears = {n: mod for n, mod in m.model.layers.named_modules() if isinstance(mod, torch.nn.Linear)}
    assert len(linears) == CFG.n_layers * 7  # q, k, v, o; gate, up, down

    def count(name: str) -> Any:
        def hook(_mod: Any, args: tuple[torch.Tensor, ...]) -> None:
            seen[name] = seen.get(name, 0) + args[0].shape[:-1].numel()

        return hook

    handles = [mod.register_forward_pre_hook(count(n)) for n, mod in linears.items()]
    try:
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    assert seen == ({n: rows for n in linears} if rows else {})


def test_the_meter_counts_storages_not_saves_and_skips_parameters() -> None:
    w = torch.nn.Parameter(torch.ones(3, 4))
    a = torch.randn(5, 3, requires_grad=True)
    meter = Meter({w.untyped_storage().data_ptr()})
    with meter.hooks():
        y = (a * a).sum() + (a @ w).sum()  # mul saves a twice, mm saves a and w
    assert meter.activation_bytes == 5 * 3 * 4
    y.backward()


def test_the_step_trace_is_hand_computed() -> None:
    a = torch.randn(4, requires_grad=True)  # 16 B
    meter = Meter(set())
    a.register_post_accumulate_grad_hook(meter.grad_ready)
    with meter.hooks():
        meter.mark_input("r0", a)
        with meter.enter("r0"):
            h = a * a  # saves a once: 16 B
        meter.mark_input("r1", h)
        with meter.enter("r1"):
            out = (h * h).sum()  # saves h: 16 B
    assert meter.device == {"r0": 16, "r1": 16}
    meter.begin_backward({"parameters_bytes": 100})
    out.backward()
    meter.end_step()
    totals = [(label, sum(live.values())) for label, live in meter.trace.points]
    # r1 ends first (both activations still counted), then r0 (its 16 B only); a's gradient is live at the step
    assert totals == [("forward_end", 132), ("backward_r1", 132), ("backward_r0", 116), ("optimizer_step", 116)]
    assert meter.trace.peak() == ("forward_end", 132)
