"""The base of the ``activation`` components: how one decoder layer's forward keeps what backward needs.

The family runs the model's embedding, then each decoder layer through
:meth:`TrainingActivation.run_layer`, then the final norm and the LM head
(:func:`memarena.families.training.activations.base.forward`, the same
computation as ``ByteLlama.forward``), all under the saved-tensor meter
(:class:`memarena.families.training.accounting.Meter`). A policy decides
what of the layer's saved tensors stays on the device, goes to the host
tier, or is dropped and recomputed in backward, and reports any bytes the
meter cannot see (tensors it packs with hooks of its own).
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

from memarena.api import ActivationPolicy
from memarena.lazy import torch

if TYPE_CHECKING:
    import torch as torch_t

    from memarena.families.training.accounting import Meter
    from memarena.models.bytellama import ByteLlama

__all__ = ["TrainingActivation", "forward", "parameter_storages", "saved_bytes_of"]


def parameter_storages(model: Any) -> set[int]:
    """Data pointers of the parameters' storages (saved views of a weight are not activations)."""
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def saved_bytes_of(fn: Any, skip: set[int]) -> int:
    """Storage bytes (one count per storage, ``skip`` left out) of what autograd saves while ``fn()`` runs."""
    seen: dict[int, int] = {}

    def pack(t: torch_t.Tensor) -> torch_t.Tensor:
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


class TrainingActivation(ActivationPolicy):
    """Base of the training family's activation policies: :meth:`run_layer`."""

    @abc.abstractmethod
    def run_layer(self, layer: Any, x: torch_t.Tensor, meter: Meter, region: str) -> torch_t.Tensor:
        """Layer ``layer``'s output for input ``x`` (``[B, T, dim]``), keeping what backward needs.

        Runs inside the meter's hooks and ``meter.enter(region)``: tensors
        autograd saves through them are counted; a policy that packs
        tensors itself reports them with ``meter.note`` and the bytes its
        backward rematerialises with ``meter.note_transient``.
        """


def forward(model: ByteLlama, tokens: torch_t.Tensor, policy: TrainingActivation, meter: Meter) -> torch_t.Tensor:
    """``model(tokens)``'s logits, each decoder layer run through ``policy``, regions entered on ``meter``.

    The same computation as ``ByteLlama.forward`` (embedding, layers with no
    KV cache, final norm, LM head): ``tests/training/test_activations.py``
    checks the logits equal.
    """
    body = model.model
    with meter.enter("embed"):
        x = body.embed_tokens(tokens)
    for i, layer in enumerate(body.layers):
        region = f"layer{i}"
        meter.mark_input(region, x)
        with meter.enter(region):
            x = policy.run_layer(layer, x, meter, region)
    meter.mark_input("head", x)
    with meter.enter("head"):
        return model.lm_head(body.norm(x))
