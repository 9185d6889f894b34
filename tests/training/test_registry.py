"""Registering, listing and composing the optimizers import no torch (checked in a fresh interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from memarena.config import compose
from memarena.plugins import get_plugin_manager
from memarena.registry import Registry

reg = Registry.from_plugin_manager(get_plugin_manager())
print("optimizers:", ",".join(reg.names("optimizer")))
cfg = compose(["+optimizer=galore8bit", "optimizer.rank=4"])
print("composed:", cfg.optimizer.rank, cfg.optimizer.block_size)
print("torch:", "torch" in sys.modules)
"""


def test_registering_and_composing_the_optimizers_import_no_torch(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])}
    res = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "optimizers: adam8bit,adamw,frugal,galore,galore8bit" in lines, res.stdout
    assert "composed: 4 2048" in lines and "torch: False" in lines, res.stdout
