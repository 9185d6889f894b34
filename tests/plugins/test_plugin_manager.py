"""The plugin system: registration through hooks, validation, switches, errors naming plugins."""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from memarena import hookimpl
from memarena.api import AgentMemory, BackendRequirements, Family, HardwareBackend, MemoryItem, PagingPolicy, Tier
from memarena.errors import PluginError, UnknownComponentError
from memarena.plugins import DEFAULT_PLUGINS, get_plugin_manager
from memarena.registry import Registry


class RoundRobin(PagingPolicy):
    """Evicts residents in insertion order (a FIFO written in Python)."""

    name: ClassVar[str] = "round_robin_test"

    @dataclass
    class Config:
        _target_: str = "tests.plugins.test_plugin_manager.RoundRobin"


class TinyBackend(HardwareBackend):
    """One tier."""

    name: ClassVar[str] = "tiny_test"

    @dataclass
    class Config:
        _target_: str = "tests.plugins.test_plugin_manager.TinyBackend"

    def __init__(self) -> None:
        super().__init__([Tier("dram", 1 << 30, 1e10, 1e-7)])


class ListMemory(AgentMemory):
    """Keeps everything; retrieves the newest."""

    name: ClassVar[str] = "list_test"

    @dataclass
    class Config:
        _target_: str = "tests.plugins.test_plugin_manager.ListMemory"

    def __init__(self) -> None:
        self._items: list[MemoryItem] = []

    def add(self, item: MemoryItem) -> None:
        self._items.append(item)

    def retrieve(self, query: str, k: int) -> list[MemoryItem]:
        return self._items[::-1][:k]

    def __len__(self) -> int:
        return len(self._items)


class GoodPlugin:
    @hookimpl
    def memarena_register_methods(self) -> list[type[Any]]:
        return [RoundRobin]

    @hookimpl
    def memarena_register_backends(self) -> list[type[Any]]:
        return [TinyBackend]

    @hookimpl
    def memarena_register_agent_memories(self) -> list[type[Any]]:
        return [ListMemory]


def test_builtins_register_through_the_hooks(pm: Any, registry: Registry) -> None:
    assert set(DEFAULT_PLUGINS) <= set(pm.infos)
    assert {"lru", "arc", "s3fifo", "belady"} <= set(registry.names("policy"))
    assert "paging" in registry.names("family")
    assert "zipf" in registry.names("workload")
    assert "cpu_ddr5_nvme" in registry.names("backend")
    for entry in registry:
        assert entry.plugin.builtin, f"{entry.name} did not come from a built-in plugin"


def test_in_test_plugin_components_join_the_registry() -> None:
    reg = Registry.from_plugin_manager(get_plugin_manager(autoload=False, plugins=[GoodPlugin()]))
    assert reg.get("policy", "round_robin_test") is RoundRobin
    assert reg.get("backend", "tiny_test") is TinyBackend
    assert reg.get("agent_memory", "list_test") is ListMemory
    assert reg.entry("policy", "round_robin_test").sub_kind == "paging_policy"


def test_unknown_name_lists_the_available(registry: Registry) -> None:
    with pytest.raises(UnknownComponentError, match=r"unknown policy 'nope'; available: .*lru"):
        registry.get("policy", "nope")


def test_duplicate_name_names_both_providers() -> None:
    class Clash(PagingPolicy):
        name: ClassVar[str] = "lru"

        @dataclass
        class Config:
            _target_: str = "x.Clash"

    class ClashPlugin:
        @hookimpl
        def memarena_register_methods(self) -> list[type[Any]]:
            return [Clash]

    pm = get_plugin_manager(autoload=False, plugins=[ClashPlugin()])
    match = r"duplicate component policy='lru': provided by plugin 'memarena\.families\.paging\.plugin'.*ClashPlugin"
    with pytest.raises(PluginError, match=match):
        Registry.from_plugin_manager(pm)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (42, "must return a list of classes"),
        ([object], "not a subclass of memarena.api.MemoryMethod"),
        ([TinyBackend], "not a subclass of memarena.api.MemoryMethod"),
        (["lru"], "not a subclass"),
    ],
)
def test_wrong_spec_type_names_the_plugin(returned: Any, message: str) -> None:
    class BadPlugin:
        @hookimpl
        def memarena_register_methods(self) -> Any:
            return returned

    pm = get_plugin_manager(autoload=False, plugins=[BadPlugin()])
    with pytest.raises(PluginError, match=rf"plugin 'BadPlugin'.*{message}"):
        Registry.from_plugin_manager(pm)


