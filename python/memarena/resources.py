"""Resources are checked before they are taken: a run's memory estimate against a limit.

:func:`check_memory` is what :func:`memarena.run.execute` calls before
``family.run``: it asks the family for its :meth:`memarena.api.Family.estimate_memory`
and refuses the run, naming the config keys that drive the estimate, when
the estimate exceeds the limit. The limit is the primary config's
``memory_limit_bytes``, or (null, the default) the memory this machine has
available (:func:`available_memory_bytes`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from memarena.errors import InvalidConfigError

if TYPE_CHECKING:
    from memarena.api import Family, MemoryEstimate
    from memarena.run import Run

__all__ = ["available_memory_bytes", "check_memory", "format_bytes", "memory_limit_bytes"]

#: The primary config key that sets the limit (null: the available memory).
LIMIT_KEY = "memory_limit_bytes"


def _meminfo_available(path: str = "/proc/meminfo") -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    parts = line.split()
                    return int(parts[1]) * (1024 if parts[2:3] == ["kB"] else 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_available() -> int | None:
    """Free physical pages (or, where the OS does not say, all of them) times the page size."""
    for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
        try:
            pages, size = os.sysconf(name), os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            continue
        if pages > 0 and size > 0:
            return int(pages) * int(size)
    return None


def _address_space_left() -> int | None:
    """What an address-space rlimit (``ulimit -v``) leaves this process, if one is set."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    used = 0
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    used = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return max(0, soft - used)


def available_memory_bytes() -> int | None:
    """The memory a run may take on this machine, in bytes; None when it cannot be told.

    Linux's ``MemAvailable`` (``/proc/meminfo``); elsewhere the free (or, failing
    that, total) physical pages ``os.sysconf`` reports. An address-space limit
    on the process (``ulimit -v``) lowers it to what that limit leaves.
    """
    found = [v for v in (_meminfo_available() or _sysconf_available(), _address_space_left()) if v is not None]
    return min(found) if found else None


def memory_limit_bytes(config: Any) -> int | None:
    """The limit a run's estimate is checked against: ``memory_limit_bytes``, or the available memory.

    :raises InvalidConfigError: the key holds something other than null or a positive whole number.
    """
    value = config.get(LIMIT_KEY) if config is not None else None
    if value is None:
        return available_memory_bytes()
    if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer() or value < 1:
        raise InvalidConfigError(
            f"config key {LIMIT_KEY!r} must be null (the available memory) or a positive number of bytes, got {value!r}"
        )
    return int(value)


def format_bytes(n: float) -> str:
    """``n`` bytes for people: ``512 B``, ``1.5 GiB``, ``3.2e+06 TiB``."""
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    x = float(n)
    for unit in units[:-1]:
        if abs(x) < 1024:
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} {units[-1]}" if abs(x) < 1e6 else f"{x:.3g} {units[-1]}"


def limit_source(config: Any) -> str:
    """Where the limit came from, for messages."""
    value = config.get(LIMIT_KEY) if config is not None else None
    return "the available memory" if value is None else f"{LIMIT_KEY}={value}"


def refusal(
    estimate: MemoryEstimate,
    limit: int,
    source: str,
    what: str = "the run",
    choices: Mapping[str, str] | None = None,
) -> InvalidConfigError:
    """The error for an estimate over the limit: the keys (and their group's chosen component), estimate, limit."""

    named: set[str] = set()

    def name(key: str) -> str:  # the component once per group, at its first key
        group = key.split(".", 1)[0]
        chosen = (choices or {}).get(group) if group != "family" and group not in named else None
        named.add(group)
        return f"{key!r} ({group}={chosen})" if chosen and "." in key else repr(key)

    keys = ", ".join(name(k) for k in estimate.keys) or "(unknown)"
    detail = f" ({estimate.detail})" if estimate.detail else ""
    return InvalidConfigError(
        f"config key {keys}: {what} needs an estimated {format_bytes(estimate.bytes)}{detail}, more than the "
        f"memory limit of {format_bytes(limit)} ({source}); lower the key, or raise {LIMIT_KEY} if the memory is there"
    )


def check_memory(run: Run, family: Family) -> MemoryEstimate | None:
    """Refuse the run before it builds anything big when its estimate exceeds the limit.

    :returns: The family's estimate (None: the family cannot tell).
    :raises InvalidConfigError: naming the config keys, the estimate and the limit.
    """
    limit = memory_limit_bytes(run.config)  # a bad value is named whether or not the family can estimate
    estimate = family.estimate_memory(run)
    if estimate is None:
        return None
    if limit is not None and estimate.bytes > limit:
        raise refusal(estimate, limit, limit_source(run.config), choices=run.choices)
    return estimate


def estimate_rows(path: Any, *, header: bool = False, sample_bytes: int = 1 << 20) -> int | None:
    """Rows of a text file, from its size and the mean length of the rows in its first MiB (None: unreadable)."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(sample_bytes)
    except OSError:
        return None
    if size <= len(head):
        rows = head.count(b"\n") + (1 if head and not head.endswith(b"\n") else 0)
    else:
        lines = max(1, head.count(b"\n"))
        rows = round(size * lines / len(head))
    return max(0, rows - (1 if header else 0))


def file_size(path: Any) -> int | None:
    """A file's size in bytes (None: it cannot be read; the family's own error names it later)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def check_fits(nbytes: float, key: str, what: str) -> None:
    """Refuse work on the public Python API whose arrays (``nbytes``) exceed the available memory.

    :param key: The argument that sets the size, named in the error.
    :param what: What would be built, for the message (``"a trace of 1e12 requests x 17 B"``).
    :raises InvalidConfigError: naming ``key``, the bytes and the available memory.
    """
    limit = available_memory_bytes()
    if limit is not None and nbytes > limit:
        raise InvalidConfigError(
            f"{key}: {what} needs an estimated {format_bytes(nbytes)}, more than the {format_bytes(limit)} "
            "of memory available"
        )
