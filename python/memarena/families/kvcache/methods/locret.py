"""Locret: trained retaining heads score each token's causal importance; chunked prefill under a fixed budget.

Huang, Yuan, Han, Xiao, Liu, "Locret: Enhancing Eviction in Long-Context
LLM Inference with Trained Retaining Heads", arXiv:2410.01805 (2024), and
the authors' code (github.com/huangyuxiang03/Locret):

    "Locret is a light-weight training-based KV cache eviction method [...]
    conducted by chunked prefill along with cache eviction."

* **Retaining heads.** Per layer, a small MLP over the concatenated
  queries, keys and values of a token (all heads, before RoPE: the code's
  ``fc2(act(fc1(cat(q, k, v))))`` on the projections) gives one causal
  importance score (CIS) per key/value head. Trained with the model frozen
  (:mod:`memarena.families.kvcache.locret_train`) to predict, for every
  context token, the largest attention any later query gives it in a
  full-attention run (max over the query heads of the group and over the
  queries that follow the context: the code's labels).
* **Chunked prefill with eviction.** The context goes in chunks of
  :attr:`Locret.prefill_chunk_tokens`; after each chunk every head keeps
  the ``n_keep`` rows of highest CIS, where the last ``stabilizer_tokens``
  rows are always kept (the "stabilizers": the code's ``sc[:, -stabilizers:]
  = max`` on every chunk but the last). The CIS of the rows kept is kept
  with them (category ``scores``), since later chunks compete with them.
* **Decoding** appends without eviction (as the code does); the CIS are
  freed once the prompt is in.

Differences from the code: the budget is ``round(budget x context tokens)``
per head (the code takes a fixed ``budget_size``); the code prefills the
last ``local_len`` context tokens without eviction on top of the budget,
here the last chunk keeps its last ``local_tokens`` rows *within* the
budget (held rows never exceed the budget); keys and queries reach the
layer rotated and are rotated back (exactly, up to float rounding) to the
pre-RoPE inputs the heads take. The heads' weights are model state, not
per-sequence state: :meth:`Locret.model_bytes` reports them once per
model, and the cache's bytes leave them out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import KVCompression, param
from memarena.families.kvcache.cache import HeadStore, HeadwiseLayer, storage_bytes
from memarena.families.kvcache.methods.budgets import tokens_for
from memarena.families.kvcache.methods.selection import check_budget
from memarena.lazy import torch

if TYPE_CHECKING:
    from memarena.families.kvcache.methods.locret_heads import RetainingHeads
    from memarena.models.bytellama import CacheSpec

__all__ = [
    "HEADS_FILE",
    "Locret",
    "LocretLayer",
    "RetainingHeads",
    "evict_by_cis",
    "load_retaining_heads",
    "retaining_features",
]

#: The trained retaining heads inside the package (``torch.save``: fp16 state dict and ``meta``).
HEADS_FILE = "locret_heads.pt"


def retaining_features(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spec: CacheSpec, positions: torch.Tensor
) -> torch.Tensor:
    """A retaining head's input ``[T, (H + 2 H_kv) d]`` from the rotated ``q`` ``[H, T, d]``, ``k`` ``[H_kv, T, d]``
    (rotated back by ``positions``) and ``v``: per token, all heads' query, key and value, in that order."""
    qk = spec.rope.rotate(torch.cat([q, k]).float(), -positions)
    t = q.shape[1]
    return torch.cat([qk, v.float()]).transpose(0, 1).reshape(t, -1)


def evict_by_cis(cis: torch.Tensor, n_keep: int, n_protect: int) -> torch.Tensor:
    """The rows (sorted) to keep of ``cis`` ``[n]``: the last ``n_protect``, then the highest CIS, ``n_keep`` in all."""
    n = int(cis.shape[0])
    if n <= n_keep:
        return torch.arange(n)
    s = cis.float().clone()
    if n_protect:
        s[n - min(n_protect, n_keep) :] = float("inf")
    return torch.topk(s, n_keep).indices.sort().values


