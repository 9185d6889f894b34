"""torch is an extra: the base install imports, lists and helps without it, and the kvcache run names the extra."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: Runs its arguments as ``python -c`` code with every ``import torch`` failing (as on the base install).
NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def without_torch(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "python"), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", NO_TORCH + code], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def memarena_without_torch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return without_torch(f"from memarena.app import main\nsys.exit(main({list(args)!r}))", cwd)


def test_the_kvcache_run_names_the_extra(tmp_path: Path) -> None:
    res = memarena_without_torch("experiment=kvcache", "debug=tiny", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("memarena: error:")]
    assert len(errors) == 1, res.stderr
    assert "pip install 'memarena[torch]'" in errors[0] and "torch is not installed" in errors[0]
    assert "Traceback" not in res.stderr


def test_plugins_and_help_work_without_torch(tmp_path: Path) -> None:
    res = memarena_without_torch("plugins", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "family=kvcache" in res.stdout and "workload=stdlib_heldout" in res.stdout
    res = memarena_without_torch("--help", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert re.search(r"experiment: .*\bkvcache\b", res.stdout) and re.search(r"family: .*\bkvcache\b", res.stdout)


def test_the_family_modules_import_without_torch(tmp_path: Path) -> None:
    res = without_torch(
        "import memarena.families.kvcache, memarena.families.kvcache.plugin, memarena.families.kvcache.family\n"
        "import memarena.families.kvcache.workloads, memarena.families.kvcache.memory\n"
        "from memarena.families.kvcache import Fp16Store, KV_COMPRESSIONS\n"
        "assert 'torch' not in sys.modules and len(KV_COMPRESSIONS) == 14\n"
        "try:\n"
        "    Fp16Store(4)\n"
        "except ModuleNotFoundError as e:\n"
        "    print('lazy:', e.name)\n",
        tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "lazy: torch"  # the names import; torch is read (and found missing) on first use


def test_the_base_install_requires_torch_only_under_the_extra() -> None:
    reqs = importlib.metadata.requires("memarena") or []
    torch_reqs = [r for r in reqs if re.match(r"torch\b", r)]
    assert torch_reqs, (
        f"the installed memarena has no torch extra ({reqs}): reinstall it, pip install -e '.[test,torch]'"
    )
    assert all(re.search(r"""extra\s*==\s*["']torch["']""", r) for r in torch_reqs), torch_reqs


def test_a_method_named_without_torch_names_the_extra(tmp_path: Path) -> None:
    # the methods register without torch (their modules read it lazily): the run, not Hydra, refuses
    for args in (("experiment=kvcache", "kv_compression=kivi"), ("experiment=serving", "kv_compression=kivi")):
        res = memarena_without_torch(
            *args, "debug=tiny", f"hydra.run.dir={tmp_path}/{args[0].split('=')[1]}", cwd=tmp_path
        )
        assert res.returncode == 2, res.stderr
        errors = [line for line in res.stderr.splitlines() if line.startswith("memarena: error:")]
        assert len(errors) == 1 and "pip install 'memarena[torch]'" in errors[0], res.stderr
