"""The ``kvcache`` family: quality vs memory of KV-cache compression on the fixture model.

One run evaluates one method (``kv_compression=<name>``) at one budget
(``family.budget``: the fraction of the context's tokens a token-selecting
method keeps) on ``n_windows`` seeded windows of the workload's text
(default: the held-out stdlib split the fixture never trained on). For each
window the context (``context_tokens`` bytes) is prefilled into the
method's cache (chunk by chunk where the method sets
``prefill_chunk_tokens``), then the next ``continuation_tokens`` bytes are
decoded one at a time, teacher-forced, on that cache. The same window runs
once on the uncompressed fp16 cache (the reference: method-independent).
Then ``needle_probes`` associative-recall probes (key/value lines early in a
``needle_length``-byte window of code, one key asserted at the end) are
prefilled and the value decoded greedily, on both caches.

One row per run, labelled ``workload``, ``kv_compression``, ``budget``:

* ``kv_bytes``: storage bytes the cache holds after the context's prefill
  (mean over windows), by category (``kv_payload_bytes``,
  ``kv_quant_params_bytes``, ``kv_residual_bytes``, ``kv_indices_bytes``,
  ``kv_masks_bytes``, ``kv_scores_bytes``, ``kv_aux_bytes``);
  ``kv_bytes_end`` after the decode; ``kv_bytes_per_token`` (over the
  context's tokens); ``compression_ratio`` = the fp16 full cache's bytes of
  the same tokens (``kv_bytes_full``) / ``kv_bytes``;
* ``bits_per_byte`` of the continuation on the compressed cache
  (``bits_per_byte_full`` on the full one), ``kl_to_full_bits`` (mean
  KL(full || compressed) of the next-byte distributions, in bits),
  ``top1_agreement`` with the full cache's argmax;
* ``needle_accuracy`` (exact match of the greedy value; ``needle_accuracy_full``);
* ``prefill_s`` and ``decode_s_per_token`` (medians over windows; the full
  cache's as ``prefill_s_full``, ``decode_s_per_token_full``).

``memarena report`` draws bits/byte and needle accuracy against KV bytes,
with the Pareto front. Needs torch (``pip install 'memarena[torch]'``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from memarena.api import Family, KVCompression, MemoryEstimate, PlotSpec, param
from memarena.errors import InvalidConfigError, MemarenaError

if TYPE_CHECKING:
    from memarena.models.bytellama import ByteLlama, ByteLlamaConfig
    from memarena.run import Run

__all__ = ["TORCH_EXTRA", "KVCacheFamily", "load_model", "model_config", "require_torch"]

#: How to install what this family needs.
TORCH_EXTRA = "pip install 'memarena[torch]'"


def require_torch() -> None:
    """Raise a :class:`MemarenaError` naming the extra when torch is not installed."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise MemarenaError(
            f"the kvcache family runs a torch model, and torch is not installed ({exc}): {TORCH_EXTRA}"
        ) from None


def load_model() -> ByteLlama:
    """The model the family evaluates: the fixture (:func:`memarena.models.load_fixture`).

    :raises MemarenaError: the fixture's weights are not in this install.
    """
    from memarena.models import load_fixture

    try:
        return load_fixture()
    except FileNotFoundError as exc:
        raise MemarenaError(str(exc)) from exc


def model_config() -> ByteLlamaConfig:
    """The shape of :func:`load_model`'s model, read without building it (for the memory estimate)."""
    from memarena.models import ByteLlamaConfig, fixture_card

    try:
        return ByteLlamaConfig.from_dict(fixture_card()["config"])
    except FileNotFoundError:
        return ByteLlamaConfig()  # no fixture: the run stops at load_model; the defaults are its shape


_CATEGORY_COLUMNS = {
    "payload": "kv_payload_bytes",
    "quant_params": "kv_quant_params_bytes",
    "residual": "kv_residual_bytes",
    "indices": "kv_indices_bytes",
    "masks": "kv_masks_bytes",
    "scores": "kv_scores_bytes",
    "aux": "kv_aux_bytes",
}


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


