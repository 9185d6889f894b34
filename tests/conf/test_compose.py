"""Every config group option and every experiment preset composes (and instantiates)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hydra.utils import instantiate

from memarena import hookimpl
from memarena.api import KINDS, Component, MemoryMethod
from memarena.config import compose, conf_dir, search_path_dirs
from memarena.errors import InvalidConfigError
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

PM = get_plugin_manager(autoload=False)
REGISTRY = Registry.from_plugin_manager(PM)
# Options whose required fields (file paths) have no default.
NEEDS = {
    ("workload", "csv_trace"): ["workload.path=t.csv"],
    ("workload", "oracle_general"): ["workload.path=t.bin"],
    ("workload", "longmemeval_file"): ["workload.path=t.json"],
}
# The primary tree plus every family's own tree (on the search path through its plugin).
# local/ holds only the user's untracked overrides; family_debug/ is selected by `debug`.
ROOTS = [conf_dir(), *search_path_dirs(PM)]
YAML_OPTIONS = sorted(
    {
        (d.name, f.stem)
        for root in ROOTS
        for d in root.iterdir()
        if d.is_dir() and d.name not in ("local", "family_debug")
        for f in d.glob("*.yaml")
    }
)
EXPERIMENTS = sorted(o for g, o in YAML_OPTIONS if g == "experiment")
REGISTERED = [(e.group, e.name) for e in REGISTRY]


def experiment_with(group: str, option: str) -> list[str]:
    """Overrides choosing an experiment whose defaults list holds ``group`` (none when the primary does)."""
    if group in ("experiment", "sweep", "debug", "backend", "agent_memory", "embedder"):
        return []  # the primary config's defaults list holds these groups
    if group == "family":
        return [f"experiment={option}"]
    if group == "workload" and option in REGISTRY.names("workload"):
        return [f"experiment={REGISTRY.get('workload', option).family}"]  # type: ignore[attr-defined]
    for name in EXPERIMENTS:
        if group not in compose([f"experiment={name}"], pm=PM):
            continue
        if option in REGISTRY.names(group):
            return [f"experiment={name}"]
        try:  # a YAML preset: the experiment whose family it fits
            compose([f"experiment={name}", f"{group}={option}"], pm=PM)
        except Exception:
            continue
        return [f"experiment={name}"]
    return ["~experiment", f"+{group}={option}"]


def base_of(group: str) -> type[Component]:
    entry = next(e for e in REGISTRY if e.group == group)
    return MemoryMethod if entry.kind == "method" else KINDS[entry.kind]


@pytest.mark.parametrize(("group", "option"), REGISTERED, ids=lambda v: str(v))
def test_registered_option_composes_and_instantiates(group: str, option: str) -> None:
    context = experiment_with(group, option)
    choice = [] if any(c.startswith("+") for c in context) else [f"{group}={option}"]
    extra = NEEDS.get((group, option), ["debug=tiny"])
    cfg = compose([*context, *choice, *extra], pm=PM)
    kwargs: dict[str, Any] = {"capacity": 8} if group == "policy" else {}
    obj = instantiate(cfg[group], _partial_=True)(**kwargs)
    assert isinstance(obj, base_of(group))
    assert obj.name == option


@pytest.mark.parametrize(("group", "option"), YAML_OPTIONS, ids=lambda v: str(v))
def test_yaml_option_composes(group: str, option: str) -> None:
    cfg = compose([*experiment_with(group, option), f"{group}={option}"], pm=PM)
    assert cfg.family is not None


def test_each_family_brings_its_own_groups() -> None:
    # The primary config holds no family's groups; choosing an experiment brings them.
    bare = compose(["~experiment"], pm=PM)
    assert not {"kv_manager", "model", "policy", "index", "workload"} & set(bare)
    assert {"kv_manager", "model"} <= set(compose(["experiment=serving"], pm=PM))
    assert "policy" in compose(["experiment=paging"], pm=PM)
    assert "kv_manager" not in compose(["experiment=paging"], pm=PM)
    assert "index" in compose(["experiment=retrieval"], pm=PM)


def test_debug_tiny_takes_each_familys_own_sizes() -> None:
    paging = compose(["experiment=paging", "debug=tiny"], pm=PM)
    assert paging.workload.n_objects == 1000
    assert list(paging.cache_size) == [0.05, 0.2]
    serving = compose(["experiment=serving", "debug=tiny"], pm=PM)
    assert serving.workload.n_requests == 5000
    assert "n_objects" not in serving.workload and "cache_size" not in serving
    retrieval = compose(["experiment=retrieval", "debug=tiny"], pm=PM)
    assert retrieval.workload.n_vectors == 1000
    assert "n_requests" not in retrieval.workload


def test_policy_preset_inherits_its_base() -> None:
    cfg = compose(["experiment=paging", "policy=s3fifo_small"], pm=PM)
    assert cfg.policy.small_size_ratio == 0.05
    assert cfg.policy._target_.endswith("S3FIFO")


def test_experiment_presets_are_all_tested() -> None:
    assert {"paging", "paging_predictions", "paging_succinct"} <= {o for g, o in YAML_OPTIONS if g == "experiment"}


def test_unknown_option_lists_the_available() -> None:
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match=r"(?s)policy/nope.*lru"):
        compose(["experiment=paging", "policy=nope"], pm=PM)


def test_bad_value_names_the_config_key() -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"policy\.small_size_ratio=abc"):
        compose(["experiment=paging", "policy=s3fifo", "policy.small_size_ratio=abc"], pm=PM)


def test_bad_range_names_the_config_key(tmp_path: Path) -> None:
    from memarena.run import execute

    pm = get_plugin_manager(autoload=False)
    cfg = compose(["experiment=paging", "debug=tiny", "family.cache_size=-3"], pm=pm)
    with pytest.raises(InvalidConfigError, match="config key 'cache_size'"):
        execute(cfg, tmp_path, pm=pm, registry=REGISTRY, overrides=[])


@pytest.mark.parametrize("sweep", [o for g, o in YAML_OPTIONS if g == "sweep"])
def test_each_sweep_preset_selects_its_own_experiment(sweep: str) -> None:
    # `memarena sweep=paging_mrc` must run paging whatever the default experiment is.
    cfg = compose([f"sweep={sweep}"], pm=PM)
    family = cfg.family._target_.rsplit(".", 1)[1].removesuffix("Family").lower()
    assert sweep.startswith(family), f"sweep={sweep} runs the {family} family"


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
    from memarena.config.compose import plugin_search_path

    builtin = ",".join(plugin_search_path(PM))  # the built-in families' own trees come first
    pm = get_plugin_manager(autoload=False, plugins=[_SearchPathPlugin()])
    sp = {
        "SP": f"hydra.searchpath=[{builtin},pkg://plugin.conf]",
        "SP_USER": f"hydra.searchpath=[file://x,{builtin},pkg://plugin.conf]",
    }
    assert search_path_override(pm, argv) == [sp.get(a, a) for a in expected]


def test_an_agent_memory_is_chosen_without_a_plus(tmp_path: Path) -> None:
    from memarena.api import AgentMemory

    class Memory(AgentMemory):
        name = "flat_test"

        @dataclasses.dataclass
        class Config:
            _target_: str = "tests.conf.test_compose.FlatMemory"

    class Plugin:
        @hookimpl
        def memarena_register_agent_memories(self) -> list[type]:
            return [Memory]

    pm = get_plugin_manager(autoload=False, plugins=[Plugin()])
    cfg = compose(["agent_memory=flat_test"], pm=pm)  # the primary config holds the group: no "+"
    assert cfg.agent_memory._target_ == "tests.conf.test_compose.FlatMemory"
    assert "agent_memory" not in compose([], pm=pm)  # none chosen: no key
