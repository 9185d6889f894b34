"""Private extension of memarena (Rust, pyo3). Users import :mod:`memarena.families.paging` instead.

Hand-written; checked against the extension with ``python -m mypy.stubtest memarena._core``.

Long native calls (the serving simulation, trace synthesis, miss-ratio
curves, k-means training, batched search) release the GIL and still stop on
Ctrl-C or SIGTERM within a fraction of a second: they run the interpreter's
signal handlers every 50 ms and raise what a handler raised
(``KeyboardInterrupt``), leaving no partial result.
"""

from collections.abc import Iterable, Mapping
from os import PathLike
from typing import Any, ClassVar, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "BM25Index",
    "CallbackError",
    "EventQueue",
    "Index",
    "InvalidConfigError",
    "InvariantError",
    "KVRequest",
    "MalformedInputError",
    "MemarenaError",
    "PagingSim",
    "PagingStats",
    "Trace",
    "__version__",
    "bm25_tokenizers",
    "config_debug",
    "default_debug",
    "feed_many",
    "ffn_kinds",
    "gaussian_mixture",
    "generate_requests",
    "hit_mask",
    "index_config_debug",
    "index_default_debug",
    "index_kinds",
    "kv_manager_kinds",
    "lru_mrc",
    "metric_names",
    "mmc_mean_wait",
    "model_info",
    "policy_names",
    "prediction_kinds",
    "preemption_modes",
    "prefix_caching_modes",
    "read_azure_csv",
    "recall_at_k",
    "replay",
    "search_default_debug",
    "search_param_names",
    "search_params_debug",
    "simulate_mm1",
    "simulate_mmc",
    "simulate_serving",
    "size_distributions",
    "static_allocators",
    "static_variants",
    "trace_generator_kinds",
    "vattention_page_sizes",
    "victim_policies",
]

__version__: str

class MemarenaError(Exception):
    """Base class of every error memarena raises on purpose."""

class InvalidConfigError(MemarenaError):
    """A parameter or name is invalid; the message names it and the allowed values."""

class MalformedInputError(MemarenaError):
    """An input file is malformed; the message names the file and the row or byte offset."""

class InvariantError(MemarenaError):
    """A component broke a documented invariant (for example a Python policy that evicted a non-resident object)."""

class CallbackError(MemarenaError):
    """A component written in Python raised in a callback, or returned a value of the wrong type.

    The message names the component and the call; ``__cause__`` is the exception raised.
    """

@final
class KVRequest:
    """What a KV manager knows of a request (the argument of the Python KV-manager protocol)."""

    @property
    def prompt_tokens(self) -> int: ...
    @property
    def max_tokens(self) -> int: ...
    @property
    def n_parallel(self) -> int: ...
    @property
    def prefix_group(self) -> int | None: ...
    @property
    def prefix_tokens(self) -> int: ...
    @property
    def salt(self) -> int: ...
    def __new__(
        cls,
        prompt_tokens: int,
        max_tokens: int,
        n_parallel: int = 1,
        prefix_group: int | None = None,
        prefix_tokens: int = 0,
        salt: int = 0,
    ) -> KVRequest: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...

def policy_names() -> list[str]:
    """Names of the built-in replacement policies of the core."""

