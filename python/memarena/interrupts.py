"""Ctrl-C and SIGTERM: stop the work, keep what finished, exit 130 or 143.

The ``memarena`` process (the *main* process) owns the signals while it runs
Hydra (:func:`main_signal_handlers`). On SIGINT or SIGTERM it first ends the
launcher's worker processes (:func:`stop_workers`: SIGTERM to each child, then
a wait until it exits), and only then raises :class:`KeyboardInterrupt` (or
:class:`~memarena.run.Interrupted` for SIGTERM) in its own thread. That order
matters with the joblib launcher: joblib answers an interrupt by killing its
workers at once, so a job in flight would never write its record.

A worker (a job running in a process other than the main one; see
:func:`in_worker`) takes SIGINT (Ctrl-C reaches the whole terminal group) or
SIGTERM (from the main process) as an interrupt while a job runs
(:func:`worker_job_signals`): :func:`memarena.run.execute` writes the job's
record as ``interrupted`` with the rows it produced, and the worker then
exits (:func:`exit_worker`), so none is left running detached.

Native work (the Rust core) stops within a fraction of a second: it polls the
interpreter's signal handlers while it runs (see ``memarena._core``'s
``run_core``). :func:`exit_code` gives the exit status: 128 + the signal.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

__all__ = ["exit_code", "exit_worker", "in_worker", "main_signal_handlers", "stop_workers", "worker_job_signals"]

log = logging.getLogger("memarena")

#: The environment variable naming the main process's pid (workers inherit it).
MAIN_PID_ENV = "MEMARENA_MAIN_PID"
#: How long the main process waits for its workers to write their records and exit.
WORKER_GRACE_S = 30.0


def exit_code(exc: BaseException) -> int:
    """The exit status for an interrupt: 128 + the signal (130 for Ctrl-C, 143 for SIGTERM)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))


def in_worker() -> bool:
    """Whether this process runs jobs for a ``memarena`` main process other than itself."""
    main = os.environ.get(MAIN_PID_ENV)
    return main is not None and main != str(os.getpid())


def _children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux ``/proc``; none elsewhere)."""
    out = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces and parentheses).
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] != "Z":
            out.append(int(name))
    return out


def _is_helper(pid: int) -> bool:
    """A multiprocessing helper (loky's resource tracker): it exits with the main process."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"resource_tracker" in cmdline or b"semaphore_tracker" in cmdline


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[:1] != ["Z"]  # a zombie has exited


def _catches_sigterm(pid: int) -> bool:
    """Whether ``pid`` has a SIGTERM handler: a worker running a job (:func:`worker_job_signals`)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _signal_and_wait(pids: list[int], until: Callable[[int], bool], deadline: float) -> list[int]:
    """SIGTERM each of ``pids``, then wait until ``until(pid)`` holds for each, or ``deadline``; the ones left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    waiting = list(pids)
    while waiting and time.monotonic() < deadline:
        waiting = [pid for pid in waiting if not until(pid)]
        if waiting:
            time.sleep(0.05)
    return waiting


def stop_workers(grace_s: float = WORKER_GRACE_S) -> list[int]:
    """End every worker process of this one, each job in flight writing its record first.

    Loky answers a worker that dies by killing all the others at once, so no
    worker may die while another is still writing: first the busy workers
    (those running a job, see :func:`worker_job_signals`) get SIGTERM and are
    waited for until each has written its record (and waits, see
    :func:`exit_worker`); then every worker gets SIGTERM and is waited for
    until it has exited. At most ``grace_s`` in all.

    :returns: The workers signalled.
    """
    workers = [pid for pid in _children(os.getpid()) if not _is_helper(pid)]
    deadline = time.monotonic() + grace_s
    busy = [pid for pid in workers if _catches_sigterm(pid)]
    left = _signal_and_wait(busy, lambda pid: not _alive(pid) or not _catches_sigterm(pid), deadline)
    left += _signal_and_wait(workers, lambda pid: not _alive(pid), deadline)
    if left:
        log.warning("worker process(es) %s did not exit within %.0f s", sorted(set(left)), grace_s)
    return workers


@contextlib.contextmanager
def main_signal_handlers() -> Iterator[None]:
    """While the block runs: on SIGINT or SIGTERM, stop the workers, then raise in the main thread.

    SIGINT keeps being ignored where it was (a background job of a shell
    without job control). Does nothing outside the main thread.
    """
    import threading

    from memarena.run import Interrupted

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        stop_workers()
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(f"received signal {signum}", signum=signum)

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    os.environ[MAIN_PID_ENV] = str(os.getpid())
    if previous[signal.SIGINT] is signal.default_int_handler:
        signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.environ.pop(MAIN_PID_ENV, None)


@contextlib.contextmanager
def worker_job_signals() -> Iterator[None]:
    """In a worker, while a job runs: SIGINT and SIGTERM interrupt it (once).

    Ctrl-C reaches every process of the terminal's group, workers too: a busy
    worker takes the first SIGINT or SIGTERM as an interrupt (its record is
    written at once) and ignores any later one, so that the main process's
    SIGTERM cannot cut the record's writing short. Between jobs a worker
    ignores SIGINT (an idle loky worker that raised would make loky kill the
    busy ones before they write their records) and dies of SIGTERM.
    """
    import threading

    from memarena.run import Interrupted

    if threading.current_thread() is not threading.main_thread():  # (signals reach the main thread only)
        yield
        return
    interrupted = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:
            return
        interrupted = True
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Interrupted(f"received signal {signum}", signum=signum)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def exit_worker(exc: BaseException) -> None:
    """End an interrupted worker process (its record is written): flush output, then wait for SIGTERM.

    The worker dies of the main process's SIGTERM once every busy worker has
    written its record (:func:`stop_workers`); without one (the main process
    is gone) it exits by itself after :data:`WORKER_GRACE_S`.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with contextlib.suppress(ValueError):  # (not the main thread: signals cannot reach it anyway)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    deadline = time.monotonic() + WORKER_GRACE_S
    while time.monotonic() < deadline:
        time.sleep(0.1)
    os._exit(exit_code(exc))
