"""memarena's KV-compression methods against NVIDIA kvpress's presses, on the same weights and windows, in one run.

The same weights (the trained fixture, or ``--random-weights``: a seeded
random ByteLlama) go into memarena's :class:`~memarena.models.ByteLlama`
and into transformers' ``LlamaForCausalLM`` (the logits of the two full
caches are checked equal first). On held-out windows of the stdlib corpus
(``context`` bytes, then a ``continuation``), each pair below prefills the
context, compressing it, then scores the continuation on the compressed
cache. Per method it prints:

* **kept**: per layer and key/value head, the token set each side kept
  (read back from the caches: a kept row is matched exactly to its row in
  the full cache), their Jaccard index and the fraction of heads whose sets
  are equal; for ThinK the kept key-channel sets;
* **quality**: bits/byte of the continuation and KL(full || method) of the
  next-byte distributions, each side against its own full cache;
* **bytes**: memarena's measured cache bytes vs the storage bytes of
  kvpress's cache tensors (and the same at fp16: the HF model runs in
  float32, so its cache is float32);
* **time**: median prefill time (the decoder body, no LM head, as kvpress's
  pipeline prefills), one thread on both sides, the sides alternating
  repeat by repeat, and memarena/kvpress.

Pairs (memarena method <-> kvpress press): ``full`` <-> no press;
``knorm`` <-> ``KnormPress``; ``streaming_llm`` <-> ``StreamingLLMPress``;
``snapkv`` <-> ``SnapKVPress``; ``think`` <-> ``ThinKPress`` (kvpress zeroes
the pruned channels: no byte saved); ``h2o`` <-> ``ObservedAttentionPress``
(prefill-time H2O; eager attention); ``kivi`` <-> transformers'
``QuantizedCache`` with the HQQ backend (the quanto backend JIT-compiles a
C++ extension and needs ninja; HQQ runs in plain torch but is not a
dependency: put the ``hqq`` package on the path, else the row says so).
A pair whose memarena method is not registered is skipped with a note.

Run::

    PYTHONPATH=python python benchmarks/kvcache_vs_kvpress.py [--random-weights] [--windows 4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn import functional as F

from memarena.families.kvcache import KV_COMPRESSIONS, CacheSpec, KVCache
from memarena.models import ByteLlama, hf_config, to_hf_state_dict

METHODS = {cls.name: cls for cls in KV_COMPRESSIONS}


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


def load_models(random_weights: bool, seed: int = 0) -> tuple[ByteLlama, Any, Any, str]:
    """``(ours, hf_sdpa, hf_eager, which)``: the same weights in ByteLlama and in two LlamaForCausalLM."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if random_weights:
        torch.manual_seed(seed)
        ours, which = ByteLlama().eval(), f"random (seed {seed})"
    else:
        from memarena.models import load_fixture

        ours, which = load_fixture(), "fixture"
    hfs = []
    for impl in ("sdpa", "eager"):
        cfg = LlamaConfig(**hf_config(ours.cfg))
        cfg._attn_implementation = impl
        hf = LlamaForCausalLM(cfg).eval()
        missing, unexpected = hf.load_state_dict(to_hf_state_dict(ours), strict=False)
        if [k for k in missing if "rotary" not in k] or unexpected:
            raise RuntimeError(f"state dict mismatch: missing {missing}, unexpected {unexpected}")
        hfs.append(hf)
    return ours, hfs[0], hfs[1], which


# ---------------------------------------------------------------------------
# Pairs
# ---------------------------------------------------------------------------


def _config_value(method: Any, *needles: str) -> Any:
    """The first field of ``method.config`` whose name contains every needle (None if none)."""
    for f in dataclasses.fields(method.config):
        if all(n in f.name for n in needles):
            return getattr(method.config, f.name)
    return None


