"""A small Llama-architecture byte-level decoder in plain torch.

The architecture is Llama's (Touvron et al., 2023) as transformers'
``LlamaForCausalLM`` implements it: pre-norm RMSNorm, rotary position
embeddings in the "rotate half" layout, grouped-query attention
(``n_kv_heads`` key/value heads shared by groups of query heads), a SwiGLU
MLP, no biases, an untied output head. The parameter names are
transformers' (``model.layers.0.self_attn.q_proj.weight`` ...), so
:func:`to_hf_state_dict` / :func:`from_hf_state_dict` are checked renames
and :func:`hf_config` gives the ``LlamaConfig`` fields that load the same
weights into transformers with identical logits.

Tokens are bytes (vocabulary 256). ``forward(tokens)`` without a cache is
the training path (causal attention over the whole sequence, batched);
``forward(tokens, cache)`` with a :class:`KVCacheLike` of one sequence is
the inference path: each layer hands its queries and new keys/values to the
cache's layer, which stores them however its method does (dropped,
quantized, merged, pruned) and returns the attention output. A decoder
layer run with a :class:`TokenChunk` in place of the cache is the training
path over a chunk of the sequence (batched): the chunk's tokens at their
positions, attending causally to an earlier chunk's keys/values and their
own (what ``activation=memo`` recomputes token-wise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "ByteLlama",
    "ByteLlamaConfig",
    "CacheSpec",
    "KVCacheLike",
    "LayerCacheLike",
    "Rope",
    "TokenChunk",
    "from_hf_state_dict",
    "hf_config",
    "to_hf_state_dict",
]


@dataclass(frozen=True)
class ByteLlamaConfig:
    """Shape of a :class:`ByteLlama`; the defaults are the fixture's."""

    vocab_size: int = 256
    dim: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_dim: int = 384
    #: The sequence length the model was trained at: contexts beyond it are refused.
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be a multiple of n_heads ({self.n_heads})")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})")
        if self.head_dim % 2:
            raise ValueError(f"head_dim ({self.head_dim}) must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (GQA)."""
        return self.n_heads // self.n_kv_heads

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ByteLlamaConfig:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Rope:
    """Rotary position embeddings, transformers' "rotate half" layout.

    ``inv_freq[i] = theta ** (-2i / head_dim)``; a vector ``x`` at position
    ``p`` becomes ``x * cos(p f) + rotate_half(x) * sin(p f)`` with the
    frequencies repeated over both halves. Rotations compose, so a key
    rotated at position ``p`` is moved to ``p'`` by :meth:`rotate` with
    ``p' - p`` (what StreamingLLM's re-indexing needs).
    """

    def __init__(self, head_dim: int, theta: float) -> None:
        self.head_dim = head_dim
        self.inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        # the two most recent position sets and their cos/sin, most recent first: every layer rotates q and k at
        # the same positions, and a cache re-rotating kept keys (StreamingLLM) asks for a second set in between
        self._recent: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos`` and ``sin`` of shape ``[len(positions), head_dim]`` (float32)."""
        for i, (pos, cos, sin) in enumerate(self._recent):
            if pos.shape == positions.shape and torch.equal(pos, positions):
                self._recent.insert(0, self._recent.pop(i))
                return cos, sin
        ang = positions.to(torch.float64)[:, None] * self.inv_freq[None, :]
        ang = torch.cat([ang, ang], dim=-1)
        cos, sin = ang.cos().float(), ang.sin().float()
        self._recent = [(positions.clone(), cos, sin), *self._recent[:1]]
        return cos, sin

    @staticmethod
    def _rotate_half(x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """``x[..., t, :]`` rotated by ``positions[t]`` (negative moves back)."""
        cos, sin = self.cos_sin(positions)
        return (x.float() * cos + self._rotate_half(x.float()) * sin).to(x.dtype)


class LayerCacheLike(Protocol):
    """One layer's KV cache as :class:`ByteLlama` drives it (see :mod:`memarena.families.kvcache.cache`)."""

    def positions(self, n_new: int) -> torch.Tensor:
        """Rotary positions of the next ``n_new`` tokens (usually tokens seen so far + arange)."""
        ...

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Attention output ``[n_heads, T, head_dim]`` of queries ``q`` ``[n_heads, T, head_dim]`` over
        the cached tokens and the ``T`` new ones (``k``, ``v``: ``[n_kv_heads, T, head_dim]``,
        rotated), causal among the new ones; the cache then absorbs the new tokens."""
        ...


@dataclass
class TokenChunk:
    """A decoder layer's training path over tokens ``start ..`` of a sequence, the earlier tokens' keys given.

    ``layer(x_chunk, TokenChunk(start, past_k, past_v))`` computes what
    ``layer(x, None)`` computes at those tokens (the same ops, on fewer
    rows): queries and keys rotated at positions ``start .. start + t - 1``,
    attention over ``past_k`` / ``past_v`` (``[B, n_kv_heads, start,
    head_dim]``, rotated: an earlier chunk's :attr:`k` / :attr:`v`) and the
    chunk's own keys, causal. Without ``past_k`` (``start`` 0) the attention
    is the plain causal one. The layer sets :attr:`k` and :attr:`v` to the
    chunk's rotated keys and values (the next chunk's ``past_k`` /
    ``past_v``; gradients flow back through them).
    """

    start: int = 0
    past_k: torch.Tensor | None = None
    past_v: torch.Tensor | None = None
    #: Set by the layer: this chunk's rotated keys, ``[B, n_kv_heads, t, head_dim]``.
    k: torch.Tensor | None = None
    #: Set by the layer: this chunk's values, ``[B, n_kv_heads, t, head_dim]``.
    v: torch.Tensor | None = None


class KVCacheLike(Protocol):
    """A KV cache of one sequence: one :class:`LayerCacheLike` per layer."""

    def layer(self, i: int) -> LayerCacheLike: ...


@dataclass(frozen=True)
class CacheSpec:
    """What a KV-compression method needs to know about the model whose KV it stores.

    Shared by the torch families: the ``kvcache`` family builds every cache under one, and the ``serving``
    family measures a method's bytes per token with one (:mod:`memarena.families.serving.compression`).
    """

    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    rope: Rope
    #: Trained length: positions beyond it are out of distribution.
    max_seq_len: int
    #: The dtype keys and values are stored in when kept at full precision (default ``torch.float16``).
    dtype: torch.dtype = torch.float16

    @classmethod
    def of(cls, cfg: ByteLlamaConfig, rope: Rope, dtype: torch.dtype | None = None) -> CacheSpec:
        dtype = torch.float16 if dtype is None else dtype
        return cls(cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, rope, cfg.max_seq_len, dtype)

    @property
    def group_size(self) -> int:
        return self.n_heads // self.n_kv_heads

    def full_bytes_per_token(self) -> int:
        """Bytes one token takes in the uncompressed cache (K and V, every layer and head, :attr:`dtype`)."""
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * itemsize


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class Attention(nn.Module):
    def __init__(self, cfg: ByteLlamaConfig, rope: Rope) -> None:
        super().__init__()
        self.cfg, self.rope = cfg, rope
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.k_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.v_proj = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor, layer_cache: LayerCacheLike | TokenChunk | None) -> torch.Tensor:
        b, t, _ = x.shape
        cfg = self.cfg
        hd = cfg.head_dim
        q = self.q_proj(x).view(b, t, cfg.n_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, cfg.n_kv_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, cfg.n_kv_heads, hd).transpose(1, 2)
        if layer_cache is None or isinstance(layer_cache, TokenChunk):
            start = 0 if layer_cache is None else layer_cache.start
            pos = torch.arange(start, start + t)
            cos, sin = self.rope.cos_sin(pos)
            q = q * cos + Rope._rotate_half(q) * sin
            k = k * cos + Rope._rotate_half(k) * sin
            if layer_cache is not None:
                layer_cache.k, layer_cache.v = k, v
            if layer_cache is None or layer_cache.past_k is None or layer_cache.past_v is None:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=cfg.group_size > 1)
            else:
                k = torch.cat([layer_cache.past_k, k], dim=2)
                v = torch.cat([layer_cache.past_v, v], dim=2)
                # the chunk's query i is token start + i: it sees keys 0 .. start + i
                causal = torch.ones(t, start + t, dtype=torch.bool, device=q.device).tril(start)
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, enable_gqa=cfg.group_size > 1)
        else:
            if b != 1:
                raise ValueError(f"a KV cache holds one sequence; got a batch of {b}")
            pos = layer_cache.positions(t)
            out = layer_cache.attend(self.rope.rotate(q[0], pos), self.rope.rotate(k[0], pos), v[0])[None]
        return self.o_proj(out.transpose(1, 2).reshape(b, t, cfg.n_heads * hd))


class MLP(nn.Module):
    def __init__(self, cfg: ByteLlamaConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.up_proj = nn.Linear(cfg.dim, cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ByteLlamaConfig, rope: Rope) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.self_attn = Attention(cfg, rope)
        self.post_attention_layernorm = RMSNorm(cfg.dim, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, layer_cache: LayerCacheLike | TokenChunk | None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), layer_cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class _Body(nn.Module):
    def __init__(self, cfg: ByteLlamaConfig, rope: Rope) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(DecoderLayer(cfg, rope) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim, cfg.norm_eps)


class ByteLlama(nn.Module):
    """The decoder: ``forward(tokens [B, T]) -> logits [B, T, vocab]``."""

    def __init__(self, cfg: ByteLlamaConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or ByteLlamaConfig()
        self.rope = Rope(self.cfg.head_dim, self.cfg.rope_theta)
        self.model = _Body(self.cfg, self.rope)
        self.lm_head = nn.Linear(self.cfg.dim, self.cfg.vocab_size, bias=False)
        self.apply(self._init)

    def _init(self, m: nn.Module) -> None:
        # Llama's initializer_range 0.02 for linear and embedding weights.
        if isinstance(m, nn.Linear | nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def hidden(self, tokens: torch.Tensor, cache: KVCacheLike | None = None) -> torch.Tensor:
        """The final normed hidden states ``[B, T, dim]``."""
        x = self.model.embed_tokens(tokens)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, None if cache is None else cache.layer(i))
        return self.model.norm(x)

    def forward(self, tokens: torch.Tensor, cache: KVCacheLike | None = None) -> torch.Tensor:
        return self.lm_head(self.hidden(tokens, cache))

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ---------------------------------------------------------------------------
# transformers interoperability
# ---------------------------------------------------------------------------


def hf_config(cfg: ByteLlamaConfig) -> dict[str, Any]:
    """The ``transformers.LlamaConfig`` keyword arguments of the same architecture."""
    return {
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.ffn_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": None,
        "eos_token_id": None,
        "pad_token_id": None,
    }


def _expected_keys(cfg: ByteLlamaConfig) -> list[str]:
    return list(ByteLlama(cfg).state_dict().keys())


def to_hf_state_dict(model: ByteLlama) -> dict[str, torch.Tensor]:
    """A ``LlamaForCausalLM`` state dict (same names, same layouts: a copy)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def from_hf_state_dict(state: Mapping[str, torch.Tensor], cfg: ByteLlamaConfig) -> ByteLlama:
    """A :class:`ByteLlama` holding a ``LlamaForCausalLM`` state dict's weights.

    :raises ValueError: a missing or unexpected key, or a tensor of another shape.
    """
    model = ByteLlama(cfg)
    own = model.state_dict()
    # transformers may carry non-persistent rotary buffers in older versions
    extra = sorted(k for k in state if k not in own and not k.endswith("rotary_emb.inv_freq"))
    missing = sorted(k for k in own if k not in state)
    if extra or missing:
        raise ValueError(f"not a {cfg} Llama state dict: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, t in own.items():
        if tuple(state[k].shape) != tuple(t.shape):
            raise ValueError(f"{k}: shape {tuple(state[k].shape)}, expected {tuple(t.shape)}")
    model.load_state_dict({k: state[k].float() for k in own})
    return model


def count_params(shapes: Sequence[torch.Size]) -> int:
    return sum(math.prod(s) for s in shapes)
