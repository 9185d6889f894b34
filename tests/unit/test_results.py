"""Run records: atomic writes, strict JSON, and what report reads as data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memarena.errors import NoRecordsError
from memarena.report import format_table, load_report, write_report
from memarena.results import RECORD_FILE, RunRecord, write_record


def record(status: str = "complete", rows: list[dict[str, Any]] | None = None, **kw: Any) -> RunRecord:
    base: dict[str, Any] = {
        "status": status,
        "family": "paging",
        "rows": rows if rows is not None else [{"policy": "lru", "cache_size": 10, "miss_ratio": 0.5}],
        "config": {"seed": 0},
        "overrides": [],
        "seed": 0,
        "versions": {"memarena": "0"},
        "host": {},
        "started_at": "t0",
        "finished_at": "t1",
        "wall_s": 0.1,
        "label_columns": ["policy", "cache_size"],
    }
    return RunRecord(**(base | kw))


def test_record_round_trips_and_is_strict_json(tmp_path: Path) -> None:
    rec = record(rows=[{"policy": "lru", "cache_size": 1, "miss_ratio": float("nan")}])
    path = write_record(tmp_path, rec)
    assert path.name == RECORD_FILE
    data = json.loads(path.read_text())  # strict: NaN became null
    assert data["rows"][0]["miss_ratio"] is None
    assert RunRecord.from_json(path.read_text()).rows[0]["policy"] == "lru"
    assert [p.name for p in tmp_path.iterdir()] == [RECORD_FILE]  # no temporary left behind


def test_unserialisable_record_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        write_record(tmp_path, record(rows=[{"policy": object()}]))
    assert list(tmp_path.iterdir()) == []


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        record(status="half")


def test_broken_record_names_its_file() -> None:
    with pytest.raises(ValueError, match="r.json: not a valid memarena run record"):
        RunRecord.from_json("{", source="r.json")
    with pytest.raises(ValueError, match="schema_version"):
        RunRecord.from_json('{"schema_version": 99}', source="r.json")


def test_report_refuses_a_directory_without_records(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(NoRecordsError, match=r"no memarena run records \(memarena-record.json\) found"):
        load_report(tmp_path)
    with pytest.raises(NoRecordsError, match="no such file"):
        load_report(tmp_path / "missing")


def test_report_never_reads_incomplete_records_as_data(tmp_path: Path) -> None:
    write_record(tmp_path / "0", record(status="interrupted", error="KeyboardInterrupt"))
    with pytest.raises(NoRecordsError, match="none complete.*interrupted"):
        load_report(tmp_path)
    write_record(tmp_path / "1", record(rows=[{"policy": "arc", "cache_size": 10, "miss_ratio": 0.25}]))
    rep = load_report(tmp_path)
    assert [r["policy"] for r in rep.rows] == ["arc"]
    assert len(rep.skipped) == 1 and "interrupted" in rep.skipped[0][1]


def test_write_report_makes_markdown_csv_and_plots(tmp_path: Path, registry: Any) -> None:
    for i, (pol, size, mr) in enumerate([("lru", 10, 0.5), ("lru", 100, 0.2), ("arc", 10, 0.4), ("arc", 100, 0.1)]):
        write_record(
            tmp_path / str(i), record(rows=[{"workload": "z", "policy": pol, "cache_size": size, "miss_ratio": mr}])
        )
    written = write_report(tmp_path, registry=registry)
    md = written["markdown"].read_text()
    assert "| policy" in md and "arc" in md and "![mrc.png](mrc.png)" in md
    lines = written["csv"].read_text().splitlines()
    assert lines[0].startswith("policy,cache_size,workload") and len(lines) == 5
    png = written["mrc.png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_format_table_aligns_numbers_right() -> None:
    table = format_table([{"a": "x", "b": 1.5}, {"a": "yy", "b": 10}], ["a", "b"])
    lines = table.splitlines()
    assert lines[0] == "| a  |   b |"
    assert lines[1] == "|----|----:|"
    assert lines[2] == "| x  | 1.5 |"
    assert lines[3] == "| yy |  10 |"


def test_records_follow_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o027)
    try:
        path = write_record(tmp_path, record())
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_report_over_several_families_has_one_table_each(tmp_path: Path, registry: Any) -> None:
    write_record(tmp_path / "p", record())
    write_record(
        tmp_path / "r",
        record(
            family="retrieval",
            rows=[{"index": "flat", "recall_at_10": 1.0, "qps": 10.0}],
            label_columns=["index"],
        ),
    )
    written = write_report(tmp_path, registry=registry)
    assert {"csv-paging", "csv-retrieval", "markdown"} <= set(written)
    assert "csv" not in written
    assert written["csv-paging"].read_text().splitlines()[0] == "policy,cache_size,miss_ratio"
    assert written["csv-retrieval"].read_text().splitlines()[0] == "index,recall_at_10,qps"
    md = written["markdown"].read_text()
    assert "## paging" in md and "## retrieval" in md
    paging_table = md.split("## paging")[1].split("## retrieval")[0]
    assert "| policy" in paging_table and "recall_at_10" not in paging_table


def test_a_plot_is_drawn_only_where_its_x_axis_varies(tmp_path: Path, registry: Any) -> None:
    for i, pol in enumerate(["lru", "arc"]):  # one cache size: the miss-ratio curve has no x range
        write_record(
            tmp_path / str(i), record(rows=[{"workload": "z", "policy": pol, "cache_size": 10, "miss_ratio": 0.5}])
        )
    written = write_report(tmp_path, registry=registry)
    assert "mrc.png" not in written and not (tmp_path / "mrc.png").exists()
    assert "![mrc.png]" not in written["markdown"].read_text()


def test_overrides_that_vary_become_label_columns(tmp_path: Path) -> None:
    from memarena.report import override_labels

    def rec(ratio: float | None, resume: bool = False) -> RunRecord:
        overrides = ["experiment=paging", "policy=s3fifo", "cache_size=[0.05]"]
        overrides += [f"policy.small_size_ratio={ratio}"] if ratio is not None else []
        overrides += ["resume=true"] if resume else []
        config = {"policy": {"_target_": "S3FIFO", "small_size_ratio": ratio or 0.1}, "cache_size": [0.05]}
        return record(overrides=overrides, config=config, rows=[{"policy": "s3fifo", "cache_size": 10}])

    cols, values = override_labels([rec(0.05), rec(0.2, resume=True), rec(None)])
    assert cols == ["policy.small_size_ratio"]  # not experiment/policy/cache_size (same or already columns), nor resume
    assert values == [
        {"policy.small_size_ratio": 0.05},
        {"policy.small_size_ratio": 0.2},
        {"policy.small_size_ratio": 0.1},
    ]
    # One run: every parameter it sets (not a group choice such as experiment=paging).
    cols, values = override_labels([rec(0.2)])
    assert cols == ["policy.small_size_ratio"] and values == [{"policy.small_size_ratio": 0.2}]
    for i, r in enumerate([rec(0.05), rec(0.2)]):
        write_record(tmp_path / str(i), r)
    rep = load_report(tmp_path)
    assert rep.label_columns == ["policy", "cache_size", "policy.small_size_ratio"]
    assert sorted(r["policy.small_size_ratio"] for r in rep.rows) == [0.05, 0.2]
