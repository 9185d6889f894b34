"""Aggregate run records into tables and plots (``memarena report``).

``memarena report DIR`` reads every complete record below DIR (a run or a
multirun directory), and writes ``report.md``, ``report.csv`` and one PNG per
plot the records' family declares. Interrupted and failed records are listed
but never read as data. Records of several families make one table (and one
CSV, ``report-<family>.csv``) per family, never one wide table. A plot is drawn
only where its x axis varies.

Override labels: a job's overrides (Hydra's ``overrides.task``, kept in the
record) that set a component's parameter, such as ``policy.history_ratio=0.3``
or ``backend.peak_flops.bf16=1e15``, are not in the family's rows. They are
added to the rows at report time as label columns named by the key: in a
report over several records, every key whose value differs between records;
over one record, every key that sets a parameter (group choices such as
``experiment=paging`` are left out). Keys that are already a column of the
rows, and ``resume``/``progress``/``memory_limit_bytes``, never become override labels.
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

__all__ = ["Report", "format_table", "load_report", "load_reports", "override_labels", "report_of", "write_report"]

#: Override keys that do not change results (never label columns).
UNLABELLED_OVERRIDES = frozenset({"resume", "progress", "memory_limit_bytes"})


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


def _read(root: str | Path) -> tuple[list[tuple[Path, RunRecord]], list[tuple[Path, str]]]:
    """Complete records below ``root``, and the skipped ones with why.

    :raises NoRecordsError: ``root`` does not exist or holds no memarena records.
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
    used: list[tuple[Path, RunRecord]] = []
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
        used.append((path, rec))
    if not used:
        reasons = "; ".join(f"{p}: {why}" for p, why in skipped[:5])
        raise NoRecordsError(f"{root}: {len(paths)} record(s) found but none complete ({reasons})")
    return used, skipped


_MISSING = object()


