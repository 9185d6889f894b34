"""The installed distribution is found through its entry point, and registering it imports no torch."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

from memarena.plugins import PluginManager, get_plugin_manager
from memarena.registry import Registry

import memarena_minilm.plugin


def test_entry_point_loads_the_plugin_module() -> None:
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="memarena") if ep.name == "minilm"]
    assert ep.value == "memarena_minilm.plugin"
    assert ep.dist is not None
    assert ep.dist.metadata["Name"] == "memarena-minilm"
    assert ep.load() is memarena_minilm.plugin
    entry = Registry.from_plugin_manager(get_plugin_manager()).entry("embedder", "minilm")
    assert entry.plugin.name == "minilm"
    assert entry.plugin.distribution == "memarena-minilm"


def test_registered_by_hand(memarena_pm: PluginManager) -> None:
    memarena_pm.register(memarena_minilm.plugin, name="minilm")
    assert Registry.from_plugin_manager(memarena_pm).entry("embedder", "minilm").plugin.name == "minilm"


SCRIPT = """
import contextlib, io, sys
from memarena.app import main
from memarena.config import compose
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["plugins"]) == 0
cfg = compose(["embedder=minilm", "embedder.batch_size=8"])
print("listed:", "embedder=minilm " in out.getvalue(), "composed:", cfg.embedder.batch_size)
print("torch:", "torch" in sys.modules, "sentence_transformers:", "sentence_transformers" in sys.modules)
"""


def test_listing_and_composing_import_no_torch() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMARENA_")}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "listed: True composed: 8" in res.stdout, res.stdout
    assert "torch: False sentence_transformers: False" in res.stdout, res.stdout
