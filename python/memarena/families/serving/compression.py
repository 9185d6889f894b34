"""A ``kv_compression`` method's measured bytes per token, for the serving model (needs ``memarena[torch]``).

The serving core charges one figure per KV token, ``kv_bytes_per_token``,
for two things: the KV pool (how many tokens fit, hence the batch) and the
bytes decode attention reads from HBM every iteration (the memory roof of
the roofline, :mod:`memarena-sim`'s ``cost.rs``: ``weights +
kv_bytes_per_token x (context tokens read + new tokens)``). A compressed
cache shrinks both by the same factor: KIVI's decode kernels read the
packed 2-bit codes, their scales and zero points and the fp16 residual,
which are what the cache holds. So a method enters the serving model as
one number, measured here with the kvcache family's own machinery:

1. run the method on the fixture model (:func:`memarena.models.load_fixture`)
   over a held-out stretch of the stdlib corpus: prefill ``prompt_tokens``
   (in the method's ``prefill_chunk_tokens`` chunks), then decode
   ``output_tokens`` one at a time, teacher-forced (the next byte of the
   text), as a served request grows;
2. take the bytes the cache holds at the end (:meth:`KVCache.total_bytes`:
   payload, scales and zero points, residual windows, indices, scores: every
   tensor, exactly), over the fp16 full cache of as many tokens
   (:meth:`CacheSpec.full_bytes_per_token`): the **ratio**;
3. the served model's ``kv_bytes_per_token`` times the ratio, rounded up,
   is the compressed cache's bytes per token.

The ratio is taken at the length of a whole request (prompt + output: the
most a request holds, when it is about to finish), because it depends on
the length: KIVI keeps up to R recent tokens in fp16, a share that falls as
the context grows; H2O's score state and a fixed window do the same. It
is dimensionless and carries over to a served model of another shape as
long as the method's overheads are per element: KIVI's keys are quantized
per channel over groups of G tokens (one scale and zero point per channel
per G tokens, whatever the head size) and its values per token over groups
of G channels (the fixture's head_dim of 32 is one group of KIVI's default
G = 32; Llama's 128 are four: the same overhead per element). A method
whose overhead is per head (not per element) would differ by the head
sizes' ratio; none of the built-ins has one.

The weights do not change how many bytes a method keeps (quantization
keeps every token; selection keeps a budget's share), so before the
fixture is trained a seeded random ByteLlama stands in, and the row says
which (``kv_compression_model``). Positions past the fixture's trained
length only cost quality, not bytes: a request longer than it is measured
at its own length.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any

from memarena.errors import InvalidConfigError

__all__ = ["TORCH_EXTRA", "KVRatio", "bytes_per_token", "measure_kv_ratio", "require_torch"]

log = logging.getLogger("memarena")

#: How to install what :func:`measure_kv_ratio` needs.
TORCH_EXTRA = "pip install 'memarena[torch]'"


def require_torch(key: str = "kv_compression") -> None:
    """Raise an error naming the config key and the extra when torch is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise InvalidConfigError(
            f"config key {key!r}: a KV-compression method's bytes per token are measured by running it on the "
            f"fixture model, which needs torch: {TORCH_EXTRA} (or leave {key} unset for the uncompressed cache)"
        ) from None


@dataclass(frozen=True)
class KVRatio:
    """What :func:`measure_kv_ratio` measured.

    :param method: The method's name.
    :param prompt_tokens: Tokens prefilled.
    :param output_tokens: Tokens decoded after them.
    :param kv_bytes: Bytes the method's cache held at the end (every tensor, exactly).
    :param full_bytes: Bytes of the fp16 full cache of as many tokens on the same model.
    :param model: ``fixture`` (the trained fixture weights) or ``random_init`` (a seeded random ByteLlama).
    """

    method: str
    prompt_tokens: int
    output_tokens: int
    kv_bytes: int
    full_bytes: int
    model: str

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.output_tokens

    @property
    def ratio(self) -> float:
        """Compressed bytes over fp16 full bytes at :attr:`tokens`."""
        return self.kv_bytes / self.full_bytes


def bytes_per_token(ratio: float, full_bytes_per_token: int) -> int:
    """The compressed cache's bytes per token of a model whose full cache takes ``full_bytes_per_token``.

    Rounded up (never below 1): the pool holds no more tokens than the
    compressed bytes allow.
    """
    if not (ratio > 0 and math.isfinite(ratio)):
        raise InvalidConfigError(f"kv_compression measured a ratio of {ratio!r} of the full cache; need > 0")
    # Round away float noise first: a ratio of exactly 1 keeps the model's figure.
    return max(1, math.ceil(round(ratio * full_bytes_per_token, 6)))


def measure_kv_ratio(
    method: Any,
    prompt_tokens: int,
    output_tokens: int,
    *,
    budget: float = 1.0,
    model: Any = None,
    seed: int = 0,
) -> KVRatio:
    """Run ``method`` on the fixture model over one request's worth of tokens and compare with the fp16 cache.

    :param method: A :class:`memarena.api.KVCompression`.
    :param prompt_tokens: Tokens prefilled (>= 1).
    :param output_tokens: Tokens decoded one at a time after the prefill (>= 0).
    :param budget: The share of tokens a selecting method keeps (the kvcache family's ``family.budget``).
    :param model: A :class:`memarena.models.ByteLlama` (default: the fixture; a seeded random one if its
        weights are not installed).
    :param seed: Picks the held-out text window.
    """
    import torch

    from memarena.models import ByteLlama, CacheSpec, load_fixture
    from memarena.models.corpus import load_corpus

    if prompt_tokens < 1 or output_tokens < 0:
        raise InvalidConfigError(
            f"kv_compression is measured over prompt_tokens >= 1 and output_tokens >= 0, "
            f"got {prompt_tokens} and {output_tokens}"
        )
    label = "given"
    if model is None:
        try:
            model, label = load_fixture(), "fixture"
        except FileNotFoundError as exc:
            log.warning("%s; measuring KV bytes on a seeded random ByteLlama (bytes do not depend on weights)", exc)
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                model, label = ByteLlama().eval(), "random_init"
    n = prompt_tokens + output_tokens
    (window,) = load_corpus("heldout").windows(1, n, seed)
    tokens = torch.tensor(list(window), dtype=torch.long)
    spec = CacheSpec.of(model.cfg, model.rope)
    # Positions past the trained length cost quality, not bytes: let a long request be measured at its length.
    spec = dataclasses.replace(spec, max_seq_len=max(spec.max_seq_len, n))
    cache = method.new_cache(spec, budget)
    chunk = getattr(method, "prefill_chunk_tokens", None) or prompt_tokens
    with torch.inference_mode():
        for start in range(0, prompt_tokens, chunk):
            model(tokens[None, start : min(start + chunk, prompt_tokens)], cache)
        for i in range(prompt_tokens, n):
            model(tokens[None, i : i + 1], cache)
    return KVRatio(
        method=str(getattr(method, "name", type(method).__name__)),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        kv_bytes=int(cache.total_bytes()),
        full_bytes=n * spec.full_bytes_per_token(),
        model=label,
    )
