"""The CXL-tiered backend: its published figures, and memarena's backend conformance suite."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from memarena.api import HardwareBackend
from memarena.config import compose
from memarena.plugins import get_plugin_manager
from memarena.testing.conformance import BackendConformance

import memarena_example.plugin
from memarena_example.backend import CxlTiered


class TestCxlTieredConformance(BackendConformance):
    @pytest.fixture
    def backend_class(self) -> type[HardwareBackend]:
        return CxlTiered


@pytest.fixture
def backend() -> CxlTiered:
    return CxlTiered(**{k: v for k, v in vars(CxlTiered.Config()).items() if k != "_target_"})


def test_tiers_are_named_for_the_paging_family(backend: CxlTiered) -> None:
    assert [t.name for t in backend.tiers] == ["dram", "cxl", "nvme"]


def test_cxl_sits_between_dram_and_nvme(backend: CxlTiered) -> None:
    dram, cxl, nvme = (backend.tier(n) for n in ("dram", "cxl", "nvme"))
    assert 170e-9 <= cxl.latency_s <= 250e-9  # Pond / Demystifying CXL range
    assert dram.latency_s < cxl.latency_s < nvme.latency_s
    assert dram.bandwidth_bytes_per_s > cxl.bandwidth_bytes_per_s > nvme.bandwidth_bytes_per_s
    assert cxl.bandwidth_bytes_per_s == pytest.approx(4 * 35e9)  # 4 modules x 35 GB/s (Samsung)
    assert cxl.capacity_bytes == 4 * 128 * 10**9


def test_every_figure_has_its_source(backend: CxlTiered) -> None:
    for needle in (
        "JESD79-5",
        "Samsung",
        "35 GB/s",
        "Pond",
        "ASPLOS 2023",
        "Demystifying CXL",
        "MICRO 2023",
        "990 PRO",
    ):
        assert needle in backend.source


def test_selected_by_name_from_a_composed_config() -> None:
    pm = get_plugin_manager(autoload=False, plugins=[memarena_example.plugin])
    cfg = compose(
        ["experiment=paging", "backend=cxl_tiered", "family.cache_tier=dram", "family.backing_tier=cxl"], pm=pm
    )
    backend = instantiate(cfg.backend)
    assert isinstance(backend, CxlTiered)
    assert backend.tier(cfg.family.backing_tier).name == "cxl"
