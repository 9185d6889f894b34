"""Ctrl-C and SIGTERM lose nothing that finished (issue 14, items 2 and 3).

Each test starts ``memarena`` in its own session (so every process it starts,
joblib's workers included, shares its process group), waits until the work
is under way (a file the test plugin writes, never a fixed sleep), sends the
signal to the ``memarena`` process alone, and checks: it exits within a
generous bound with 128 + the signal, the rows already produced are in the
records, every job in flight has an ``interrupted`` record, the summary is
printed, and no process of the group is left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memarena.results import RECORD_FILE, RunRecord

ROOT = Path(__file__).resolve().parents[2]
#: How long a run may take to start its work (a slow shared machine, joblib workers importing memarena).
START_S = 180.0
#: How long a run may take to stop after the signal: generous, the runs below would otherwise go on for many minutes.
STOP_S = 60.0

SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])


#: A serving run whose simulation (one native call) would take far longer than
#: STOP_S (over 10 minutes): long outputs at a load the GPU cannot keep up
#: with, every event checking the KV manager's invariants. Its progress bar
#: (on stderr) appears when the simulation starts.
SERVING_FOREVER = (
    "experiment=serving",
    "workload=poisson",
    "workload.n_requests=20000",
    "workload.rate=50",
    "workload.output_tokens.median=4000",
    "workload.output_tokens.sigma=0.1",
    "family.check_invariants=true",
    "progress=true",
)


def _stat_fields(pid: int) -> list[str]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    return stat[stat.rfind(")") + 2 :].split()


def group_pids(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            fields = _stat_fields(int(name))
            if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
                out.append(int(name))
    return out


def wait_for(what: str, cond: Callable[[], bool], proc: subprocess.Popen[str], timeout: float = START_S) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"memarena exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"memarena did not reach {what} within {timeout:.0f} s")
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def records(root: Path) -> list[RunRecord]:
    return [RunRecord.from_json(p.read_text()) for p in sorted(root.rglob(RECORD_FILE))]


@contextlib.contextmanager
def memarena(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """``memarena ARGS`` in its own session; every process of it is killed on the way out."""
    env = {
        **os.environ,
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1",
        "MEMARENA_PLUGINS": "tests.integration.sleepy_plugin",
        "SLEEPY_READY_FILE": str(tmp_path / "ready"),
        "SLEEPY_STARTED_FILE": str(tmp_path / "started"),
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    # Output goes to files, which a test may watch while the run goes on.
    stdout, stderr = (tmp_path / "stdout").open("w"), (tmp_path / "stderr").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "memarena.app", *args],
        cwd=tmp_path,
        env=env,
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=True,
        # (A shell without job control starts background jobs with SIGINT
        # ignored; the run under test must see it as a user's would.)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever a failed test left running
        proc.wait()
        stdout.close()
        stderr.close()


def stop(tmp_path: Path, proc: subprocess.Popen[str], sig: signal.Signals, group: bool = False) -> tuple[str, str]:
    """Send ``sig`` to memarena (``group``: to its whole process group, as Ctrl-C in a terminal does).

    It must exit within STOP_S, leaving no process of its group.
    """
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"memarena did not stop within {STOP_S:.0f} s of {sig.name}")
    out, err = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    # Helpers such as loky's resource tracker exit when memarena's end of their pipe closes.
    deadline = time.monotonic() + STOP_S
    while group_pids(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert group_pids(proc.pid) == [], f"processes left running after {sig.name}:\n{err}"
    assert proc.returncode == 128 + sig, f"exit {proc.returncode}\n{out}\n{err}"
    assert "Traceback" not in err, err
    return out, err


@SIGNALS
def test_single_run_keeps_its_rows_prints_them_and_exits_128_plus_the_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    with memarena(tmp_path, "~experiment", "family=sleepy", f"hydra.run.dir={tmp_path}/r") as proc:
        wait_for("its first row", lambda: len(lines(tmp_path / "ready")) == 1, proc)
        out, err = stop(tmp_path, proc, sig)
    (rec,) = records(tmp_path / "r")
    assert rec.status == "interrupted"
    assert [row["step"] for row in rec.rows] == [0]
    assert "| step" in out and "record (interrupted, 1 row(s))" in out  # the summary of what finished
    assert "memarena: interrupted" in err


@SIGNALS
def test_serving_stops_within_the_native_simulation(tmp_path: Path, sig: signal.Signals) -> None:
    with memarena(tmp_path, *SERVING_FOREVER, f"hydra.run.dir={tmp_path}/r") as proc:
        wait_for("the simulation", lambda: "serving " in (tmp_path / "stderr").read_text(), proc)
        _, err = stop(tmp_path, proc, sig)
    (rec,) = records(tmp_path / "r")
    assert rec.status == "interrupted" and rec.family == "serving"
    assert rec.error is not None and ("KeyboardInterrupt" in rec.error or "Interrupted" in rec.error)
    assert "memarena: interrupted" in err


def _sweep_records(sweep: Path) -> dict[float, RunRecord]:
    return {float(r.config["family"]["seconds"]): r for r in records(sweep)}


@SIGNALS
def test_basic_sweep_keeps_finished_jobs_records_the_job_in_flight_and_prints_the_summary(
    tmp_path: Path, sig: signal.Signals
) -> None:
    sweep = tmp_path / "m"
    args = ("-m", "~experiment", "family=sleepy", "family.seconds=0,600,601", f"hydra.sweep.dir={sweep}")
    with memarena(tmp_path, *args) as proc:
        wait_for("its second job's first row", lambda: len(lines(tmp_path / "ready")) == 2, proc)
        out, err = stop(tmp_path, proc, sig)
    recs = _sweep_records(sweep)
    assert set(recs) == {0.0, 600.0}  # the third job never started
    assert recs[0.0].status == "complete" and [r["step"] for r in recs[0.0].rows] == [0, 1]
    assert recs[600.0].status == "interrupted" and [r["step"] for r in recs[600.0].rows] == [0]
    assert "1 complete run(s)" in out  # the summary
    assert "1 job(s) did not complete" in err


@pytest.mark.parametrize(
    ("sig", "group"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True), (signal.SIGTERM, True)],
    ids=["SIGINT", "SIGTERM", "SIGINT-to-the-group", "SIGTERM-to-the-group"],
)
def test_joblib_sweep_records_every_job_in_flight_and_leaves_no_worker(
    tmp_path: Path, sig: signal.Signals, group: bool
) -> None:
    # Four jobs on three workers: when the signal comes, one job is complete,
    # its worker runs the fourth or waits idle, and two more are in flight.
    sweep = tmp_path / "m"
    args = (
        "-m",
        "~experiment",
        "family=sleepy",
        "family.seconds=0,600,601,602",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=3",
        f"hydra.sweep.dir={sweep}",
    )
    with memarena(tmp_path, *args) as proc:

        def under_way() -> bool:
            done = [r for r in records(sweep) if r.status == "complete"]
            return len(lines(tmp_path / "ready")) == 4 and len(done) == 1

        wait_for("every job under way, the short one complete", under_way, proc)
        workers = [pid for pid in group_pids(proc.pid) if pid != proc.pid]
        assert workers, "the joblib launcher started no worker process"
        out, err = stop(tmp_path, proc, sig, group)
    recs = _sweep_records(sweep)
    assert set(recs) == {0.0, 600.0, 601.0, 602.0}
    assert recs[0.0].status == "complete" and [r["step"] for r in recs[0.0].rows] == [0, 1]
    for seconds in (600.0, 601.0, 602.0):
        assert recs[seconds].status == "interrupted", recs[seconds]
        assert [r["step"] for r in recs[seconds].rows] == [0]
    assert "1 complete run(s)" in out
    assert "3 job(s) did not complete" in err


@SIGNALS
def test_joblib_serving_sweep_stops_its_workers_native_simulations(tmp_path: Path, sig: signal.Signals) -> None:
    sweep = tmp_path / "m"
    args = (
        "-m",
        *SERVING_FOREVER,
        "kv_manager=paged,static_max",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        f"hydra.sweep.dir={sweep}",
    )
    with memarena(tmp_path, *args) as proc:
        wait_for(
            "both simulations",
            lambda: (tmp_path / "stderr").read_text().count("serving ") >= 2,
            proc,
        )
        out, err = stop(tmp_path, proc, sig)
    recs = records(sweep)
    assert len(recs) == 2 and all(r.status == "interrupted" and r.family == "serving" for r in recs), recs
    assert "0 complete run(s)" in out  # the summary
    assert "2 job(s) did not complete" in err


def test_a_native_call_raises_what_a_signal_handler_raised(tmp_path: Path) -> None:
    # The public event-simulation API, in a process of its own: an M/M/1 run
    # of 10**15 jobs would take years; a timer's handler raises after 0.3 s.
    code = """
