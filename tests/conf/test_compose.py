"""Every config group option and every experiment preset composes (and instantiates)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hydra.utils import instantiate

from memarena import hookimpl
from memarena.api import KINDS, Component, MemoryMethod
from memarena.config import compose, conf_dir
from memarena.errors import InvalidConfigError
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

REGISTRY = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
# Options whose required fields (file paths) have no default.
NEEDS = {("workload", "csv_trace"): ["workload.path=t.csv"], ("workload", "oracle_general"): ["workload.path=t.bin"]}
# local/ holds only the user's untracked overrides.
YAML_OPTIONS = [
    (d.name, f.stem)
    for d in sorted(conf_dir().iterdir())
    if d.is_dir() and d.name != "local"
    for f in sorted(d.glob("*.yaml"))
]
DEFAULTS_LIST_GROUPS = {"family", "workload", "policy", "backend", "kv_manager", "model", "index"}
REGISTERED = [(e.group, e.name) for e in REGISTRY]


def base_of(group: str) -> type[Component]:
    entry = next(e for e in REGISTRY if e.group == group)
    return MemoryMethod if entry.kind == "method" else KINDS[entry.kind]


@pytest.mark.parametrize(("group", "option"), REGISTERED, ids=lambda v: str(v))
def test_registered_option_composes_and_instantiates(group: str, option: str) -> None:
    # Groups outside the primary defaults list (metric, agent_memory) are appended with "+".
    prefix = "" if group in DEFAULTS_LIST_GROUPS else "+"
    extra = NEEDS.get((group, option), ["debug=tiny"])
    cfg = compose(["~experiment", f"{prefix}{group}={option}", *extra])
    kwargs: dict[str, Any] = {"capacity": 8} if group == "policy" else {}
    obj = instantiate(cfg[group], _partial_=True)(**kwargs)
    assert isinstance(obj, base_of(group))
    assert obj.name == option


@pytest.mark.parametrize(("group", "option"), YAML_OPTIONS, ids=lambda v: str(v))
def test_yaml_option_composes(group: str, option: str) -> None:
    cfg = compose([f"{group}={option}"])
    assert cfg.family is not None


def test_policy_preset_inherits_its_base() -> None:
    cfg = compose(["~experiment", "policy=s3fifo_small"])
    assert cfg.policy.small_size_ratio == 0.05
    assert cfg.policy._target_.endswith("S3FIFO")


def test_experiment_presets_are_all_tested() -> None:
    assert {"paging", "paging_predictions", "paging_succinct"} <= {o for g, o in YAML_OPTIONS if g == "experiment"}


def test_unknown_option_lists_the_available() -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match=r"(?s)policy/nope.*lru"):
        compose(["policy=nope"])


def test_bad_value_names_the_config_key() -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"policy\.small_size_ratio=abc"):
        compose(["~experiment", "policy=s3fifo", "policy.small_size_ratio=abc"])


def test_bad_range_names_the_config_key(tmp_path: Path) -> None:
    from memarena.run import execute

    pm = get_plugin_manager(autoload=False)
    cfg = compose(["experiment=paging", "debug=tiny", "family.cache_size=-3"], pm=pm)
    with pytest.raises(InvalidConfigError, match="config key 'cache_size'"):
        execute(cfg, tmp_path, pm=pm, registry=REGISTRY, overrides=[])


class _SearchPathPlugin:
    @hookimpl
    def memarena_config_search_path(self) -> list[str]:
        return ["pkg://plugin.conf"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["a=1"], ["a=1", "SP"]),
        (["a=1", "--cfg", "job"], ["a=1", "SP", "--cfg", "job"]),
        (["a=1", "b=2", "-m"], ["a=1", "b=2", "SP", "-m"]),
        (["-m", "a=1"], ["-m", "a=1", "SP"]),
        (["a=1", "--info"], ["a=1", "SP", "--info"]),
        (["a=1", "--info", "searchpath"], ["a=1", "SP", "--info", "searchpath"]),
        (["--cfg", "job"], ["SP", "--cfg", "job"]),
        (["--info"], ["SP", "--info"]),
        (["-cn", "config", "a=1", "-m"], ["-cn", "config", "a=1", "SP", "-m"]),
        (["hydra.searchpath=[file://x]", "a=1", "-m"], ["a=1", "SP_USER", "-m"]),
    ],
)
def test_search_path_joins_the_overrides_before_hydras_flags(argv: list[str], expected: list[str]) -> None:
    from memarena.config import search_path_override

    pm = get_plugin_manager(autoload=False, plugins=[_SearchPathPlugin()])
    sp = {"SP": "hydra.searchpath=[pkg://plugin.conf]", "SP_USER": "hydra.searchpath=[file://x,pkg://plugin.conf]"}
    assert search_path_override(pm, argv) == [sp.get(a, a) for a in expected]
