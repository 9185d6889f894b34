"""Paging workloads: seeded synthetic traces generated in Rust, and file traces.

Synthetic traces are the same for the same seed on every machine. File
traces are CSV (columns chosen in the config) or libCacheSim's oracleGeneral
binary; a malformed file is reported with its name and row or byte offset.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from memarena import _core
from memarena.api import Workload
from memarena.errors import InvalidConfigError

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
    """Base of the seeded synthetic traces; subclasses give the access pattern."""

    name: ClassVar[str] = "synthetic"

    def __init__(
        self,
        n_requests: int = 1_000_000,
        sizes: str = "unit",
        size_bytes: int = 4096,
        min_size_bytes: int = 512,
        max_size_bytes: int = 65536,
        size_mu: float = 8.0,
        size_sigma: float = 1.0,
        seed_offset: int = 0,
        **pattern: Any,
    ) -> None:
        if n_requests < 1:
            raise InvalidConfigError(f"config key 'workload.n_requests' must be >= 1, got {n_requests}")
        if sizes not in SIZE_DISTRIBUTIONS:
            raise InvalidConfigError(
                f"config key 'workload.sizes' must be one of {', '.join(SIZE_DISTRIBUTIONS)}, got {sizes!r}"
            )
        self.n_requests = n_requests
        self.sizes = sizes
        params_by_sizes: dict[str, dict[str, Any]] = {
            "constant": {"bytes": size_bytes},
            "uniform": {"min_bytes": min_size_bytes, "max_bytes": max_size_bytes},
            "lognormal": {"mu": size_mu, "sigma": size_sigma},
        }
        self.size_params = params_by_sizes.get(sizes)
        self.seed_offset = seed_offset
        # Pattern parameters left out take the Config defaults (the one source of defaults).
        shared = set(inspect.signature(SyntheticTrace.__init__).parameters)
        config = getattr(type(self), "Config", None)
        defaults = {} if config is None else {f.name: f.default for f in fields(config) if f.name not in shared}
        defaults.pop("_target_", None)
        self.pattern = {**defaults, **pattern}

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


def _synthetic_config(target: str, **pattern_defaults: Any) -> type:
    """A Config dataclass for a synthetic trace: shared size fields plus the pattern's."""
    fields: list[tuple[str, type, Any]] = [
        ("_target_", str, target),
        ("n_requests", int, 1_000_000),
        *((k, type(v), v) for k, v in pattern_defaults.items()),
        ("sizes", str, "unit"),
        ("size_bytes", int, 4096),
        ("min_size_bytes", int, 512),
        ("max_size_bytes", int, 65536),
        ("size_mu", float, 8.0),
        ("size_sigma", float, 1.0),
        ("seed_offset", int, 0),
    ]
    import dataclasses

    return dataclasses.make_dataclass(
        "Config", [(n, t, dataclasses.field(default=d)) for n, t, d in fields], namespace={"__module__": __name__}
    )


class ZipfTrace(SyntheticTrace):
    """Zipf-distributed requests over ``n_objects`` objects (skew ``alpha``)."""

    name: ClassVar[str] = "zipf"
    Config = _synthetic_config("memarena.families.paging.workloads.ZipfTrace", n_objects=100_000, alpha=1.0)


class UniformTrace(SyntheticTrace):
    """Uniformly random requests over ``n_objects`` objects."""

    name: ClassVar[str] = "uniform"
    Config = _synthetic_config("memarena.families.paging.workloads.UniformTrace", n_objects=100_000)


class LoopTrace(SyntheticTrace):
    """A cyclic scan over ``n_objects`` objects (LRU's worst case when they do not fit)."""

    name: ClassVar[str] = "loop"
    Config = _synthetic_config("memarena.families.paging.workloads.LoopTrace", n_objects=10_000)


class ScanMixTrace(SyntheticTrace):
    """Zipf requests interleaved with one-time scans (share ``scan_fraction``)."""

    name: ClassVar[str] = "scan_mix"
    Config = _synthetic_config(
        "memarena.families.paging.workloads.ScanMixTrace", n_objects=100_000, alpha=1.0, scan_fraction=0.2
    )

    def pattern_spec(self) -> dict[str, Any]:
        p = dict(self.pattern)
        frac = float(p.pop("scan_fraction"))
        if not 0 <= frac <= 1:
            raise InvalidConfigError(f"config key 'workload.scan_fraction' must be in [0, 1], got {frac}")
        return {
            "kind": "mix",
            "components": [[1 - frac, {"kind": "zipf", **p}], [frac, {"kind": "scan"}]],
        }


class PhaseShiftTrace(SyntheticTrace):
    """Zipf requests whose hot set moves by ``shift`` ids every ``period`` requests."""

    name: ClassVar[str] = "phase_shift"
    Config = _synthetic_config(
        "memarena.families.paging.workloads.PhaseShiftTrace", n_objects=100_000, alpha=1.0, period=200_000, shift=50_000
    )

    def pattern_spec(self) -> dict[str, Any]:
        p = dict(self.pattern)
        period, shift = p.pop("period"), p.pop("shift")
        return {"kind": "phase_shift", "inner": {"kind": "zipf", **p}, "period": period, "shift": shift}


class CsvTrace(PagingWorkload):
    """A trace read from a CSV file; columns are chosen by header name or 0-based index."""

    name: ClassVar[str] = "csv_trace"

    @dataclass
    class Config:
        _target_: str = "memarena.families.paging.workloads.CsvTrace"
        path: str = "???"
        id_column: str = "0"
        size_column: str | None = None
        time_column: str | None = None
        delimiter: str = ","
        header: bool = True

    def __init__(
        self,
        path: str,
        id_column: str | int = 0,
        size_column: str | int | None = None,
        time_column: str | int | None = None,
        delimiter: str = ",",
        header: bool = True,
    ) -> None:
        self.path = Path(path).expanduser()
        self.columns = {"id_column": id_column, "size_column": size_column, "time_column": time_column}
        self.delimiter = delimiter
        self.header = header

    def load(self, seed: int) -> Any:
        from memarena.families.paging import Trace

        cols: dict[str, Any] = {k: _column(v) for k, v in self.columns.items()}
        return Trace.from_csv(self.path, delimiter=self.delimiter, header=self.header, **cols)

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
        path: str = "???"

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()

    def load(self, seed: int) -> Any:
        from memarena.families.paging import Trace

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
