"""Training memory on paper: the optimizers' byte accounting evaluated for published LLaMA shapes (issue 18, point 6).

Nothing is allocated: every optimizer-state figure is the component's own
``state_bytes(shape, itemsize, group)`` (the code the accounting tests check
against real tensors), summed over the model's parameter shapes; weights,
gradients and activations follow the formulas below.

**Models**: GaLore's pre-training configs (github jiaweizzhao/GaLore,
``configs/llama_{60m,130m,350m,1b,7b}.json``: ``hidden_size``,
``intermediate_size``, ``num_hidden_layers``, ``num_attention_heads``,
``vocab_size`` 32000), LLaMA layout: embedding and untied head ``V x h``;
per layer q, k, v, o ``h x h``, gate and up ``I x h``, down ``h x I``, two
RMSNorm weights ``h``; a final norm ``h``. GaLore projects the attention and
MLP matrices (``torchrun_main.py``: modules named ``attn``/``mlp``), at the
paper's ranks (Table 2: 128, 256, 256, 512; 1024 for 7B, Section 5.3).

**Memory** (bytes, BF16 weights, states in the weights' dtype as the paper's
estimate; 8-bit states as bitsandbytes, blocks of 2048):

* weights ``2 P``; gradients ``2 P``, or with per-layer updates (the
  gradient freed in its hook) the largest single parameter's ``2 numel``;
* activations per token without checkpointing ``L (34 h + 5 a s)``
  (Korthikanti et al. 2022, "Reducing activation recomputation", Eq. 1,
  16-bit, no dropout: ``34 h + 5 a s`` per layer per token); with per-layer
  checkpointing ``2 h L`` (each layer's input) plus one layer recomputed,
  ``34 h + 5 a s``; both plus the logits, ``6 V`` per token (BF16 logits and
  their float32 softmax). Tokens: ``batch x seq``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memarena.families.training.optimizers import Adam8bit, AdamW, GaLore, GaLore8bit, TrainingOptimizer
from memarena.families.training.optimizers.base import numel

__all__ = ["LLAMA", "LlamaShape", "activation_bytes", "llama_shapes", "memory", "optimizer_bytes"]


@dataclass(frozen=True)
class LlamaShape:
    """A LLaMA config from GaLore's ``configs/``, and the GaLore rank the paper trains it at."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    rank: int
    vocab: int = 32000


#: GaLore's ``configs/llama_*.json`` and the paper's ranks.
LLAMA: dict[str, LlamaShape] = {
    "60m": LlamaShape(512, 1376, 8, 8, 128),
    "130m": LlamaShape(768, 2048, 12, 12, 256),
    "350m": LlamaShape(1024, 2736, 24, 16, 256),
    "1b": LlamaShape(2048, 5461, 24, 32, 512),
    "7b": LlamaShape(4096, 11008, 32, 32, 1024),
}


def llama_shapes(c: LlamaShape) -> list[tuple[str, tuple[int, ...]]]:
    """Every parameter's name and shape, in the LLaMA layout (names as transformers' ``LlamaForCausalLM``)."""
    h, i = c.hidden, c.intermediate
    out: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (c.vocab, h))]
    for layer in range(c.layers):
        pre = f"model.layers.{layer}"
        out += [(f"{pre}.self_attn.{p}_proj.weight", (h, h)) for p in "qkvo"]
        out += [(f"{pre}.mlp.gate_proj.weight", (i, h)), (f"{pre}.mlp.up_proj.weight", (i, h))]
        out += [(f"{pre}.mlp.down_proj.weight", (h, i))]
        out += [(f"{pre}.input_layernorm.weight", (h,)), (f"{pre}.post_attention_layernorm.weight", (h,))]
    return [*out, ("model.norm.weight", (h,)), ("lm_head.weight", (c.vocab, h))]


def optimizer_bytes(method: TrainingOptimizer, c: LlamaShape, itemsize: int = 2) -> dict[str, int]:
    """Optimizer state by category for a model of shape ``c``: ``state_bytes`` summed over its parameters."""
    from memarena.families.training.optimizers.base import zero_bytes

    cfg = method.config
    keys: dict[str, Any] = {}
    if isinstance(method, GaLore | GaLore8bit):
        keys = {"rank": cfg.rank, "update_proj_gap": cfg.update_proj_gap, "scale": cfg.scale}
        keys["proj_type"] = cfg.proj_type
    targets = list(getattr(cfg, "target_modules", []))
    out = zero_bytes()
    for name, shape in llama_shapes(c):
        projected = bool(keys) and len(shape) == 2 and any(t in name for t in targets)
        for k, v in method.state_bytes(shape, itemsize, {"galore": projected, **keys}).items():
            out[k] += v
    if isinstance(method, Adam8bit | GaLore8bit):
        out["quant_maps_bytes"] += 2 * 256 * 4  # the two maps, once per optimizer
    return out


def activation_bytes(c: LlamaShape, tokens: int, seq: int, checkpointing: bool) -> int:
    """Activations saved for backward (module docstring's formula), BF16."""
    per_layer = 34 * c.hidden + 5 * c.heads * seq
    body = (2 * c.hidden * c.layers + per_layer) if checkpointing else c.layers * per_layer
    return (body + 6 * c.vocab) * tokens


def methods(c: LlamaShape) -> dict[str, TrainingOptimizer]:
    """The four optimizers compared, at the paper's rank for ``c``; 8-bit blocks of 2048."""
    return {
        "adamw": AdamW(),
        "galore": GaLore(rank=c.rank),
        "adam8bit": Adam8bit(block_size=2048),
        "galore8bit": GaLore8bit(rank=c.rank, block_size=2048),
    }


def memory(
    size: str, method: str, per_layer: bool = False, checkpointing: bool = False, batch: int = 1, seq: int = 256
) -> dict[str, int]:
    """Bytes by category (weights, gradients, optimizer state, activations, total) of LLaMA ``size``."""
    c = LLAMA[size]
    shapes = llama_shapes(c)
    params = sum(numel(s) for _, s in shapes)
    opt = sum(optimizer_bytes(methods(c)[method], c).values())
    grads = 2 * max(numel(s) for _, s in shapes) if per_layer else 2 * params
    acts = activation_bytes(c, batch * seq, seq, checkpointing)
    out = {"params": params, "weights_bytes": 2 * params, "gradients_bytes": grads, "optimizer_bytes": opt}
    out["activations_bytes"] = acts
    out["total_bytes"] = out["weights_bytes"] + grads + opt + acts
    return out
