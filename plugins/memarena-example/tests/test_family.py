"""The paging family runs this plugin's components and YAML preset: memarena's family conformance suite."""

from __future__ import annotations

import pytest
from memarena.api import Family
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.testing.conformance import FamilyConformance, FamilyRun

import memarena_example.plugin


class TestExampleTieredPreset(FamilyConformance):
    """``experiment=example_tiered`` (its first point: Hyperbolic on the CXL-tiered backend), shrunk."""

    @pytest.fixture
    def family_class(self) -> type[Family]:
        registry = Registry.from_plugin_manager(get_plugin_manager(autoload=False, plugins=[memarena_example.plugin]))
        return registry.get("family", "paging")  # type: ignore[return-value]

    @pytest.fixture
    def family_overrides(self) -> list[str]:
        return ["experiment=example_tiered", "debug=tiny"]

    @pytest.fixture
    def family_plugins(self) -> list[object]:
        return [memarena_example.plugin]

    @pytest.fixture
    def optional_label_columns(self) -> tuple[str, ...]:
        return ("predictions", "prediction_error")  # the paging family leaves them out without predictions

    def test_rows_come_from_this_plugin(self, family_run: FamilyRun) -> None:
        for row in family_run.record.rows:
            assert row["policy"] == "hyperbolic"
            assert row["avg_access_time_s"] > 0  # costed on cxl_tiered's dram and cxl tiers
        assert family_run.record.config["backend"]["_target_"] == "memarena_example.backend.CxlTiered"
