"""Run records: one machine-readable JSON file per run, written atomically.

A record holds the result rows, the resolved config, the seed, versions of
memarena, its core and key dependencies, wall time and host. It is written
to a temporary file, flushed to disk and renamed into place, so a reader
sees either no record or a whole one. A run that was interrupted or failed
still writes its record (nothing the user ran is lost) but with ``status``
``"interrupted"`` or ``"failed"``; ``memarena report`` reads only
``"complete"`` records as data.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import secrets
import socket
import sys
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RECORD_FILE",
    "SCHEMA_VERSION",
    "RunRecord",
    "atomic_write",
    "find_records",
    "host_info",
    "versions",
    "write_record",
]

#: File name of a run record inside a run directory.
RECORD_FILE = "memarena-record.json"
#: Version of the record layout; bumped on incompatible changes.
SCHEMA_VERSION = 1
#: Distributions whose versions every record carries (when installed).
KEY_DEPENDENCIES = ("numpy", "hydra-core", "omegaconf", "pluggy", "hydra-joblib-launcher", "matplotlib")

STATUSES = ("complete", "interrupted", "failed")


#: Record fields checked when a record is built or read (rows and label columns apart).
_FIELD_TYPES: dict[str, Any] = {
    "family": str,
    "config": dict,
    "overrides": list,
    "seed": int,
    "versions": dict,
    "host": dict,
    "started_at": str,
    "finished_at": str,
    "wall_s": (int, float),
    "error": (str, type(None)),
    "plugins": list,
    "hook_errors": list,
}
_KIND_NAMES: dict[Any, str] = {
    str: "a string",
    dict: "an object",
    list: "a list",
    int: "an integer",
    (int, float): "a number",
    (str, type(None)): "a string or null",
}


@dataclass
class RunRecord:
    """Everything one run produced and ran with."""

    status: str
    family: str
    rows: list[dict[str, Any]]
    config: dict[str, Any]
    overrides: list[str]
    seed: int
    versions: dict[str, str]
    host: dict[str, Any]
    started_at: str
    finished_at: str
    wall_s: float
    error: str | None = None
    label_columns: list[str] = field(default_factory=list)
    #: Every registered plugin: ``name``, ``distribution``, ``version``, ``module``, ``builtin``.
    plugins: list[dict[str, Any]] = field(default_factory=list)
    #: Observer hooks that raised (logged, the run went on): one line per plugin and hook.
    hook_errors: list[str] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"record status must be one of {STATUSES}, got {self.status!r}")
        # A record edited by hand or by another tool: its rows must be rows.
        if not isinstance(self.rows, list):
            raise ValueError(f"rows must be a list of objects, got {type(self.rows).__name__}")
        for i, row in enumerate(self.rows):
            if not isinstance(row, dict):
                raise ValueError(f"rows[{i}] must be an object (column: value), got {type(row).__name__}")
            if not all(isinstance(k, str) for k in row):
                raise ValueError(f"rows[{i}] has a column name that is not a string")
        if not isinstance(self.label_columns, list) or not all(isinstance(c, str) for c in self.label_columns):
            raise ValueError("label_columns must be a list of column names")
        for name, kind in _FIELD_TYPES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"{name} must be {_KIND_NAMES[kind]}, got {type(value).__name__}")
        for name in ("overrides", "hook_errors"):
            bad = next((v for v in getattr(self, name) if not isinstance(v, str)), None)
            if bad is not None:
                raise ValueError(f"{name} must be a list of strings, holds {type(bad).__name__} {bad!r}")
        if not all(isinstance(p, dict) for p in self.plugins):
            raise ValueError("plugins must be a list of objects")

    def to_json(self) -> str:
        """Serialise; NaN and infinities become null (strict JSON)."""
        return json.dumps(_finite(asdict(self)), indent=2, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "<record>") -> RunRecord:
        """Parse a record; a broken file raises ValueError naming ``source``."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if data.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}")
            return cls(**data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{source}: not a valid memarena run record: {exc}") from exc


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _finite(obj.item())
    return obj


def atomic_write(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` to ``path`` atomically: a reader sees the old file (or none) or the whole new one.

    The bytes go to a temporary file beside ``path`` (its directory is
    created), are fsynced, then renamed over ``path``; on any error the
    temporary file is removed and ``path`` is untouched. The file gets the
    permissions the umask allows (like any file the user writes), not a
    temporary file's 0600.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return final


def write_record(run_dir: str | os.PathLike[str], record: RunRecord) -> Path:
    """Write ``record`` atomically (:func:`atomic_write`) as ``run_dir/memarena-record.json``.

    The JSON is serialised first, so a serialisation error writes nothing.
    """
    text = record.to_json()
    return atomic_write(Path(run_dir) / RECORD_FILE, [text.encode("utf-8")])


def find_records(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Every record file below ``root`` (or ``root`` itself if it is one), sorted."""
    root = Path(root)
    if root.is_file():
        if root.name == RECORD_FILE:
            yield root
        return
    yield from sorted(root.rglob(RECORD_FILE))


def versions() -> dict[str, str]:
    """Versions of Python, memarena, its Rust core and key dependencies."""
    from memarena import __version__, _core

    out = {"python": platform.python_version(), "memarena": __version__, "memarena_core": _core.__version__}
    for dist in KEY_DEPENDENCIES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[dist] = importlib.metadata.version(dist)
    return out


def host_info() -> dict[str, Any]:
    """Where the run ran: host name, OS, machine, CPU count."""
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python_executable": sys.executable,
    }


def now_iso() -> str:
    """The current UTC time in ISO 8601."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
