"""The contract between the fixture model and a KV-compression method.

:class:`~memarena.models.ByteLlama` runs one sequence against a
:class:`KVCache`: in every layer it computes the queries, keys and values
of the new tokens (rotated by the positions the layer's cache gives) and
hands them to that layer's :class:`LayerCache`, which returns the attention
output and keeps whatever its method keeps. A method
(:class:`memarena.api.KVCompression`) builds one ``LayerCache`` per layer.

Most methods are two choices, and :class:`HeadwiseLayer` composes them:

* **what each key/value head stores**, a :class:`HeadStore`: fp16 rows
  (:class:`Fp16Store`), KIVI's bit-packed quantized groups, ThinK's
  compacted keys and channel indices ...;
* **which tokens stay**, decided in :meth:`HeadwiseLayer.after_attention`
  from the attention probabilities, queries and keys it is handed (H2O's
  accumulated attention, SnapKV's observation window, StreamingLLM's sinks
  and window, merges ...), by :meth:`HeadStore.keep` / :meth:`HeadStore.merge`.

Heads are stored separately, so budgets may differ per layer and per head
and every saving is real (ragged storage). **Bytes are the storage bytes of
the tensors a cache holds**: :meth:`LayerCache.tensors` names every tensor
with its category (:data:`CATEGORIES`), :meth:`LayerCache.nbytes` sums their
storages, and :func:`held_tensors` finds every tensor reachable from an
object so a test can prove nothing is left out (or over-allocated).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from memarena.lazy import F, torch

if TYPE_CHECKING:
    from memarena.models.bytellama import CacheSpec

__all__ = [
    "CATEGORIES",
    "Fp16Store",
    "HeadStore",
    "HeadwiseLayer",
    "KVCache",
    "LayerCache",
    "held_tensors",
    "storage_bytes",
]

#: Byte categories a cache reports; every held tensor is in exactly one.
CATEGORIES = (
    "payload",  # keys and values as stored (fp16 rows, packed codes, compacted keys)
    "quant_params",  # scales and zero points
    "residual",  # full-precision windows kept beside a compressed payload (KIVI's R tokens)
    "indices",  # positions, kept-channel indices, merge maps
    "masks",  # boolean masks
    "scores",  # state kept to decide later evictions (H2O's sums, Scissorhands' history)
    "aux",  # anything else a method holds per sequence
)


def storage_bytes(t: torch.Tensor) -> int:
    """Bytes of ``t``'s whole storage (a view of a bigger tensor counts all of it)."""
    return int(t.untyped_storage().nbytes())


def held_tensors(obj: Any) -> list[torch.Tensor]:
    """Every tensor reachable from ``obj`` through attributes, lists, tuples, dicts and sets, one per storage."""
    seen_obj: set[int] = set()
    seen_storage: set[int] = set()
    found: list[torch.Tensor] = []
    from memarena.models.bytellama import CacheSpec, Rope  # a torch module: imported where used

    def walk(x: Any) -> None:
        if isinstance(x, torch.Tensor):
            ptr = x.untyped_storage().data_ptr()
            key = ptr if ptr else id(x.untyped_storage())
            if key not in seen_storage:
                seen_storage.add(key)
                found.append(x)
            return
        if isinstance(x, str | bytes | int | float | bool | type(None) | torch.dtype | Rope | CacheSpec):
            return
        if id(x) in seen_obj:
            return
        seen_obj.add(id(x))
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list | tuple | set | frozenset):
            for v in x:
                walk(v)
        elif hasattr(x, "__dict__") or hasattr(x, "__slots__"):
            for v in getattr(x, "__dict__", {}).values():
                walk(v)
            for s in getattr(type(x), "__slots__", ()):
                if hasattr(x, s):
                    walk(getattr(x, s))

    walk(obj)
    return found


