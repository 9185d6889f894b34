"""Output directories are claimed: a second run or sweep into a directory in use is refused (issue 14 item 4)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memarena.errors import MemarenaError
from memarena.outdir import JOBS_FILE, LOCK_FILE, DirectoryInUseError, claim
from memarena.results import RECORD_FILE
from tests.integration.test_cli import ROOT, memarena, records

TINY_PAGING = ("experiment=paging", "debug=tiny", "cache_size=[0.05]")
FAILING = {
    "MEMARENA_PLUGINS": "tests.integration.failing_plugin",
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
}


def _env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        **extra,
    }


def _start_sleepy(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """A run (or sweep) of the sleepy family that holds its directory until it is stopped."""
    ready = tmp_path / "ready"
    env = _env(MEMARENA_PLUGINS="tests.integration.sleepy_plugin", SLEEPY_READY_FILE=str(ready))
    cmd = [sys.executable, "-m", "memarena.app", *args, "~experiment", "family=sleepy"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "sleepy run never became ready"
        time.sleep(0.05)
    return proc


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    return out + err


def _one_error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("memarena: error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_a_second_run_into_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    first = _start_sleepy(tmp_path, f"hydra.run.dir={run_dir}")
    try:
        holder = json.loads((run_dir / LOCK_FILE).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname() and holder["started_at"]
        second = memarena(*TINY_PAGING, f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert second.returncode == 2, second.stdout + second.stderr
        line = _one_error(second.stderr)
        assert f"output directory {run_dir} is in use" in line and f"pid {first.pid} on host" in line
        assert "record:" not in second.stdout  # it printed no record path: it wrote none
        # Nor did it write into the directory: no Hydra config of its own, no log.
        assert "paging" not in (run_dir / ".hydra" / "overrides.yaml").read_text()
        # A run into a directory inside it, and a sweep over it, are refused too.
        inside = memarena(*TINY_PAGING, f"hydra.run.dir={run_dir}/sub", cwd=tmp_path)
        assert inside.returncode == 2 and f"output directory {run_dir} is in use" in _one_error(inside.stderr)
        over = memarena("-m", *TINY_PAGING, f"hydra.sweep.dir={tmp_path}", cwd=tmp_path)
        assert over.returncode == 2 and f"output directory {run_dir} is in use" in _one_error(over.stderr)
        assert not (tmp_path / LOCK_FILE).exists()  # the refused sweep gave its claim back
    finally:
        _stop(first)
    (rec,) = records(run_dir)
    assert rec.family == "sleepy"  # the first run's record, not overwritten
    assert not (run_dir / LOCK_FILE).exists()  # released at the end, interrupted or not
    after = memarena(*TINY_PAGING, f"hydra.run.dir={tmp_path}/r2", cwd=tmp_path)
    assert after.returncode == 0, after.stderr
    assert not (tmp_path / "r2" / LOCK_FILE).exists()


def test_a_second_sweep_into_a_sweep_directory_in_use_is_refused(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "m"
    first = _start_sleepy(tmp_path, "-m", "family.seconds=60,61", f"hydra.sweep.dir={sweep_dir}")
    try:
        second = memarena("-m", *TINY_PAGING, "policy=lru,fifo", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"output directory {sweep_dir} is in use" in _one_error(second.stderr)
        # A run into one of its job directories is refused as well.
        job = memarena(*TINY_PAGING, f"hydra.run.dir={sweep_dir}/1", cwd=tmp_path)
        assert job.returncode == 2 and f"output directory {sweep_dir} is in use" in _one_error(job.stderr)
    finally:
        out = _stop(first)
    assert not (sweep_dir / LOCK_FILE).exists() and not (sweep_dir / JOBS_FILE).exists()
    recs = records(sweep_dir)
    assert [r.family for r in recs] == ["sleepy"]  # the first sweep's interrupted job; nothing of the second
    assert "lru" not in out and "fifo" not in out


def test_a_sweep_summary_lists_only_its_own_jobs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "m"
    first = memarena(
        "-m",
        *TINY_PAGING,
        "policy=lru,fifo,evict_raises_test",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
        env=FAILING,
    )
    assert first.returncode == 1 and "1 job(s) did not complete" in first.stderr
    # Resuming with two of the three jobs: the third (failed, from before) is not this sweep's.
    again = memarena(
        "-m", *TINY_PAGING, "policy=lru,fifo", f"hydra.sweep.dir={sweep_dir}", "resume=true", cwd=tmp_path, env=FAILING
    )
    assert again.returncode == 0, again.stderr
    assert "did not complete" not in again.stderr and "evict bug" not in again.stderr
    assert "2 complete run(s)" in again.stdout
    assert not (sweep_dir / LOCK_FILE).exists() and not (sweep_dir / JOBS_FILE).exists()


def test_joblib_jobs_share_their_sweep_directory_claim(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        *TINY_PAGING,
        "policy=lru,fifo,arc",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "3 complete run(s)" in res.stdout
    assert [r.status for r in records(tmp_path / "m")] == ["complete"] * 3
    assert not (tmp_path / "m" / LOCK_FILE).exists()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    pid = _dead_pid()
    stale = {"pid": pid, "host": socket.gethostname(), "started_at": "2026-01-01T00:00:00+00:00"}
    (run_dir / LOCK_FILE).write_text(json.dumps(stale))
    res = memarena(*TINY_PAGING, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert f"taking over the stale lock {run_dir / LOCK_FILE} of pid {pid}" in res.stdout + res.stderr
    assert (run_dir / RECORD_FILE).exists() and not (run_dir / LOCK_FILE).exists()


def test_claim_in_process(tmp_path: Path) -> None:
    with claim(tmp_path / "a") as lock:
        assert lock.path.is_file()
        in_use = f"output directory {tmp_path / 'a'} is in use .*pid {os.getpid()}"
        with pytest.raises(DirectoryInUseError, match=in_use):
            claim(tmp_path / "a")
        with pytest.raises(DirectoryInUseError):
            claim(tmp_path, sweep=True)  # a sweep over it
        assert not (tmp_path / LOCK_FILE).exists()
    assert not lock.path.exists()
    # Another host's lock is never presumed stale; an unreadable one names no holder.
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": "elsewhere", "started_at": "t"}))
    with pytest.raises(DirectoryInUseError, match="on host elsewhere"):
        claim(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / LOCK_FILE).write_text("")
    with pytest.raises(DirectoryInUseError, match="unknown holder"):
        claim(tmp_path / "c")
    (tmp_path / "file").write_text("x")
    with pytest.raises(MemarenaError, match="cannot create or write the output directory"):
        claim(tmp_path / "file" / "d")
