"""Output directories are claimed: one memarena run or sweep writes into a directory at a time.

A run claims its run directory, a sweep its sweep directory (its jobs, in
whatever worker processes the launcher uses, work under that claim), by
creating a lock file there with ``O_CREAT | O_EXCL``. The file holds the
holder's pid, host and start time, and is removed when the run or sweep
ends. A second run or sweep into a directory in use, or into a directory
inside it (or, for a sweep, above a directory in use), fails at start with
one error naming the directory and the holder. A lock left by a process
that died on this host is stale: it is taken over, with a warning.

A sweep also keeps a list of the job directories it ran (or skipped with
``resume=true``), so its summary names only its own jobs, never records an
earlier invocation left in the same directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from memarena.errors import MemarenaError

__all__ = ["JOBS_FILE", "LOCK_FILE", "DirectoryInUseError", "OutputLock", "claim", "jobs_of", "note_job"]

log = logging.getLogger("memarena")

#: The lock file a run or sweep creates in its output directory.
LOCK_FILE = ".memarena-lock"
#: The job directories a sweep ran, one a line (appended by its jobs).
JOBS_FILE = ".memarena-jobs"
_TAKEOVER = ".memarena-lock.takeover"


class DirectoryInUseError(MemarenaError):
    """Another memarena run or sweep holds the output directory."""


@dataclass(frozen=True)
class _Holder:
    pid: int | None
    host: str | None
    started_at: str | None

    def describe(self) -> str:
        if self.pid is None:
            return "an unknown holder (the lock file is empty or unreadable)"
        return f"pid {self.pid} on host {self.host}, started {self.started_at}"

    def dead_here(self) -> bool:
        """The holder was a process on this host that no longer exists."""
        if self.pid is None or self.host != socket.gethostname():
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


def _read_holder(path: Path) -> _Holder:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pid = data["pid"]
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise ValueError(pid)
        return _Holder(pid, str(data.get("host")), str(data.get("started_at")))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return _Holder(None, None, None)


class OutputLock:
    """A claim on one output directory; :meth:`release` ends it."""

    def __init__(self, directory: Path, path: Path, content: str) -> None:
        self.directory = directory
        self.path = path
        self._content = content

    def release(self) -> None:
        """Remove the lock file, if it is still ours (idempotent)."""
        with contextlib.suppress(OSError):
            if self.path.read_text(encoding="utf-8") == self._content:
                self.path.unlink()

    def __enter__(self) -> OutputLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _in_use(directory: Path, holder: _Holder, lock: Path) -> DirectoryInUseError:
    return DirectoryInUseError(
        f"output directory {directory} is in use by another memarena run or sweep ({holder.describe()}; "
        f"lock file {lock}); wait for it to finish or choose another output directory "
        "(hydra.run.dir=... or hydra.sweep.dir=...)"
    )


def _create(lock: Path, content: str) -> bool:
    """Create ``lock`` holding ``content``; False if it exists."""
    try:
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)
    return True


def _take_over(directory: Path, lock: Path, content: str) -> bool:
    """Replace a stale lock by ours; False if someone else holds it (or is taking it over)."""
    marker = directory / _TAKEOVER
    if not _create(marker, content):
        return False
    try:
        holder = _read_holder(lock)
        if lock.exists() and not holder.dead_here():
            return False
        log.warning("taking over the stale lock %s of %s, which no longer runs", lock, holder.describe())
        lock.unlink(missing_ok=True)
        return _create(lock, content)
    finally:
        marker.unlink(missing_ok=True)


def _foreign_locks(directory: Path, *, below: bool) -> list[Path]:
    """Lock files in the directories above ``directory`` (and, with ``below``, inside it)."""
    found = [p / LOCK_FILE for p in directory.parents if (p / LOCK_FILE).is_file()]
    if below:
        found.extend(p for p in directory.rglob(LOCK_FILE) if p.parent != directory)
    return found


_ELSEWHERE = " (choose another with hydra.run.dir=... or, for a sweep, hydra.sweep.dir=...)"


def claim(directory: str | os.PathLike[str], *, sweep: bool = False) -> OutputLock:
    """Claim ``directory`` (created if missing) for this process.

    :param sweep: A sweep's directory: directories in use below it are refused too.
    :raises DirectoryInUseError: another live run or sweep holds it, a
        directory above it, or (``sweep``) one below it; the message names
        the directory and the holder.
    """
    from memarena.results import now_iso

    directory = Path(directory).absolute()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = exc.strerror or exc
        raise MemarenaError(f"cannot create or write the output directory {directory}: {why}{_ELSEWHERE}") from exc
    lock = directory / LOCK_FILE
    content = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": now_iso()}) + "\n"
    try:
        created = _create(lock, content) or (_read_holder(lock).dead_here() and _take_over(directory, lock, content))
    except OSError as exc:
        raise MemarenaError(
            f"cannot create or write the output directory {directory} (its lock file {lock.name}): "
            f"{exc.strerror or exc}{_ELSEWHERE}"
        ) from exc
    if not created:
        raise _in_use(directory, _read_holder(lock), lock)
    claimed = OutputLock(directory, lock, content)
    # Claim first, then look around: of two overlapping claims, at least one sees the other.
    for other in _foreign_locks(directory, below=sweep):
        holder = _read_holder(other)
        if not holder.dead_here():
            claimed.release()
            raise _in_use(other.parent, holder, other)
    return claimed


def note_job(sweep_dir: str | os.PathLike[str], job_dir: str | os.PathLike[str]) -> None:
    """Add ``job_dir`` to the sweep's list of its jobs (one ``O_APPEND`` write: safe across processes)."""
    line = (str(Path(job_dir).absolute()) + "\n").encode()
    fd = os.open(Path(sweep_dir) / JOBS_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def jobs_of(sweep_dir: str | os.PathLike[str]) -> list[Path]:
    """The job directories listed by :func:`note_job` for the current sweep, in order, each once."""
    try:
        text = (Path(sweep_dir) / JOBS_FILE).read_text(encoding="utf-8")
    except OSError:
        return []
    return [Path(p) for p in dict.fromkeys(line for line in text.splitlines() if line)]


def reset_jobs(sweep_dir: str | os.PathLike[str]) -> None:
    """Forget the job list (at a sweep's start and end)."""
    (Path(sweep_dir) / JOBS_FILE).unlink(missing_ok=True)
