"""``simulate``: requests, a model, a device and a KV manager in; a report out.

The whole simulation (continuous batching, the KV manager, the roofline
cost of every iteration) runs in the Rust core with the GIL released; a KV
manager written in Python is called back from it (the slow path, see
:class:`memarena.api.KVManager`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from memarena import _core
from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    from memarena.api import HardwareBackend, KVManager
    from memarena.families.serving.model import Hardware, ModelSpec
    from memarena.families.serving.requests import Requests

__all__ = ["BREAKDOWN", "STATUS", "ServingReport", "simulate"]

#: The KV memory categories of the vLLM paper's Fig. 2 plus vAttention's idle
#: mapped pages, in the order they are stacked; together they are the whole KV
#: pool at every sample. The first four are the memory requests *use* (the
#: denominator of ``token_states_share_of_used``); ``idle_mapped`` (pages kept
#: mapped on finished requests' slots, reclaimable on demand) and ``free`` are not.
BREAKDOWN: tuple[str, ...] = ("token_states", "reserved", "internal_frag", "external_frag", "idle_mapped", "free")

#: Per-request status codes in :attr:`ServingReport.status`.
STATUS: dict[int, str] = {0: "completed", 1: "rejected_too_long", 2: "rejected_unservable"}

_LATENCIES = ("ttft", "tbt", "e2e")
_QUANTILES = ("mean", "p50", "p90", "p99", "max")


@dataclass(frozen=True)
class ServingReport:
    """The result of :func:`simulate`.

    :param summary: scalar metrics (units in the names), latency summaries
        in ``ttft_s``/``tbt_s``/``e2e_s`` and the mean busy breakdown.
    :param samples: the time series (one entry per sample interval):
        ``time_s``, ``running_requests``, ``running_seqs`` (the batch),
        ``waiting_requests``, ``swapped_requests`` and the KV breakdown in
        bytes (``token_states_bytes`` ... ``free_bytes``, ``cached_free_bytes``).
    :param status: per request, a code of :data:`STATUS`.
    :param ttft_s: per request, time to first token (NaN unless completed).
    :param e2e_s: per request, arrival to last token (NaN unless completed).
    """

    summary: dict[str, Any]
    samples: dict[str, npt.NDArray[Any]]
    status: npt.NDArray[np.uint8]
    ttft_s: npt.NDArray[np.float64]
    e2e_s: npt.NDArray[np.float64]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["summary"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def pool_bytes(self) -> int:
        """The KV pool, bytes."""
        return int(self.summary["kv_pool_bytes"])

    @property
    def rejected(self) -> int:
        """Requests rejected (too long for the model, or unservable on this device)."""
        return int(self.summary["rejected_too_long"] + self.summary["rejected_unservable"])

    def breakdown_over_time(self) -> dict[str, npt.NDArray[np.uint64]]:
        """Bytes of each :data:`BREAKDOWN` category at every sample; they sum to the pool."""
        return {k: self.samples[f"{k}_bytes"] for k in BREAKDOWN}

    def mean_breakdown(self) -> dict[str, int]:
        """Mean bytes per category over the samples with requests running (Fig. 2 averages these)."""
        b = self.summary["mean_busy_breakdown"]
        return {k: int(b[f"{k}_bytes"]) for k in BREAKDOWN}

    def row(self) -> dict[str, Any]:
        """The scalar metrics as one flat row (units in the names)."""
        s = self.summary
        row: dict[str, Any] = {
            k: s[k]
            for k in (
                "num_requests",
                "completed",
                "rejected_too_long",
                "rejected_unservable",
                "duration_s",
                "busy_s",
                "throughput_requests_per_s",
                "throughput_output_tokens_per_s",
                "throughput_total_tokens_per_s",
                "output_tokens",
                "prompt_tokens_computed",
                "iterations",
                "mean_batch_seqs",
                "mean_batch_requests",
                "max_batch_seqs",
                "preemptions_recompute",
                "preemptions_swap",
                "swap_out_bytes",
                "recomputed_tokens",
                "prefix_query_tokens",
                "prefix_hit_tokens",
                "prefix_hit_rate",
                "kv_pool_bytes",
                "weight_bytes",
                "kv_bytes_per_token",
                "cow_copies",
                "cache_evictions",
                "pages_mapped",
                "pages_reclaimed",
            )
        }
        row["rejected"] = self.rejected
        row["preemptions"] = s["preemptions_recompute"] + s["preemptions_swap"]
        for lat in _LATENCIES:
            for q in _QUANTILES:
                row[f"{lat}_{q}_s"] = s[f"{lat}_s"][q]
        pool = self.pool_bytes
        mean = self.mean_breakdown()
        for k in BREAKDOWN:
            row[f"{k}_bytes"] = mean[k]
        for k in BREAKDOWN:
            row[f"{k}_share"] = mean[k] / pool if pool else 0.0
        row["token_states_share_of_used"] = s["token_state_share_of_used"]
        return row


def _complete(d: Mapping[str, Any] | None, entry: str) -> dict[str, Any]:
    """``d`` over the serving family's defaults of the core's ``entry`` (the core requires every key).

    The keys and their defaults are the serving family's
    (:class:`memarena.families.serving.family.ServingFamily.Config`).
    """
    from memarena.families.serving.family import COST_KEYS, SCHEDULER_KEYS, ServingFamily

    defaults = ServingFamily.Config()
    keys = {"scheduler": SCHEDULER_KEYS, "cost": COST_KEYS}[entry]
    return {**{k: getattr(defaults, k) for k in keys}, **({} if d is None else dict(d))}


def _check_series_fits(requests: Requests, sample_interval_s: Any) -> None:
    """Refuse a time series (a sample per interval over the simulated span) that cannot fit in memory."""
    from memarena.families.serving.memory import BYTES_PER_SAMPLE, DRAIN_SHARE, MAX_DRAIN_S
    from memarena.resources import check_fits

    if not isinstance(sample_interval_s, int | float) or not sample_interval_s > 0:
        return  # 0: no series; a wrong value is the core's to name
    span = requests.span_s
    simulated = span + min(span * DRAIN_SHARE, MAX_DRAIN_S)
    samples = simulated / sample_interval_s + 2
    check_fits(
        samples * BYTES_PER_SAMPLE,
        "sample_interval_s",
        f"the time series ({simulated:.3g} simulated s of arrivals and drain / sample_interval_s "
        f"{sample_interval_s:g} = {samples:.3g} samples x {BYTES_PER_SAMPLE} B)",
    )


def _max_samples() -> int | None:
    """The most samples of the time series the available memory holds (None: unknown).

    The span estimate (:func:`_check_series_fits`) cannot foresee a run whose
    iterations stretch the simulated time (a tiny ``compute_efficiency``): the
    core stops such a run here, with an error naming the keys that stretch it,
    instead of growing the series into all the memory there is.
    """
    from memarena.families.serving.memory import BYTES_PER_SAMPLE
    from memarena.resources import available_memory_bytes

    limit = available_memory_bytes()
    return None if limit is None else max(2, limit // BYTES_PER_SAMPLE)


def simulate(
    requests: Requests,
    *,
    model: ModelSpec | str,
    hardware: Hardware | HardwareBackend | type[HardwareBackend],
    kv_manager: KVManager | Mapping[str, Any],
    scheduler: Mapping[str, Any] | None = None,
    cost: Mapping[str, Any] | None = None,
    gpu_memory_utilization: float = 0.9,
    activation_reserve_bytes: int = 0,
    max_model_len: int | None = None,
    kv_bytes_per_token: int | None = None,
    swap_space_bytes: int | None = None,
    sample_interval_s: float = 1.0,
    seed: int = 0,
    check_invariants: bool = False,
) -> ServingReport:
    """Simulate serving ``requests`` (natively, with the GIL released).

    :param requests: The requests (see :class:`Requests`).
    :param model: A :class:`ModelSpec`, or the name of a spec built into the core.
    :param hardware: The device: a :class:`Hardware`, or a backend or backend class
        (``H100_SXM()``, ``H100_SXM``: read through :meth:`Hardware.from_backend`).
    :param kv_manager: A KV manager: a built-in (``StaticKV``, ``PagedKV``,
        ``VAttentionKV``) or its complete core config dict
        (``PagedKV().core_config()``), run natively; or a manager written in
        Python (a :class:`memarena.api.KVManager` whose ``core_config()`` is
        None, implementing its protocol), run by the core through the
        callback adapter (slow path).
    :param scheduler: ``max_num_batched_tokens``, ``max_num_seqs``,
        ``chunked_prefill``, ``preemption`` (``recompute`` or ``swap``),
        ``victim`` (``last_admitted``, ``most_kv``, ``least_progress``); keys
        left out take the serving family's defaults.
    :param cost: Roofline calibration: ``compute_efficiency``,
        ``bandwidth_efficiency`` (1.0: the pure roofline), ``iteration_overhead_s``;
        keys left out take the serving family's defaults.
    :param gpu_memory_utilization: Share of device memory the server may use.
    :param activation_reserve_bytes: Device memory kept for activations.
    :param max_model_len: Longest ``prompt + output`` served (default: the
        model's context); longer requests are rejected and counted.
    :param kv_bytes_per_token: Override (a compressed KV cache); default from the model.
    :param swap_space_bytes: Host swap space (default: the host tier's capacity).
    :param sample_interval_s: Interval of the time series (0: none).
    :param seed: Recorded seed.
    :param check_invariants: Re-check every KV invariant at every iteration (slow).
    :raises CallbackError: a Python manager's callback raised or returned a
        wrong value; the message names the manager and the call.
    :raises InvalidConfigError: naming the key (``config.kv.block_size``), the
        request (``requests[3].prompt_tokens``), or the model and device when
        the weights do not fit; naming ``sample_interval_s`` when the series
        over the arrival span would not fit in the available memory.
    """
    from memarena.families.serving.model import Hardware, ModelSpec

    kv: dict[str, Any] | None
    python_kv: object | None = None
    if isinstance(kv_manager, Mapping):
        kv = dict(kv_manager)
    else:
        core_config = getattr(kv_manager, "core_config", None)
        kv = core_config() if callable(core_config) else None
        if kv is None:
            python_kv = kv_manager
    if not isinstance(model, str | ModelSpec):
        raise InvalidConfigError(f"model must be a ModelSpec or a built-in name, got {type(model).__name__}")
    if isinstance(model, str):
        model = ModelSpec.builtin(model)
    if not isinstance(hardware, Hardware):
        hardware = Hardware.from_backend(hardware)
    config: dict[str, Any] = {
        "model": model.as_core(),
        "hardware": hardware.as_core(),
        "scheduler": _complete(scheduler, "scheduler"),
        "cost": _complete(cost, "cost"),
        "gpu_memory_utilization": gpu_memory_utilization,
        "activation_reserve_bytes": activation_reserve_bytes,
        "max_model_len": max_model_len,
        "kv_bytes_per_token": kv_bytes_per_token,
        "swap_space_bytes": swap_space_bytes,
        "sample_interval_s": sample_interval_s,
        "seed": seed,
        "check_invariants": check_invariants,
    }
    config["kv"] = kv  # null: the Python manager below is the pool
    _check_series_fits(requests, sample_interval_s)
    out = _core.simulate_serving(
        requests.arrival_s,
        requests.prompt_tokens,
        requests.output_tokens,
        config,
        **requests.core_kwargs(),
        manager=python_kv,
        max_samples=_max_samples(),
    )
    samples = out.pop("samples")
    per_request = out.pop("requests")
    return ServingReport(out, samples, per_request["status"], per_request["ttft_s"], per_request["e2e_s"])
