"""Every CLI-settable retrieval field (family, dataset, index build and search) arrives in the core."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from memarena import _core
from memarena.config import compose
from memarena.families.retrieval.family import RetrievalFamily
from memarena.families.retrieval.workloads import GaussianMixtureDataset
from memarena.indexes import BUILTIN_INDEXES, RegisteredIndex
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import execute

PM = get_plugin_manager(autoload=False)

#: Non-default values for fields whose default is null (the Python side then picks or omits them).
FOR_NULL = {"nlist": 16, "max_train_points": 512, "exact_filter_max": 5}
#: Non-default values for string fields (a choice among names).
FOR_STR = {"planes": "gaussian"}
#: Dataset fields the Python side uses itself (tenants, truth depth), or ignores.
DATASET_PYTHON_ONLY = {"metric", "k_truth", "tenant_skew", "shared_fraction"}


def other(name: str, default: Any) -> Any:
    if default is None:
        return FOR_NULL[name]
    if isinstance(default, list):  # a search sweep: one value instead
        return default[0] + 1
    if isinstance(default, bool):
        return not default
    if isinstance(default, str):
        return FOR_STR[name]
    if isinstance(default, float):
        return default * 0.5 if default else 0.25
    return default + 3


class Recorder:
    """Stands in for ``_core.Index``: records the build and search arguments, delegates to the core."""

    def __init__(self, seen: dict[str, Any], real: Any, *args: Any) -> None:
        self.args = args
        self.searches: list[tuple[int, dict[str, Any]]] = []
        self.search_kwargs: set[str] = set()
        self.added_tenants = False
        seen.setdefault("indexes", []).append(self)
        self._real = real(*args)

    def search(self, q: Any, k: int, params: dict[str, Any], **kw: Any) -> Any:
        self.searches.append((k, dict(params)))
        self.search_kwargs |= set(kw)
        return self._real.search(q, k, params, **kw)

    def add(self, data: Any, ids: Any, *args: Any, **kw: Any) -> Any:
        self.added_tenants |= any(a is not None for a in (*args, *kw.values()))
        return self._real.add(data, ids, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@pytest.mark.parametrize("cls", [c for c in BUILTIN_INDEXES if c.build_keys], ids=lambda c: c.name)
def test_every_field_arrives_in_the_core(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, cls: type[RegisteredIndex]
) -> None:
    seen: dict[str, Any] = {}
    real_index, real_mixture = _core.Index, _core.gaussian_mixture

    def mixture(*args: Any) -> Any:
        seen["mixture"] = args
        return real_mixture(*args)

    monkeypatch.setattr(_core, "Index", lambda *a: Recorder(seen, real_index, *a))
    monkeypatch.setattr(_core, "gaussian_mixture", mixture)
    index_fields = {
        f.name: (f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default)
        for f in dataclasses.fields(cls.Config)
        if f.name != "_target_"
    }
    index = {k: other(k, v) for k, v in index_fields.items()}
    if cls.core_kind == "spann":
        index["replicas"] = 2  # at most nlist lists
    family = {"k": 7, "repeats": 2, "single_queries": 3, "filter": not RetrievalFamily.Config.filter}
    dataset = {
        "dim": 8,
        "n_vectors": 700,
        "n_queries": 9,
        "n_clusters": 5,
        "cluster_std": 0.75,
        "seed_offset": 4,
        "n_tenants": 3,
    }
    assert set(dataset) | DATASET_PYTHON_ONLY == {f.name for f in dataclasses.fields(GaussianMixtureDataset.Config)} - {
        "_target_"
    }
    overrides = [
        "experiment=retrieval",
        "workload=gaussian_mixture",
        f"index={cls.name}",
        *(f"index.{k}={v}" for k, v in index.items()),
        *(f"family.{k}={v}" for k, v in family.items()),
        *(f"workload.{k}={v}" for k, v in dataset.items()),
    ]
    cfg = compose(overrides, pm=PM)
    record = execute(cfg, tmp_path, pm=PM, registry=Registry.from_plugin_manager(PM), overrides=overrides)
    assert record.rows, record
    # the ground truth comes from an exact flat index; the family's index is the other one
    (core,) = [r for r in seen["indexes"] if r.args[0]["kind"] == cls.core_kind]
    config, metric, dim = core.args
    assert (metric, dim) == ("l2", dataset["dim"])
    # the complete build config, as the core reads it
    assert config == {"kind": cls.core_kind, **{k: index[k] for k in cls.build_keys}}
    got = _core.index_config_debug(config)
    for k in cls.build_keys:
        assert f"{k}: {index[k]}" in got or f"{k}: Some({index[k]})" in got, (k, got)
    searches = core.searches
    assert {k for k, _ in searches} == {family["k"]}
    # repeats batch searches plus repeats x single_queries one-at-a-time searches, each with the search fields
    assert len(searches) == family["repeats"] * (1 + family["single_queries"])
    for _, params in searches:
        assert {k: params[k] for k in cls.search_keys} == {k: index[k] for k in cls.search_keys}
        assert list(params) == _core.search_param_names()  # every search parameter, each time
    # tenants reach the index; with family.filter off, no search is filtered by them
    assert core.added_tenants and not (core.search_kwargs & {"tenant", "query_tenants"})
    n_base, n_queries, d, n_clusters, std, seed = seen["mixture"]
    assert (n_base, n_queries, d, n_clusters, std) == (700, 9, 8, 5, 0.75)
    assert seed == 0 + dataset["seed_offset"]
