"""Serving workloads: request streams for the ``serving`` family.

* :class:`AzureLLM2023Conv` (the default): the Azure LLM inference trace
  2023, conversation service, shipped with memarena (CC-BY 4.0; cite
  Patel et al., "Splitwise", ISCA 2024), replayed with its timestamps.
* :class:`PoissonRequests`, :class:`GammaRequests`: synthetic arrivals with
  prompt and output length distributions.
* :class:`SharedPrefixRequests`, :class:`MultiTurnRequests`: content
  sharing for prefix caching (system prompts; conversations whose history
  grows turn by turn).

Every serving workload accepts ``n_requests`` (keep the earliest N; 0: all)
and ``time_scale`` (divide arrival times: 2 replays twice as fast, i.e.
twice the load). Length distributions are an integer (fixed) or a dict
``{"kind": "fixed"|"uniform"|"exponential"|"lognormal"|"empirical", ...}``.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from memarena.api import Workload
from memarena.errors import InvalidConfigError

__all__ = [
    "SERVING_WORKLOADS",
    "AzureLLM2023Conv",
    "GammaRequests",
    "MultiTurnRequests",
    "PoissonRequests",
    "ServingWorkload",
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


def _plain(v: Any) -> Any:
    """OmegaConf containers (from Hydra) as plain dicts and lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - hydra is a dependency
        return v
    if isinstance(v, DictConfig | ListConfig):
        return OmegaConf.to_container(v, resolve=True)
    return v


class ServingWorkload(Workload):
    """Base of the serving workloads: :meth:`load` returns :class:`memarena.families.serving.Requests`."""

    family: ClassVar[str] = "serving"

    def __init__(self, n_requests: int = 0, time_scale: float = 1.0) -> None:
        if n_requests < 0:
            raise InvalidConfigError(f"config key 'workload.n_requests' must be >= 0 (0: all), got {n_requests}")
        if not time_scale > 0:
            raise InvalidConfigError(f"config key 'workload.time_scale' must be > 0, got {time_scale}")
        self.n_requests = n_requests
        self.time_scale = time_scale

    def requests(self, seed: int) -> Any:
        """The requests before ``n_requests`` and ``time_scale`` apply."""
        raise NotImplementedError

    def load(self, seed: int) -> Any:
        return self.requests(seed).head(self.n_requests).time_scaled(self.time_scale)

    def describe(self) -> str:
        return self.name if self.time_scale == 1 else f"{self.name}(x{self.time_scale:g})"


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
        n_requests: int = 0
        #: Divide arrival times by this (2: replay twice as fast).
        time_scale: float = 1.0

    def __init__(self, path: str | None = None, n_requests: int = 0, time_scale: float = 1.0) -> None:
        super().__init__(n_requests, time_scale)
        self.path = Path(path).expanduser() if path else None

    def requests(self, seed: int) -> Any:
        from memarena.families.serving import read_azure_csv

        return read_azure_csv(self.path or azure_conv_path())

    def describe(self) -> str:
        base = self.name if self.path is None else self.path.name
        return base if self.time_scale == 1 else f"{base}(x{self.time_scale:g})"


def _lognormal(median: float, sigma: float) -> dict[str, Any]:
    return {"kind": "lognormal", "median": median, "sigma": sigma}


class PoissonRequests(ServingWorkload):
    """Poisson arrivals at ``rate`` requests/s; prompt and output lengths from distributions."""

    name: ClassVar[str] = "poisson"

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.workloads.PoissonRequests"
        n_requests: int = 2000
        #: Requests per second.
        rate: float = 10.0
        prompt_tokens: Any = field(default_factory=lambda: _lognormal(512, 1.0))
        output_tokens: Any = field(default_factory=lambda: _lognormal(128, 1.0))
        #: Parallel samples per request (copy-on-write in paged KV).
        n_parallel: int = 1
        time_scale: float = 1.0

    arrivals_kind: ClassVar[str] = "poisson"

    def __init__(
        self,
        n_requests: int = 2000,
        rate: float = 10.0,
        prompt_tokens: Any = None,
        output_tokens: Any = None,
        n_parallel: int = 1,
        time_scale: float = 1.0,
        **arrivals: Any,
    ) -> None:
        if n_requests < 1:
            raise InvalidConfigError(f"config key 'workload.n_requests' must be >= 1, got {n_requests}")
        super().__init__(0, time_scale)
        self.count = n_requests
        self.rate = rate
        defaults = type(self).Config()  # lengths left out (None) take the Config defaults
        self.prompt_tokens = _plain(defaults.prompt_tokens if prompt_tokens is None else prompt_tokens)
        self.output_tokens = _plain(defaults.output_tokens if output_tokens is None else output_tokens)
        self.n_parallel = n_parallel
        self.arrivals = {"kind": self.arrivals_kind, "rate": rate, **arrivals}

    def spec(self) -> dict[str, Any]:
        """The generator spec handed to the Rust core."""
        return {
            "kind": "synthetic",
            "num_requests": self.count,
            "arrivals": self.arrivals,
            "prompt_tokens": self.prompt_tokens,
            "output_tokens": self.output_tokens,
            "n_parallel": self.n_parallel,
        }

    def requests(self, seed: int) -> Any:
        from memarena.families.serving import generate_requests

        try:
            return generate_requests(self.spec(), seed)
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"config key 'workload' ({self.name}): {exc}") from exc

    def describe(self) -> str:
        extra = "".join(f",{k}={v}" for k, v in self.arrivals.items() if k not in ("kind", "rate"))
        return f"{self.name}(rate={self.rate * self.time_scale:g}{extra})"


