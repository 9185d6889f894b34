"""``optimizer=adam8bit``: AdamW with block-wise 8-bit moments, bitsandbytes' ``AdamW8bit``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import param
from memarena.families.training.optimizers.base import AdamConfig, TrainingOptimizer, numel, zero_bytes
from memarena.families.training.optimizers.quant import (
    QMAP_LEN,
    SIGNED_ZERO,
    dequantize_blockwise,
    dynamic_map,
    n_blocks,
    quantize_blockwise,
)

if TYPE_CHECKING:
    import torch

    from memarena.families.training.engine import RuleOptimizer

__all__ = ["Adam8bit", "adam8bit_state_bytes", "adam8bit_step"]


def _qmaps(opt: RuleOptimizer, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The signed (first moment) and unsigned (second moment) maps, made once per optimizer."""
    import torch

    if "qmap_signed" not in opt.shared:
        opt.shared["qmap_signed"] = torch.from_numpy(dynamic_map(signed=True)).to(device)
        opt.shared["qmap_unsigned"] = torch.from_numpy(dynamic_map(signed=False)).to(device)
    return opt.shared["qmap_signed"], opt.shared["qmap_unsigned"]


def adam8bit_step(
    opt: RuleOptimizer,
    p: torch.Tensor,
    grad: torch.Tensor,
    state: dict[str, Any],
    group: dict[str, Any],
    weight_decay: float,
    block_size: int,
    min_8bit_size: int,
) -> None:
    """One AdamW update of ``p`` with its moments in ``state``, 8-bit when ``p`` has ``min_8bit_size`` elements.

    bitsandbytes' ``Optimizer2State("adam")`` (``optim/optimizer.py``:
    ``init_state`` keeps float32 states when ``p.numel() <
    config["min_8bit_size"]``, else uint8 states with ``qmap1`` the signed
    and ``qmap2`` the unsigned dynamic map and one absmax per block). The
    8-bit update, as its CUDA kernel ``kOptimizerStatic8bit2StateBlockwise``
    (``csrc/kernels.cu``) and CPU one (``backends/cpu/ops.py``
    ``_optimizer_update_8bit_blockwise_cpu``) do it: dequantize ``m`` and
    ``v`` to float32, ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``,
    the new block absmax of each from these float32 values, ``denom =
    sqrt(v) / sqrt(1 - b2^t) + eps``, ``p -= lr / (1 - b1^t) * m / denom``,
    then ``m`` and ``v`` quantized back, rounded to the nearest code as the
    CUDA kernel does (see :mod:`.quant` for why not the CPU kernel's table),
    with the CUDA kernel's sign rule on ``m``: "make sure state1 term has
    still the same sign after quantization": ``if (signbit(code1[c1]) !=
    signbit(s1)) c1 += s1 > 0 ? 1 : -1``, i.e. a negative ``m`` (or -0.0)
    that rounds to the signed map's 0 is stored one code lower (-5.5e-7 x
    absmax). The CPU backend has no such rule; the torch reference neither.

    Where the backends differ and this follows the CPU one: the decoupled
    weight decay ``p *= 1 - lr wd`` comes before the update (CPU, torch's
    AdamW, the AdamW paper); CUDA multiplies after it, a difference of ``lr
    wd |update|`` per step (1e-5 of the update at the defaults). Not
    reproduced: CUDA zeroes both moments and leaves ``p`` where the gradient
    is NaN or inf. The 32-bit path computes ``p += -lr sqrt(1 - b2^t) / (1 -
    b1^t) * m / (sqrt(v) + eps sqrt(1 - b2^t))`` after the same decay. The
    step counter is a Python int (``state["step"]``), as upstream.
    """
    import torch

    eight_bit = p.numel() >= min_8bit_size
    if "exp_avg" not in state:
        state["step"] = 0
        if eight_bit:
            _qmaps(opt, p.device)
            for key in ("exp_avg", "exp_avg_sq"):
                state[key] = torch.zeros(p.shape, dtype=torch.uint8, device=p.device)
                state[key + "_absmax"] = torch.zeros(n_blocks(p.numel(), block_size), device=p.device)
        else:
            state["exp_avg"] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
            state["exp_avg_sq"] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
    state["step"] += 1
    t = state["step"]
    beta1, beta2 = group["betas"]
    lr, eps = group["lr"], group["eps"]
    g = grad.float()
    pf = p.float()  # p itself when float32
    correction1 = 1.0 - beta1**t
    correction2 = math.sqrt(1.0 - beta2**t)
    if eight_bit:
        qmap1, qmap2 = _qmaps(opt, p.device)
        m = dequantize_blockwise(state["exp_avg"], state["exp_avg_absmax"], qmap1, block_size)
        v = dequantize_blockwise(state["exp_avg_sq"], state["exp_avg_sq_absmax"], qmap2, block_size)
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        denom = v.sqrt().div_(correction2).add_(eps)
        if weight_decay > 0.0:
            pf.mul_(1.0 - lr * weight_decay)
        pf.addcdiv_(m, denom, value=-lr / correction1)
        q1 = quantize_blockwise(m, qmap1, block_size, out=(state["exp_avg"], state["exp_avg_absmax"]))[0]
        # kOptimizerStatic8bit2StateBlockwise: "make sure state1 term has still the same sign after
        # quantization": a negative m that rounds to the map's 0 takes the code below it instead
        q1.sub_(torch.signbit(m).logical_and_(q1 == SIGNED_ZERO).view(torch.uint8))
        quantize_blockwise(v, qmap2, block_size, out=(state["exp_avg_sq"], state["exp_avg_sq_absmax"]))
    else:
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.mul_(beta1).add_(g, alpha=1.0 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1.0 - beta2)
        if weight_decay > 0.0:
            pf.mul_(1.0 - lr * weight_decay)
        pf.add_(m / (v.sqrt() + eps * correction2), alpha=-lr * correction2 / correction1)
    if pf is not p:
        p.copy_(pf)


