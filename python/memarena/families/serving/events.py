"""The discrete-event engine of the Rust core, for simple models in Python.

Two ways in:

* **native models** (fast): :func:`simulate_mm1` and :func:`simulate_mmc`
  run an M/M/1 or M/M/c queue entirely in Rust (GIL released), with
  :func:`mm1_mean_wait` / :func:`mmc_mean_wait` as the closed forms to
  check them against.
* **Python models** (the documented slow path): :class:`EventQueue` is the
  core's time-ordered queue holding Python payloads. A model pops events
  and schedules new ones; each event costs a few Python calls, so expect
  roughly SimPy's speed, not the native one.

Example, an M/M/1 queue in Python on the core's queue::

    q = EventQueue()
    q.schedule(rng.exponential(1 / lam), "arrival")
    while (ev := q.pop()) is not None:
        now, kind = ev
        ...
"""

from __future__ import annotations

from typing import Any

from memarena import _core

__all__ = ["EventQueue", "mm1_mean_wait", "mmc_mean_wait", "simulate_mm1", "simulate_mmc"]

#: A time-ordered event queue (equal times pop in scheduling order):
#: ``schedule(time_s, payload)``, ``schedule_in(delay_s, payload)``,
#: ``pop() -> (time_s, payload) | None``, ``peek_time()``, ``now``, ``len()``.
EventQueue = _core.EventQueue


def simulate_mmc(
    arrival_rate: float, service_rate: float, servers: int, jobs: int, *, warmup_jobs: int = 0, seed: int = 0
) -> dict[str, Any]:
    """Run an M/M/c queue natively.

    :param arrival_rate: λ, jobs per second.
    :param service_rate: μ of one server, jobs per second.
    :param servers: c >= 1.
    :param jobs: Jobs measured (after the warm-up).
    :param warmup_jobs: Jobs served first and not measured.
    :param seed: Seed (arrivals and services use separate streams).
    :returns: ``jobs``, ``mean_wait_s`` (W_q), ``mean_sojourn_s`` (W),
        ``events`` handled and ``sim_time_s``.
    """
    return _core.simulate_mmc(arrival_rate, service_rate, servers, jobs, warmup_jobs=warmup_jobs, seed=seed)


def simulate_mm1(
    arrival_rate: float, service_rate: float, jobs: int, *, warmup_jobs: int = 0, seed: int = 0
) -> dict[str, Any]:
    """Run an M/M/1 queue natively (:func:`simulate_mmc` with one server)."""
    return _core.simulate_mm1(arrival_rate, service_rate, jobs, warmup_jobs=warmup_jobs, seed=seed)


def mmc_mean_wait(arrival_rate: float, service_rate: float, servers: int) -> float | None:
    """Closed-form mean wait in queue of M/M/c (Erlang C); None when unstable."""
    return _core.mmc_mean_wait(arrival_rate, service_rate, servers)


def mm1_mean_wait(arrival_rate: float, service_rate: float) -> float | None:
    """Closed-form mean wait in queue of M/M/1: rho / (mu - lambda); None when unstable."""
    return _core.mmc_mean_wait(arrival_rate, service_rate, 1)