class LayerCache(abc.ABC):
    """One layer's KV cache of one sequence.

    :param spec: The model's shape.
    :param layer: This layer's index.
    """

    def __init__(self, spec: CacheSpec, layer: int) -> None:
        self.spec = spec
        self.layer = layer
        #: Tokens this layer has been handed so far (prefill and decoded).
        self.seen = 0

    def begin_prefill(self, n_tokens: int) -> None:
        """The context about to be prefilled has ``n_tokens`` tokens (called once, before the first forward, by
        :func:`memarena.families.kvcache.prefill.prefill`; a method that evicts during a chunked prefill needs
        the total to size its budget). Default: nothing."""
        return

    def positions(self, n_new: int) -> torch.Tensor:
        """Rotary positions of the next ``n_new`` tokens: their positions in the sequence (override to re-index)."""
        return torch.arange(self.seen, self.seen + n_new)

    @abc.abstractmethod
    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention of ``q`` ``[n_heads, T, d]`` over the cache and the new ``k``, ``v`` ``[n_kv_heads, T, d]``
        (causal among the new tokens); absorb the new tokens; return ``[n_heads, T, d]``."""

    @abc.abstractmethod
    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor this cache holds, with its category (one of :data:`CATEGORIES`)."""

    def nbytes(self) -> dict[str, int]:
        """Storage bytes held, by category (each storage counted once)."""
        out = dict.fromkeys(CATEGORIES, 0)
        seen: set[int] = set()
        for cat, t in self.tensors():
            if cat not in out:
                raise ValueError(
                    f"{type(self).__name__}: unknown byte category {cat!r}; known: {', '.join(CATEGORIES)}"
                )
            ptr = t.untyped_storage().data_ptr()
            if ptr and ptr in seen:
                continue
            seen.add(ptr)
            out[cat] += storage_bytes(t)
        return out

    def tokens_held(self) -> list[int]:
        """Tokens (rows) held per key/value head."""
        return []


class KVCache:
    """One sequence's cache: a :class:`LayerCache` per layer."""

    def __init__(self, layers: Sequence[LayerCache]) -> None:
        self.layers = list(layers)

    def layer(self, i: int) -> LayerCache:
        return self.layers[i]

    def begin_prefill(self, n_tokens: int) -> None:
        """Tell every layer the context's length before it is prefilled (:meth:`LayerCache.begin_prefill`)."""
        for layer in self.layers:
            layer.begin_prefill(n_tokens)

    def nbytes(self) -> dict[str, int]:
        out = dict.fromkeys(CATEGORIES, 0)
        for layer in self.layers:
            for k, v in layer.nbytes().items():
                out[k] += v
        return out

    def total_bytes(self) -> int:
        return sum(self.nbytes().values())

    def tokens_held(self) -> list[list[int]]:
        return [layer.tokens_held() for layer in self.layers]


# ---------------------------------------------------------------------------
# Per-head storage
# ---------------------------------------------------------------------------


