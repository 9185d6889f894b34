"""Malformed run records: ``memarena report`` and the resume path give one clear error naming the file.

Records are mutated as a disk, an editor or another tool would damage them:
truncated JSON, bytes flipped or not UTF-8, keys missing, values of the
wrong type (in the rows too), another schema version. ``memarena report``
over a directory whose only record is broken exits 2 with one error naming
the file; a run or sweep into a directory holding one refuses at start
(with or without ``resume=true``) naming it, and leaves it as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memarena.results import RECORD_FILE, RunRecord, write_record
from tests.reliability.harness import Runner

TINY_PAGING = ("experiment=paging", "debug=tiny", "cache_size=[0.05]", "threads=1")


def _record() -> RunRecord:
    return RunRecord(
        status="complete",
        family="paging",
        rows=[
            {"policy": "lru", "cache_size": 38, "miss_ratio": 0.5},
            {"policy": "lru", "cache_size": 9, "miss_ratio": 0.9},
        ],
        config={"seed": 0, "policy": {"_target_": "x.Lru"}},
        overrides=["policy=lru"],
        seed=0,
        versions={"memarena": "0"},
        host={"hostname": "h"},
        started_at="t0",
        finished_at="t1",
        wall_s=0.1,
        label_columns=["policy", "cache_size"],
    )


VALID = _record().to_json()
DATA = json.loads(VALID)
WRONG = [None, 1, -1.5, "abc", [], [1, "x"], {"a": 1}, True]


@st.composite
def broken(draw: st.DrawFn) -> tuple[str, bytes]:
    how = draw(st.sampled_from(["truncate", "flip", "not utf-8", "drop key", "wrong type", "row", "schema"]))
    raw = VALID.encode()
    if how == "truncate":
        return how, raw[: draw(st.integers(0, len(raw) - 2))]
    if how == "flip":
        pos = draw(st.integers(0, len(raw) - 1))
        bad = bytearray(raw)
        bad[pos] ^= 1 << draw(st.integers(0, 6))  # stays ASCII: a JSON or a value error, not an encoding one
        return how, bytes(bad)
    if how == "not utf-8":
        pos = draw(st.integers(0, len(raw) - 1))
        return how, raw[:pos] + b"\xff\xfe" + raw[pos:]
    data: dict[str, Any] = json.loads(VALID)
    if how == "drop key":
        del data[draw(st.sampled_from(["status", "family", "rows", "config", "overrides", "seed", "wall_s"]))]
    elif how == "wrong type":
        key = draw(st.sampled_from(["status", "family", "rows", "config", "overrides", "label_columns"]))
        data[key] = draw(st.sampled_from([w for w in WRONG if type(w) is not type(data[key])]))
    elif how == "row":
        data["rows"][draw(st.integers(0, 1))] = draw(st.sampled_from([None, 1, "row", [1, 2]]))
    else:
        data["schema_version"] = draw(st.sampled_from([0, 2, "1", None]))
    return how, json.dumps(data).encode()


SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _assert_one_error_naming(outcome: Any, path: Path, how: str) -> None:
    assert outcome.rc == 2, f"{how}: {outcome}"
    assert outcome.problem(str(path)) is None, f"{how}: {outcome.problem(str(path))}\n{outcome}"


def test_the_valid_record_reads() -> None:
    assert RunRecord.from_json(VALID).rows == _record().rows


#: Valid JSON records with a value of the wrong type (issue 14 item 6: ``memarena report`` failed on them
#: with a traceback): one error naming the file.
WRONG_TYPES = {
    "a row that is a list": ("rows", [DATA["rows"][0], [1, 2]]),
    "rows a string": ("rows", "abc"),
    "family null": ("family", None),
    "label_columns a number": ("label_columns", 1),
    "overrides of numbers": ("overrides", [1]),
}


@pytest.mark.parametrize("what", list(WRONG_TYPES))
def test_report_over_a_record_of_wrong_types(what: str, runner: Runner, tmp_path: Path) -> None:
    key, value = WRONG_TYPES[what]
    path = tmp_path / "r" / RECORD_FILE
    path.parent.mkdir()
    path.write_text(json.dumps({**DATA, key: value}))
    _assert_one_error_naming(runner.run("report", str(tmp_path / "r")), path, what)


@SETTINGS
@given(case=broken())
def test_report_over_a_broken_record_is_one_error_naming_it(runner: Runner, tmp_path_factory: Any, case: Any) -> None:
    how, data = case
    root = tmp_path_factory.mktemp("report")
    path = root / "r" / RECORD_FILE
    path.parent.mkdir()
    path.write_bytes(data)
    outcome = runner.run("report", str(root / "r"))
    if outcome.rc == 0:  # a flip inside a value: still a record, with another value
        assert RunRecord.from_json(data.decode()).status == "complete", f"{how}: {outcome}"
        return
    _assert_one_error_naming(outcome, path, how)


@SETTINGS
@given(case=broken(), resume=st.booleans())
def test_a_run_into_a_directory_with_a_broken_record_refuses_naming_it(
    runner: Runner, tmp_path_factory: Any, case: Any, resume: bool
) -> None:
    how, data = case
    root = tmp_path_factory.mktemp("run")
    path = root / RECORD_FILE
    path.write_bytes(data)
    outcome = runner.run(*TINY_PAGING, f"hydra.run.dir={root}", f"resume={str(resume).lower()}")
    _assert_one_error_naming(outcome, path, how)
    assert path.read_bytes() == data  # neither overwritten nor resumed
    assert not (root / ".hydra").exists()  # refused before Hydra wrote anything


@SETTINGS
@given(case=broken(), resume=st.booleans())
def test_a_sweep_over_a_broken_record_refuses_naming_it(
    runner: Runner, tmp_path_factory: Any, case: Any, resume: bool
) -> None:
    how, data = case
    root = tmp_path_factory.mktemp("sweep")
    write_record(root / "0", _record())
    path = root / "1" / RECORD_FILE
    path.parent.mkdir()
    path.write_bytes(data)
    outcome = runner.run(
        "-m", *TINY_PAGING, "policy=lru,fifo", f"hydra.sweep.dir={root}", f"resume={str(resume).lower()}"
    )
    _assert_one_error_naming(outcome, path, how)
    assert path.read_bytes() == data


def test_a_complete_record_is_still_refused_or_resumed(runner: Runner, tmp_path: Path) -> None:
    """The checks above do not stop the ordinary cases (regression guard for the refusal above)."""
    write_record(tmp_path / "r", _record())
    refused = runner.run(*TINY_PAGING, f"hydra.run.dir={tmp_path / 'r'}")
    assert refused.rc == 2 and "already holds a complete run record" in refused.err, refused
    resumed = runner.run(*TINY_PAGING, f"hydra.run.dir={tmp_path / 'r'}", "resume=true")
    assert resumed.rc == 0 and "skipped (resume=true)" in resumed.out, resumed
