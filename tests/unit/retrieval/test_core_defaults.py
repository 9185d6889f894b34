"""The core's index defaults (kept for Rust tests and examples of ``memarena-ann``) equal the Python ones.

The Python ``Config`` dataclasses (build parameters and each kind's search
defaults) and :class:`~memarena.families.retrieval.SearchConfig` (the search
parameters every index accepts) are the one source of defaults: Python sends
the complete build config when an index is built and every search parameter
with each search. The Rust ``Default``s serve Rust code only and must read
back equal to what the core deserializes from the Python defaults.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from memarena import _core
from memarena.errors import InvalidConfigError
from memarena.families.retrieval import METRICS, Index, SearchConfig
from memarena.indexes import BUILTIN_INDEXES, RegisteredIndex, build_defaults


@pytest.mark.parametrize("cls", BUILTIN_INDEXES, ids=lambda c: c.name)
def test_core_build_defaults_equal_the_python_config(cls: type[RegisteredIndex]) -> None:
    python = build_defaults(cls.core_kind)
    assert set(python) == set(cls.build_keys)
    if cls.core_kind in ("ivf", "spann"):
        # nlist: null in Python means "picked from the data" (a Python-side rule); the Rust default is 256
        assert python["nlist"] is None
        python["nlist"] = 256
    got = _core.index_config_debug({"kind": cls.core_kind, **python})
    assert got == _core.index_default_debug(cls.core_kind), f"{cls.name}: the core's defaults differ from {python}"


def test_core_search_defaults_equal_the_python_search_config() -> None:
    python = dataclasses.asdict(SearchConfig())
    assert tuple(python) == tuple(_core.search_param_names())
    assert _core.search_params_debug(python) == _core.search_default_debug()


@pytest.mark.parametrize("cls", BUILTIN_INDEXES, ids=lambda c: c.name)
def test_every_config_field_arrives(cls: type[RegisteredIndex]) -> None:
    """Non-default values of every build field reach the core (read back from its Debug form)."""
    defaults = build_defaults(cls.core_kind)
    other_str = {"planes": "gaussian"}  # string fields: another allowed name
    changed = {
        k: other_str[k] if isinstance(v, str) else 7 if v is None or isinstance(v, int) else v + 0.5
        for k, v in defaults.items()
    }
    got = _core.index_config_debug({"kind": cls.core_kind, **changed})
    for k, v in changed.items():
        want = f"Some({v})" if defaults[k] is None and k != "nlist" else str(v)
        assert f"{k}: {want}" in got, (k, got)


def test_metrics_come_from_the_core() -> None:
    assert METRICS == tuple(_core.metric_names()) == ("l2", "ip", "cosine")


def hnsw(**over: Any) -> dict[str, Any]:
    return {"kind": "hnsw", **build_defaults("hnsw"), **over}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (hnsw(m="many"), r"index\.m: wrong type or range: 'str' object cannot be interpreted as an integer"),
        (hnsw(m=2.5), r"index\.m: wrong type or range: 'float' object cannot be interpreted as an integer"),
        (hnsw(mm=4), r"index\.mm: unknown key; allowed: m, ef_construction, seed, tenant_block_max, threads"),
        ({"kind": "hnsw", "m": 16}, r"index\.ef_construction: is required"),
        ({"kind": "annoy"}, r"index\.kind: unknown kind \"annoy\"; available: flat, simhash, e2lsh, ivf, spann"),
        (hnsw(m=1), r"index\.m: must be in \[2, 256\], got 1"),
        ({**hnsw(), "kind": "flat"}, r"index\.m: unknown key; allowed: none"),
        (
            {"kind": "spann", **build_defaults("spann"), "nlist": 8, "replicas": 0},
            r"index\.replicas: must be in \[1, 16\], got 0",
        ),
    ],
)
def test_build_configs_cross_with_serde_and_name_the_key(config: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidConfigError, match=message):
        _core.Index(config, "l2", 8)


def test_search_params_cross_with_serde_and_name_the_key() -> None:
    idx = Index("flat", dim=4)
    idx.add([[0.0, 0.0, 0.0, 1.0]])
    full = dataclasses.asdict(SearchConfig())
    with pytest.raises(InvalidConfigError, match=r"index\.efsearch: unknown key; allowed: nprobe, ef_search"):
        idx.search([[0.0] * 4], 1, {"efsearch": 3})
    with pytest.raises(InvalidConfigError, match=r"index\.nprobe: must be in \[1, 16777216\], got 0"):
        idx.search([[0.0] * 4], 1, {"nprobe": 0})
    with pytest.raises(InvalidConfigError, match=r"index\.prune_epsilon: must be a finite number"):
        idx.search([[0.0] * 4], 1, {"prune_epsilon": float("nan")})
    core = _core.Index({"kind": "flat"}, "l2", 4)
    partial = {k: v for k, v in full.items() if k != "threads"}
    with pytest.raises(InvalidConfigError, match=r"index\.threads: is required"):
        core.search(np.zeros((1, 4), dtype=np.float32), 1, partial)
    assert core.search(np.zeros((1, 4), dtype=np.float32), 1, full)[1].tolist() == [[-1]]
