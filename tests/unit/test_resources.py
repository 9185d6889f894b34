"""Resources are checked before they are taken (issue 14): the limit, and each family's estimate.

These never build a run's data: the estimates are computed from configs
alone, so huge values are safe here without a memory limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from memarena import resources
from memarena.api import Family, MemoryEstimate
from memarena.config import compose
from memarena.errors import InvalidConfigError
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import Run

PM = get_plugin_manager(autoload=False)
REGISTRY = Registry.from_plugin_manager(PM)


def estimate_of(overrides: list[str], tmp_path: Path) -> MemoryEstimate | None:
    cfg = compose(overrides, pm=PM)
    run = Run(cfg, REGISTRY, PM, tmp_path)
    family = run.component("family")
    assert isinstance(family, Family)
    return family.estimate_memory(run)


# -- the limit ----------------------------------------------------------------


def test_available_memory_reads_meminfo(tmp_path: Path) -> None:
    info = tmp_path / "meminfo"
    info.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   12000000 kB\n")
    assert resources._meminfo_available(str(info)) == 12000000 * 1024
    assert resources._meminfo_available(str(tmp_path / "missing")) is None
    avail = resources.available_memory_bytes()
    assert avail is not None and avail > 0


def test_available_memory_falls_back_to_sysconf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "_meminfo_available", lambda path="": None)
    monkeypatch.setattr(resources, "_address_space_left", lambda: None)
    found = resources.available_memory_bytes()
    assert found is not None and found > 0  # this platform's sysconf answers
    monkeypatch.setattr(resources, "_sysconf_available", lambda: None)
    assert resources.available_memory_bytes() is None  # unknown: no limit, never a crash


def test_an_address_space_limit_lowers_the_available_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources, "_meminfo_available", lambda path="": 10**12)
    monkeypatch.setattr(resources, "_address_space_left", lambda: 3 * 10**9)
    assert resources.available_memory_bytes() == 3 * 10**9


@pytest.mark.parametrize(("value", "expected"), [(None, "available"), (10**9, 10**9), (6.4e10, 64 * 10**9)])
def test_memory_limit_key(value: Any, expected: Any) -> None:
    limit = resources.memory_limit_bytes(OmegaConf.create({"memory_limit_bytes": value}))
    assert limit == (resources.available_memory_bytes() if expected == "available" else expected)


@pytest.mark.parametrize("value", [0, -1, 1.5, "lots", True, [1]])
def test_a_bad_memory_limit_names_the_key(value: Any) -> None:
    with pytest.raises(InvalidConfigError, match="memory_limit_bytes"):
        resources.memory_limit_bytes(OmegaConf.create({"memory_limit_bytes": value}))


def test_the_primary_config_has_the_key(tmp_path: Path) -> None:
    cfg = compose(["experiment=paging"], pm=PM)
    assert "memory_limit_bytes" in cfg and cfg.memory_limit_bytes is None


def test_format_bytes() -> None:
    assert resources.format_bytes(512) == "512 B"
    assert resources.format_bytes(1536) == "1.5 KiB"
    assert resources.format_bytes(3 * 2**40) == "3.0 TiB"
    assert "e+" in resources.format_bytes(1e30)


def test_the_default_estimate_is_unknown(tmp_path: Path) -> None:
    class Bare(Family):
        name = "bare_family_for_test"

        @dataclass
        class Config:
            _target_: str = "tests.unit.test_resources.Bare"

        def run(self, run: Any) -> None:
            pass

    assert Bare().estimate_memory(Run(compose(["experiment=paging"], pm=PM), REGISTRY, PM, tmp_path)) is None


def test_estimate_rows_of_a_csv(tmp_path: Path) -> None:
    small = tmp_path / "s.csv"
    small.write_text("id\n" + "".join(f"{i}\n" for i in range(100)))
    assert resources.estimate_rows(small, header=True) == 100
    big = tmp_path / "b.csv"
    big.write_text("id\n" + "".join(f"{i % 1000:04d}\n" for i in range(400_000)))  # 2 MB: sampled
    rows = resources.estimate_rows(big, header=True)
    assert rows is not None and abs(rows - 400_000) < 400
    assert resources.estimate_rows(tmp_path / "missing.csv") is None


# -- each family's estimate names the keys that drive it ------------------------


@pytest.mark.parametrize(
    ("overrides", "keys"),
    [
        (["experiment=serving", "workload.time_scale=1e-9"], {"workload.time_scale", "family.sample_interval_s"}),
        (["experiment=serving", "family.sample_interval_s=1e-9"], {"family.sample_interval_s"}),
        (["experiment=serving", "workload=poisson", "workload.rate=1e-300"], {"workload.rate"}),
        (["experiment=serving", "workload=poisson", "workload.n_requests=1000000000000"], {"workload.n_requests"}),
        (["experiment=paging", "workload.n_requests=1000000000000"], {"workload.n_requests"}),
        (["experiment=retrieval", "workload.n_vectors=1000000000"], {"workload.n_vectors"}),
        (["experiment=retrieval", "workload.dim=1000000"], {"workload.dim"}),
        (["experiment=retrieval", "workload.n_clusters=1000000000000"], {"workload.n_clusters"}),
        (["experiment=retrieval", "family.k=1000000000000", "workload.k_truth=1000000000000"], {"family.k"}),
    ],
)
def test_the_issue_cases_are_estimated_far_over_any_machine(
    overrides: list[str], keys: set[str], tmp_path: Path
) -> None:
    est = estimate_of(overrides, tmp_path)
    assert est is not None
    assert est.bytes > 2**40  # 1 TiB: over this machine's memory, so refused with the default limit
    assert keys <= set(est.keys), est
    err = resources.refusal(est, 2**33, "the available memory")
    assert "config key" in str(err) and all(k in str(err) for k in keys)


def test_an_azure_trace_with_timestamps_centuries_apart(tmp_path: Path) -> None:
    csv = tmp_path / "far.csv"
    csv.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2223-11-16 18:15:46,10,1\n")
    est = estimate_of(["experiment=serving", f"workload.path={csv}", "workload.time_scale=1"], tmp_path)
    assert est is not None and est.bytes > 10**11  # 6.3e9 simulated seconds of samples
    assert {"workload.path", "family.sample_interval_s"} <= set(est.keys)


def test_normal_runs_are_estimated_small(tmp_path: Path) -> None:
    for overrides in (["experiment=serving"], ["experiment=paging"], ["experiment=retrieval"]):
        est = estimate_of(overrides, tmp_path)
        assert est is not None and 0 < est.bytes < 2**30, (overrides, est)


# -- Hypothesis: any config value is either within the limit or refused, never a crash ------

HUGE = st.one_of(st.integers(1, 2**63 - 1), st.sampled_from([1, 10**12, 2**62, 2**63 - 1]))
TINY_POSITIVE = st.one_of(st.floats(1e-300, 1e300), st.sampled_from([1e-300, 5e-324, 1e-9, 1e300]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    family=st.sampled_from(["paging", "serving", "retrieval"]),
    n=HUGE,
    scale=TINY_POSITIVE,
    interval=st.one_of(st.just(0.0), TINY_POSITIVE),
    dim=HUGE,
)
def test_estimates_of_any_values_are_finite_and_grow(
    family: str, n: int, scale: float, interval: float, dim: int, tmp_path: Path
) -> None:
    if family == "paging":
        overrides = ["experiment=paging", f"workload.n_requests={n}"]
    elif family == "serving":
        overrides = [
            "experiment=serving",
            "workload=poisson",
            f"workload.n_requests={n}",
            f"workload.rate={scale!r}",
            f"workload.time_scale={scale!r}",
            f"family.sample_interval_s={interval!r}",
        ]
    else:
        overrides = ["experiment=retrieval", f"workload.n_vectors={n}", f"workload.dim={dim}"]
    est = estimate_of(overrides, tmp_path)
    assert est is not None and 0 < est.bytes <= 2**63 and est.keys
    # a run 1000 times the size never has a smaller estimate
    bigger = [o.replace(f"={n}", f"={min(n * 1000, 2**63 - 1)}") if "n_" in o else o for o in overrides]
    est2 = estimate_of(bigger, tmp_path)
    assert est2 is not None and est2.bytes >= est.bytes
