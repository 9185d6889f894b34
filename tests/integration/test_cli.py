"""The ``memarena`` command end to end, as a user runs it (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memarena.results import RECORD_FILE, RunRecord

ROOT = Path(__file__).resolve().parents[2]
# One paging run (the paging experiment without its sweep); the default experiment is serving.
PAGING = ("experiment=paging",)


def memarena(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "memarena.app", *args]
    full_env = {**os.environ, "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1", **(env or {})}
    return subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def records(root: Path) -> list[RunRecord]:
    return [RunRecord.from_json(p.read_text()) for p in sorted(root.rglob(RECORD_FILE))]


def test_paging_sweep_prints_a_table_and_writes_records(tmp_path: Path) -> None:
    res = memarena("-m", "experiment=paging", "debug=tiny", f"hydra.sweep.dir={tmp_path}/m", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "workload: zipf" in res.stdout  # the same in every row: printed once above the table
    assert "| policy" in res.stdout
    assert "miss_ratio" in res.stdout
    recs = records(tmp_path / "m")
    policies = {r.rows[0]["policy"] for r in recs}
    assert {"lru", "arc", "s3fifo", "belady"} <= policies
    assert all(r.status == "complete" and len(r.rows) == 2 for r in recs)
    rec = recs[0]
    assert rec.versions["memarena_core"] and rec.versions["numpy"] and rec.host["hostname"]
    assert rec.config["seed"] == 0 and rec.wall_s > 0
    # Belady is optimal: no policy misses less at the same size.
    for size in {r.rows[0]["cache_size"] for r in recs}:
        rows = [row for r in recs for row in r.rows if row["cache_size"] == size]
        best = min(rows, key=lambda row: row["misses"])
        assert best["misses"] == next(row["misses"] for row in rows if row["policy"] == "belady")


def test_single_run_and_the_backend_cost(tmp_path: Path) -> None:
    res = memarena(
        *PAGING,
        "policy=arc",
        "debug=tiny",
        "family.cache_size=[100,500]",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    assert [row["cache_size"] for row in rec.rows] == [100, 500]
    assert all(row["avg_access_time_s"] > 0 for row in rec.rows)
    assert rec.rows[0]["avg_access_time_s"] > rec.rows[1]["avg_access_time_s"]  # more hits in DRAM
    assert "arc" in res.stdout and "avg_access_time_s" in res.stdout


def test_joblib_launcher_sweep_and_report(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        "experiment=paging",
        "debug=tiny",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "policy=lru,sieve",
        "cache_size=[0.01,0.05,0.2]",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    recs = records(tmp_path / "m")
    assert sorted(r.rows[0]["policy"] for r in recs) == ["lru", "sieve"]
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "m" / "report.md").exists() and (tmp_path / "m" / "report.csv").exists()
    assert (tmp_path / "m" / "mrc.png").stat().st_size > 5000


def test_report_refuses_a_directory_without_records(tmp_path: Path) -> None:
    res = memarena("report", str(tmp_path), cwd=tmp_path)
    assert res.returncode == 2
    assert "no memarena run records" in res.stderr and "Traceback" not in res.stderr


def test_unknown_policy_lists_the_available(tmp_path: Path) -> None:
    res = memarena(*PAGING, "policy=nope", cwd=tmp_path)
    assert res.returncode != 0
    assert "policy/nope" in res.stderr and "s3fifo" in res.stderr


def test_bad_value_names_the_config_key(tmp_path: Path) -> None:
    res = memarena(*PAGING, "debug=tiny", "family.cache_size=-1", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
    assert res.returncode == 2
    assert "config key 'cache_size'" in res.stderr and "Traceback" not in res.stderr
    (rec,) = records(tmp_path / "r")
    assert rec.status == "failed" and "cache_size" in (rec.error or "")


def test_plugins_help_and_version(tmp_path: Path) -> None:
    res = memarena("plugins", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (
        "memarena.families.paging.plugin" in res.stdout
        and "policy=s3fifo" in res.stdout
        and "backend=cpu_ddr5_nvme" in res.stdout
    )
    data = json.loads(memarena("plugins", "--json", cwd=tmp_path).stdout)
    assert any("method/paging_policy" in p["components"] for p in data)
    help_ = memarena("--help", cwd=tmp_path)
    assert help_.returncode == 0 and "memarena plugins" in help_.stdout and "policy:" in help_.stdout
    assert "experiment: " in help_.stdout and "paging_predictions" in help_.stdout
    ver = memarena("--version", cwd=tmp_path)
    assert "memarena_core" in ver.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_run_leaves_no_complete_record(tmp_path: Path, sig: signal.Signals) -> None:
    ready = tmp_path / "ready"
    env = {
        **os.environ,
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1",
        "MEMARENA_PLUGINS": "tests.integration.sleepy_plugin",
        "SLEEPY_READY_FILE": str(ready),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, "-m", "memarena.app", "~experiment", "family=sleepy", f"hydra.run.dir={tmp_path}/r"]
    # (A run launched in the background by a shell without job control
    # inherits SIGINT ignored; the run under test must see it as a user would.)
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "sleepy run never became ready"
        time.sleep(0.05)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode != 0, out
    (rec,) = records(tmp_path / "r")
    assert rec.status == "interrupted"
    assert [row["step"] for row in rec.rows] == [0]  # the finished row is kept, nothing after
    assert not list((tmp_path / "r").glob(".memarena-record.*"))
    rep = memarena("report", str(tmp_path / "r"), cwd=tmp_path)
    assert rep.returncode == 2 and "none complete" in rep.stderr


def test_windows_presets_and_their_plot(tmp_path: Path) -> None:
    res = memarena(
        *PAGING,
        "policy=s3fifo_small",
        "debug=tiny",
        "family.cache_size=[200]",
        "family.window_requests=1250",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    (row,) = rec.rows
    assert row["policy"] == "s3fifo_small"  # the preset's name, not only the class's
    assert len(row["window_miss_ratios"]) == 4  # 5,000 requests / 1,250
    # The windows partition the trace: their mean is the overall miss ratio.
    assert abs(sum(row["window_miss_ratios"]) / 4 - row["miss_ratio"]) < 1e-9
    rep = memarena("report", str(tmp_path / "r"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "r" / "miss_ratio_over_time.png").stat().st_size > 5000


def test_learning_augmented_policy_gets_oracle_predictions_of_its_kind(tmp_path: Path) -> None:
    res = memarena(
        *PAGING,
        "policy=mark0",
        "debug=tiny",
        "family.cache_size=[100]",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    (row,) = rec.rows
    assert row["predictions"] == "discard_bit"
    assert row["prediction_error"] == 0.0
    # With perfect discard bits Mark0 is 1-consistent: it misses exactly as often as Belady.
    res = memarena(
        *PAGING,
        "policy=belady",
        "debug=tiny",
        "family.cache_size=[100]",
        f"hydra.run.dir={tmp_path}/b",
        cwd=tmp_path,
    )
    (belady,) = records(tmp_path / "b")
    assert row["misses"] == belady.rows[0]["misses"]


def test_one_pass_lru_curve_equals_replay(tmp_path: Path) -> None:
    sizes = "family.cache_size=[10,100,1000,1999]"
    base = (*PAGING, "policy=lru", "debug=tiny", sizes)
    assert memarena(*base, f"hydra.run.dir={tmp_path}/sim", cwd=tmp_path).returncode == 0
    res = memarena(*base, "family.lru_stack_distances=true", f"hydra.run.dir={tmp_path}/sd", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    (sim,) = records(tmp_path / "sim")
    (sd,) = records(tmp_path / "sd")
    assert [r["misses"] for r in sd.rows] == [r["misses"] for r in sim.rows]
    assert all(r["method"] == "stack_distance" for r in sd.rows)
    bad = memarena(*base[:-1], "policy=arc", "family.lru_stack_distances=true", cwd=tmp_path)
    assert bad.returncode == 2
    assert "applies to policy=lru" in bad.stderr


def test_progress_bar_is_off_without_a_terminal_and_on_request(tmp_path: Path) -> None:
    base = (*PAGING, "debug=tiny", "workload.n_requests=200000")
    quiet = memarena(*base, "progress=null", f"hydra.run.dir={tmp_path}/q", cwd=tmp_path)  # stderr is a pipe: no bar
    assert quiet.returncode == 0, quiet.stderr
    assert "paging lru" not in quiet.stderr
    # (A second run into the same directory would be refused: it holds a complete record.)
    forced = memarena(*base, "progress=true", f"hydra.run.dir={tmp_path}/f", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "paging lru" in forced.stderr
    assert "req" in forced.stderr
