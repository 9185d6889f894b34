"""Registering, listing and composing import no torch; a kvcache run imports it and runs.

Every ``memarena`` command builds the registry, whatever its family, and
the registry imports every ``kv_compression`` method's module: those read
torch through :mod:`memarena.lazy`, so the seconds torch
takes to import are paid only by runs that use it. Checked in a fresh
interpreter (this one has torch imported by the kvcache conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memarena.lazy import LazyModule

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import contextlib, io, sys
from memarena.app import main
from memarena.config import compose
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

reg = Registry.from_plugin_manager(get_plugin_manager())
print("methods:", len(reg.names("kv_compression")))
out = io.StringIO()
with contextlib.redirect_stdout(out):
    assert main(["plugins"]) == 0
    assert main(["--help"]) == 0
print("listed h2o:", "kv_compression=h2o " in out.getvalue())
cfg = compose(["experiment=kvcache", "kv_compression=scissorhands", "kv_compression.history_window_tokens=7"])
print("composed:", cfg.kv_compression.history_window_tokens)
print("torch before the run:", "torch" in sys.modules)

import torch
torch.set_num_threads(1)
run = ["experiment=kvcache", "debug=tiny", "kv_compression=h2o", "family.budget=0.5"]
rc = main([*run, "hydra.run.dir=" + sys.argv[1]])
print("run:", rc, "torch" in sys.modules)
"""


def test_registering_listing_and_composing_import_no_torch_and_a_run_still_works(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "MEMARENA_PLUGINS": "tests.kvcache.random_model_plugin",  # a seeded random model (no fixture needed)
        "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "run")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "methods: 14" in lines, res.stdout
    assert "listed h2o: True" in lines and "composed: 7" in lines, res.stdout
    assert "torch before the run: False" in lines, res.stdout
    assert "run: 0 True" in lines, res.stdout + res.stderr
    assert list((tmp_path / "run").glob("**/*.json")), "the run wrote no record"


def test_a_lazy_module_imports_on_first_read_and_caches_what_it_read() -> None:
    m = LazyModule("json")
    assert "dumps" not in vars(m)
    assert m.dumps([1]) == "[1]"  # the first read imports json
    assert vars(m)["dumps"] is sys.modules["json"].dumps  # cached: later reads are plain attribute reads
    with pytest.raises(AttributeError):
        m.__wrapped__  # noqa: B018 (dunder probes (inspect, copy) must not import the module)
    missing = LazyModule("memarena_no_such_module")
    with pytest.raises(ModuleNotFoundError) as err:
        missing.anything  # noqa: B018
    assert err.value.name == "memarena_no_such_module"