class KVCacheFamily(Family):
    """KV-cache compression on the fixture model: KV bytes vs bits/byte, KL, top-1, needle accuracy, time."""

    name: ClassVar[str] = "kvcache"
    label_columns: ClassVar[tuple[str, ...]] = ("workload", "kv_compression", "budget")
    summary_columns: ClassVar[tuple[str, ...]] = (
        "kv_bytes",
        "compression_ratio",
        "bits_per_byte",
        "kl_to_full_bits",
        "top1_agreement",
        "needle_accuracy",
        "prefill_s",
        "decode_s_per_token",
    )
    plots: ClassVar[tuple[PlotSpec, ...]] = (
        PlotSpec(
            x="kv_bytes",
            y="bits_per_byte",
            hue="kv_compression",
            title="Bits/byte vs KV-cache bytes (dashed: Pareto front)",
            logx=True,
            filename="bits_per_byte_vs_kv_bytes.png",
            pareto=("min", "min"),
        ),
        PlotSpec(
            x="kv_bytes",
            y="needle_accuracy",
            hue="kv_compression",
            title="Needle accuracy vs KV-cache bytes (dashed: Pareto front)",
            logx=True,
            filename="needle_accuracy_vs_kv_bytes.png",
            pareto=("min", "max"),
        ),
        PlotSpec(
            x="compression_ratio",
            y="kl_to_full_bits",
            hue="kv_compression",
            title="KL(full || compressed), bits, vs compression ratio",
            logx=True,
            filename="kl_vs_compression.png",
            pareto=("max", "min"),
        ),
    )

    @dataclass
    class Config:
        _target_: str = "memarena.families.kvcache.family.KVCacheFamily"
        #: Fraction of the context's tokens a token-selecting method keeps (quantizers ignore it).
        budget: float = param(0.5, gt=0, le=1)
        #: Windows of the workload's text evaluated.
        n_windows: int = param(8, ge=1)
        #: Bytes of each window prefilled into the cache.
        context_tokens: int = param(896, ge=1)
        #: Bytes after the context decoded one at a time on the cache (teacher-forced); at least 2.
        continuation_tokens: int = param(128, ge=2)
        #: Associative-recall needle probes (0: none).
        needle_probes: int = param(32, ge=0)
        #: Bytes of each needle probe's window (to the end of the asked value).
        needle_length: int = param(1024, ge=128)
        #: Added to the run's seed: picks the windows and the probes.
        seed: int = param(0, ge=0)
        #: torch threads (torch.set_num_threads) while the run computes; one is often fastest here.
        threads: int = param(1, ge=1, le=1024)

    def estimate_memory(self, run: Run) -> MemoryEstimate | None:
        """Weights, two caches, attention's working set and logits (:mod:`memarena.families.kvcache.memory`)."""
        try:
            cfg = model_config()
        except ImportError:  # no torch: run() says which extra to install
            return None
        from memarena.families.kvcache.memory import estimate

        self.check_lengths(cfg.max_seq_len)  # before the estimate: a clearer refusal of a too-long window
        return estimate(self, cfg)

    def check_lengths(self, max_seq_len: int) -> None:
        """Refuse windows longer than the model's trained length, naming the keys."""
        total = self.context_tokens + self.continuation_tokens
        if total > max_seq_len:
            raise InvalidConfigError(
                f"config keys 'family.context_tokens' + 'family.continuation_tokens' "
                f"({self.context_tokens} + {self.continuation_tokens} = {total}) exceed the model's trained "
                f"length of {max_seq_len} tokens (max_seq_len): positions beyond it are out of distribution"
            )
        if self.needle_probes and self.needle_length > max_seq_len:
            raise InvalidConfigError(
                f"config key 'family.needle_length' ({self.needle_length}) exceeds the model's trained "
                f"length of {max_seq_len} tokens (max_seq_len)"
            )

    def run(self, run: Run) -> None:
        require_torch()
        import torch

        workload = run.component("workload")
        if getattr(workload, "family", None) != "kvcache":
            raise InvalidConfigError(
                f"config key 'workload': {workload.name!r} is a {getattr(workload, 'family', '?')} workload, "
                "not text for the kvcache family"
            )
        chosen = run.choices.get("kv_compression")
        if not run.has("kv_compression") and chosen:
            # The preset's default is optional (so a torch-less install composes and gets the extra's
            # error above), which lets Hydra skip an unknown option silently: name it here.
            available = ", ".join(run.registry.names("kv_compression")) or "(none registered)"
            raise InvalidConfigError(f"config key 'kv_compression': unknown option {chosen!r}; available: {available}")
        method = run.component("kv_compression")
        if not isinstance(method, KVCompression):
            raise InvalidConfigError(
                f"config key 'kv_compression' built {type(method).__name__}, not a memarena KVCompression"
            )
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            with torch.inference_mode():
                model = load_model()
                self.check_lengths(model.cfg.max_seq_len)
                corpus = workload.load(run.seed)
                run.emit(self._evaluate(run, model, corpus, method, workload.describe()))
        finally:
            torch.set_num_threads(threads)

    def _evaluate(
        self, run: Run, model: ByteLlama, corpus: Any, method: KVCompression, workload: str
    ) -> dict[str, Any]:
        import torch

        from memarena.families.kvcache.eval import as_tokens, decode_step, greedy, next_byte_scores, prefill_next
        from memarena.families.kvcache.methods.full import FullCache
        from memarena.models import CacheSpec
        from memarena.models.corpus import needle_probe

        spec = CacheSpec.of(model.cfg, model.rope)
        full = FullCache()
        seed = run.seed + self.seed
        ctx, cont = self.context_tokens, self.continuation_tokens
        try:
            windows = corpus.windows(self.n_windows, ctx + cont, seed)
            probes = needle_probe(corpus, self.needle_probes, self.needle_length, seed) if self.needle_probes else []
        except ValueError as exc:
            raise InvalidConfigError(
                f"config keys 'workload' / 'family.context_tokens' / 'family.needle_length': {exc}"
            ) from exc
        chunk = method.prefill_chunk_tokens

        def run_window(
            m: KVCompression, tokens: torch.Tensor, chunk_tokens: int | None
        ) -> tuple[torch.Tensor, dict[str, int], int, float, float]:
            cache = m.new_cache(spec, self.budget)
            t0 = time.perf_counter()
            logits = [prefill_next(model, tokens[:ctx], cache, chunk_tokens)]
            t1 = time.perf_counter()
            by_cat = cache.nbytes()
            for tok in tokens[ctx : ctx + cont - 1].tolist():
                logits.append(decode_step(model, tok, cache))
            t2 = time.perf_counter()
            return torch.stack(logits), by_cat, cache.total_bytes(), t1 - t0, (t2 - t1) / (cont - 1)

        bits = bits_full = kl = agree = 0.0
        kv_bytes, kv_end, prefill_s, decode_s, prefill_full_s, decode_full_s = [], [], [], [], [], []
        cats: dict[str, list[int]] = {c: [] for c in _CATEGORY_COLUMNS}
        needle_hits = needle_hits_full = 0
        desc = f"kvcache {run.label('kv_compression', method.name)} budget={self.budget}"
        with run.progress(len(windows) + len(probes), desc=desc, unit="window") as bar:
            for w in windows:
                tokens = as_tokens(w)
                targets = tokens[ctx : ctx + cont]
                ref, _, _, p_s, d_s = run_window(full, tokens, None)
                prefill_full_s.append(p_s)
                decode_full_s.append(d_s)
                logits, by_cat, end, p_s, d_s = run_window(method, tokens, chunk)
                prefill_s.append(p_s)
                decode_s.append(d_s)
                kv_bytes.append(sum(by_cat.values()))
                kv_end.append(end)
                for c in cats:
                    cats[c].append(by_cat.get(c, 0))
                b, k, a = next_byte_scores(logits, ref, targets)
                bits, kl, agree = bits + b, kl + k, agree + a
                bits_full += next_byte_scores(ref, ref, targets)[0]
                bar.update(1)
            for probe in probes:
                prompt = as_tokens(probe.prompt)
                n = len(probe.answer)
                for m, chunk_tokens in ((full, None), (method, chunk)):
                    cache = m.new_cache(spec, self.budget)
                    got = greedy(model, cache, prefill_next(model, prompt, cache, chunk_tokens), n)
                    hit = int(got == probe.answer)
                    if m is full:
                        needle_hits_full += hit
                    else:
                        needle_hits += hit
                bar.update(1)
        positions = len(windows) * cont
        full_bytes = spec.full_bytes_per_token() * ctx
        mean_bytes = _mean([float(x) for x in kv_bytes])
        row: dict[str, Any] = {
            "workload": workload,
            "kv_compression": run.label("kv_compression", method.name),
            "budget": self.budget,
            "context_tokens": ctx,
            "continuation_tokens": cont,
            "n_windows": len(windows),
            "needle_probes": len(probes),
            "threads": self.threads,
            "kv_bytes": mean_bytes,
            "kv_bytes_end": _mean([float(x) for x in kv_end]),
            "kv_bytes_per_token": mean_bytes / ctx,
            "kv_bytes_full": full_bytes,
            "compression_ratio": full_bytes / mean_bytes if mean_bytes else float("inf"),
        }
        row.update({col: _mean([float(x) for x in cats[c]]) for c, col in _CATEGORY_COLUMNS.items()})
        row.update(
            {
                "bits_per_byte": bits / positions,
                "bits_per_byte_full": bits_full / positions,
                "kl_to_full_bits": kl / positions,
                "top1_agreement": agree / positions,
                "needle_accuracy": needle_hits / len(probes) if probes else None,
                "needle_accuracy_full": needle_hits_full / len(probes) if probes else None,
                "prefill_s": statistics.median(prefill_s),
                "decode_s_per_token": statistics.median(decode_s),
                "prefill_s_full": statistics.median(prefill_full_s),
                "decode_s_per_token_full": statistics.median(decode_full_s),
            }
        )
        return row
