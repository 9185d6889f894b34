"""The core's index build defaults (kept for Rust users of ``memarena-ann``) equal the Python Config defaults.

The Python ``Config`` dataclasses are the user-facing source; a registered
index sends every build parameter it has a value for. An index built with no
parameters (the core's defaults) must serialize to the same bytes as one
built with the Python defaults.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memarena import _core
from memarena.families.retrieval import METRICS
from memarena.families.retrieval.indexes import BUILTIN_INDEXES, RegisteredIndex


@pytest.mark.parametrize("cls", BUILTIN_INDEXES, ids=lambda c: c.name)
def test_core_build_defaults_equal_the_python_config(cls: type[RegisteredIndex]) -> None:
    rng = np.random.default_rng(0)
    data = rng.standard_normal((600, 8)).astype(np.float32)
    ids = np.arange(600, dtype=np.uint64)
    defaults = {f.name: f.default for f in dataclasses.fields(cls.Config) if f.name in cls.build_keys}
    python = {k: float(v) for k, v in defaults.items() if v is not None}
    # nlist: null in Python means "picked from the data" (a Python-side rule); fix it on both sides
    fixed = {"nlist": 16.0} if cls.core_kind in ("ivf", "spann") else {}
    built = []
    for params in (fixed, {**python, **fixed}):
        index = _core.Index(cls.core_kind, "l2", 8, params)
        index.train(data)
        index.add(data, ids)
        built.append(index.to_bytes())
    assert built[0] == built[1], f"{cls.name}: the core's defaults differ from {python}"


def test_metrics_come_from_the_core() -> None:
    assert METRICS == tuple(_core.metric_names()) == ("l2", "ip", "cosine")


def test_index_parameters_cross_with_serde_and_name_the_key() -> None:
    from memarena.errors import InvalidConfigError

    with pytest.raises(InvalidConfigError, match=r"params\.m: wrong type or range: must be real number"):
        _core.Index("hnsw", "l2", 8, {"m": "many"})
    with pytest.raises(InvalidConfigError, match=r"hnsw\.mm"):
        _core.Index("hnsw", "l2", 8, {"mm": 4})