@dataclass
class Pair:
    name: str
    #: kvpress's press, or None (no press: the full cache, or the quantized cache).
    press: Callable[[Any, float], Any] | None
    #: compare kept token sets ("tokens"), kept key channels ("channels") or nothing.
    kept: str = "tokens"
    eager: bool = False
    quantized: bool = False
    #: memarena's parameters set to kvpress's definition where a choice exists.
    ours_params: dict[str, Any] = field(default_factory=dict)
    #: why the definitions differ (printed with the row).
    notes: list[str] = field(default_factory=list)


def _pairs() -> list[Pair]:
    from kvpress import KnormPress, ObservedAttentionPress, SnapKVPress, StreamingLLMPress, ThinKPress

    def snapkv(m: Any, b: float) -> Any:
        window = _config_value(m, "window") or 64
        kernel = _config_value(m, "kernel") or _config_value(m, "pool") or 5
        return SnapKVPress(compression_ratio=1 - b, window_size=int(window), kernel_size=int(kernel))

    def streaming(m: Any, b: float) -> Any:
        return StreamingLLMPress(compression_ratio=1 - b, n_sink=int(_config_value(m, "sink") or 4))

    def think(m: Any, b: float) -> Any:
        ratio = _config_value(m, "pruning_ratio")
        window = _config_value(m, "window") or 32
        return ThinKPress(key_channel_compression_ratio=float(ratio if ratio is not None else 0.5), window_size=window)

    return [
        Pair("full", None, kept="none"),
        Pair("knorm", lambda m, b: KnormPress(compression_ratio=1 - b)),
        Pair(
            "streaming_llm",
            streaming,
            notes=["memarena re-indexes positions inside the cache (the paper); kvpress keeps the original ones"],
        ),
        Pair(
            "snapkv",
            snapkv,
            ours_params={"pooling": "avg"},
            notes=["memarena's pooling set to kvpress's (avg); window 32 and kernel 7 given to SnapKVPress"],
        ),
        Pair(
            "think",
            think,
            kept="channels",
            notes=["kvpress zeroes pruned key channels: its cache keeps every byte"],
        ),
        Pair(
            "h2o",
            lambda m, b: ObservedAttentionPress(compression_ratio=1 - b),
            eager=True,
            notes=[
                "ObservedAttention keeps the highest mean attention (sum / number of queries that saw the key), "
                "no recent window; H2O keeps heavy hitters by summed attention plus a recent window"
            ],
        ),
        Pair(
            "kivi",
            None,
            kept="none",
            quantized=True,
            notes=[
                "QuantizedCache(hqq): HQQ's optimized quantizer, one axis for K and V, the whole prefill quantized "
                "(no residual at prefill), re-quantized every R tokens; KIVI: keys per channel in groups of G "
                "tokens, values per token, min-max, a full-precision residual"
            ],
        ),
    ]


# ---------------------------------------------------------------------------
# Running one side
# ---------------------------------------------------------------------------


@dataclass
class SideResult:
    logits: torch.Tensor  # [L, vocab]: next-byte logits over the continuation
    kept: list[list[set[int]]] | None  # [layer][head] kept token (or channel) indices
    cache_bytes: int
    cache_fp16_bytes: int
    prefill_s: list[float]
    #: kvpress side: per layer, the float32 keys [n_kv_heads, n, d] before the press compressed them.
    full_keys: dict[int, torch.Tensor] = field(default_factory=dict)


def _rows(t: torch.Tensor) -> list[bytes]:
    return [r.numpy().tobytes() for r in t.contiguous()]


def _match_rows(kept: torch.Tensor, full: torch.Tensor) -> set[int]:
    index = {r: i for i, r in enumerate(_rows(full))}
    out = set()
    for r in _rows(kept):
        if r not in index:
            raise RuntimeError("a kept row matches no row of the full cache")
        out.add(index[r])
    return out


