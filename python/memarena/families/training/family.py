"""The ``training`` family: memory-efficient training of the fixture model, with every byte accounted.

One run trains the fixture's architecture (:class:`memarena.models.ByteLlama`,
shape from the shipped fixture's card) for ``family.steps`` steps on the
training split of the corpus (:mod:`memarena.models.corpus`; batches and
the warmup-then-cosine learning rate from :mod:`memarena.models.train`'s
:func:`~memarena.models.train.batch` and :func:`~memarena.models.train.lr_at`)
with one ``optimizer`` (adamw, galore, adam8bit, galore8bit) and one
``activation`` policy (none, checkpoint, memo), seeded: from scratch
(``family.init: scratch``) or from the fixture's weights (``fixture``).
Training runs on the CPU: there the "device" and the "host" are one
memory, so the tiers are an accounting, not a placement. What a policy
keeps on the device, what it swaps (``memo``) and the optimizer state with
``family.offload_optimizer`` (Deep Optimizer States: the state lives on the
host and the update runs there, here on the CPU that holds it) are
attributed to the backend's tiers (``backend``, default ``a100_80gb``: its
``hbm`` and ``host`` tiers), and the host-link cost comes from the
backend's host tier.

One row per run, labelled ``optimizer``, ``activation``, ``offload_optimizer``:

* ``bits_per_byte``: held-out bits/byte after training
  (:func:`memarena.models.evaluate.heldout_bits_per_byte`, ``eval_windows``
  windows of ``eval_length_tokens`` bytes); ``loss_curve`` (training loss in
  nats at each logged step, a list) and ``loss_steps``; ``final_loss``;
* bytes by category (:mod:`memarena.families.training.accounting`):
  ``parameters_bytes``; ``gradients_bytes`` (the most gradient bytes live at
  once: all of them, or one parameter's with ``per_layer`` updates);
  ``optimizer_state_bytes`` and its parts (``moments_bytes``,
  ``projectors_bytes``, ``quant_maps_bytes``, ``absmax_bytes``,
  ``steps_bytes``: the optimizer's ``bytes_by_category()``);
  ``activations_bytes`` (saved for backward, on the device, measured with
  saved-tensor hooks), ``recompute_bytes`` (the largest layer's
  rematerialised set: recomputed, and with ``memo`` swapped back in), ``host_bytes`` (swapped activations, plus the
  optimizer state with ``offload_optimizer``); ``peak_bytes`` (the device
  peak of the step trace, the most over the steps) and ``peak_at`` (the
  trace point); ``fits_device`` (peak within the backend's device tier);
* ``time_per_step_s`` (median over steps), and the host link:
  ``transfer_bytes``, ``transfer_s``, ``transfer_overlapped_s``,
  ``transfer_exposed_s`` per step (:mod:`memarena.families.training.transfer`).

``memarena report`` draws the loss curves and a stacked bar of the device
bytes per method. Needs torch (``pip install 'memarena[torch]'``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import BackendRequirements, Family, PlotSpec, param
from memarena.errors import InvalidConfigError, MemarenaError

if TYPE_CHECKING:
    from memarena.models.bytellama import ByteLlama
    from memarena.run import Run

__all__ = ["STACK", "TORCH_EXTRA", "TrainingFamily"]

#: How to install what this family needs.
TORCH_EXTRA = "pip install 'memarena[torch]'"

#: The device categories of the stacked memory bar (their sum is the trace's bound at its peak categories).
STACK = ("parameters_bytes", "gradients_bytes", "optimizer_device_bytes", "activations_bytes", "recompute_bytes")

#: The optimizer's byte categories, copied into the row (``bytes_by_category()`` keys).
OPTIMIZER_CATEGORIES = ("moments_bytes", "projectors_bytes", "quant_maps_bytes", "absmax_bytes", "steps_bytes")


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise MemarenaError(
            f"the training family trains a torch model, and torch is not installed ({exc}): {TORCH_EXTRA}"
        ) from None


def _storage_bytes(tensors: Any) -> int:
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return sum(storages.values())


class TrainingFamily(Family):
    """Memory-efficient training of the fixture model: loss, bits/byte and bytes by category per method."""

    name: ClassVar[str] = "training"
    label_columns: ClassVar[tuple[str, ...]] = ("optimizer", "activation", "offload_optimizer")
    summary_columns: ClassVar[tuple[str, ...]] = (
        "bits_per_byte",
        "final_loss",
        "optimizer_state_bytes",
        "activations_bytes",
        "host_bytes",
        "peak_bytes",
        "time_per_step_s",
        "transfer_exposed_s",
    )
    plots: ClassVar[tuple[PlotSpec, ...]] = (
        PlotSpec(
            x="loss_steps",
            y="loss_curve",
            hue="optimizer",
            title="Training loss (nats/byte) per step",
            series=True,
            filename="loss_curves.png",
        ),
        PlotSpec(
            x="optimizer",
            y="peak_bytes",
            hue="optimizer",
            title="Device bytes by category (each at its most over the steps)",
            stack=STACK,
            filename="memory_by_category.png",
        ),
    )

    @dataclass
    class Config:
        _target_: str = "memarena.families.training.family.TrainingFamily"
        #: Optimizer steps.
        steps: int = param(50, ge=1)
        #: Sequences per step.
        batch_size: int = param(8, ge=1)
        #: Bytes per training sequence (the model predicts each after the first).
        seq_len_tokens: int = param(256, ge=2)
        #: Where the weights start: "scratch" (seeded initialisation) or "fixture" (the shipped weights).
        init: str = "scratch"
        #: Linear warmup steps of the learning rate (memarena.models.train.lr_at); the peak is optimizer.lr.
        warmup_steps: int = param(5, ge=0)
        #: Final learning rate / peak (cosine decay).
        min_lr_ratio: float = param(0.1, ge=0, le=1)
        #: Fraction of sequences that are associative-recall tasks (memarena.models.train.batch).
        recall_fraction: float = param(0.0, ge=0, le=1)
        #: Record the loss every this many steps (and at the last).
        log_every: int = param(1, ge=1)
        #: Held-out windows of the final bits/byte.
        eval_windows: int = param(8, ge=1)
        #: Bytes per held-out window.
        eval_length_tokens: int = param(256, ge=2)
        #: Optimizer state on the host tier, updated there (Deep Optimizer States): transfers modelled per step.
        offload_optimizer: bool = False
        #: The backend tier of the accelerator's memory.
        device_tier: str = "hbm"
        #: The backend tier reached over the host link (its bandwidth: the link's, per direction).
        host_tier: str = "host"
        #: Added to the run's seed: initialisation and data.
        seed: int = param(0, ge=0)
        #: torch threads (torch.set_num_threads) while the run computes.
        threads: int = param(1, ge=1, le=1024)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.init not in ("scratch", "fixture"):
            raise InvalidConfigError(f"config key 'family.init' must be 'scratch' or 'fixture', got {self.init!r}")

    def backend_requirements(self) -> BackendRequirements:
        """The device tier (capacity) and the host tier (the link's bandwidth)."""
        return BackendRequirements(tiers=(self.device_tier, self.host_tier))

    def run(self, run: Run) -> None:
        _require_torch()
        import torch

        optimizer = self._component(run, "optimizer")
        activation = self._component(run, "activation")
        from memarena.families.training.activations.base import TrainingActivation
        from memarena.families.training.optimizers.base import TrainingOptimizer

        if not isinstance(optimizer, TrainingOptimizer):
            raise InvalidConfigError(
                f"config key 'optimizer' built {type(optimizer).__name__}, not a training-family optimizer"
            )
        if not isinstance(activation, TrainingActivation):
            raise InvalidConfigError(
                f"config key 'activation' built {type(activation).__name__}, not a training-family activation policy"
            )
        backend = run.component("backend") if run.has("backend") else None
        if backend is None:
            raise InvalidConfigError("config key 'backend': the training family needs one (e.g. backend=a100_80gb)")
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            run.emit(self._train(run, optimizer, activation, backend))
        finally:
            torch.set_num_threads(threads)

    @staticmethod
    def _component(run: Run, group: str) -> Any:
        chosen = run.choices.get(group)
        if not run.has(group):
            # The preset's default is optional (a torch-less install composes and gets the extra's error),
            # which lets Hydra skip an unknown option silently: name it here.
            available = ", ".join(run.registry.names(group)) or "(none registered)"
            raise InvalidConfigError(f"config key {group!r}: unknown option {chosen!r}; available: {available}")
        return run.component(group)

    def _model(self, seed: int) -> ByteLlama:
        import torch

        from memarena.models import ByteLlama, ByteLlamaConfig, fixture_card, load_fixture

        try:
            if self.init == "fixture":
                return load_fixture().float().train()
            cfg = ByteLlamaConfig.from_dict(fixture_card()["config"])
        except FileNotFoundError as exc:
            raise MemarenaError(f"config key 'family.init' ({self.init}): {exc}") from exc
        torch.manual_seed(seed)
        return ByteLlama(cfg).train()

    def _train(self, run: Run, optimizer: Any, activation: Any, backend: Any) -> dict[str, Any]:
        from torch.nn import functional as F

        from memarena.families.training.accounting import Meter
        from memarena.families.training.activations.base import forward, parameter_storages
        from memarena.families.training.transfer import Transfers, offload_chunks, overlap, swap_chunks
        from memarena.models.corpus import load_corpus
        from memarena.models.evaluate import heldout_bits_per_byte
        from memarena.models.train import batch, lr_at

        seed = run.seed + self.seed
        model = self._model(seed)
        if self.seq_len_tokens - 1 > model.cfg.max_seq_len or self.eval_length_tokens - 1 > model.cfg.max_seq_len:
            raise InvalidConfigError(
                f"config keys 'family.seq_len_tokens' / 'family.eval_length_tokens' ({self.seq_len_tokens}, "
                f"{self.eval_length_tokens}) exceed the model's max_seq_len + 1 ({model.cfg.max_seq_len + 1})"
            )
        corpus = load_corpus("train")
        rng = random.Random(seed)
        params = list(model.parameters())
        meter = Meter(parameter_storages(model))
        for p in params:  # before the optimizer's per-layer hooks: the gradient is live
            p.register_post_accumulate_grad_hook(meter.grad_ready)
        opt = optimizer.make(model.named_parameters())
        for p in params:  # after them: a per-layer update has freed it
            p.register_post_accumulate_grad_hook(meter.grad_after)
        peak_lr = [g["lr"] for g in opt.param_groups]
        # lr_at's arguments (memarena.models.train's command line); lr=1 gives the multiplier of each group's peak
        schedule = argparse.Namespace(
            lr=1.0, warmup=self.warmup_steps, steps=self.steps, min_lr_ratio=self.min_lr_ratio
        )
        params_bytes = _storage_bytes(params)
        region_params = self._region_params(model)
        device_cap = backend.tier(self.device_tier).capacity_bytes
        link = backend.tier(self.host_tier)

        losses, loss_steps, step_s = [], [], []
        peak, peak_at, acts, host_acts, recompute, grads_peak = 0, "", 0, 0, 0, 0
        moved = Transfers()
        desc = f"training {run.label('optimizer', optimizer.name)} {run.label('activation', activation.name)}"
        with run.progress(self.steps, desc=desc, unit="step") as bar:
            for step in range(self.steps):
                x, _ = batch(corpus, self.seq_len_tokens, self.batch_size, self.recall_fraction, rng)
                mult = lr_at(step, schedule)
                for g, lr in zip(opt.param_groups, peak_lr, strict=True):
                    g["lr"] = lr * mult
                opt.zero_grad(set_to_none=True)
                meter.reset()
                t0 = time.perf_counter()
                with meter.hooks():
                    logits = forward(model, x[:, :-1], activation, meter)
                    with meter.enter("head"):
                        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
                state = opt.bytes_by_category()
                state_bytes = sum(state.values())
                fixed = {"parameters_bytes": params_bytes, "optimizer_device_bytes": 0}
                if not self.offload_optimizer:
                    fixed["optimizer_device_bytes"] = state_bytes
                meter.begin_backward(fixed)
                loss.backward()
                meter.end_step()
                opt.step()
                step_s.append(time.perf_counter() - t0)
                label, total = meter.trace.peak()
                if total >= peak:
                    peak, peak_at = total, label
                acts = max(acts, meter.activation_bytes)
                host_acts = max(host_acts, meter.host_activation_bytes)
                recompute = max(recompute, max(meter.transient.values(), default=0))
                grads_peak = max(grads_peak, max(p[1].get("gradients_bytes", 0) for p in meter.trace.points))
                swap = overlap(
                    swap_chunks(meter.order, meter.host, meter.fwd_s, meter.bwd_s),
                    link.bandwidth_bytes_per_s,
                    link.latency_s,
                )
                offload = Transfers()
                if self.offload_optimizer:  # gradients down, updated parameters up: twice each region's bytes
                    per_region = {r: 2 * b for r, b in region_params.items()}
                    offload = overlap(
                        offload_chunks(meter.order, per_region, meter.bwd_s), link.bandwidth_bytes_per_s, link.latency_s
                    )
                moved = swap + offload
                if step % self.log_every == 0 or step == self.steps - 1:
                    losses.append(float(loss.item()))
                    loss_steps.append(step + 1)
                    if not math.isfinite(losses[-1]):
                        raise MemarenaError(
                            f"training diverged at step {step + 1} (loss {losses[-1]}): lower 'optimizer.lr'"
                            + _changed_settings(optimizer, "optimizer")
                        )
                bar.update(1)
        state = opt.bytes_by_category()
        state_bytes = sum(state.values())
        if hasattr(opt, "remove_hooks"):
            opt.remove_hooks()
        bpb = heldout_bits_per_byte(model, self.eval_windows, self.eval_length_tokens, seed)
        host_bytes = host_acts + (state_bytes if self.offload_optimizer else 0)
        row: dict[str, Any] = {
            "optimizer": run.label("optimizer", optimizer.name),
            "activation": run.label("activation", activation.name),
            "offload_optimizer": self.offload_optimizer,
            "init": self.init,
            "steps": self.steps,
            "batch_size": self.batch_size,
            "seq_len_tokens": self.seq_len_tokens,
            "n_params": sum(p.numel() for p in params),
            "bits_per_byte": bpb,
            "final_loss": losses[-1],
            "loss_curve": losses,
            "loss_steps": loss_steps,
            "parameters_bytes": params_bytes,
            "gradients_bytes": grads_peak,
            "optimizer_state_bytes": state_bytes,
            "optimizer_device_bytes": 0 if self.offload_optimizer else state_bytes,
            **{k: state.get(k, 0) for k in OPTIMIZER_CATEGORIES},
            "activations_bytes": acts,
            "recompute_bytes": recompute,
            "activations_host_bytes": host_acts,
            "host_bytes": host_bytes,
            "peak_bytes": peak,
            "peak_at": peak_at,
            "device_capacity_bytes": device_cap,
            "fits_device": peak <= device_cap,
            "time_per_step_s": statistics.median(step_s),
            "transfer_bytes": moved.bytes,
            "transfer_s": moved.time_s,
            "transfer_overlapped_s": moved.overlapped_s,
            "transfer_exposed_s": moved.exposed_s,
            "host_link_bytes_per_s": link.bandwidth_bytes_per_s,
        }
        return row

    @staticmethod
    def _region_params(model: ByteLlama) -> dict[str, int]:
        """Parameter bytes per region of the step trace (embed, layer<i>, head)."""
        body = model.model
        out = {"embed": _storage_bytes(body.embed_tokens.parameters())}
        for i, layer in enumerate(body.layers):
            out[f"layer{i}"] = _storage_bytes(layer.parameters())
        out["head"] = _storage_bytes([*body.norm.parameters(), *model.lm_head.parameters()])
        return out


def _changed_settings(component: Any, group: str) -> str:
    """``"; settings changed from the defaults: 'group.key'=value, ..."`` (empty when none): a divergence names
    the keys that may have caused it besides the learning rate."""
    config = getattr(component, "config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return ""
    config_cls: Any = type(config)
    default = config_cls()
    changed = [
        f"'{group}.{f.name}'={getattr(config, f.name)!r}"
        for f in dataclasses.fields(config)
        if f.name != "_target_" and getattr(config, f.name) != getattr(default, f.name)
    ]
    return f"; settings changed from the defaults: {', '.join(changed)}" if changed else ""