def test_component_without_config_or_bad_name_is_refused() -> None:
    class NoConfig(PagingPolicy):
        name: ClassVar[str] = "no_config"

    class BadName(RoundRobin):
        name: ClassVar[str] = "Bad-Name"

    for cls, msg in [(NoConfig, "Config must be a dataclass"), (BadName, "snake_case")]:

        class P:
            @hookimpl
            def memarena_register_methods(self, cls: type = cls) -> list[type[Any]]:
                return [cls]

        with pytest.raises(PluginError, match=msg):
            Registry.from_plugin_manager(get_plugin_manager(autoload=False, plugins=[P()]))


def test_hook_that_raises_is_reported_with_the_plugin() -> None:
    class Raiser:
        @hookimpl
        def memarena_register_workloads(self) -> list[type[Any]]:
            raise RuntimeError("boom")

    with pytest.raises(
        PluginError, match=r"plugin 'Raiser'.*memarena_register_workloads\(\) raised RuntimeError: boom"
    ):
        Registry.from_plugin_manager(get_plugin_manager(autoload=False, plugins=[Raiser()]))


def test_misspelt_hook_is_an_error_not_a_silent_noop() -> None:
    class Typo:
        @hookimpl
        def memarena_register_polices(self) -> list[type[Any]]:
            return []

    with pytest.raises(PluginError, match="Typo"):
        get_plugin_manager(autoload=False, plugins=[Typo()])


def test_block_plugins_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMARENA_BLOCK_PLUGINS", "memarena.families.paging.plugin")
    pm = get_plugin_manager(autoload=False)
    assert "memarena.families.paging.plugin" not in pm.infos
    assert "avg_access_time" not in Registry.from_plugin_manager(pm).names("metric")