def run_ours(
    model: ByteLlama,
    method_name: str,
    budget: float,
    ctx: torch.Tensor,
    cont: torch.Tensor,
    repeats: int,
    params: dict[str, Any] | None = None,
) -> tuple[SideResult, Held]:
    method = METHODS[method_name](**(params or {}))
    spec = CacheSpec.of(model.cfg, model.rope)
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            cache = method.new_cache(spec, budget)
            t0 = time.perf_counter()
            h = model.hidden(ctx, cache)
            times.append(time.perf_counter() - t0)
        prefill_bytes = cache.total_bytes()
        held = snapshot(cache)
        last = model.lm_head(h[0, -1:])
        rest = model(cont[:, :-1], cache)[0]
    return SideResult(torch.cat([last, rest]).float(), None, prefill_bytes, prefill_bytes, times), held


Held = list[list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]]


def snapshot(cache: KVCache) -> Held:
    """Per layer and head, the keys and kept channels a cache holds (after the prefill)."""
    out: Held = []
    for layer in cache.layers:
        heads = []
        for s in layer.heads:  # type: ignore[attr-defined]
            kk, vv, chan = s.read()
            # ThinK's store reads back full width (zeros in the pruned channels) while it holds full-width rows
            chans = getattr(s, "channels", None)
            heads.append((kk, vv, chan if chans is None else chans.long()))
        out.append(heads)
    return out


def _match_kv(kk: torch.Tensor, vv: torch.Tensor, kf: torch.Tensor, vf: torch.Tensor, rope: Any) -> set[int]:
    """Full-cache indices of kept rows ``kk``, ``vv``, by nearest value (values are never re-rotated; a method
    that needs attention probabilities runs the per-head path, whose rounding differs from the full cache's SDPA
    in the last bits, so rows of layers > 0 may differ by an fp16 ulp); ties between equal values (layer 0: a
    byte's value is the same wherever it occurs) by nearest key, or, when no key is near (StreamingLLM re-indexed
    the positions), by the key rotated back to the candidate's position. In layer 0 under re-indexing, two
    occurrences of a byte are the same row and cannot be told apart: the match then takes the first."""
    out = set()
    dv = (vv.float()[:, None, :] - vf.float()[None]).abs().amax(-1)  # [kept, full]
    for i in range(vv.shape[0]):
        cands = (dv[i] <= dv[i].min() + 1e-3).nonzero().flatten().tolist()
        if len(cands) > 1:
            dk = (kk[i].float() - kf[cands].float()).abs().amax(-1)
            if float(dk.min()) <= 1e-2:
                cands = [cands[int(dk.argmin())]]
            else:
                err = torch.stack(
                    [(rope.rotate(kk[i : i + 1], torch.tensor([p - i])) - kf[p]).abs().max() for p in cands]
                )
                cands = [cands[int(err.argmin())]]
        out.add(cands[0])
    return out


def ours_kept(held: Held, full: Held, what: str, rope: Any = None) -> list[list[set[int]]]:
    out = []
    for layer, full_layer in zip(held, full, strict=True):
        heads = []
        for (kc, vc, chan), (kf, vf, _) in zip(layer, full_layer, strict=True):
            if what == "channels":
                heads.append(set(range(kc.shape[1])) if chan is None else {int(c) for c in chan})
            else:
                heads.append(_match_kv(kc, vc, kf, vf, rope))
        out.append(heads)
    return out


class _Snapshot:
    """A forward hook registered before kvpress's: the layer's full keys before the press compresses them."""

    def __init__(self, hf: Any) -> None:
        self.hf = hf
        self.keys: dict[int, torch.Tensor] = {}
        self.handles: list[Any] = []

    def __enter__(self) -> _Snapshot:
        for i, layer in enumerate(self.hf.model.layers):

            def hook(module: Any, args: Any, kwargs: dict[str, Any], output: Any, i: int = i) -> None:
                self.keys[i] = kwargs["past_key_values"].layers[i].keys[0].clone()

            self.handles.append(layer.self_attn.register_forward_hook(hook, with_kwargs=True))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()


