"""Aggregate run records into tables and plots (``memarena report``).

``memarena report DIR`` reads every complete record below DIR (a run or a
multirun directory), and writes ``report.md``, ``report.csv`` and one PNG per
plot the records' family declares. Interrupted and failed records are listed
but never read as data.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memarena.errors import NoRecordsError
from memarena.results import RECORD_FILE, RunRecord, find_records

if TYPE_CHECKING:
    from memarena.api import PlotSpec
    from memarena.registry import Registry

__all__ = ["Report", "format_table", "load_report", "write_report"]


@dataclass
class Report:
    """Rows gathered from complete records, with the records that were skipped."""

    rows: list[dict[str, Any]]
    label_columns: list[str]
    families: list[str]
    records: list[Path]
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def columns(self) -> list[str]:
        """Label columns first, then every other column in first-seen order."""
        cols = [c for c in self.label_columns if any(c in r for r in self.rows)]
        for r in self.rows:
            cols.extend(k for k in r if k not in cols)
        return cols

    def scalar_columns(self) -> list[str]:
        """Columns whose values are scalars (tables show only these)."""
        return [c for c in self.columns() if all(_is_scalar(r.get(c)) for r in self.rows)]


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def load_report(root: str | Path) -> Report:
    """Read every record below ``root``.

    :raises NoRecordsError: ``root`` does not exist, holds no memarena
        records, or holds only incomplete ones.
    """
    root = Path(root)
    if not root.exists():
        raise NoRecordsError(f"{root}: no such file or directory")
    paths = list(find_records(root))
    if not paths:
        raise NoRecordsError(
            f"{root}: no memarena run records ({RECORD_FILE}) found; point `memarena report` at the output "
            "directory of a run or multirun (e.g. outputs/<date>/<time> or multirun/<date>/<time>)"
        )
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    families: list[str] = []
    used: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for path in paths:
        try:
            rec = RunRecord.from_json(path.read_text(encoding="utf-8"), source=str(path))
        except ValueError as exc:
            skipped.append((path, str(exc)))
            continue
        if rec.status != "complete":
            skipped.append((path, f"status {rec.status}" + (f": {rec.error}" if rec.error else "")))
            continue
        used.append(path)
        rows.extend(rec.rows)
        labels.extend(c for c in rec.label_columns if c not in labels)
        if rec.family not in families:
            families.append(rec.family)
    if not used:
        reasons = "; ".join(f"{p}: {why}" for p, why in skipped[:5])
        raise NoRecordsError(f"{root}: {len(paths)} record(s) found but none complete ({reasons})")
    return Report(rows, labels, families, used, skipped)


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 1e-3):
            return f"{v:.4g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}" if abs(v) >= 10_000 else str(v)
    return str(v)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub-flavoured markdown table of ``rows`` over ``columns``."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), int | float) or r.get(c) is None for r in rows) for c in columns]

    def line(vals: Iterable[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(vals, widths, numeric, strict=True)]
        return "| " + " | ".join(parts) + " |"

    sep = "|" + "|".join(
        ("-" * (w + 1) + ":") if num else ("-" * (w + 2)) for w, num in zip(widths, numeric, strict=True)
    )
    return "\n".join([line(columns), sep + "|", *(line(c) for c in cells)])


def _sort_key(row: dict[str, Any], columns: Sequence[str]) -> tuple[Any, ...]:
    key: list[Any] = []
    for c in columns:
        v = row.get(c)
        key.append((0, v) if isinstance(v, int | float) else (1, str(v)))
    return tuple(key)


def sorted_rows(report: Report) -> list[dict[str, Any]]:
    """Rows sorted by the label columns."""
    return sorted(report.rows, key=lambda r: _sort_key(r, report.label_columns))


def plot_specs(report: Report, registry: Registry | None) -> list[PlotSpec]:
    """The plots the records' families declare (empty without a registry)."""
    if registry is None:
        return []
    specs: list[PlotSpec] = []
    for fam in report.families:
        try:
            cls = registry.get("family", fam)
        except KeyError:
            continue
        specs.extend(getattr(cls, "plots", ()))
    return specs


