"""Run ``memarena`` in a worker process with an address-space limit, and judge what it printed.

The reliability tests drive ``memarena.app.main`` in-process (fast: no
interpreter start per case) but in a separate, spawned worker whose address
space is limited, so a value that makes memarena allocate without bound is
reported as a failed case, never a machine out of memory. A worker that
dies (an abort, a signal) or hangs is reported as such and replaced.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Address space a worker may add to what it maps at start (torch included): enough for any tiny run,
#: far below the machine's memory.
AS_LIMIT = 1536 << 20
#: Seconds one case may take before it counts as a hang.
CASE_TIMEOUT = 60.0


@dataclass
class Outcome:
    """What one ``memarena`` invocation did."""

    argv: list[str]
    #: An exit status, or "crash: ..." / "hang" / "escaped: <exception>" (for :meth:`Runner.call`: see there).
    rc: Any
    out: str
    err: str

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("memarena: error:")]

    def problem(self, *keys: str) -> str | None:
        """Why this outcome breaks the contract (None if it holds).

        The contract: exit 0, or exit 2 with exactly one ``memarena: error:``
        line, naming each of ``keys``; never a traceback, a crash, a hang or exit 1.
        """
        text = self.out + self.err
        if "Traceback" in text or "panicked" in text:
            return f"a traceback or panic (rc {self.rc})"
        if self.rc == 0:
            return None
        if self.rc != 2:
            return f"exit {self.rc}"
        lines = self.error_lines()
        other = [line for line in self.err.splitlines() if line.strip() and not line.startswith("memarena: error:")]
        if len(lines) != 1:
            return f"{len(lines)} 'memarena: error:' lines"
        if other:
            return f"more on stderr than the error line: {other[:3]}"
        missing = [k for k in keys if k not in lines[0]]
        if missing:
            return f"the error does not name {missing}"
        return None

    def __str__(self) -> str:
        return f"memarena {' '.join(self.argv)} -> rc {self.rc}\nstdout: {self.out[-1500:]}\nstderr: {self.err[-3000:]}"


def _serve(conn: multiprocessing.connection.Connection, env: dict[str, str], limit: int) -> None:
    """The worker: apply the limit, then run each request through ``memarena.app.main``."""
    import resource
    import sys
    import traceback

    # torch (the kvcache family's runs) maps gigabytes of address space (its CUDA libraries) when
    # imported: import it before the limit, and limit what the runs add on top of that.
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + limit, mapped + limit))
    os.environ.update(env)
    from memarena.app import main

    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        what, args, out_path, err_path = request
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        fo = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        fe = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fo, 1)
        os.dup2(fe, 2)
        rc: Any
        try:
            if what == "main":
                rc = main(args)
            else:  # "module:function", called with args: its result (or the exception it raised) goes back
                import importlib

                module, _, func = what.partition(":")
                try:
                    rc = ("ok", getattr(importlib.import_module(module), func)(*args))
                except Exception as exc:
                    rc = ("raised", type(exc).__name__, str(exc))
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1 if exc.code else 0
        except BaseException as exc:  # a bug: main must turn everything into an exit status
            traceback.print_exc()
            rc = f"escaped: {type(exc).__name__}"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (fo, fe, *saved):
                os.close(fd)
        conn.send(rc)


class Runner:
    """A worker process that runs ``memarena`` invocations one at a time."""

    def __init__(self, env: dict[str, str], *, limit: int = AS_LIMIT) -> None:
        self.env = env
        self.limit = limit
        self.tmp = Path(tempfile.mkdtemp(prefix="memarena-reliability-"))
        self._n = 0
        self._proc: Any = None
        self._conn: multiprocessing.connection.Connection | None = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.env, self.limit), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
        if self._conn is not None:
            self._conn.close()
        self._proc = self._conn = None

    def close(self) -> None:
        import shutil

        self._stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def new_dir(self) -> Path:
        self._n += 1
        return self.tmp / f"case{self._n}"

    def run(self, *argv: str, timeout: float = CASE_TIMEOUT) -> Outcome:
        """Run ``memarena ARGV`` (add ``hydra.run.dir`` yourself where it matters)."""
        return self._request("main", list(argv), timeout)

    def call(self, function: str, *args: Any, timeout: float = CASE_TIMEOUT) -> Outcome:
        """Call ``module:function(*args)`` in the worker.

        :returns: An outcome whose ``rc`` is ``("ok", result)``, ``("raised",
            type name, message)``, or a crash or hang as for :meth:`run`.
        """
        return self._request(function, list(args), timeout)

    def _request(self, what: str, args: list[Any], timeout: float) -> Outcome:
        if self._proc is None or not self._proc.is_alive():
            self._stop()
            self._start()
        assert self._conn is not None
        self._n += 1
        out_path, err_path = self.tmp / f"{self._n}.out", self.tmp / f"{self._n}.err"
        self._conn.send((what, args, str(out_path), str(err_path)))
        rc: Any
        if self._conn.poll(timeout):
            try:
                rc = self._conn.recv()
            except (EOFError, OSError):
                self._proc.join()
                rc = f"crash: worker exit {self._proc.exitcode}"
                self._stop()
        else:
            rc = "hang" if self._proc.is_alive() else f"crash: worker exit {self._proc.exitcode}"
            self._stop()
        read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
        return Outcome([what, *map(str, args)] if what != "main" else args, rc, read(out_path), read(err_path))