def _tensors(x: Any) -> Iterator[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, list | tuple):
        for y in x:
            yield from _tensors(y)
    elif isinstance(x, dict):
        for y in x.values():
            yield from _tensors(y)


def hf_cache_bytes(cache: Any) -> tuple[int, int]:
    """Storage bytes of every tensor the cache's layers hold, and the same with float32 tensors counted at fp16."""
    seen: set[int] = set()
    total = fp16 = 0
    for layer in cache.layers:
        for name in ("keys", "values", "_quantized_keys", "_quantized_values"):
            for t in _tensors(getattr(layer, name, None)):
                ptr = t.untyped_storage().data_ptr()
                if ptr in seen or t.numel() == 0:
                    continue
                seen.add(ptr)
                n = t.untyped_storage().nbytes()
                total += n
                fp16 += n // 2 if t.dtype == torch.float32 else n
    return total, fp16


def new_hf_cache(hf: Any, quantized: bool) -> Any:
    from transformers import DynamicCache, QuantizedCache

    if quantized:
        return QuantizedCache(backend="hqq", config=hf.config, nbits=2, q_group_size=32, residual_length=128)
    return DynamicCache()


def run_kvpress(
    hf: Any, press: Any, quantized: bool, ctx: torch.Tensor, cont: torch.Tensor, repeats: int, what: str
) -> SideResult:
    ctx_len = ctx.shape[1]
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            cache = new_hf_cache(hf, quantized)
            pressed: AbstractContextManager[Any] = press(hf) if press is not None else nullcontext()
            with pressed:
                t0 = time.perf_counter()
                h = hf.model(input_ids=ctx, past_key_values=cache).last_hidden_state
                times.append(time.perf_counter() - t0)
        kept = None
        full_keys: dict[int, torch.Tensor] = {}
        if what != "none":
            snap = _Snapshot(hf)
            cache = new_hf_cache(hf, quantized)
            pressed = press(hf) if press is not None else nullcontext()
            with snap, pressed:
                h = hf.model(input_ids=ctx, past_key_values=cache).last_hidden_state
            kept, full_keys = [], snap.keys
            for i, layer in enumerate(cache.layers):
                k = layer.keys[0]
                if what == "channels":
                    kept.append(
                        [{int(c) for c in (k[h_].abs().sum(0) != 0).nonzero().flatten()} for h_ in range(len(k))]
                    )
                else:
                    kept.append([_match_rows(k[h_], snap.keys[i][h_]) for h_ in range(len(k))])
        nbytes, fp16 = hf_cache_bytes(cache)
        last = hf.lm_head(h[0, -1:])
        pos = torch.arange(ctx_len, ctx_len + cont.shape[1] - 1)[None]
        rest = hf(input_ids=cont[:, :-1], past_key_values=cache, position_ids=pos).logits[0]
    return SideResult(torch.cat([last, rest]).float(), kept, nbytes, fp16, times, full_keys)


def time_prefills(
    model: ByteLlama,
    method_name: str,
    budget: float,
    hf: Any,
    press: Any,
    quantized: bool,
    ctx: torch.Tensor,
    repeats: int,
    params: dict[str, Any] | None = None,
) -> tuple[list[float], list[float]]:
    """Prefill times ``(memarena, kvpress)`` in seconds, the two sides alternating (each first every other
    repeat) so that a change in the machine's load reaches both alike."""
    method = METHODS[method_name](**(params or {}))
    spec = CacheSpec.of(model.cfg, model.rope)

    def ours() -> float:
        cache = method.new_cache(spec, budget)
        t0 = time.perf_counter()
        model.hidden(ctx, cache)
        return time.perf_counter() - t0

    def kvp() -> float:
        cache = new_hf_cache(hf, quantized)
        with press(hf) if press is not None else nullcontext():
            t0 = time.perf_counter()
            hf.model(input_ids=ctx, past_key_values=cache)
            return time.perf_counter() - t0

    t_ours: list[float] = []
    t_kvp: list[float] = []
    with torch.inference_mode():
        for r in range(repeats):
            if r % 2:
                t_kvp.append(kvp())
                t_ours.append(ours())
            else:
                t_ours.append(ours())
                t_kvp.append(kvp())
    return t_ours, t_kvp


