"""Serving: LLM-serving simulation with pluggable KV-cache managers.

Typed facade over ``memarena._core``:

* :class:`Requests` and its sources: :func:`read_azure_csv` (trace replay,
  timestamps kept) and :func:`generate_requests` (Poisson/Gamma arrivals
  with length distributions, shared-prefix groups, multi-turn conversations);
* :class:`ModelSpec` (published configs; GQA respected) and :class:`Hardware`
  (a view of a hardware backend);
* the KV managers :class:`StaticKV`, :class:`PagedKV`, :class:`VAttentionKV`
  (native), and :class:`PagedPythonKV` (the reference of a KV manager
  written in Python, see :class:`memarena.api.KVManager`);
* :func:`simulate` -> :class:`ServingReport` (throughput, TTFT/TBT/E2E
  percentiles, batch size, preemptions, prefix hits and the KV memory
  breakdown over time);
* the event engine: :class:`EventQueue` for models written in Python (slow
  path) and the native :func:`simulate_mm1` / :func:`simulate_mmc`.
"""

from __future__ import annotations

from memarena.families.serving.events import EventQueue, mm1_mean_wait, mmc_mean_wait, simulate_mm1, simulate_mmc
from memarena.families.serving.kv import KV_MANAGERS, PagedKV, StaticKV, VAttentionKV
from memarena.families.serving.model import Hardware, ModelSpec
from memarena.families.serving.reference import PagedPythonKV
from memarena.families.serving.requests import Requests, generate_requests, read_azure_csv
from memarena.families.serving.sim import BREAKDOWN, STATUS, ServingReport, simulate

__all__ = [
    "BREAKDOWN",
    "KV_MANAGERS",
    "STATUS",
    "EventQueue",
    "Hardware",
    "ModelSpec",
    "PagedKV",
    "PagedPythonKV",
    "Requests",
    "ServingReport",
    "StaticKV",
    "VAttentionKV",
    "generate_requests",
    "mm1_mean_wait",
    "mmc_mean_wait",
    "read_azure_csv",
    "simulate",
    "simulate_mm1",
    "simulate_mmc",
]
