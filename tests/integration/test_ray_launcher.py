"""A sweep on a local Ray cluster through ``hydra/launcher=ray`` (the ``memarena[ray]`` extra).

The cluster is started on 127.0.0.1 with ``ray start`` and stopped with
``ray stop``. What a Ray worker needs: memarena (and any plugin) importable,
with the ``MEMARENA_*`` switches in the environment the cluster was started
with; the same file system as the driver, since each job writes its record
into the (absolute) ``hydra.sweep.dir`` and the driver's summary reads them
there. A job's return value (a small dict) comes back through cloudpickle.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli import ROOT, memarena, records

pytestmark = pytest.mark.slow


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ray_port(tmp_path: Path) -> Iterator[int]:
    """A local Ray head on 127.0.0.1 with 2 CPUs; its port."""
    if not (_installed("ray") and _installed("hydra_plugins.hydra_ray_launcher")):
        pytest.skip("ray or hydra-ray-launcher is not installed (pip install 'memarena[ray]')")
    port = _free_port()
    env = {
        **os.environ,
        # The workers inherit this environment: the checkout's tests package, no installed plugins.
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    ray = [sys.executable, "-m", "ray.scripts.scripts"]
    start = [
        *ray,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    res = subprocess.run(start, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stdout + res.stderr
    try:
        yield port
    finally:
        subprocess.run([*ray, "stop"], cwd=tmp_path, env=env, capture_output=True, timeout=120)


def test_a_paging_sweep_runs_on_a_local_ray_cluster(ray_port: int, tmp_path: Path) -> None:
    res = memarena(
        "-m",
        "experiment=paging",
        "debug=tiny",
        "cache_size=[0.05]",
        "policy=lru,fifo",
        "hydra/launcher=ray",
        f"hydra.launcher.ray.init.address=127.0.0.1:{ray_port}",
        # hydra-ray-launcher 1.2.2 sets object_store_memory, which Ray refuses when joining a running cluster.
        "+hydra.launcher.ray.init.object_store_memory=null",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Ray Launcher is launching 2 jobs" in res.stdout
    recs = records(tmp_path / "m")
    assert sorted(r.rows[0]["policy"] for r in recs) == ["fifo", "lru"]
    assert all(r.status == "complete" and len(r.rows) == 1 for r in recs)
    assert "2 complete run(s)" in res.stdout
