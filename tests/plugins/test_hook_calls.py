"""Hooks go through pluggy (tracing and wrappers see them); errors name the plugin; records name the plugins."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from memarena import hookimpl
from memarena.api import Family
from memarena.config import compose
from memarena.errors import PluginError
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry
from memarena.run import execute
from tests.plugins.test_plugin_manager import GoodPlugin, RoundRobin

#: What the order test's plugin saw, in order.
EVENTS: list[str] = []


class OrderFamily(Family):
    """Records when it is built and run."""

    name: ClassVar[str] = "order_test"
    label_columns: ClassVar[tuple[str, ...]] = ("step",)

    @dataclass
    class Config:
        _target_: str = "tests.plugins.test_hook_calls.OrderFamily"

    def __init__(self) -> None:
        EVENTS.append("family built")

    def run(self, run: Any) -> None:
        EVENTS.append("family run")
        run.emit({"step": 0, "value": 1.0})
        run.emit({"step": 1, "value": 2.0})


class OrderPlugin:
    @hookimpl
    def memarena_register_families(self) -> list[type[Any]]:
        return [OrderFamily]

    @hookimpl
    def memarena_configure(self, config: Any) -> None:
        EVENTS.append(f"configure {config.family._target_.rsplit('.', 1)[-1]}")

    @hookimpl
    def memarena_run_start(self, run: Any) -> None:
        EVENTS.append("run start")


def _run(tmp_path: Path, *plugins: object) -> Any:
    pm = get_plugin_manager(autoload=False, plugins=[OrderPlugin(), *plugins])
    registry = Registry.from_plugin_manager(pm)
    cfg = compose(["~experiment", "family=order_test"], pm=pm)
    return execute(cfg, tmp_path, pm=pm, registry=registry, overrides=["family=order_test"])


def test_registration_hooks_show_in_the_plugin_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMARENA_TRACE_PLUGINS", "1")
    pm = get_plugin_manager(autoload=False, plugins=[GoodPlugin()])
    Registry.from_plugin_manager(pm)
    trace = capsys.readouterr().err
    assert "memarena_register_methods" in trace
    assert "memarena_register_backends" in trace
    assert "memarena_register_families" in trace


def test_a_registration_wrapper_sees_every_plugins_call() -> None:
    seen: list[int] = []

    class Wrapper:
        @hookimpl(wrapper=True)
        def memarena_register_methods(self) -> Generator[None, list[Any], list[Any]]:
            result = yield
            seen.append(len(result))
            return result

    pm = get_plugin_manager(autoload=False, plugins=[GoodPlugin(), Wrapper()])
    reg = Registry.from_plugin_manager(pm)
    n_impls = len([i for i in pm.hook.memarena_register_methods.get_hookimpls() if not i.wrapper])
    assert len(seen) == n_impls >= 2  # one call per implementing plugin, each seen by the wrapper
    assert reg.get("policy", "round_robin_test") is RoundRobin


def test_a_search_path_hook_returning_garbage_names_the_plugin() -> None:
    from memarena.config.compose import plugin_search_path

    class BadPath:
        @hookimpl
        def memarena_config_search_path(self) -> Any:
            return "pkg://not_a_list"

    with pytest.raises(PluginError, match=r"plugin 'BadPath'.*must return a list of strings"):
        plugin_search_path(get_plugin_manager(autoload=False, plugins=[BadPath()]))


def test_configure_fires_before_any_component_is_built(tmp_path: Path) -> None:
    EVENTS.clear()
    record = _run(tmp_path)
    assert record.status == "complete"
    assert EVENTS == ["configure OrderFamily", "family built", "run start", "family run"]


def test_configure_that_raises_fails_the_run_naming_the_plugin(tmp_path: Path) -> None:
    class Refuser:
        @hookimpl
        def memarena_configure(self, config: Any) -> None:
            raise ValueError("needs a GPU")

    EVENTS.clear()
    with pytest.raises(PluginError, match=r"plugin 'Refuser'.*memarena_configure\(\) raised ValueError: needs a GPU"):
        _run(tmp_path, Refuser())
    assert "family built" not in EVENTS


def test_raising_observers_keep_rows_and_name_the_plugin(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows: list[int] = []

    class Broken:
        @hookimpl
        def memarena_run_start(self, run: Any) -> None:
            raise RuntimeError("start bug")

        @hookimpl
        def memarena_run_result(self, run: Any, row: dict[str, Any]) -> None:
            raise RuntimeError("result bug")

        @hookimpl
        def memarena_run_finish(self, run: Any, record: Any) -> None:
            raise RuntimeError("finish bug")

    class Counter:
        @hookimpl
        def memarena_run_result(self, run: Any, row: dict[str, Any]) -> None:
            rows.append(row["step"])

    with caplog.at_level(logging.ERROR, logger="memarena"):
        record = _run(tmp_path, Counter(), Broken())
    assert record.status == "complete"
    assert [r["step"] for r in record.rows] == [0, 1]
    assert rows == [0, 1]  # the other observer still saw every row
    assert record.hook_errors == [
        "plugin 'Broken' (module tests.plugins.test_hook_calls): memarena_run_start() raised RuntimeError: start bug",
        "plugin 'Broken' (module tests.plugins.test_hook_calls): memarena_run_result() raised RuntimeError: "
        "result bug (2 times)",
        "plugin 'Broken' (module tests.plugins.test_hook_calls): memarena_run_finish() raised RuntimeError: finish bug",
    ]
    logged = [r.getMessage() for r in caplog.records]
    assert sum("plugin 'Broken'" in m for m in logged) == 3  # once per hook, not once per row
    from memarena.results import RunRecord

    on_disk = RunRecord.from_json((tmp_path / "memarena-record.json").read_text())
    assert on_disk.status == "complete" and on_disk.hook_errors == record.hook_errors


def test_records_name_every_plugin_with_its_version(tmp_path: Path) -> None:
    record = _run(tmp_path)
    by_name = {p["name"]: p for p in record.plugins}
    assert by_name["memarena.families.paging.plugin"]["distribution"] == "memarena"
    assert by_name["memarena.families.paging.plugin"]["version"]
    assert by_name["OrderPlugin"] == {
        "name": "OrderPlugin",
        "distribution": None,
        "version": None,
        "module": "tests.plugins.test_hook_calls",
        "builtin": False,
    }


def test_a_module_plugin_from_an_installed_distribution_gets_its_version(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "memarena_versioned_plugin.py").write_text(
        textwrap.dedent(
            """
            from memarena import hookimpl

            @hookimpl
            def memarena_register_methods():
                return []
            """
        )
    )
    info = tmp_path / "memarena_versioned-2.5.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: memarena-versioned\nVersion: 2.5.0\n")
    (info / "RECORD").write_text("memarena_versioned_plugin.py,,\nmemarena_versioned-2.5.0.dist-info/METADATA,,\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MEMARENA_PLUGINS", "memarena_versioned_plugin")
    pm = get_plugin_manager(autoload=False)
    (entry,) = [p for p in pm.plugin_versions() if p["name"] == "memarena_versioned_plugin"]
    assert (entry["distribution"], entry["version"]) == ("memarena-versioned", "2.5.0")


def test_out_of_range_numbers_name_their_config_keys() -> None:
    from omegaconf import OmegaConf

    from memarena.run import out_of_range_error

    cfg = OmegaConf.create({"seed": 0, "workload": {"n_requests": 2**70, "alpha": -0.5}, "cache_size": [2e19, 0.1]})
    err = out_of_range_error(cfg, {"workload": "zipf"}, OverflowError("int too big to convert"))
    assert str(err) == (
        "config key 'workload.n_requests' (workload=zipf) = 1180591620717411303424, 'cache_size[0]' = 2e+19: "
        "out of range, must be below 2**63 (int too big to convert)"
    )
    err = out_of_range_error(cfg, {"workload": "zipf"}, OverflowError("can't convert negative int to unsigned"))
    assert "config key 'workload.alpha' (workload=zipf) = -0.5: out of range, must not be negative" in str(err)
    err = out_of_range_error(OmegaConf.create({"a": 1}), {}, OverflowError("odd"))
    assert str(err) == "a config value is out of range for memarena's core (odd)"


def test_an_unhashable_plugin_is_refused_with_its_name() -> None:
    @dataclass
    class DataPlugin:  # eq=True: instances are unhashable
        n: int = 0

        @hookimpl
        def memarena_register_methods(self) -> list[type[Any]]:
            return []

    with pytest.raises(PluginError, match=r"plugin 'DataPlugin'.*must be hashable.*eq=False"):
        get_plugin_manager(autoload=False, plugins=[DataPlugin()])