# ---------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------


def bits_per_byte(logits: torch.Tensor, cont: torch.Tensor) -> float:
    return float(F.cross_entropy(logits, cont[0], reduction="mean")) / math.log(2)


def kl_to_full(full: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean over positions of KL(full || method), nats."""
    lp, lq = F.log_softmax(full, -1), F.log_softmax(logits, -1)
    return float((lp.exp() * (lp - lq)).sum(-1).mean())


def agreement(a: list[list[set[int]]], b: list[list[set[int]]]) -> tuple[float, float]:
    """(mean Jaccard, fraction of (layer, head) sets exactly equal)."""
    jac, eq = [], []
    for la, lb in zip(a, b, strict=True):
        for sa, sb in zip(la, lb, strict=True):
            jac.append(len(sa & sb) / max(1, len(sa | sb)))
            eq.append(sa == sb)
    return statistics.fmean(jac), statistics.fmean(eq)


def knorm_tie_gap(ours: list[list[set[int]]], kvp: list[list[set[int]]], keys: dict[int, torch.Tensor]) -> float:
    """Largest relative key-norm gap between a token only one side kept and one only the other kept (0: none).

    Near 0 means the sets differ only among tokens whose key norms tie up to float rounding: in layer 0 every
    occurrence of a byte has the same pre-RoPE key, so its norm ties exactly in real arithmetic and each side's
    choice among the tied tokens is decided by the rounding of its own rotation.
    """
    gap = 0.0
    for i, (lo, lk) in enumerate(zip(ours, kvp, strict=True)):
        for h, (so, sk) in enumerate(zip(lo, lk, strict=True)):
            if so == sk:
                continue
            norms = torch.linalg.vector_norm(keys[i][h].double(), dim=-1)
            a, b = norms[sorted(so - sk)], norms[sorted(sk - so)]
            gap = max(gap, float((a.max() - b.min()).abs().max() / b.min()), float((b.max() - a.min()).abs() / a.min()))
    return gap


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages."""
    from pathlib import Path

    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def hqq_available() -> bool:
    try:
        import hqq  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--random-weights", action="store_true", help="a seeded random ByteLlama, not the fixture")
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--context", type=int, default=960, help="context bytes prefilled and compressed")
    ap.add_argument("--continuation", type=int, default=64, help="bytes scored on the compressed cache")
    ap.add_argument("--budget", type=float, default=0.5, help="fraction of context tokens kept")
    ap.add_argument("--repeats", type=int, default=5, help="timed prefills per window and side")
    ap.add_argument("--methods", default="", help="comma-separated subset of the pairs")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from memarena.models.corpus import load_corpus

    ours, hf, hf_eager, which = load_models(args.random_weights, args.seed)
    length = args.context + args.continuation
    if length > ours.cfg.max_seq_len:
        raise SystemExit(f"--context + --continuation = {length} exceeds the model's {ours.cfg.max_seq_len}")
    windows = load_corpus("heldout").windows(args.windows, length, seed=args.seed)
    seqs = [torch.tensor(list(w), dtype=torch.long)[None] for w in windows]

    wanted = {m for m in args.methods.split(",") if m}
    pairs = [p for p in _pairs() if not wanted or p.name in wanted]
    print(
        f"weights: {which}; {len(seqs)} held-out windows of {args.context}+{args.continuation} bytes; "
        f"budget {args.budget}; {args.threads} thread(s); {args.repeats} timed prefills per window; "
        f"loadavg {loadavg()}; cpus {os.cpu_count()}"
    )
    # the two models agree on the full cache
    with torch.inference_mode():
        diff = float((ours(seqs[0]) - hf(seqs[0]).logits).abs().max())
    print(f"max |logit diff| memarena vs transformers, no cache: {diff:.2e}")

    header = (
        f"{'method':<14} {'jaccard':>7} {'equal':>6} | {'bpb ours':>8} {'bpb kvp':>8} | {'KL ours':>8} "
        f"{'KL kvp':>8} | {'bytes ours':>10} {'bytes kvp':>10} {'kvp@fp16':>9} | {'pre ours s':>10} "
        f"{'pre kvp s':>9} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    full_ours: list[tuple[torch.Tensor, Held]] = []
    full_kvp: list[torch.Tensor] = []
    for pair in pairs:
        if pair.name not in METHODS:
            print(f"{pair.name:<14} skipped: memarena has no kv_compression={pair.name} registered yet")
            continue
        if pair.quantized and not hqq_available():
            print(f"{pair.name:<14} skipped: transformers' QuantizedCache needs hqq (or optimum-quanto + ninja)")
            continue
        method = METHODS[pair.name](**pair.ours_params)
        jac, eq, bo, bk, ko, kk, by_o, by_k, by_k16, to, tk, tie_gap = ([] for _ in range(12))
        for w, seq in enumerate(seqs):
            ctx, cont = seq[:, : args.context], seq[:, args.context :]
            res_o, held_o = run_ours(ours, pair.name, args.budget, ctx, cont, 1, pair.ours_params)
            press = pair.press(method, args.budget) if pair.press is not None else None
            model = hf_eager if pair.eager else hf
            res_k = run_kvpress(model, press, pair.quantized, ctx, cont, 1, pair.kept)
            t_ours, t_kvp = time_prefills(
                ours, pair.name, args.budget, model, press, pair.quantized, ctx, args.repeats, pair.ours_params
            )
            if pair.name == "full":
                full_ours.append((res_o.logits, held_o))
                full_kvp.append(res_k.logits)
            if pair.kept != "none" and res_k.kept is not None and full_ours:
                j, e = agreement(ours_kept(held_o, full_ours[w][1], pair.kept, ours.rope), res_k.kept)
                jac.append(j)
                eq.append(e)
                if pair.name == "knorm":
                    tie_gap.append(
                        knorm_tie_gap(
                            ours_kept(held_o, full_ours[w][1], "tokens", ours.rope), res_k.kept, res_k.full_keys
                        )
                    )
            bo.append(bits_per_byte(res_o.logits, cont))
            bk.append(bits_per_byte(res_k.logits, cont))
            if full_ours:
                ko.append(kl_to_full(full_ours[w][0], res_o.logits))
                kk.append(kl_to_full(full_kvp[w], res_k.logits))
            by_o.append(res_o.cache_bytes)
            by_k.append(res_k.cache_bytes)
            by_k16.append(res_k.cache_fp16_bytes)
            to.extend(t_ours)
            tk.extend(t_kvp)

        def m(xs: list[float]) -> str:
            return f"{statistics.fmean(xs):.4f}" if xs else "-"

        t_o, t_k = statistics.median(to), statistics.median(tk)
        print(
            f"{pair.name:<14} {m(jac):>7} {m(eq):>6} | {m(bo):>8} {m(bk):>8} | {m(ko):>8} {m(kk):>8} | "
            f"{statistics.fmean(by_o):>10.0f} {statistics.fmean(by_k):>10.0f} {statistics.fmean(by_k16):>9.0f} | "
            f"{t_o:>10.4f} {t_k:>9.4f} {t_o / t_k:>6.2f}"
        )
        if tie_gap:
            print(
                f"{'':<14} note: where the kept sets differ, the swapped tokens' key norms differ by at most "
                f"{max(tie_gap):.1e} (relative): ties up to rounding (layer 0: a byte's key norm is the same "
                "wherever it occurs), broken by each side's own rotation rounding"
            )
        for note in pair.notes:
            print(f"{'':<14} note: {note}")
    print(f"loadavg after: {loadavg()}")


if __name__ == "__main__":
    main()
