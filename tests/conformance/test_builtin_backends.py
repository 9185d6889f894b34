"""Every built-in hardware backend passes :class:`~memarena.testing.conformance.BackendConformance`."""

from __future__ import annotations

from typing import Any

import pytest

from memarena.api import HardwareBackend
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.testing.conformance import BackendConformance

REGISTRY = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
BUILTIN_BACKENDS = [REGISTRY.get("backend", name) for name in REGISTRY.names("backend")]

#: Backends whose defaults describe no hardware (configured entirely by the user).
NEEDS_CONFIG: dict[str, dict[str, Any]] = {
    "tiered": {
        "tiers": [
            {"name": "hbm", "capacity_bytes": 80 * 2**30, "bandwidth_bytes_per_s": 3.35e12, "latency_s": 5e-7},
            {"name": "dram", "capacity_bytes": 2**40, "bandwidth_bytes_per_s": 3e11, "latency_s": 1e-6},
        ],
        "peak_flops": {"bf16": 9.89e14},
        "source": "test figures",
    }
}


def test_builtin_backends_registered() -> None:
    assert "cpu_ddr5_nvme" in REGISTRY.names("backend")


@pytest.fixture(params=BUILTIN_BACKENDS, ids=lambda c: c.name)
def builtin_backend(request: pytest.FixtureRequest) -> type[HardwareBackend]:
    return request.param


class TestBuiltinBackend(BackendConformance):
    @pytest.fixture
    def backend_class(self, builtin_backend: type[HardwareBackend]) -> type[HardwareBackend]:
        return builtin_backend

    @pytest.fixture
    def backend_overrides(self, builtin_backend: type[HardwareBackend]) -> dict[str, Any]:
        return NEEDS_CONFIG.get(builtin_backend.name, {})