def test_plugins_env_registers_a_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "env_plugin_mod.py").write_text(
        textwrap.dedent(
            """
            from memarena import hookimpl
            from tests.plugins.test_plugin_manager import RoundRobin

            @hookimpl
            def memarena_register_methods():
                return [RoundRobin]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MEMARENA_PLUGINS", "env_plugin_mod")
    reg = Registry.from_plugin_manager(get_plugin_manager(autoload=False))
    assert reg.entry("policy", "round_robin_test").plugin.name == "env_plugin_mod"


def _fake_distribution(root: Path, module_source: str) -> None:
    """Install a distribution 'memarena-broken 1.2.3' on sys.path with a memarena entry point."""
    (root / "memarena_broken_plugin.py").write_text(module_source)
    info = root / "memarena_broken-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memarena-broken\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[memarena]\nbroken = memarena_broken_plugin\n")


def test_entry_point_that_fails_to_import_names_plugin_and_distribution(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_distribution(tmp_path, "raise ImportError('needs a GPU driver')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("memarena_broken_plugin", None)
    with pytest.raises(PluginError) as info:
        get_plugin_manager(autoload=True)
    msg = str(info.value)
    assert "plugin 'broken'" in msg and "memarena-broken 1.2.3" in msg and "needs a GPU driver" in msg


def test_autoload_switch_and_blocking_skip_a_broken_entry_point(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_distribution(tmp_path, "raise ImportError('broken')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MEMARENA_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "broken" not in get_plugin_manager().infos
    monkeypatch.delenv("MEMARENA_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("MEMARENA_BLOCK_PLUGINS", "broken")
    assert "broken" not in get_plugin_manager().infos


def test_entry_point_plugin_records_its_distribution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _fake_distribution(
        tmp_path,
        textwrap.dedent(
            """
            from memarena import hookimpl
            from tests.plugins.test_plugin_manager import TinyBackend

            @hookimpl
            def memarena_register_backends():
                return [TinyBackend]
            """
        ),
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("memarena_broken_plugin", None)
    pm = get_plugin_manager(autoload=True)
    entry = Registry.from_plugin_manager(pm).entry("backend", "tiny_test")
    assert (entry.plugin.name, entry.plugin.distribution, entry.plugin.version) == (
        "broken",
        "memarena-broken",
        "1.2.3",
    )


def test_lifecycle_hooks_see_run_rows_and_record(tmp_path: Path) -> None:
    from memarena.config import compose
    from memarena.run import execute

    seen: dict[str, Any] = {"rows": []}

    class Observer:
        @hookimpl
        def memarena_run_start(self, run: Any) -> None:
            seen["start"] = run.family_name

        @hookimpl
        def memarena_run_result(self, run: Any, row: dict[str, Any]) -> None:
            seen["rows"].append(row["policy"])

        @hookimpl
        def memarena_run_finish(self, run: Any, record: Any) -> None:
            seen["status"] = record.status

    pm = get_plugin_manager(autoload=False, plugins=[Observer()])
    cfg = compose(["experiment=paging", "policy=fifo", "debug=tiny", "family.cache_size=[10,100]"], pm=pm)
    record = execute(cfg, tmp_path, pm=pm, registry=Registry.from_plugin_manager(pm), overrides=[])
    assert seen == {"start": "paging", "rows": ["fifo", "fifo"], "status": "complete"}
    assert [r["cache_size"] for r in record.rows] == [10, 100]


class NeedsCxl(Family):
    """A family declaring what it needs from the backend; records the backend it ran on."""

    name: ClassVar[str] = "needs_cxl"
    ran: ClassVar[list[str]] = []

    @dataclass
    class Config:
        _target_: str = "tests.plugins.test_plugin_manager.NeedsCxl"

    def backend_requirements(self) -> BackendRequirements:
        return BackendRequirements(tiers=("dram", "cxl"), peak_flops=("fp8",))

    def run(self, run: Any) -> None:
        NeedsCxl.ran.append(run.config.get("backend") and run.component("backend").name)


def test_a_familys_declared_backend_needs_are_checked_before_it_runs(tmp_path: Path) -> None:
    from memarena.config import compose
    from memarena.errors import InvalidConfigError
    from memarena.run import execute

    class Plugin:
        @hookimpl
        def memarena_register_families(self) -> list[type[Any]]:
            return [NeedsCxl]

    pm = get_plugin_manager(autoload=False, plugins=[Plugin()])
    registry = Registry.from_plugin_manager(pm)
    NeedsCxl.ran.clear()
    bad = ["~experiment", "family=needs_cxl", "backend=cpu_ddr5_nvme"]
    expected = (
        r"config key 'backend': 'cpu_ddr5_nvme' lacks tier 'cxl', peak_flops\['fp8'\], which family 'needs_cxl' "
        r"requires \(it has tiers dram, nvme; peak_flops for none\)"
    )
    with pytest.raises(InvalidConfigError, match=expected):
        execute(compose(bad, pm=pm), tmp_path / "a", pm=pm, registry=registry, overrides=bad)
    assert NeedsCxl.ran == []  # refused before the family ran
    ok = ["~experiment", "family=needs_cxl"]
    record = execute(compose(ok, pm=pm), tmp_path / "b", pm=pm, registry=registry, overrides=ok)
    assert record.status == "complete"
    assert NeedsCxl.ran == [None]  # no backend selected: nothing to check
