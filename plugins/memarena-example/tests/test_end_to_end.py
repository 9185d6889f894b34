"""The plugin's components run from the ``memarena`` command line, selected by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow


def memarena(cwd: Path, *overrides: str) -> str:
    cmd = [sys.executable, "-c", "import sys; from memarena.app import main; sys.exit(main())", *overrides]
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"{' '.join(overrides)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res.stdout


def records(sweep_dir: Path) -> list[dict[str, Any]]:
    found = sorted(sweep_dir.rglob("memarena-record.json"))
    assert found, f"no memarena-record.json under {sweep_dir}"
    return [json.loads(p.read_text()) for p in found]


def test_paging_experiment_with_plugin_policy_and_backend(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    out = memarena(
        tmp_path,
        "-m",
        "experiment=paging",
        "policy=hyperbolic",
        "backend=cxl_tiered",
        "debug=tiny",
        "family.backing_tier=cxl",
        f"hydra.sweep.dir={sweep}",
    )
    assert "hyperbolic" in out
    # -m experiment=paging sweeps ten policies; the command line's policy=hyperbolic wins: one job.
    (record,) = records(sweep)
    assert record["status"] == "complete"
    assert record["family"] == "paging"
    assert record["config"]["backend"]["_target_"] == "memarena_example.backend.CxlTiered"
    assert len(record["rows"]) == 2  # the experiment's two cache sizes
    for row in record["rows"]:
        assert row["policy"] == "hyperbolic"
        assert 0 < row["miss_ratio"] < 1
        # A hit costs a DRAM access, a miss a CXL access: between the two latencies.
        assert 100e-9 < row["avg_access_time_s"] < 190e-9 + 4096 / 140e9


def test_plugin_experiment_preset_by_name(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    memarena(tmp_path, "-m", "experiment=example_tiered", "debug=tiny", f"hydra.sweep.dir={sweep}")
    recs = records(sweep)
    assert all(r["status"] == "complete" for r in recs)
    chosen = sorted(r["config"]["policy"]["_target_"].rsplit(".", 1)[1] for r in recs)
    assert chosen == ["Hyperbolic", "Hyperbolic", "LRU", "S3FIFO"]
    samples = sorted(r["config"]["policy"].get("sample_size", 0) for r in recs)
    assert samples == [0, 0, 8, 64]  # hyperbolic and the hyperbolic_s8 preset
    sizes = {tuple(row["cache_size"] for row in r["rows"]) for r in recs}
    assert len(sizes) == 1  # every policy at the same two cache sizes (debug=tiny's fractions)
    (pair,) = sizes
    assert len(pair) == 2
    assert pair[0] < pair[1]
    for r in recs:
        assert r["config"]["family"]["backing_tier"] == "cxl"


@pytest.mark.parametrize("experiment", ["retrieval", "retrieval_tenants"])
def test_both_retrieval_experiments_run_the_python_index(tmp_path: Path, experiment: str) -> None:
    out_dir = tmp_path / "run"
    memarena(
        tmp_path,
        f"experiment={experiment}",
        "index=numpy_flat",
        "debug=tiny",
        "family.repeats=1",
        "family.single_queries=20",
        f"hydra.run.dir={out_dir}",
    )
    (record,) = records(out_dir)
    assert record["status"] == "complete"
    (row,) = record["rows"]
    assert row["index"] == "numpy_flat"
    assert row["recall_at_10"] == 1.0
    assert row["tenant_violations"] == 0
    if experiment == "retrieval_tenants":
        assert row["n_tenants"] == 100
        assert row["tenant_bytes_total"] > 0
