"""Paging workloads: seeded synthetic traces generated in Rust, and file traces.

Synthetic traces are the same for the same seed on every machine. File
traces are CSV (columns chosen in the config) or libCacheSim's oracleGeneral
binary; a malformed file is reported with its name and row or byte offset,
and a file that cannot be read (missing, a directory, no permission) names
``workload.path``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from memarena import _core
from memarena.api import Workload, param
from memarena.errors import InvalidConfigError, unreadable_file

__all__ = [
    "PAGING_WORKLOADS",
    "CsvTrace",
    "LoopTrace",
    "OracleGeneralTrace",
    "PhaseShiftTrace",
    "ScanMixTrace",
    "SyntheticTrace",
    "UniformTrace",
    "ZipfTrace",
]

#: ``unit`` (no sizes) and the size distributions the core accepts.
SIZE_DISTRIBUTIONS: tuple[str, ...] = ("unit", *_core.size_distributions())


class PagingWorkload(Workload):
    """Base of the paging traces: ``load`` returns a :class:`memarena.families.paging.Trace`."""

    family: ClassVar[str] = "paging"


class SyntheticTrace(PagingWorkload):
    """Base of the seeded synthetic traces; subclasses give the access pattern.

    ``Config`` holds the length and the object sizes every pattern shares; a
    subclass's ``Config`` extends it with its pattern's parameters, which
    :meth:`pattern_spec` hands to the core.
    """

    name: ClassVar[str] = "synthetic"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.workloads.SyntheticTrace"
        #: Requests generated.
        n_requests: int = param(1_000_000, ge=1)
        #: Object sizes: unit (every object 1) or a size distribution.
        sizes: str = param("unit", choices=SIZE_DISTRIBUTIONS)
        #: constant sizes, bytes.
        size_bytes: int = param(4096, ge=1)
        #: uniform sizes, bytes.
        min_size_bytes: int = param(512, ge=1)
        max_size_bytes: int = param(65536, ge=1)
        #: lognormal sizes: parameters of ln(bytes).
        size_mu: float = 8.0
        size_sigma: float = param(1.0, ge=0)
        #: Added to the run's seed.
        seed_offset: int = 0

    @property
    def pattern(self) -> dict[str, Any]:
        """The pattern's parameters: the Config fields a subclass adds."""
        shared = {f.name for f in fields(SyntheticTrace.Config)}
        return {k: v for k, v in self.config_dict().items() if k not in shared}

    @property
    def size_params(self) -> dict[str, Any] | None:
        """The size distribution's parameters, as the core names them (None: unit sizes)."""
        return {
            "constant": {"bytes": self.size_bytes},
            "uniform": {"min_bytes": self.min_size_bytes, "max_bytes": self.max_size_bytes},
            "lognormal": {"mu": self.size_mu, "sigma": self.size_sigma},
        }.get(self.sizes)

    def pattern_spec(self) -> dict[str, Any]:
        """The access pattern as a generator spec (``{"kind": ..., params}``)."""
        return {"kind": self.name, **self.pattern}

    def spec(self) -> dict[str, Any]:
        """The full generator spec handed to the Rust core."""
        spec = self.pattern_spec()
        if self.size_params is not None:
            spec = {"kind": "sized", "inner": spec, "sizes": {"kind": self.sizes, **self.size_params}}
        return spec

    def load(self, seed: int) -> Any:
        from memarena.families.paging import Trace

        try:
            return Trace.synthetic(self.spec(), n_requests=self.n_requests, seed=seed + self.seed_offset)
        except (ValueError, InvalidConfigError) as exc:
            raise InvalidConfigError(f"config key 'workload' ({self.name}): {exc}") from exc

    def describe(self) -> str:
        params = ",".join(f"{k}={v}" for k, v in self.pattern.items())
        return f"{self.name}({params})"


class ZipfTrace(SyntheticTrace):
    """Zipf-distributed requests over ``n_objects`` objects (skew ``alpha``)."""

    name: ClassVar[str] = "zipf"

    @dataclass
    class Config(SyntheticTrace.Config):
        _target_: str = "memarena.families.paging.workloads.ZipfTrace"
        n_objects: int = param(100_000, ge=1)
        alpha: float = param(1.0, ge=0)


