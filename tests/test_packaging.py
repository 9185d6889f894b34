"""The built wheel, installed into a clean virtual environment, works on its own.

Builds the wheel, checks it carries the config tree, the stub and the
license, installs it with the example plugin into a fresh venv and runs
``memarena`` from an unrelated directory: the default experiment, the
plugin listing, and an experiment selecting the plugin's components by name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 1200) -> str:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, (
        f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}"
    )
    return res.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(ROOT)], cwd=ROOT)
    (whl,) = out.glob("memarena-*.whl")
    return whl


def test_wheel_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "memarena/conf/config.yaml",
        "memarena/conf/debug/tiny.yaml",
        # Each family's own tree, on the search path through its plugin.
        "memarena/families/paging/conf/experiment/paging.yaml",
        "memarena/families/paging/conf/family_debug/paging_tiny.yaml",
        "memarena/families/serving/conf/experiment/serving.yaml",
        "memarena/families/serving/conf/model/llama3_8b.yaml",
        "memarena/families/serving/conf/kv_manager/static_pow2.yaml",
        "memarena/families/retrieval/conf/sweep/retrieval_pareto.yaml",
        "memarena/data/azure_llm_2023/AzureLLMInferenceTrace_conv.csv",
        "memarena/data/azure_llm_2023/LICENSE",
        "memarena/data/azure_llm_2023/README.md",
        # The fixture model's weights and card (issue 16), read by memarena.models.load_fixture.
        "memarena/models/fixture/bytellama.pt",
        "memarena/models/fixture/CARD.md",
        "memarena/_core.pyi",
        "memarena/py.typed",
    ):
        assert required in names, f"{required} missing from {wheel.name}"
    assert any(n.startswith("memarena/_core") and n.endswith(".so") for n in names)
    # a training checkpoint next to the fixture is gitignored, so maturin leaves it out
    assert not any(n.endswith(".ckpt") for n in names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert any(n.endswith(".dist-info/licenses/python/memarena/data/azure_llm_2023/LICENSE") for n in names), sorted(
        n for n in names if "dist-info" in n
    )


def test_clean_venv_runs_from_an_unrelated_directory(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    run([str(py), "-m", "pip", "install", "-q", str(wheel)], cwd=tmp_path)
    run([str(py), "-m", "pip", "install", "-q", str(ROOT / "plugins" / "memarena-example")], cwd=tmp_path)
    exe = str(env_dir / "bin" / "memarena")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"

    # The bare command: the default experiment's comparison, KV managers on the shipped Azure trace.
    out = run([exe], cwd=elsewhere, env=env)
    assert "workload: azure_llm_2023_conv" in out
    assert "| kv_manager" in out
    assert "azure_llm_2023_conv" in out and "static_max" in out and "vattention_64kb" in out
    assert len(list((elsewhere / "multirun").rglob("memarena-record.json"))) == 7

    out = run(
        [exe, "-m", "experiment=paging", "debug=tiny", "progress=false", "hydra.sweep.dir=pg"], cwd=elsewhere, env=env
    )
    assert "belady" in out
    out = run(
        [exe, "sweep=paging_mrc", "debug=tiny", "hydra.sweep.dir=mrc", "hydra.launcher.n_jobs=1"],
        cwd=elsewhere,
        env=env,
    )
    assert "| policy" in out and "kv_manager" not in out  # the sweep preset selects its own experiment

    plugins = run([exe, "plugins"], cwd=elsewhere, env=env)
    assert "memarena-example" in plugins
    assert "policy=hyperbolic" in plugins

    out = run(
        [exe, "experiment=paging", "policy=hyperbolic", "backend=cxl_tiered", "debug=tiny", "hydra.run.dir=one"],
        cwd=elsewhere,
        env=env,
    )
    assert "hyperbolic" in out
    assert "avg_access_time_s" in out