def adam8bit_state_bytes(state_numel: int, block_size: int, min_8bit_size: int) -> dict[str, int]:
    """Bytes by category of :func:`adam8bit_step`'s moments for a tensor of ``state_numel`` elements."""
    out = zero_bytes()
    if state_numel >= min_8bit_size:
        out["moments_bytes"] = 2 * state_numel  # uint8
        out["absmax_bytes"] = 2 * n_blocks(state_numel, block_size) * 4
    else:
        out["moments_bytes"] = 2 * state_numel * 4  # float32 whatever the parameter's dtype
    return out


def quant_map_bytes(opt: RuleOptimizer) -> dict[str, int]:
    """The two 256-value float32 maps, held once per optimizer once any state is 8-bit."""
    out = zero_bytes()
    if "qmap_signed" in opt.shared:
        out["quant_maps_bytes"] = 2 * QMAP_LEN * 4
    return out


@dataclass
class Adam8bitConfig(AdamConfig):
    """AdamConfig plus the 8-bit state's block size and the size below which states stay 32-bit."""

    #: Elements per quantization block (one float32 absmax each); bitsandbytes >= 0.44 uses 256.
    block_size: int = param(2048, ge=1)
    #: Tensors with fewer elements keep float32 moments (bitsandbytes' ``min_8bit_size``).
    min_8bit_size: int = param(4096, ge=0)


class Adam8bit(TrainingOptimizer):
    """8-bit AdamW (Dettmers et al. 2022): block-wise dynamic-map moments, bitsandbytes' ``AdamW8bit``.

    Defaults are bitsandbytes' ``AdamW8bit``'s (lr 1e-3, eps 1e-8, weight
    decay 1e-2, ``min_8bit_size`` 4096); blocks of 2048 elements unless
    ``block_size`` says otherwise.
    """

    name: ClassVar[str] = "adam8bit"

    @dataclass
    class Config(Adam8bitConfig):
        _target_: str = "memarena.families.training.optimizers.adam8bit.Adam8bit"

    def update(self, opt: RuleOptimizer, p: torch.Tensor, grad: torch.Tensor, group: dict[str, Any]) -> None:
        c = self.config
        adam8bit_step(opt, p, grad, opt.state[p], group, group["weight_decay"], c.block_size, c.min_8bit_size)

    def state_bytes(self, shape: tuple[int, ...], itemsize: int, group: dict[str, Any]) -> dict[str, int]:
        return adam8bit_state_bytes(numel(shape), self.config.block_size, self.config.min_8bit_size)

    def shared_bytes(self, opt: RuleOptimizer) -> dict[str, int]:
        return quant_map_bytes(opt)