def _config_value(config: dict[str, Any], key: str) -> Any:
    """The value at dotted ``key`` in a record's config, or ``_MISSING``."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _override_values(rec: RunRecord) -> dict[str, tuple[Any, bool]]:
    """``key -> (value, sets_a_parameter)`` for each ``key=value`` override of the record's job.

    The value is the resolved config's (typed) where the key names a scalar,
    else the override's text (a group choice, a list).
    """
    out: dict[str, tuple[Any, bool]] = {}
    for override in rec.overrides:
        if override.startswith("~") or "=" not in override:
            continue  # a deletion
        key, text = override.split("=", 1)
        key = key.lstrip("+")
        if key in UNLABELLED_OVERRIDES or key.startswith("hydra."):
            continue
        value = _config_value(rec.config, key)
        is_param = value is not _MISSING and not isinstance(value, dict)
        out[key] = (value if _is_scalar(value) and value is not _MISSING else text, is_param)
    return out


def override_labels(records: Sequence[RunRecord]) -> tuple[list[str], list[dict[str, Any]]]:
    """The override label columns of ``records`` and each record's values for them (see the module doc).

    :returns: The columns, and one ``column -> value`` dict per record (a
        record that did not override a key gets its config's value there).
    """
    per = [_override_values(r) for r in records]
    native = {c for r in records for row in r.rows for c in row}
    keys: list[str] = []
    for p in per:
        keys.extend(k for k in p if k not in keys and k not in native)
    if len(records) > 1:
        cols = [k for k in keys if len({repr(p[k][0]) if k in p else None for p in per}) > 1]
    else:
        cols = [k for k in keys if per[0][k][1]]
    values: list[dict[str, Any]] = []
    for rec, p in zip(records, per, strict=True):
        vals = {}
        for c in cols:
            if c in p:
                vals[c] = p[c][0]
            else:
                default = _config_value(rec.config, c)
                vals[c] = default if default is not _MISSING and _is_scalar(default) else None
        values.append(vals)
    return cols, values


def report_of(entries: Sequence[tuple[Path, RunRecord]], skipped: Sequence[tuple[Path, str]] = ()) -> Report:
    """A report over complete ``(path, record)`` entries, with the override label columns added to the rows."""
    records = [rec for _, rec in entries]
    extra_cols, extra = override_labels(records)
    rows: list[dict[str, Any]] = []
    labels: list[str] = []
    families: list[str] = []
    for rec, vals in zip(records, extra, strict=True):
        rows.extend({**row, **vals} for row in rec.rows)
        labels.extend(c for c in rec.label_columns if c not in labels)
        if rec.family not in families:
            families.append(rec.family)
    labels.extend(c for c in extra_cols if c not in labels)
    return Report(rows, labels, families, [p for p, _ in entries], list(skipped))


def load_report(root: str | Path) -> Report:
    """Read every record below ``root`` into one report (all families together).

    :raises NoRecordsError: ``root`` does not exist, holds no memarena
        records, or holds only incomplete ones.
    """
    used, skipped = _read(root)
    return report_of(used, skipped)


def load_reports(root: str | Path) -> list[Report]:
    """Read every record below ``root`` into one report per family, in first-seen order.

    Each family's override labels are computed over its own records.
    Skipped records are listed with the first report.

    :raises NoRecordsError: as :func:`load_report`.
    """
    used, skipped = _read(root)
    by_family: dict[str, list[tuple[Path, RunRecord]]] = {}
    for path, rec in used:
        by_family.setdefault(rec.family, []).append((path, rec))
    return [report_of(entries, skipped if i == 0 else ()) for i, entries in enumerate(by_family.values())]


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


def family_tables(report: Report, registry: Registry | None) -> list[tuple[str, list[dict[str, Any]]]]:
    """The cross-run tables the records' families compute (:meth:`memarena.api.Family.report_tables`)."""
    if registry is None:
        return []
    tables: list[tuple[str, list[dict[str, Any]]]] = []
    for fam in report.families:
        try:
            cls = registry.get("family", fam)
        except KeyError:
            continue
        compute = getattr(cls, "report_tables", None)
        if callable(compute):
            tables.extend(t for t in compute(report.rows) if t[1])
    return tables


def format_family_tables(tables: Sequence[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    """Markdown lines: one heading and table per ``(title, rows)``."""
    lines: list[str] = []
    for title, rows in tables:
        cols: list[str] = []
        for r in rows:
            cols.extend(k for k in r if k not in cols)
        lines += ["", f"### {title}", "", format_table(rows, cols)]
    return lines


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


def pareto_front(points: Sequence[tuple[float, float]], better: Sequence[str]) -> list[tuple[float, float]]:
    """The points no other point dominates, sorted by x.

    ``better`` is ``(x, y)``, each ``"min"`` or ``"max"``: a point dominates
    another when it is at least as good on both axes and better on one.
    Duplicates of a front point are kept once; non-finite points are left out.
    """
    sx = 1.0 if better[0] == "min" else -1.0
    sy = 1.0 if better[1] == "min" else -1.0
    front: list[tuple[float, float]] = []
    best_y = float("inf")
    # Best x first (ties: best y first); a point joins the front when its y beats every better-x point's.
    finite = {(float(x), float(y)) for x, y in points if math.isfinite(x) and math.isfinite(y)}
    for x, y in sorted(finite, key=lambda p: (sx * p[0], sy * p[1])):
        if sy * y < best_y:
            front.append((x, y))
            best_y = sy * y
    return sorted(front)


def draw_plot(report: Report, spec: PlotSpec, path: Path) -> bool:
    """Draw ``spec`` from the report's rows.

    :returns: False (nothing drawn) when its columns are missing, or when
        its x axis does not vary (one load point, one cache size...).
    """
    if spec.stack:
        return _draw_stack(report, spec, path)
    groups = _series_groups(report, spec) if spec.series else _point_groups(report, spec)
    if not groups or len({x for pts in groups.values() for x, _ in pts}) < 2:
        return False  # no data, or a single x value: nothing to draw a line over
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    # Over ten lines the default cycle repeats colours: twenty colours, and a marker per ten lines.
    cmap = plt.get_cmap("tab20")
    colors = [cmap(j) for j in range(20)] if len(groups) > 10 else None
    for i, (hue, pts) in enumerate(sorted(groups.items())):
        pts.sort()
        style = {"color": colors[i % len(colors)], "marker": "os^D"[(i // 10) % 4]} if colors else {"marker": "o"}
        ax.plot([p[0] for p in pts], [p[1] for p in pts], markersize=3, label=hue, **style)
    if spec.pareto:
        front = pareto_front([p for pts in groups.values() for p in pts], spec.pareto)
        ax.plot(
            [p[0] for p in front],
            [p[1] for p in front],
            linestyle="--",
            color="black",
            linewidth=1,
            label="Pareto front",
        )
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
    """Write ``report.md``, the CSV table(s) and the family plots.

    One family: ``report.csv``. Several: one ``report-<family>.csv`` each, and
    one section per family in ``report.md``.

    :param root: A run or multirun directory (or one record file).
    :param out_dir: Where to write (default: ``root``, or its parent for a file).
    :param registry: Used to find the families' plot specs.
    :returns: Written files by kind: ``markdown``; ``csv`` (one family) or
        ``csv-<family>`` (several); and one per plot, by file name.
    """
    reports = load_reports(root)
    root = Path(root)
    out = Path(out_dir) if out_dir else (root if root.is_dir() else root.parent)
    out.mkdir(parents=True, exist_ok=True)
    several = len(reports) > 1
    written: dict[str, Path] = {}
    families = [f for rep in reports for f in rep.families]
    n_records = sum(len(rep.records) for rep in reports)
    n_rows = sum(len(rep.rows) for rep in reports)
    md = [f"# memarena report: {', '.join(families)}", ""]
    md.append(f"{n_records} complete run record(s), {n_rows} row(s), from `{root}`.")
    skipped = [s for rep in reports for s in rep.skipped]
    if skipped:
        md.append("")
        md.append(f"Skipped {len(skipped)} record(s) that are not complete:")
        md.extend(f"- `{p}`: {why}" for p, why in skipped)
    for report in reports:
        family = report.families[0]
        rows = sorted_rows(report)
        csv_path = out / (f"report-{family}.csv" if several else "report.csv")
        with csv_path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            cols = report.columns()
            w.writerow(cols)
            for r in rows:
                w.writerow([json.dumps(r.get(c)) if not _is_scalar(r.get(c)) else r.get(c) for c in cols])
        written[f"csv-{family}" if several else "csv"] = csv_path
        plots: list[str] = []
        for spec in plot_specs(report, registry):
            name = spec.file() if spec.file() not in written else f"{family}-{spec.file()}"
            if draw_plot(report, spec, out / name):
                written[name] = out / name
                plots.append(name)
        if several:
            md += ["", f"## {family}", "", f"{len(report.records)} record(s), {len(rows)} row(s)."]
        md += ["", format_table(rows, report.scalar_columns())]
        md += [*format_family_tables(family_tables(report, registry)), ""]
        md.extend(f"![{p}]({p})" for p in plots)
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")
    written["markdown"] = md_path
    return written
