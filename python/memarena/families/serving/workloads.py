"""Serving workloads: request streams for the ``serving`` family.

* :class:`AzureLLM2023Conv` (the default): the Azure LLM inference trace
  2023, conversation service, shipped with memarena (CC-BY 4.0; cite
  Patel et al., "Splitwise", ISCA 2024), replayed with its timestamps.
* :class:`PoissonRequests`, :class:`GammaRequests`: synthetic arrivals with
  prompt and output length distributions.
* :class:`ShareGPTLike`: Poisson arrivals with the ShareGPT length means the
  vLLM paper publishes (its Fig. 11a), for ``experiment=vllm_fig2``.
* :class:`SharedPrefixRequests`, :class:`MultiTurnRequests`: content
  sharing for prefix caching (system prompts; conversations whose history
  grows turn by turn).

Every serving workload accepts ``n_requests`` (keep the earliest N; 0: all)
and ``time_scale`` (divide arrival times: 2 replays twice as fast, i.e.
twice the load). Length distributions are an integer (fixed) or a dict
``{"kind": "fixed"|"uniform"|"exponential"|"lognormal"|"empirical", ...}``.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from memarena.api import Workload, param
from memarena.errors import InvalidConfigError, core_key_error, unreadable_file

__all__ = [
    "SERVING_WORKLOADS",
    "AzureLLM2023Conv",
    "GammaRequests",
    "MultiTurnRequests",
    "PoissonRequests",
    "ServingWorkload",
    "ShareGPTLike",
    "SharedPrefixRequests",
    "azure_conv_path",
]

AZURE_ATTRIBUTION = (
    "Azure LLM inference trace 2023 (Azure Public Dataset, CC-BY 4.0); cite Patel et al., "
    '"Splitwise: Efficient generative LLM inference using phase splitting", ISCA 2024'
)


def azure_conv_path() -> Path:
    """The shipped ``AzureLLMInferenceTrace_conv.csv``."""
    return Path(str(importlib.resources.files("memarena.data.azure_llm_2023") / "AzureLLMInferenceTrace_conv.csv"))


class ServingWorkload(Workload):
    """Base of the serving workloads: :meth:`load` returns :class:`memarena.families.serving.Requests`.

    Every serving workload's Config has ``n_requests`` (keep the earliest N)
    and ``time_scale`` (divide arrival times).
    """

    family: ClassVar[str] = "serving"
    #: The core's key of each Config field :meth:`requests` hands to the core under another name
    #: (its errors name the core's key; the component's name the field).
    core_keys: ClassVar[dict[str, str]] = {}

    def requests(self, seed: int) -> Any:
        """The requests before ``n_requests`` and ``time_scale`` apply."""
        raise NotImplementedError(f"{self.name} does not generate requests")

    def load(self, seed: int) -> Any:
        return self.requests(seed).head(self.n_requests).time_scaled(self.time_scale)

    def describe(self) -> str:
        return self.name if self.time_scale == 1 else f"{self.name}(x{self.time_scale:g})"

    def _generate(self, spec: dict[str, Any], seed: int) -> Any:
        from memarena.families.serving import generate_requests

        try:
            return generate_requests(spec, seed)
        except InvalidConfigError as exc:  # named by the core's key: name the user's
            fields = [f.name for f in dataclasses.fields(self.Config)]
            raise core_key_error(exc, "workload", self.name, fields, self.core_keys) from exc


class AzureLLM2023Conv(ServingWorkload):
    """Azure LLM inference trace 2023, conversation service (19,366 requests, timestamps kept).

    Shipped with memarena: Azure Public Dataset, CC-BY 4.0. Cite Patel et al.,
    "Splitwise: Efficient generative LLM inference using phase splitting",
    ISCA 2024. ``path`` reads another file of the same format instead (e.g.
    the code-completion trace).
    """

    name: ClassVar[str] = "azure_llm_2023_conv"
    attribution: ClassVar[str] = AZURE_ATTRIBUTION

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.workloads.AzureLLM2023Conv"
        #: Another CSV of the same format (TIMESTAMP,ContextTokens,GeneratedTokens); null: the shipped trace.
        path: str | None = None
        #: Keep the earliest N requests (0: all).
        n_requests: int = param(0, ge=0)
        #: Divide arrival times by this (2: replay twice as fast).
        time_scale: float = param(1.0, gt=0)

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.path = Path(self.config.path).expanduser() if self.config.path else None

    def requests(self, seed: int) -> Any:
        from memarena.families.serving import read_azure_csv

        with unreadable_file("workload.path", f"workload={self.name}"):
            return read_azure_csv(self.path or azure_conv_path())

    def describe(self) -> str:
        base = self.name if self.path is None else self.path.name
        return base if self.time_scale == 1 else f"{base}(x{self.time_scale:g})"


def _lognormal(median: float, sigma: float) -> dict[str, Any]:
    return {"kind": "lognormal", "median": median, "sigma": sigma}


class PoissonRequests(ServingWorkload):
    """Poisson arrivals at ``rate`` requests/s; prompt and output lengths from distributions."""

    name: ClassVar[str] = "poisson"
    arrivals_kind: ClassVar[str] = "poisson"
    core_keys: ClassVar[dict[str, str]] = {"num_requests": "n_requests", "arrivals.rate": "rate"}

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.workloads.PoissonRequests"
        #: Requests generated.
        n_requests: int = param(2000, ge=1)
        #: Requests per second.
        rate: float = param(10.0, gt=0)
        prompt_tokens: Any = param(factory=lambda: _lognormal(512, 1.0))
        output_tokens: Any = param(factory=lambda: _lognormal(128, 1.0))
        #: Parallel samples per request (copy-on-write in paged KV).
        n_parallel: int = param(1, ge=1)
        #: Divide arrival times by this (2: twice the load).
        time_scale: float = param(1.0, gt=0)

    def arrivals(self) -> dict[str, Any]:
        """The arrival process handed to the core."""
        return {"kind": self.arrivals_kind, "rate": self.rate}

    def spec(self) -> dict[str, Any]:
        """The generator spec handed to the Rust core."""
        return {
            "kind": "synthetic",
            "num_requests": self.n_requests,
            "arrivals": self.arrivals(),
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "n_parallel": self.n_parallel,
        }

    def requests(self, seed: int) -> Any:
        return self._generate(self.spec(), seed)

    def describe(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.arrivals().items() if k not in ("kind", "rate"))
        return f"{self.name}(rate={self.rate * self.time_scale:g}{extra})"


class GammaRequests(PoissonRequests):
    """Gamma inter-arrival times (mean 1/``rate``, coefficient of variation ``cv``: > 1 is burstier)."""

    name: ClassVar[str] = "gamma"
    arrivals_kind: ClassVar[str] = "gamma"
    core_keys: ClassVar[dict[str, str]] = {**PoissonRequests.core_keys, "arrivals.cv": "cv"}

    @dataclass
    class Config(PoissonRequests.Config):
        _target_: str = "memarena.families.serving.workloads.GammaRequests"
        #: Coefficient of variation of the gaps (1: Poisson); in [1.5e-8, 6.7e7], where the gaps' gamma shape
        #: 1/cv^2 stays in the range the core's f64 sampler follows (memarena-sim's dist::GAMMA_MAX_SHAPE).
        cv: float = param(2.0, gt=0)

    def arrivals(self) -> dict[str, Any]:
        return {**super().arrivals(), "cv": self.cv}


#: The vLLM paper's ShareGPT statistics (Kwon et al., "Efficient Memory Management for Large Language
#: Model Serving with PagedAttention", SOSP '23, Fig. 11a): mean input 161.31 and mean output 337.99 tokens.
SHAREGPT_MEAN_PROMPT_TOKENS = 161.31
SHAREGPT_MEAN_OUTPUT_TOKENS = 337.99
SHAREGPT_SOURCE = (
    "ShareGPT length means from Kwon et al., SOSP '23 (vLLM), Fig. 11a: input 161.31, output 337.99 tokens; "
    "exponential lengths (only the means are published), Poisson arrivals (section 6.1)"
)


class ShareGPTLike(PoissonRequests):
    """ShareGPT-like requests (seeded, synthetic): the vLLM paper's published ShareGPT length means.

    The vLLM paper (Kwon et al., SOSP '23) reports for its ShareGPT trace a
    mean input of 161.31 and a mean output of 337.99 tokens (Fig. 11a) and
    synthesizes arrivals as a Poisson process at a given rate (section 6.1).
    Only the means are published, so each length is exponential with that
    mean (the maximum-entropy distribution for a positive mean; the paper's
    histograms are long-tailed, highest at short lengths): no other
    parameter is chosen. Requests longer than the model's context are
    rejected and counted, as the paper's trace leaves them out.
    """

    name: ClassVar[str] = "sharegpt_like"
    attribution: ClassVar[str] = SHAREGPT_SOURCE

    @dataclass
    class Config(PoissonRequests.Config):
        _target_: str = "memarena.families.serving.workloads.ShareGPTLike"
        n_requests: int = param(2000, ge=1)
        #: Requests per second (the paper's Fig. 2 / Fig. 13 setting: 2).
        rate: float = param(2.0, gt=0)
        prompt_tokens: Any = param(factory=lambda: {"kind": "exponential", "mean": SHAREGPT_MEAN_PROMPT_TOKENS})
        output_tokens: Any = param(factory=lambda: {"kind": "exponential", "mean": SHAREGPT_MEAN_OUTPUT_TOKENS})


class SharedPrefixRequests(PoissonRequests):
    """Requests sharing one of ``num_groups`` system prompts (Zipf popularity), plus a unique suffix."""

    name: ClassVar[str] = "shared_prefix"

    @dataclass
    class Config(PoissonRequests.Config):
        _target_: str = "memarena.families.serving.workloads.SharedPrefixRequests"
        #: The unique suffix after the shared prefix.
        prompt_tokens: Any = param(factory=lambda: _lognormal(128, 1.0))
        #: Distinct shared prefixes.
        num_groups: int = param(8, ge=1)
        #: Tokens of each shared prefix.
        prefix_tokens: int = param(1024, ge=1)
        #: Zipf exponent of group popularity (0: uniform).
        zipf_alpha: float = param(1.0, ge=0)

    def spec(self) -> dict[str, Any]:
        groups = {k: getattr(self, k) for k in ("num_groups", "prefix_tokens", "zipf_alpha")}
        return {**super().spec(), "kind": "shared_prefix", **groups}

    def describe(self) -> str:
        return f"{self.name}(groups={self.num_groups},prefix={self.prefix_tokens},rate={self.rate * self.time_scale:g})"


class MultiTurnRequests(ServingWorkload):
    """Multi-turn conversations: each turn's prompt is the whole history plus a new message."""

    name: ClassVar[str] = "multi_turn"

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.workloads.MultiTurnRequests"
        #: Conversations (each of several requests).
        num_conversations: int = param(300, ge=1)
        #: Conversation starts per second (Poisson).
        conversation_rate: float = param(1.0, gt=0)
        turns: Any = param(factory=lambda: {"kind": "uniform", "min": 1, "max": 8})
        user_tokens: Any = param(factory=lambda: _lognormal(128, 0.8))
        output_tokens: Any = param(factory=lambda: _lognormal(200, 0.8))
        #: Mean think time between a turn's arrival and the next turn's, seconds.
        mean_think_s: float = param(20.0, ge=0)
        #: Keep the earliest N requests (0: all).
        n_requests: int = param(0, ge=0)
        time_scale: float = param(1.0, gt=0)

    def spec(self) -> dict[str, Any]:
        """The generator spec handed to the Rust core."""
        keys = ("num_conversations", "conversation_rate", "turns", "user_tokens", "output_tokens", "mean_think_s")
        return {"kind": "multi_turn", **{k: getattr(self, k) for k in keys}}

    def requests(self, seed: int) -> Any:
        return self._generate(self.spec(), seed)

    def describe(self) -> str:
        return f"{self.name}(conversations={self.num_conversations},rate={self.conversation_rate * self.time_scale:g})"


SERVING_WORKLOADS: tuple[type[ServingWorkload], ...] = (
    AzureLLM2023Conv,
    PoissonRequests,
    GammaRequests,
    ShareGPTLike,
    SharedPrefixRequests,
    MultiTurnRequests,
)
