"""What the serving model runs on: a transformer's shape and a device's figures.

:class:`ModelSpec` is the target of the ``model`` config group (its YAML
presets carry the published Hugging Face ``config.json`` values and name
them in ``source``); :class:`Hardware` is the plain view of a
:class:`memarena.api.HardwareBackend` that the roofline cost model needs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from memarena import _core
from memarena.api import HardwareBackend
from memarena.errors import InvalidConfigError

__all__ = ["Hardware", "ModelSpec"]

#: The feed-forward shapes the core accepts.
FFN_KINDS: tuple[str, ...] = tuple(_core.ffn_kinds())


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer, from its published config.

    GQA is respected: the KV cache holds ``num_kv_heads`` heads per layer
    (``2 * num_layers * num_kv_heads * head_dim * dtype_bytes`` bytes per token).

    :param name: snake_case name (``llama3_8b``).
    :param num_layers: ``num_hidden_layers``.
    :param hidden_size: ``hidden_size``.
    :param num_attention_heads: query heads.
    :param num_kv_heads: ``num_key_value_heads`` (equal to the query heads without GQA).
    :param head_dim: dimension of one head (``hidden_size / num_attention_heads`` when 0).
    :param intermediate_size: feed-forward inner size (OPT: ``ffn_dim``).
    :param vocab_size: vocabulary size.
    :param max_context: ``max_position_embeddings``; longer requests are rejected and counted.
    :param ffn: ``gated`` (SwiGLU: gate, up, down) or ``plain`` (OPT's fc1, fc2 with biases).
    :param tied_embeddings: the LM head shares the embedding matrix.
    :param learned_positions: learned position embeddings (OPT: 2050), 0 for rotary models.
    :param dtype_bytes: bytes per weight and KV element (2 for fp16/bf16).
    :param source: where the figures come from.
    """

    name: str = "llama3_8b"
    num_layers: int = 32
    hidden_size: int = 4096
    num_attention_heads: int = 32
    num_kv_heads: int = 8
    head_dim: int = 0
    intermediate_size: int = 14336
    vocab_size: int = 128256
    max_context: int = 8192
    ffn: str = "gated"
    tied_embeddings: bool = False
    learned_positions: int = 0
    dtype_bytes: int = 2
    source: str = ""

    def __post_init__(self) -> None:
        if self.ffn not in FFN_KINDS:
            raise InvalidConfigError(f"model.ffn must be one of {', '.join(FFN_KINDS)}, got {self.ffn!r}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.type == "int" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise InvalidConfigError(f"model.{f.name} must be a non-negative integer, got {v!r}")
        if self.head_dim == 0 and self.num_attention_heads:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_attention_heads)
        self.info  # noqa: B018 - validate in the core (GQA divisibility, sizes) now, naming the field

    @classmethod
    def builtin(cls, name: str) -> ModelSpec:
        """A shipped ``model`` preset by name (``llama2_7b`` ... ``opt_13b``).

        The presets (the family's ``conf/model/<name>.yaml``, the published
        ``config.json`` values) are the one source of model specs; the core
        takes the spec as a dict.

        :raises InvalidConfigError: no such preset, naming the available ones.
        """
        import yaml

        presets = Path(__file__).resolve().parent / "conf" / "model"
        path = presets / f"{name}.yaml"
        if not path.is_file():
            available = ", ".join(sorted(p.stem for p in presets.glob("*.yaml")))
            raise InvalidConfigError(f"unknown model {name!r}; available: {available}")
        node = yaml.safe_load(path.read_text())
        node.pop("_target_", None)
        return cls(**node)

    def as_core(self) -> dict[str, Any]:
        """The spec as the Rust core reads it."""
        d = dataclasses.asdict(self)
        d.pop("source")
        return d

    @cached_property
    def info(self) -> dict[str, Any]:
        """The spec plus ``num_params``, ``weight_bytes`` and ``kv_bytes_per_token``."""
        return _core.model_info(self.as_core())

    @property
    def weight_bytes(self) -> int:
        """Bytes of all weights."""
        return int(self.info["weight_bytes"])

    @property
    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes of one token over all layers (K and V)."""
        return int(self.info["kv_bytes_per_token"])


@dataclass(frozen=True)
class Hardware:
    """One accelerator and its host link, as the roofline cost model needs it.

    :param name: device name, for messages.
    :param hbm_capacity_bytes: device memory.
    :param hbm_bandwidth_bytes_per_s: device memory bandwidth.
    :param peak_flops: peak dense FLOP/s at the model's dtype.
    :param host_link_bandwidth_bytes_per_s: host link bandwidth per direction (swap traffic).
    :param host_memory_bytes: host memory available for swapped-out KV.
    """

    name: str
    hbm_capacity_bytes: int
    hbm_bandwidth_bytes_per_s: float
    peak_flops: float
    host_link_bandwidth_bytes_per_s: float
    host_memory_bytes: int = 256 * 2**30

    @classmethod
    def from_backend(
        cls,
        backend: HardwareBackend | type[HardwareBackend],
        *,
        dtype: str = "bf16",
        device_tier: str = "hbm",
        host_tier: str = "host",
    ) -> Hardware:
        """The device tier, the host tier (reached over the host link) and the dtype's peak FLOP/s.

        :param backend: A backend, or a backend class (built from its defaults:
            ``Hardware.from_backend(H100_SXM)`` is ``Hardware.from_backend(H100_SXM())``).
        :raises InvalidConfigError: the backend lacks a tier or the dtype's FLOP/s,
            naming the backend and what it has; ``backend`` is no backend.
        """
        if isinstance(backend, type) and issubclass(backend, HardwareBackend):
            make: Callable[[], HardwareBackend] = backend  # a component class builds from its Config defaults
            try:
                backend = make()
            except TypeError as exc:
                raise InvalidConfigError(
                    f"backend class {backend.__name__} cannot be built from defaults: {exc}"
                ) from None
        if not isinstance(backend, HardwareBackend):
            raise InvalidConfigError(
                f"Hardware.from_backend needs a memarena backend (e.g. memarena.backends.H100_SXM), "
                f"got {type(backend).__name__}"
            )
        try:
            dev, host = backend.tier(device_tier), backend.tier(host_tier)
        except KeyError as exc:
            raise InvalidConfigError(
                f"backend {backend.name!r} cannot run the serving model: {exc.args[0]} "
                "(it needs an accelerator backend such as h100_sxm)"
            ) from None
        flops = backend.peak_flops.get(dtype)
        if not flops:
            have = ", ".join(sorted(backend.peak_flops)) or "none"
            raise InvalidConfigError(f"backend {backend.name!r} has no peak_flops for dtype {dtype!r} (has: {have})")
        return cls(
            name=backend.name,
            hbm_capacity_bytes=dev.capacity_bytes,
            hbm_bandwidth_bytes_per_s=dev.bandwidth_bytes_per_s,
            peak_flops=float(flops),
            host_link_bandwidth_bytes_per_s=host.bandwidth_bytes_per_s,
            host_memory_bytes=host.capacity_bytes,
        )

    def as_core(self) -> dict[str, Any]:
        """The figures as the Rust core reads them."""
        return dataclasses.asdict(self)
