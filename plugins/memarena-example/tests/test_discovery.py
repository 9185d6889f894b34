"""The installed distribution is found through its entry point, like any third-party plugin."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from memarena.plugins import PluginManager, get_plugin_manager
from memarena.registry import Registry

import memarena_example.plugin

COMPONENTS = {"policy": "hyperbolic", "backend": "cxl_tiered", "agent_memory": "memorybank_lite", "index": "numpy_flat"}


def _entry_point() -> importlib.metadata.EntryPoint:
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="memarena") if ep.name == "example"]
    return ep


def test_entry_point_loads_the_plugin_module() -> None:
    ep = _entry_point()
    assert ep.value == "memarena_example.plugin"
    assert ep.dist is not None
    assert ep.dist.metadata["Name"] == "memarena-example"
    assert ep.load() is memarena_example.plugin


def test_autoloaded_components_are_registered() -> None:
    pm = get_plugin_manager()  # autoload: reads the installed entry points
    registry = Registry.from_plugin_manager(pm)
    for group, name in COMPONENTS.items():
        entry = registry.entry(group, name)
        assert entry.plugin.name == "example"
        assert entry.plugin.distribution == "memarena-example"
        assert not entry.plugin.builtin
    assert pm.info("example").describe() == "plugin 'example' (distribution memarena-example 0.1.0)"


def test_not_loaded_without_autoload(memarena_registry: Registry) -> None:
    for group, name in COMPONENTS.items():
        assert name not in memarena_registry.names(group)


def test_registered_by_hand(memarena_pm: PluginManager) -> None:
    memarena_pm.register(memarena_example.plugin, name="example")
    registry = Registry.from_plugin_manager(memarena_pm)
    assert all(name in registry.names(group) for group, name in COMPONENTS.items())


def test_env_switches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMARENA_BLOCK_PLUGINS", "example")
    assert "hyperbolic" not in Registry.from_plugin_manager(get_plugin_manager()).names("policy")
    monkeypatch.delenv("MEMARENA_BLOCK_PLUGINS")

    monkeypatch.setenv("MEMARENA_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "hyperbolic" not in Registry.from_plugin_manager(get_plugin_manager()).names("policy")
    monkeypatch.setenv("MEMARENA_PLUGINS", "memarena_example.plugin")
    assert "hyperbolic" in Registry.from_plugin_manager(get_plugin_manager()).names("policy")


def test_config_search_path_ships_the_yaml() -> None:
    assert memarena_example.plugin.memarena_config_search_path() == ["pkg://memarena_example.conf"]
    conf = importlib.resources.files("memarena_example.conf")
    assert conf.joinpath("experiment", "example_tiered.yaml").is_file()
    assert conf.joinpath("policy", "hyperbolic_s8.yaml").is_file()


def _memarena(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "import sys; from memarena.app import main; sys.exit(main())", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_memarena_plugins_lists_the_plugin() -> None:
    res = _memarena("plugins")
    assert res.returncode == 0, res.stderr
    assert "example  (memarena-example 0.1.0)" in res.stdout
    for group, name in COMPONENTS.items():
        assert f"{group}={name}" in res.stdout

    res = _memarena("plugins", "--json")
    assert res.returncode == 0, res.stderr
    (ours,) = [p for p in json.loads(res.stdout) if p["name"] == "example"]
    assert ours["distribution"] == "memarena-example"
    assert {c["name"] for comps in ours["components"].values() for c in comps} == set(COMPONENTS.values())
    assert "method/paging_policy" in ours["components"]


def test_memarena_plugins_respects_block_switch() -> None:
    env = {**os.environ, "MEMARENA_BLOCK_PLUGINS": "example"}
    res = _memarena("plugins", env=env)
    assert res.returncode == 0, res.stderr
    assert "memarena-example" not in res.stdout


@pytest.mark.slow
def test_wheel_ships_the_yaml_and_the_entry_point(tmp_path: Path) -> None:
    # Build from a copy, so the source tree gets no build/ folder.
    root = tmp_path / "src"
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(Path(__file__).resolve().parents[1], root, ignore=ignore)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "-w",
        str(tmp_path / "dist"),
        str(root),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    (wheel,) = (tmp_path / "dist").glob("memarena_example-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        (ep_file,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_points = zf.read(ep_file).decode()
    for path in (
        "conf/__init__.py",
        "conf/experiment/example_tiered.yaml",
        "conf/policy/hyperbolic_s8.yaml",
        "py.typed",
    ):
        assert f"memarena_example/{path}" in names
    assert "[memarena]\nexample = memarena_example.plugin" in entry_points