import signal
from memarena.families.serving import simulate_mm1

class Stop(Exception):
    pass

def raise_stop(signum, frame):
    raise Stop("from the handler")

signal.signal(signal.SIGALRM, raise_stop)
signal.setitimer(signal.ITIMER_REAL, 0.3)
try:
    simulate_mm1(0.5, 1.0, 10**15)
except Stop as exc:
    print("raised:", exc)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=STOP_S + 60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "raised: from the handler"


#: A child that adds far more vectors to an HNSW graph than it could insert
#: within STOP_S (a high ef_construction), after a first small add; on
#: KeyboardInterrupt it reports how many vectors the index holds and adds 10
#: more with default ids (which must follow those already in).
HNSW_ADD_FOREVER = """
import sys
import numpy as np
from memarena.indexes import Index

x = np.random.default_rng(0).standard_normal((400_000, 16), dtype=np.float32)
index = Index("hnsw", dim=16, params={"m": 32, "ef_construction": 800})
index.add(x[:100])
print("ready", flush=True)
try:
    index.add(x[100:])
except KeyboardInterrupt:
    done = len(index)
    print("interrupted", done, flush=True)
    index.add(x[done : done + 10])
    print("then", len(index), sorted(map(int, index.search(x[:1], 1)[1][0])), flush=True)
    sys.exit(3)
print("finished", flush=True)
"""


def test_sigint_stops_an_hnsw_add_between_two_vectors(tmp_path: Path) -> None:
    """Issue 14: a signal stops native vector insertion; the index keeps the vectors inserted so far."""
    out_path = tmp_path / "stdout"
    with out_path.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", HNSW_ADD_FOREVER],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            wait_for("its second add", lambda: "ready" in out_path.read_text(), proc)
            proc.send_signal(signal.SIGINT)
            try:
                _, err = proc.communicate(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the add did not stop within {STOP_S:.0f} s of SIGINT")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    lines_out = out_path.read_text().splitlines()
    assert proc.returncode == 3, f"exit {proc.returncode}\n{lines_out}\n{err}"
    interrupted = next(line for line in lines_out if line.startswith("interrupted"))
    done = int(interrupted.split()[1])
    assert 100 <= done < 400_000
    # The index stayed usable: 10 more vectors with the next default ids went in.
    assert f"then {done + 10} [0]" in lines_out, lines_out