@final
class Trace:
    """A request trace (struct of arrays): ids, optional sizes, timestamps and predictions,
    and the derived next-access and first-access columns."""

    NEVER: ClassVar[int]
    @staticmethod
    def from_arrays(
        ids: npt.NDArray[np.uint64],
        sizes: npt.NDArray[np.uint64] | None = None,
        timestamps: npt.NDArray[np.uint64] | None = None,
        pred_next_vtime: npt.NDArray[np.uint64] | None = None,
        pred_bit: npt.NDArray[np.bool_] | None = None,
    ) -> Trace:
        """Wrap contiguous numpy columns without copying them."""

    @staticmethod
    def read_csv(
        path: str | PathLike[str],
        id_column: str | int | None = None,
        *,
        size_column: str | int | None = None,
        time_column: str | int | None = None,
        delimiter: str = ",",
        has_header: bool = True,
        id_format: str = "integer",
    ) -> Trace:
        """Read a delimited text trace; errors name the file and the row."""

    @staticmethod
    def read_oracle_general(path: str | PathLike[str], *, skip_zero_size: bool = True) -> Trace:
        """Read a libCacheSim oracleGeneral binary trace; errors name the file and the byte offset."""

    @staticmethod
    def synthetic(spec: Mapping[str, Any], n_requests: int, seed: int) -> Trace:
        """Generate a seeded synthetic trace from a spec dict."""

    def write_oracle_general(self, path: str | PathLike[str]) -> None:
        """Write the trace in libCacheSim's oracleGeneral format."""

    def with_oracle_predictions(self, kind: str, cache_size: int) -> Trace:
        """A trace with oracle predictions (``next_arrival``, ``discard_bit`` or ``phase_bit``)."""

    def with_noise(self, error: float, *, seed: int = 0) -> Trace:
        """A trace whose predictions are degraded by seeded noise."""

    def __len__(self) -> int: ...
    @property
    def num_objects(self) -> int:
        """Number of distinct object ids."""

    @property
    def ids(self) -> npt.NDArray[np.uint64]:
        """Object ids (read-only, no copy)."""

    @property
    def sizes(self) -> npt.NDArray[np.uint64] | None:
        """Sizes in bytes, or None for a unit-size trace."""

    @property
    def timestamps(self) -> npt.NDArray[np.uint64] | None:
        """Timestamps, or None."""

    @property
    def pred_next_vtime(self) -> npt.NDArray[np.uint64] | None:
        """Predicted next-arrival virtual times, or None."""

    @property
    def pred_bit(self) -> npt.NDArray[np.bool_] | None:
        """One-bit predictions, or None."""

    @property
    def next_vtime(self) -> npt.NDArray[np.uint64]:
        """Index of the next request to the same id (``NEVER`` = never)."""

    @property
    def first_access(self) -> npt.NDArray[np.bool_]:
        """Whether each request is the first to its id."""

@final
class PagingStats:
    """Counts of one replay."""

    @property
    def requests(self) -> int: ...
    @property
    def misses(self) -> int: ...
    @property
    def bytes_requested(self) -> int: ...
    @property
    def bytes_missed(self) -> int: ...
    @property
    def compulsory_misses(self) -> int: ...
    @property
    def compulsory_bytes(self) -> int: ...
    @property
    def too_large_misses(self) -> int: ...
    @property
    def window_requests(self) -> npt.NDArray[np.uint64]: ...
    @property
    def window_misses(self) -> npt.NDArray[np.uint64]: ...

@final
class PagingSim:
    """A cache (policy + capacity) and the statistics of the requests fed so far."""

    def __new__(
        cls,
        policy: str,
        capacity: int,
        params: Mapping[str, float | int] | None = None,
        *,
        ignore_size: bool = False,
        warmup_requests: int = 0,
        window_requests: int = 0,
    ) -> PagingSim: ...
    @staticmethod
    def from_python(
        policy: object,
        capacity: int,
        *,
        ignore_size: bool = False,
        warmup_requests: int = 0,
        window_requests: int = 0,
    ) -> PagingSim:
        """A simulator driven by a Python policy object (the slow path)."""

    def feed(self, trace: Trace, start: int, stop: int) -> None:
        """Replay requests ``start..stop``; ``start`` must equal ``position``."""

    def stats(self) -> PagingStats:
        """Statistics of the requests fed so far."""

    @property
    def wall_s(self) -> float:
        """Seconds spent replaying so far."""

    @property
    def position(self) -> int:
        """Index of the next request to feed."""

    @property
    def policy(self) -> str:
        """Registry name of the policy (or the Python policy's ``name``)."""

    @property
    def capacity(self) -> int:
        """Capacity in bytes (objects when sizes are ignored)."""

    @property
    def is_python(self) -> bool:
        """Whether the policy is a Python object."""

    @property
    def used_bytes(self) -> int:
        """Bytes held by resident objects."""

    def __len__(self) -> int: ...

def prediction_kinds() -> list[str]:
    """The oracle prediction kinds of :meth:`Trace.with_oracle_predictions`."""