def _row_label(report: Report, spec: PlotSpec, r: dict[str, Any]) -> str:
    """``hue``, then the other label columns whose values differ between rows."""
    varying = [
        c
        for c in report.label_columns
        if c not in (spec.hue, "workload") and c in r and len({str(x.get(c)) for x in report.rows}) > 1
    ]
    return " ".join([str(r.get(spec.hue, "")), *(f"{c}={r[c]}" for c in varying)])


def _series_groups(report: Report, spec: PlotSpec) -> dict[str, list[tuple[float, float]]]:
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in report.rows:
        ys = r.get(spec.y)
        if not isinstance(ys, list) or not ys:
            continue
        xs = r.get(spec.x)
        if not (isinstance(xs, list) and len(xs) == len(ys)):
            xs = list(range(len(ys)))
        groups[_row_label(report, spec, r)] = [
            (float(x), float(y)) for x, y in zip(xs, ys, strict=True) if isinstance(y, int | float)
        ]
    return groups


def _draw_stack(report: Report, spec: PlotSpec, path: Path) -> bool:
    """One stacked bar per row over the ``spec.stack`` columns."""
    rows = [r for r in report.rows if all(isinstance(r.get(c), int | float) for c in spec.stack)]
    if not rows:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: _row_label(report, spec, r))
    labels = [_row_label(report, spec, r) for r in rows]
    fig, ax = plt.subplots(figsize=(max(6.4, 0.9 * len(rows) + 2), 4.6), dpi=120)
    bottom = [0.0] * len(rows)
    for col in spec.stack:
        vals = [float(r[col]) for r in rows]
        ax.bar(range(len(rows)), vals, bottom=bottom, label=col)
        bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize="small")
    ax.set_title(spec.title)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def _point_groups(report: Report, spec: PlotSpec) -> dict[str, list[tuple[float, float]]]:
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in report.rows:
        if all(isinstance(r.get(c), int | float) for c in (spec.x, spec.y)):
            groups.setdefault(str(r.get(spec.hue, "")), []).append((r[spec.x], r[spec.y]))
    return groups


def draw_plot(report: Report, spec: PlotSpec, path: Path) -> bool:
    """Draw ``spec`` from the report's rows; returns False when its columns are missing."""
    if spec.stack:
        return _draw_stack(report, spec, path)
    groups = _series_groups(report, spec) if spec.series else _point_groups(report, spec)
    if not groups:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for hue, pts in sorted(groups.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=hue)
    ax.set_xlabel(spec.x)
    ax.set_ylabel(spec.y)
    ax.set_title(spec.title)
    if spec.logx:
        ax.set_xscale("log")
    if spec.logy:
        ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(title=spec.hue, fontsize="small")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_report(
    root: str | Path, out_dir: str | Path | None = None, registry: Registry | None = None
) -> dict[str, Path]:
    """Write ``report.md``, ``report.csv`` and the family plots.

    :param root: A run or multirun directory (or one record file).
    :param out_dir: Where to write (default: ``root``, or its parent for a file).
    :param registry: Used to find the families' plot specs.
    :returns: Written files by kind (``markdown``, ``csv``, and one per plot).
    """
    report = load_report(root)
    root = Path(root)
    out = Path(out_dir) if out_dir else (root if root.is_dir() else root.parent)
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted_rows(report)
    written: dict[str, Path] = {}

    csv_path = out / "report.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        cols = report.columns()
        w.writerow(cols)
        for r in rows:
            w.writerow([json.dumps(r.get(c)) if not _is_scalar(r.get(c)) else r.get(c) for c in cols])
    written["csv"] = csv_path

    plots: list[str] = []
    for spec in plot_specs(report, registry):
        path = out / spec.file()
        if draw_plot(report, spec, path):
            written[spec.file()] = path
            plots.append(spec.file())

    md = [f"# memarena report: {', '.join(report.families)}", ""]
    md.append(f"{len(report.records)} complete run record(s), {len(rows)} row(s), from `{root}`.")
    if report.skipped:
        md.append("")
        md.append(f"Skipped {len(report.skipped)} record(s) that are not complete:")
        md.extend(f"- `{p}`: {why}" for p, why in report.skipped)
    md += ["", format_table(rows, report.scalar_columns()), ""]
    md.extend(f"![{p}]({p})" for p in plots)
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    written["markdown"] = md_path
    return written