class HeadStore(abc.ABC):
    """The keys and values of one key/value head, in whatever form a method stores them.

    Rows are tokens in the order they were appended (a merge replaces a run
    of rows by one).
    """

    @abc.abstractmethod
    def __len__(self) -> int:
        """Rows (tokens) held."""

    @abc.abstractmethod
    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Add rows ``k``, ``v`` ``[T, d]`` (rotated keys, float32)."""

    @abc.abstractmethod
    def read(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(K, V, channels)``: float32 ``[n, d_k]``, ``[n, d]`` and the key channels ``K``'s columns are
        (``None``: all ``d``); what attention sees."""

    @abc.abstractmethod
    def keep(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (sorted int64 indices), freeing the rest."""

    @abc.abstractmethod
    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor held, with its category."""

    def merge(self, rows: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
        """Replace ``rows`` (sorted) by one row ``k``, ``v`` ``[d]`` at the position of the first of them."""
        kk, vv, chan = self.read()
        if chan is not None:
            raise NotImplementedError(f"{type(self).__name__} cannot merge rows")
        first = int(rows[0])
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[rows] = False
        keep[first] = True
        kk[first], vv[first] = k, v
        idx = keep.nonzero().flatten()
        self.reset(kk[idx], vv[idx])

    def reset(self, k: torch.Tensor, v: torch.Tensor) -> None:
        """Hold exactly rows ``k``, ``v`` (used by the default :meth:`merge`)."""
        self.keep(torch.zeros(0, dtype=torch.long))
        self.append(k, v)


class Fp16Store(HeadStore):
    """Rows of keys and values in the spec's dtype (fp16): the full cache's storage.

    Storage is exactly ``n x d`` per tensor: appends and evictions copy into
    new tensors of the new size (no over-allocated capacity).
    """

    __slots__ = ("dtype", "k", "v")

    def __init__(self, head_dim: int, dtype: torch.dtype | None = None) -> None:
        dtype = torch.float16 if dtype is None else dtype
        self.dtype = dtype
        self.k = torch.empty(0, head_dim, dtype=dtype)
        self.v = torch.empty(0, head_dim, dtype=dtype)

    def __len__(self) -> int:
        return int(self.k.shape[0])

    def append(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k = torch.cat([self.k, k.to(self.dtype)])
        self.v = torch.cat([self.v, v.to(self.dtype)])

    def read(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return self.k.float(), self.v.float(), None

    def keep(self, rows: torch.Tensor) -> None:
        self.k = self.k[rows].clone()
        self.v = self.v[rows].clone()

    def reset(self, k: torch.Tensor, v: torch.Tensor) -> None:
        self.k, self.v = k.to(self.dtype).clone(), v.to(self.dtype).clone()

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        yield "payload", self.k
        yield "payload", self.v


class HeadwiseLayer(LayerCache):
    """A layer whose key/value heads each hold a :class:`HeadStore`.

    Attention is one batched SDPA over the heads when no probabilities are
    needed and every head holds the same number of full-width rows (the
    fast path), else computed head by head with explicit probabilities.

    Subclasses choose what to keep (:meth:`after_attention`); the store
    each head holds is the ``store`` factory's (a composition picks it:
    :meth:`new_store`). Set :attr:`needs_probs` when
    :meth:`after_attention` reads the attention probabilities (they cost a
    ``[group, T, n + T]`` float32 tensor per head while the layer runs).
    """

    #: Hand the attention probabilities to :meth:`after_attention`.
    needs_probs: bool = False

    def __init__(self, spec: CacheSpec, layer: int, store: Callable[[int], HeadStore] | None = None) -> None:
        super().__init__(spec, layer)
        self._store_factory = store
        self.heads: list[HeadStore] = [self.new_store(h) for h in range(spec.n_kv_heads)]

    def new_store(self, head: int) -> HeadStore:
        """The store of key/value head ``head``: the ``store`` factory given (compositions: H2O over KIVI's
        quantized store ...), else :class:`Fp16Store`."""
        if self._store_factory is not None:
            return self._store_factory(head)
        return Fp16Store(self.spec.head_dim, self.spec.dtype)

    def probs_queries(self, t: int) -> int:
        """How many of the ``t`` new queries (the last ones) :meth:`after_attention` reads the attention of.

        Default: all ``t`` when :attr:`needs_probs`, else none. A method that
        reads only a few rows (SnapKV's observation window) returns fewer:
        the output then takes the batched fast path and only those rows of
        probabilities are computed.
        """
        return t if self.needs_probs else 0

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        t = q.shape[1]
        cached = [store.read() for store in self.heads]
        probs: list[torch.Tensor] | None = None
        m = min(t, self.probs_queries(t))
        out = None if m == t else self._attend_sdpa(q, k, v, cached)
        if out is None:
            out, probs = self._attend_per_head(q, k, v, cached, keep_probs=m == t)
        if 0 < m < t:
            probs = self._last_probs(q, k, cached, m)
        self.after_attention(q, k, v, probs)
        self.seen += t
        return out.to(q.dtype)

    def _last_probs(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        cached: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
        m: int,
    ) -> list[torch.Tensor]:
        """Head by head, the attention ``[group, m, n_h + T]`` of the last ``m`` new queries."""
        g = self.spec.group_size
        t = q.shape[1]
        scale = 1.0 / math.sqrt(self.spec.head_dim)
        # query t - m + i sees the new keys 0 ..= t - m + i
        hidden = torch.arange(t)[None, :] > torch.arange(t - m, t)[:, None]
        out = []
        for h, (kc, _, chan) in enumerate(cached):
            qh = q[h * g : (h + 1) * g, t - m :].float()
            s_cached = (qh if chan is None else qh[..., chan]) @ kc.T
            s_new = (qh @ k[h].float().T).masked_fill(hidden, float("-inf"))
            out.append(torch.softmax(torch.cat([s_cached, s_new], dim=-1) * scale, dim=-1))
        return out

    def _attend_sdpa(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cached: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
    ) -> torch.Tensor | None:
        """The fast path: one SDPA over all heads (GQA), when every head holds the same number of full-width
        rows; ``None`` otherwise (ragged heads, pruned key channels). Equal to :meth:`_attend_per_head`'s output
        to float rounding."""
        n = cached[0][0].shape[0]
        if any(chan is not None or kc.shape[0] != n for kc, _, chan in cached):
            return None
        t = q.shape[1]
        gqa = self.spec.group_size > 1
        if n == 0:  # nothing cached (a prefill): the new keys and values as they are
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), is_causal=True, enable_gqa=gqa)
        kk = torch.cat([torch.stack([kc for kc, _, _ in cached]), k.float()], dim=1)
        vv = torch.cat([torch.stack([vc for _, vc, _ in cached]), v.float()], dim=1)
        # cached rows visible to every new token, causal among the new ones
        mask = torch.ones(t, n + t, dtype=torch.bool)
        mask[:, n:] = torch.ones(t, t, dtype=torch.bool).tril()
        return F.scaled_dot_product_attention(q.float(), kk, vv, attn_mask=mask, enable_gqa=gqa)

    def _attend_per_head(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        cached: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]],
        keep_probs: bool,
    ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Attention with explicit probabilities (returned when ``keep_probs``): batched over every head when
        they hold the same number of full-width rows (one matmul each way), else head by head."""
        g = self.spec.group_size
        t = q.shape[1]
        scale = 1.0 / math.sqrt(self.spec.head_dim)
        n = cached[0][0].shape[0]
        if all(chan is None and kc.shape[0] == n for kc, _, chan in cached):
            kk = torch.cat([torch.stack([kc for kc, _, _ in cached]), k.float()], dim=1)  # [H_kv, n + T, d]
            vv = torch.cat([torch.stack([vc for _, vc, _ in cached]), v.float()], dim=1)
            # a kv head's query heads, stacked, pre-scaled (one pass over q instead of one over the scores)
            qg = (q.float() * scale).reshape(len(cached), g * t, -1)
            s = (qg @ kk.transpose(1, 2)).view(len(cached), g, t, n + t)
            s[..., n:].masked_fill_(torch.ones(t, t, dtype=torch.bool).triu(1), float("-inf"))
            p = torch.softmax(s, dim=-1)
            out = (p.view(len(cached), g * t, n + t) @ vv).view_as(q)
            return out, (list(p.unbind(0)) if keep_probs else None)
        out = torch.empty_like(q, dtype=torch.float32)
        probs: list[torch.Tensor] | None = [] if keep_probs else None
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        for h, (kc, vc, chan) in enumerate(cached):
            qh = q[h * g : (h + 1) * g].float()
            s_cached = (qh if chan is None else qh[..., chan]) @ kc.T
            s_new = (qh @ k[h].float().T).masked_fill(causal, float("-inf"))
            p = torch.softmax(torch.cat([s_cached, s_new], dim=-1) * scale, dim=-1)
            n = kc.shape[0]
            out[h * g : (h + 1) * g] = p[..., :n] @ vc + p[..., n:] @ v[h].float()
            if probs is not None:
                probs.append(p)
        return out, probs

    def after_attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, probs: list[torch.Tensor] | None
    ) -> None:
        """Absorb the new tokens (default: append them to every head's store).

        ``probs[h]`` (when :meth:`probs_queries` asks for ``m > 0`` rows) is
        head ``h``'s attention ``[group, m, n_h + T]``: its ``group`` query
        heads, the last ``m`` new queries, over the ``n_h`` rows the store
        held before this call, then the ``T`` new tokens.
        """
        for h, store in enumerate(self.heads):
            store.append(k[h], v[h])

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        for store in self.heads:
            yield from store.tensors()

    def tokens_held(self) -> list[int]:
        return [len(s) for s in self.heads]