def trace_generator_kinds() -> list[str]:
    """The ``kind``s of a synthetic trace spec (:meth:`Trace.synthetic`)."""

def size_distributions() -> list[str]:
    """The ``kind``s of a synthetic trace's size distribution (``sizes``)."""

def feed_many(sims: list[PagingSim], trace: Trace, start: int, stop: int, threads: int | None = None) -> None:
    """Advance native simulators over requests ``start..stop`` on scoped threads, GIL released."""

def replay(
    policy: str,
    capacity: int,
    trace: Trace,
    params: Mapping[str, float | int] | None = None,
    *,
    ignore_size: bool = False,
    warmup_requests: int = 0,
    window_requests: int = 0,
) -> PagingStats:
    """One-shot replay of a built-in policy through the core's ``sim::replay``."""

def hit_mask(
    policy: str, capacity: int, trace: Trace, params: Mapping[str, float | int] | None = None
) -> npt.NDArray[np.bool_]:
    """The hit mask of a built-in policy over the whole trace from an empty cache."""

def lru_mrc(trace: Trace, cache_sizes: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Exact LRU miss ratios at each cache size (objects), from one pass."""

# ---------------------------------------------------------------------------
# Serving model and event engine (memarena-sim); users import memarena.families.serving.
# ---------------------------------------------------------------------------

def read_azure_csv(path: str | PathLike[str]) -> dict[str, npt.NDArray[Any]]:
    """Read an Azure LLM inference trace CSV into request columns; errors name the file and line."""

def generate_requests(spec: Mapping[str, Any], seed: int) -> dict[str, npt.NDArray[Any]]:
    """Request columns from a generator spec (``kind``: synthetic, shared_prefix or multi_turn)."""

def simulate_serving(
    arrival_s: npt.NDArray[np.float64],
    prompt_tokens: npt.NDArray[np.uint32],
    output_tokens: npt.NDArray[np.uint32],
    config: Mapping[str, Any],
    *,
    n_parallel: npt.NDArray[np.uint32] | None = None,
    prefix_group: npt.NDArray[np.int64] | None = None,
    prefix_tokens: npt.NDArray[np.uint32] | None = None,
    manager: object | None = None,
    max_samples: int | None = None,
) -> dict[str, Any]:
    """Simulate serving the requests under ``config`` (GIL released); the report as a dict.

    ``max_samples``: the most samples the time series may hold (the memory the caller allows it);
    a run whose simulated time outgrows it is an ``InvalidConfigError`` naming ``sample_interval_s``.

    ``manager``: a KV manager written in Python (the protocol of ``memarena.api.KVManager``),
    called back with the GIL re-acquired, instead of ``config["kv"]``.

    Its ``samples`` and ``requests`` entries hold numpy arrays; errors name the config key
    (``config.kv.block_size``) or the request (``requests[17].prompt_tokens``).
    """

def model_info(model: Mapping[str, Any]) -> dict[str, Any]:
    """A model spec (a dict of every field) plus ``num_params``, ``weight_bytes``, ``kv_bytes_per_token``.

    Python sends dicts read from the YAML presets, the one source of specs.
    """

def kv_manager_kinds() -> list[str]:
    """The KV manager kinds the core runs (the ``kind`` of a ``kv`` config)."""

def static_variants() -> list[str]:
    """The ``variant``s of the ``static`` KV manager."""

def static_allocators() -> list[str]:
    """The ``allocator``s of the ``static`` KV manager."""

def prefix_caching_modes() -> list[str]:
    """The ``prefix_caching`` modes of the ``paged`` KV manager."""

def vattention_page_sizes() -> list[int]:
    """The ``page_size_bytes`` the ``vattention`` KV manager accepts (64 KiB, 128 KiB, 256 KiB, 2 MiB)."""

def preemption_modes() -> list[str]:
    """The scheduler's ``preemption`` modes."""

def victim_policies() -> list[str]:
    """The scheduler's ``victim`` policies."""

def ffn_kinds() -> list[str]:
    """The feed-forward shapes (``ffn``) of a model spec."""

def config_debug(what: str, config: Any) -> str:
    """A config dict as the core reads it (the deserialized struct's Rust ``Debug`` form), for tests."""

def default_debug(what: str, model: Any | None = None, hardware: Any | None = None) -> str:
    """The Rust-side default of a config in the ``Debug`` form of :func:`config_debug`, for tests."""

@final
class EventQueue:
    """A time-ordered event queue holding Python payloads, for models written in Python
    (the slow path: one Python call per event). Equal times pop in scheduling order."""

    def __new__(cls) -> EventQueue: ...
    def schedule(self, time_s: float, payload: Any) -> int:
        """Schedule ``payload`` at absolute time ``time_s`` (not before ``now``); returns its sequence number."""

    def schedule_in(self, delay_s: float, payload: Any) -> int:
        """Schedule ``payload`` ``delay_s >= 0`` seconds from now."""

    def pop(self) -> tuple[float, Any] | None:
        """Pop the earliest event as ``(time_s, payload)`` and advance the clock; None when empty."""

    def peek_time(self) -> float | None:
        """Time of the next event, or None."""

    def clear(self) -> None:
        """Drop every pending event (the clock stays)."""

    @property
    def now(self) -> float:
        """The current simulated time (of the last popped event)."""

    def __len__(self) -> int: ...

def simulate_mmc(
    arrival_rate: float, service_rate: float, servers: int, jobs: int, *, warmup_jobs: int = 0, seed: int = 0
) -> dict[str, Any]:
    """Run an M/M/c queue natively (GIL released)."""

def simulate_mm1(
    arrival_rate: float, service_rate: float, jobs: int, *, warmup_jobs: int = 0, seed: int = 0
) -> dict[str, Any]:
    """Run an M/M/1 queue natively."""

def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float | None:
    """Closed-form mean wait in queue of M/M/c (Erlang C); None when unstable."""

# ---------------------------------------------------------------------------
# Vector indexes (memarena-ann); users import memarena.families.retrieval instead.
# ---------------------------------------------------------------------------

@final
class Index:
    """A vector index (flat, simhash, e2lsh, ivf, spann, hnsw, curator) over float32 rows."""

    def __new__(cls, config: Mapping[str, Any], metric: str, dim: int) -> Index:
        """An empty index from its complete build config: ``kind`` and every build parameter of that kind."""
    @staticmethod
    def load(path: str | PathLike[str]) -> Index:
        """Load an index written by ``save``; a bad file raises ``MalformedInputError``."""

    @staticmethod
    def from_bytes(data: bytes) -> Index:
        """Load an index from ``to_bytes`` output."""

    @property
    def kind(self) -> str:
        """Registry name of the index kind."""

    @property
    def metric(self) -> str:
        """``"l2"``, ``"ip"`` or ``"cosine"``."""

    @property
    def dim(self) -> int:
        """Vector dimension."""

    @property
    def is_trained(self) -> bool:
        """Whether the index can accept vectors."""

    def train(self, data: npt.NDArray[np.float32]) -> None:
        """Learn the index structure from ``(n, dim)`` rows."""

    def add(
        self,
        data: npt.NDArray[np.float32],
        ids: npt.NDArray[np.uint64],
        tenant_offsets: npt.NDArray[np.uint64] | None = None,
        tenant_ids: npt.NDArray[np.uint32] | None = None,
    ) -> None:
        """Add ``(n, dim)`` rows with ids, each readable by its CSR row of tenants.

        A signal stops graph, hash, list and tree indexes between two rows;
        each insertion is atomic, so the index stays valid with the first
        rows inserted (``len`` tells how many).
        """

    def search(
        self,
        queries: npt.NDArray[np.float32],
        k: int,
        params: Mapping[str, Any],
        tenant: int | None = None,
        query_tenants: npt.NDArray[np.uint32] | None = None,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(distances, ids)``, each ``(nq, k)``, padded with id -1; ``params``: every search parameter."""

    def delete(self, ids: npt.NDArray[np.uint64]) -> int:
        """Delete ids; returns how many were present."""

    def reset(self) -> None:
        """Remove every vector, keeping the training state."""

    def contains(self, id: int) -> bool:
        """Whether ``id`` is a live vector."""

    def __len__(self) -> int: ...
    def tenant_len(self, tenant: int) -> int:
        """Live vectors readable by ``tenant``."""

    def memory_bytes(self) -> int:
        """Heap bytes of the index."""

    def tenant_memory_bytes(self, tenant: int) -> int:
        """Bytes of per-tenant structure attributable to ``tenant``."""

    def tenant_memory_bytes_many(self, tenants: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint64]:
        """Per-tenant bytes of each of ``tenants``."""

    def to_bytes(self) -> bytes:
        """The index in the versioned, checksummed file format."""

    def save(self, path: str | PathLike[str]) -> None:
        """Write the index to ``path`` atomically."""

@final
class BM25Index:
    """Okapi BM25 over a growing set of documents, ``rank_bm25.BM25Okapi``'s scores bit for bit.

    ``tokenizer``: one of :func:`bm25_tokenizers` (``whitespace_split`` is
    ``str.split(" ")``, ``whitespace`` is ``str.split()``), used by ``add``
    and ``scores``; None for an index fed token lists only.
    """

    def __new__(cls, k1: float = 1.5, b: float = 0.75, epsilon: float = 0.25, tokenizer: str | None = ...) -> BM25Index:
        """An empty index (``tokenizer`` defaults to ``"whitespace_split"``); bad parameters raise."""

    @property
    def tokenizer(self) -> str | None:
        """The tokenizer's name, or None."""

    @property
    def params(self) -> tuple[float, float, float]:
        """``(k1, b, epsilon)``."""

    @property
    def n_terms(self) -> int:
        """Number of distinct terms."""

    def add(self, texts: Iterable[str]) -> None:
        """Append documents split by the tokenizer; ids continue from ``len``."""

    def add_tokens(self, docs: Iterable[Iterable[str]]) -> None:
        """Append already tokenized documents."""

    def scores(self, query: str) -> npt.NDArray[np.float64]:
        """BM25 score of every document for ``query`` (split by the tokenizer), by document id."""

    def scores_tokens(self, terms: Iterable[str]) -> npt.NDArray[np.float64]:
        """BM25 score of every document for an already tokenized query."""

    def tokenize(self, text: str) -> list[str]:
        """The terms of ``text`` under the tokenizer."""

    def idf(self, term: str) -> float:
        """The term's idf after the epsilon floor (0 for an unknown term)."""

    def doc_freq(self, term: str) -> int:
        """Number of documents holding ``term``."""

    def __len__(self) -> int:
        """Number of documents."""

    def memory_bytes(self) -> int:
        """Heap bytes of the index (postings, terms, per-document lengths and norms)."""

    def to_bytes(self) -> bytes:
        """The index as bytes (the tokenizer is not stored)."""

    @staticmethod
    def from_bytes(data: bytes, tokenizer: str | None = ...) -> BM25Index:
        """The index ``to_bytes`` wrote (``tokenizer``: default ``"whitespace_split"``); bad bytes raise."""

def bm25_tokenizers() -> list[str]:
    """Names of the tokenizers ``BM25Index`` runs in Rust."""

def index_kinds() -> list[str]:
    """Registry names of the core's index kinds."""

def search_param_names() -> list[str]:
    """Search parameters every index accepts (each reads its own)."""

def index_config_debug(config: Mapping[str, Any]) -> str:
    """A build config dict as the core reads it (the Rust ``Debug`` form), for tests."""

def index_default_debug(kind: str) -> str:
    """The Rust-side default build config of ``kind`` (for Rust tests) in that form, for tests."""

def search_params_debug(params: Mapping[str, Any]) -> str:
    """A search parameter dict as the core reads it (the Rust ``Debug`` form), for tests."""

def search_default_debug() -> str:
    """The Rust-side default search parameters in that form, for tests."""

def metric_names() -> list[str]:
    """The metrics an index accepts (``l2``, ``ip``, ``cosine``)."""

def recall_at_k(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], k: int) -> float:
    """Mean recall@k over the first ``k`` columns of ``found`` and ``truth`` (``-1`` truth entries not counted)."""

def gaussian_mixture(
    n_base: int, n_queries: int, dim: int, n_clusters: int, cluster_std: float, seed: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.uint32]]:
    """A seeded Gaussian mixture: ``(base, queries, base_labels)``."""
