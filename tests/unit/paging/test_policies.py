"""The policy classes mirror the core's registry: names, docs, Config targets and parameters."""

from __future__ import annotations

import dataclasses
import importlib

import pytest

from memarena import _core
from memarena.api import PagingPolicy
from memarena.families.paging import Trace, simulate
from memarena.families.paging.policies import NATIVE_POLICIES


def test_python_classes_equal_core_registry() -> None:
    assert {cls.name for cls in NATIVE_POLICIES} == set(_core.policy_names())
    assert [cls.core_name for cls in NATIVE_POLICIES] == _core.policy_names()


@pytest.mark.parametrize("cls", NATIVE_POLICIES, ids=lambda c: c.name)
def test_class_contract(cls: type[PagingPolicy]) -> None:
    assert cls.core_name == cls.name
    assert cls.summary() and "\n" not in cls.summary()
    cfg = cls.Config()
    module, _, attr = cfg._target_.rpartition(".")
    assert getattr(importlib.import_module(module), attr) is cls
    params = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "_target_"}
    for f in dataclasses.fields(cfg):
        assert f.type is not None
    # The defaults are accepted by the core and the policy runs.
    trace = Trace.synthetic("zipf", 2000, alpha=1.0, n_objects=200, seed=0)
    if cls.prediction_kind is not None:
        trace = trace.with_oracle_predictions(cls.prediction_kind, cache_size=20)
    res = simulate(trace, cls(20, **params))
    assert res.policy == cls.name and 0 < res.misses < res.requests