class GammaRequests(PoissonRequests):
    """Gamma inter-arrival times (mean 1/``rate``, coefficient of variation ``cv``: > 1 is burstier)."""

    name: ClassVar[str] = "gamma"
    arrivals_kind: ClassVar[str] = "gamma"

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.workloads.GammaRequests"
        n_requests: int = 2000
        rate: float = 10.0
        #: Coefficient of variation of the gaps (1: Poisson).
        cv: float = 2.0
        prompt_tokens: Any = field(default_factory=lambda: _lognormal(512, 1.0))
        output_tokens: Any = field(default_factory=lambda: _lognormal(128, 1.0))
        n_parallel: int = 1
        time_scale: float = 1.0

    def __init__(self, cv: float | None = None, **kwargs: Any) -> None:
        super().__init__(cv=GammaRequests.Config.cv if cv is None else cv, **kwargs)


class SharedPrefixRequests(PoissonRequests):
    """Requests sharing one of ``num_groups`` system prompts (Zipf popularity), plus a unique suffix."""

    name: ClassVar[str] = "shared_prefix"

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.workloads.SharedPrefixRequests"
        n_requests: int = 2000
        rate: float = 10.0
        #: Distinct shared prefixes.
        num_groups: int = 8
        #: Tokens of each shared prefix.
        prefix_tokens: int = 1024
        #: Zipf exponent of group popularity (0: uniform).
        zipf_alpha: float = 1.0
        #: The unique suffix after the shared prefix.
        prompt_tokens: Any = field(default_factory=lambda: _lognormal(128, 1.0))
        output_tokens: Any = field(default_factory=lambda: _lognormal(128, 1.0))
        n_parallel: int = 1
        time_scale: float = 1.0

    def __init__(self, num_groups: int = 8, prefix_tokens: int = 1024, zipf_alpha: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals = {"kind": "poisson", "rate": self.rate}
        self.groups = {"num_groups": num_groups, "prefix_tokens": prefix_tokens, "zipf_alpha": zipf_alpha}

    def spec(self) -> dict[str, Any]:
        return {**super().spec(), "kind": "shared_prefix", **self.groups}

    def describe(self) -> str:
        g = self.groups
        return f"{self.name}(groups={g['num_groups']},prefix={g['prefix_tokens']},rate={self.rate * self.time_scale:g})"


class MultiTurnRequests(ServingWorkload):
    """Multi-turn conversations: each turn's prompt is the whole history plus a new message."""

    name: ClassVar[str] = "multi_turn"

    @dataclass
    class Config:
        _target_: str = "memarena.families.serving.workloads.MultiTurnRequests"
        #: Conversations (each of several requests).
        num_conversations: int = 300
        #: Conversation starts per second (Poisson).
        conversation_rate: float = 1.0
        turns: Any = field(default_factory=lambda: {"kind": "uniform", "min": 1, "max": 8})
        user_tokens: Any = field(default_factory=lambda: _lognormal(128, 0.8))
        output_tokens: Any = field(default_factory=lambda: _lognormal(200, 0.8))
        #: Mean think time between a turn's arrival and the next turn's, seconds.
        mean_think_s: float = 20.0
        #: Keep the earliest N requests (0: all).
        n_requests: int = 0
        time_scale: float = 1.0

    def __init__(
        self,
        num_conversations: int = 300,
        conversation_rate: float = 1.0,
        turns: Any = None,
        user_tokens: Any = None,
        output_tokens: Any = None,
        mean_think_s: float = 20.0,
        n_requests: int = 0,
        time_scale: float = 1.0,
    ) -> None:
        super().__init__(n_requests, time_scale)
        defaults = MultiTurnRequests.Config()  # lengths left out (None) take the Config defaults
        self.spec_ = {
            "kind": "multi_turn",
            "num_conversations": num_conversations,
            "conversation_rate": conversation_rate,
            "turns": _plain(defaults.turns if turns is None else turns),
            "user_tokens": _plain(defaults.user_tokens if user_tokens is None else user_tokens),
            "output_tokens": _plain(defaults.output_tokens if output_tokens is None else output_tokens),
            "mean_think_s": mean_think_s,
        }

    def requests(self, seed: int) -> Any:
        from memarena.families.serving import generate_requests

        try:
            return generate_requests(self.spec_, seed)
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"config key 'workload' ({self.name}): {exc}") from exc

    def describe(self) -> str:
        s = self.spec_
        return f"{self.name}(conversations={s['num_conversations']},rate={s['conversation_rate'] * self.time_scale:g})"


SERVING_WORKLOADS: tuple[type[ServingWorkload], ...] = (
    AzureLLM2023Conv,
    PoissonRequests,
    GammaRequests,
    SharedPrefixRequests,
    MultiTurnRequests,
)
