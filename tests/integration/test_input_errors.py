"""Bad trace files and misplaced keys give one ``memarena: error:`` line (issue 14, items 6 to 8).

Each case runs the command as a user would and checks: exit 2, no
traceback, and one error line that names the config key, the file (and row
or byte offset) or the component.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.integration.test_cli import memarena

PAGING_CSV = ("experiment=paging", "workload=csv_trace")
PAGING_BIN = ("experiment=paging", "workload=oracle_general")
SERVING = ("experiment=serving",)


def _error_line(res: object, tmp_path: Path) -> str:
    out, err, rc = res.stdout, res.stderr, res.returncode  # type: ignore[attr-defined]
    assert rc == 2, (rc, out, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.startswith("memarena: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _run(tmp_path: Path, *args: str) -> str:
    return _error_line(memarena(*args, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path), tmp_path)


@pytest.mark.parametrize("preset", [PAGING_CSV, PAGING_BIN, SERVING], ids=["csv", "oracle_general", "azure"])
def test_a_missing_trace_file_names_the_key_and_the_file(tmp_path: Path, preset: tuple[str, ...]) -> None:
    missing = tmp_path / "no-such-trace"
    line = _run(tmp_path, *preset, f"workload.path={missing}")
    assert "config key 'workload.path'" in line and str(missing) in line and "No such file" in line


@pytest.mark.parametrize("preset", [PAGING_CSV, PAGING_BIN, SERVING], ids=["csv", "oracle_general", "azure"])
def test_a_directory_as_trace_path_is_named_as_a_directory(tmp_path: Path, preset: tuple[str, ...]) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    line = _run(tmp_path, *preset, f"workload.path={folder}")
    assert "config key 'workload.path'" in line and str(folder) in line and "is a directory" in line
    assert "truncated record" not in line


def test_a_non_utf8_csv_names_the_row_and_byte_offset(tmp_path: Path) -> None:
    trace = tmp_path / "latin1.csv"
    trace.write_bytes(b"id,size\n1,2\n3,\xe9\n")
    line = _run(tmp_path, *PAGING_CSV, f"workload.path={trace}", "workload.size_column=size")
    assert f"{trace}: row 3, byte offset 14: not valid UTF-8" in line


def test_a_non_utf8_azure_csv_names_the_line_and_byte_offset(tmp_path: Path) -> None:
    trace = tmp_path / "azure.csv"
    trace.write_bytes(b"TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46,\xff,1\n")
    line = _run(tmp_path, *SERVING, f"workload.path={trace}")
    assert f"{trace}: line 2, byte offset 60: not valid UTF-8" in line


def test_a_huge_field_is_not_echoed_whole(tmp_path: Path) -> None:
    trace = tmp_path / "huge-field.csv"
    trace.write_text("id\n1\n" + "x" * 1_000_000 + "\n")
    line = _run(tmp_path, *PAGING_CSV, f"workload.path={trace}")
    assert "row 3" in line and "(1000000 characters)" in line
    assert len(line) < 500


def _oracle(path: Path, sizes: list[int]) -> Path:
    path.write_bytes(b"".join(struct.pack("<IQIq", i, i, s, -1) for i, s in enumerate(sizes)))
    return path


@pytest.mark.parametrize(
    ("preset", "name", "content"),
    [
        (PAGING_CSV, "header-only.csv", b"id\n"),
        (PAGING_BIN, "empty.bin", b""),
        (PAGING_BIN, "all-zero-size.bin", None),
    ],
    ids=["header-only-csv", "empty-oracle-general", "all-zero-size-oracle-general"],
)
def test_an_empty_paging_trace_is_an_error_not_miss_ratio_0(
    tmp_path: Path, preset: tuple[str, ...], name: str, content: bytes | None
) -> None:
    trace = tmp_path / name
    if content is None:
        _oracle(trace, [0, 0, 0])
    else:
        trace.write_bytes(content)
    line = _run(tmp_path, *preset, f"workload.path={trace}")
    assert "config key 'workload'" in line and str(trace) in line and "has no requests" in line


def test_a_warm_up_as_long_as_the_trace_is_an_error(tmp_path: Path) -> None:
    trace = tmp_path / "short.csv"
    trace.write_text("id\n" + "".join(f"{i % 3}\n" for i in range(10)))
    line = _run(tmp_path, *PAGING_CSV, f"workload.path={trace}", "family.warmup_requests=10")
    assert "config key 'family.warmup_requests' = 10" in line and "only 10 requests" in line


def test_a_header_only_serving_trace_is_an_error_not_nan_latencies(tmp_path: Path) -> None:
    trace = tmp_path / "azure-header.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n")
    line = _run(tmp_path, *SERVING, f"workload.path={trace}")
    assert "config key 'workload'" in line and str(trace) in line and "has no requests" in line


def test_a_key_of_another_familys_workload_says_whose_it_is(tmp_path: Path) -> None:
    line = _run(tmp_path, "experiment=paging", "workload.time_scale=2")
    assert "workload=zipf takes: n_requests" in line and "alpha" in line
    assert "'time_scale' is a key of serving workloads (azure_llm_2023_conv" in line


def test_debug_tiny_with_a_file_trace_says_to_leave_it_out(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("id\n1\n2\n")
    line = _run(tmp_path, *PAGING_CSV, "debug=tiny", f"workload.path={trace}")
    assert "family_debug/paging_tiny sets workload.n_requests" in line
    assert "workload=csv_trace does not take" in line and "leave debug=... out" in line


@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_an_unwritable_output_directory_is_one_error_line(tmp_path: Path, sweep: bool) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    target = blocker / "out"
    args = ("policy=lru,fifo", f"hydra.sweep.dir={target}") if sweep else (f"hydra.run.dir={target}",)
    res = memarena(*(["-m"] if sweep else []), "experiment=paging", "debug=tiny", *args, cwd=tmp_path)
    line = _error_line(res, tmp_path)
    assert f"cannot create or write the output directory {target}" in line and "hydra.run.dir=" in line


def test_a_bad_delimiter_names_the_workload(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("id\n1\n")
    line = _run(tmp_path, *PAGING_CSV, f"workload.path={trace}", "workload.delimiter=ab")
    assert "config key 'workload' (workload=csv_trace): invalid value for delimiter" in line
