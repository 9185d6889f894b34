"""``memarena report`` on malformed records and unwritable outputs (issue 14, items 6 and 8)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memarena.report import load_report
from memarena.results import RECORD_FILE, RunRecord, write_record
from tests.integration.test_cli import memarena
from tests.unit.test_results import record


def _broken_rows(path: Path, rows: object) -> Path:
    data = json.loads(record().to_json())
    data["rows"] = rows
    path.mkdir(parents=True)
    (path / RECORD_FILE).write_text(json.dumps(data))
    return path / RECORD_FILE


@pytest.mark.parametrize(
    ("rows", "why"),
    [
        ("not a list", "rows must be a list of objects, got str"),
        ([{"policy": "lru"}, 3], r"rows\[1\] must be an object"),
        ([["policy", "lru"]], r"rows\[0\] must be an object"),
    ],
)
def test_a_record_whose_rows_are_malformed_is_refused_naming_the_file(tmp_path: Path, rows: object, why: str) -> None:
    path = _broken_rows(tmp_path / "bad", rows)
    with pytest.raises(ValueError, match=rf"{path}: not a valid memarena run record: {why}"):
        RunRecord.from_json(path.read_text(), source=str(path))
    write_record(tmp_path / "good", record())
    rep = load_report(tmp_path)  # the good record is read, the bad one skipped with why
    assert [p for p, _ in rep.skipped] == [path] and len(rep.rows) == 1


def test_report_names_skipped_records_on_stderr_and_survives_malformed_rows(tmp_path: Path) -> None:
    bad = _broken_rows(tmp_path / "runs" / "bad", [1, 2])
    write_record(tmp_path / "runs" / "failed", record(status="failed", error="RuntimeError: boom"))
    write_record(tmp_path / "runs" / "good", record())
    res = memarena("report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert "memarena: skipped 2 record(s) that are not complete:" in res.stderr
    assert f"{bad}: " in res.stderr and "rows[0] must be an object" in res.stderr
    assert "status failed: RuntimeError: boom" in res.stderr


def test_report_to_an_unwritable_out_is_one_error_line(tmp_path: Path) -> None:
    write_record(tmp_path / "runs" / "good", record())
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    res = memarena("report", str(tmp_path / "runs"), "--out", str(blocker / "sub"), cwd=tmp_path)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("memarena: error:")]
    assert len(lines) == 1 and f"report: cannot write to {blocker / 'sub'}" in lines[0], res.stderr


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("family", 5, "family must be a string, got int"),
        ("seed", "0", "seed must be an integer, got str"),
        ("wall_s", None, "wall_s must be a number, got NoneType"),
        ("config", [], "config must be an object, got list"),
    ],
)
def test_a_record_with_a_wrongly_typed_field_is_skipped(tmp_path: Path, field: str, value: object, why: str) -> None:
    data = json.loads(record().to_json())
    data[field] = value
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / RECORD_FILE).write_text(json.dumps(data))
    write_record(tmp_path / "good", record())
    res = memarena("report", str(tmp_path), "--out", str(tmp_path / "rep"), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    assert why in res.stderr
