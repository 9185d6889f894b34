"""Each parameter is written once: in its component's ``Config`` (name, type, default, allowed values)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from memarena.api import Component, param
from memarena.errors import InvalidConfigError
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

BUILTINS = [e for e in Registry.from_plugin_manager(get_plugin_manager(autoload=False)) if e.plugin.builtin]


@pytest.mark.parametrize("entry", BUILTINS, ids=lambda e: f"{e.group}={e.name}")
def test_no_builtin_repeats_a_config_default_in_its_signature(entry: Any) -> None:
    fields = {f.name for f in dataclasses.fields(entry.cls.Config)}
    repeated = [
        p.name
        for cls in entry.cls.__mro__
        # memarena.api's kind bases take constructor arguments of their own (HardwareBackend: built Tiers)
        if "__init__" in vars(cls) and cls.__module__ != "memarena.api"
        for p in inspect.signature(vars(cls)["__init__"]).parameters.values()
        if p.name in fields and p.default is not inspect.Parameter.empty
    ]
    assert not repeated, f"{entry.cls.__qualname__}.__init__ repeats the Config defaults of {sorted(set(repeated))}"


class Knob(Component):
    """A component whose parameters come from its Config alone."""

    name = "knob"
    kind = "method"
    config_group = "knob"

    @dataclasses.dataclass
    class Config:
        _target_: str = "tests.unit.test_one_source.Knob"
        #: Tokens per block.
        size: int = param(16, ge=1)
        share: float = param(0.01, ge=0, lt=1)
        mode: str = param("off", choices=("off", "v0", "v1"))
        grid: list[int] = param(factory=lambda: [1, 2])
        label: str = "x"


def test_the_config_is_the_constructor() -> None:
    knob = Knob(size=32, mode="v1")
    assert (knob.size, knob.share, knob.mode, knob.grid, knob.label) == (32, 0.01, "v1", [1, 2], "x")
    assert knob.config_dict() == {"size": 32, "share": 0.01, "mode": "v1", "grid": [1, 2], "label": "x"}
    assert Knob().grid is not Knob().grid  # factories build a fresh default


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": 0}, r"config key 'knob\.size' must be >= 1, got 0"),
        ({"share": 1.0}, r"config key 'knob\.share' must be >= 0 and < 1, got 1\.0"),
        ({"mode": "v2"}, r"config key 'knob\.mode' must be one of off, v0, v1, got 'v2'"),
        ({"size": "big"}, r"config key 'knob\.size' must be a number, got 'big'"),
        (
            {"sise": 3},
            r"config key 'knob\.sise' is not a parameter of knob=knob; known: grid, label, mode, share, size",
        ),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        Knob(**params)


def test_hydra_containers_arrive_as_plain_values() -> None:
    from omegaconf import OmegaConf

    knob = Knob(grid=OmegaConf.create([4, 5]))
    assert knob.grid == [4, 5] and type(knob.grid) is list


@pytest.mark.parametrize(
    ("tier", "message"),
    [
        (
            {"name": "x", "capacity_bytes": 1, "bandwidth_bytes_per_s": 1.0},
            r"backend\.tiers\[0\]\.latency_s' is required",
        ),
        (
            {"name": "x", "capacity_bytes": 0, "bandwidth_bytes_per_s": 1.0, "latency_s": 0},
            r"capacity_bytes' must be > 0",
        ),
        (
            {"name": "x", "capacity_bytes": 1, "bandwidth_bytes_per_s": 1.0, "latency_s": 0, "size": 3},
            r"backend\.tiers\[0\]\.size' is not a tier field",
        ),
    ],
)
def test_a_backends_tiers_are_checked_field_by_field(tier: dict[str, Any], message: str) -> None:
    from memarena.backends import CpuDdr5Nvme

    with pytest.raises(InvalidConfigError, match=message):
        CpuDdr5Nvme(tiers=[tier])