class LocretLayer(HeadwiseLayer):
    """One layer of Locret: CIS for the context's tokens, eviction to the budget after each chunk."""

    def __init__(
        self,
        spec: CacheSpec,
        layer: int,
        budget: float,
        heads: RetainingHeads,
        stabilizer_tokens: int,
        local_tokens: int,
        store: Callable[[int], HeadStore] | None = None,
    ) -> None:
        super().__init__(spec, layer, store)
        self.budget = budget
        self.retaining = heads  # model state (shared by every sequence): not in tensors()
        self.stabilizer_tokens = stabilizer_tokens
        self.local_tokens = local_tokens
        #: Context tokens (set by begin_prefill, else by the first forward) and rows kept per head.
        self.n_prefill: int | None = None
        self.n_keep: int | None = None
        #: Per head, the CIS of the rows it holds (spec dtype; freed after the context).
        self.cis: list[torch.Tensor] = [torch.empty(0, dtype=spec.dtype) for _ in range(spec.n_kv_heads)]

    def begin_prefill(self, n_tokens: int) -> None:
        self.n_prefill = n_tokens
        self.n_keep = tokens_for(self.budget, n_tokens)

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        t = int(k.shape[1])
        if self.n_prefill is None:  # no begin_prefill: the first forward is the whole context
            self.begin_prefill(self.seen + t)
        assert self.n_prefill is not None and self.n_keep is not None
        super().after_attention(q, k, v, probs)
        if self.seen >= self.n_prefill:  # decoding: append, no eviction
            return
        with torch.no_grad():
            x = retaining_features(q, k, v, self.spec, self.positions(t))
            cis = self.retaining(self.layer, x).to(self.spec.dtype)  # [T, n_kv]
        last = self.seen + t >= self.n_prefill
        n_protect = self.local_tokens if last else self.stabilizer_tokens
        for h, store in enumerate(self.heads):
            scores = torch.cat([self.cis[h], cis[:, h]])
            rows = evict_by_cis(scores, self.n_keep, n_protect)
            if len(rows) < len(store):
                store.keep(rows)
                scores = scores[rows]
            self.cis[h] = scores.clone()
        if last:
            self.cis = [torch.empty(0, dtype=self.spec.dtype) for _ in self.heads]

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield from super().tensors()
        for c in self.cis:
            yield "scores", c


def _heads_path() -> Any:
    return resources.files("memarena.families.kvcache").joinpath(HEADS_FILE)


@lru_cache(maxsize=1)
def _packaged_heads() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = _heads_path()
    if not path.is_file():
        raise FileNotFoundError(
            f"Locret's retaining heads ({HEADS_FILE}) are not in this install of memarena; "
            "train them with: python -m memarena.families.kvcache.locret_train"
        )
    with path.open("rb") as f:
        blob = torch.load(f, map_location="cpu", weights_only=True)
    return blob["state_dict"], blob["meta"]


def load_retaining_heads() -> tuple[RetainingHeads, dict[str, Any]]:
    """The packaged retaining heads (float32, eval mode) and their training card (``meta``)."""
    from memarena.families.kvcache.methods.locret_heads import RetainingHeads

    state, meta = _packaged_heads()
    heads = RetainingHeads(**meta["shape"])
    heads.load_state_dict({k: v.float() for k, v in state.items()})
    return heads.eval().requires_grad_(False), dict(meta)


class Locret(KVCompression):
    """Locret (Huang et al. 2024): trained retaining heads, chunked prefill evicting to a fixed budget."""

    name: ClassVar[str] = "locret"
    prefill_chunk_tokens: ClassVar[int | None] = 64

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.methods.locret.Locret"
        #: The last rows of each chunk kept whatever their CIS (all chunks but the last).
        stabilizer_tokens: int = param(32, ge=0)
        #: The last rows of the context kept whatever their CIS (the last chunk), within the budget.
        local_tokens: int = param(16, ge=0)

    def __init__(self, heads: RetainingHeads | None = None, **params: Any) -> None:
        super().__init__(**params)
        self._heads = heads

    @property
    def heads(self) -> RetainingHeads:
        """The retaining heads: those given, else the packaged ones (loaded once)."""
        if self._heads is None:
            self._heads = load_retaining_heads()[0]
        return self._heads

    def model_bytes(self) -> int:
        """Storage bytes of the retaining heads' weights: model state, once per model (not per sequence)."""
        return sum(storage_bytes(p) for p in self.heads.parameters())

    def new_layer(self, spec: CacheSpec, layer: int, budget: float) -> LocretLayer:
        check_budget(budget)
        shape = self.heads.shape
        want = {"n_layers": spec.n_layers, "n_heads": spec.n_heads, "n_kv_heads": spec.n_kv_heads}
        want["head_dim"] = spec.head_dim
        if any(shape[k] != v for k, v in want.items()):
            raise ValueError(f"Locret's retaining heads are for a model of shape {shape}, not {want}")
        return LocretLayer(spec, layer, budget, self.heads, self.stabilizer_tokens, self.local_tokens)


def __getattr__(name: str) -> Any:
    # PEP 562: RetainingHeads is an nn.Module (defining it imports torch), so it lives in locret_heads and
    # loads on first use; `from memarena.families.kvcache.methods.locret import RetainingHeads` still works.
    if name == "RetainingHeads":
        from memarena.families.kvcache.methods.locret_heads import RetainingHeads

        return RetainingHeads
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