class UniformTrace(SyntheticTrace):
    """Uniformly random requests over ``n_objects`` objects."""

    name: ClassVar[str] = "uniform"

    @dataclass
    class Config(SyntheticTrace.Config):
        _target_: str = "memarena.families.paging.workloads.UniformTrace"
        n_objects: int = param(100_000, ge=1)


class LoopTrace(SyntheticTrace):
    """A cyclic scan over ``n_objects`` objects (LRU's worst case when they do not fit)."""

    name: ClassVar[str] = "loop"

    @dataclass
    class Config(SyntheticTrace.Config):
        _target_: str = "memarena.families.paging.workloads.LoopTrace"
        n_objects: int = param(10_000, ge=1)


class ScanMixTrace(SyntheticTrace):
    """Zipf requests interleaved with one-time scans (share ``scan_fraction``)."""

    name: ClassVar[str] = "scan_mix"

    @dataclass
    class Config(SyntheticTrace.Config):
        _target_: str = "memarena.families.paging.workloads.ScanMixTrace"
        n_objects: int = param(100_000, ge=1)
        alpha: float = param(1.0, ge=0)
        #: Share of requests that belong to scans.
        scan_fraction: float = param(0.2, ge=0, le=1)

    def pattern_spec(self) -> dict[str, Any]:
        p = self.pattern
        frac = float(p.pop("scan_fraction"))
        return {
            "kind": "mix",
            "components": [[1 - frac, {"kind": "zipf", **p}], [frac, {"kind": "scan"}]],
        }


class PhaseShiftTrace(SyntheticTrace):
    """Zipf requests whose hot set moves by ``shift`` ids every ``period`` requests."""

    name: ClassVar[str] = "phase_shift"

    @dataclass
    class Config(SyntheticTrace.Config):
        _target_: str = "memarena.families.paging.workloads.PhaseShiftTrace"
        n_objects: int = param(100_000, ge=1)
        alpha: float = param(1.0, ge=0)
        #: Requests between two moves of the hot set.
        period: int = param(200_000, ge=1)
        #: Ids the hot set moves by.
        shift: int = param(50_000, ge=0)

    def pattern_spec(self) -> dict[str, Any]:
        p = self.pattern
        period, shift = p.pop("period"), p.pop("shift")
        return {"kind": "phase_shift", "inner": {"kind": "zipf", **p}, "period": period, "shift": shift}


class CsvTrace(PagingWorkload):
    """A trace read from a CSV file; columns are chosen by header name or 0-based index."""

    name: ClassVar[str] = "csv_trace"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.workloads.CsvTrace"
        #: The CSV file (required).
        path: str = "???"
        #: Columns by header name or 0-based index ("0"); size and time are optional.
        id_column: str = "0"
        size_column: str | None = None
        time_column: str | None = None
        delimiter: str = ","
        header: bool = True

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.path = Path(self.config.path).expanduser()

    def load(self, seed: int) -> Any:
        from memarena.families.paging import Trace

        cols: dict[str, Any] = {k: _column(getattr(self, k)) for k in ("id_column", "size_column", "time_column")}
        with unreadable_file("workload.path", f"workload={self.name}"):
            try:
                return Trace.from_csv(self.path, delimiter=self.delimiter, header=self.header, **cols)
            except InvalidConfigError as exc:  # a bad delimiter or column choice: name the component
                raise InvalidConfigError(f"config key 'workload' (workload={self.name}): {exc}") from exc

    def describe(self) -> str:
        return self.path.name


def _column(v: str | int | None) -> str | int | None:
    """A column given as a digit string is an index; anything else a header name."""
    if isinstance(v, str) and v.isdigit():
        return int(v)
    return v


class OracleGeneralTrace(PagingWorkload):
    """A trace in libCacheSim's oracleGeneral binary format (24-byte records)."""

    name: ClassVar[str] = "oracle_general"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.workloads.OracleGeneralTrace"
        #: The trace file (required).
        path: str = "???"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.path = Path(self.config.path).expanduser()

    def load(self, seed: int) -> Any:
        from memarena.families.paging import Trace

        with unreadable_file("workload.path", f"workload={self.name}"):
            return Trace.from_oracle_general(self.path)

    def describe(self) -> str:
        return self.path.name


PAGING_WORKLOADS: tuple[type[PagingWorkload], ...] = (
    ZipfTrace,
    UniformTrace,
    LoopTrace,
    ScanMixTrace,
    PhaseShiftTrace,
    CsvTrace,
    OracleGeneralTrace,
)
