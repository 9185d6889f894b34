"""Observers cannot rewrite what a run records; a raising metric names its plugin (issue 14, items 6 and 7)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from memarena import hookimpl
from memarena.api import Metric
from memarena.errors import PluginError
from memarena.results import RunRecord
from tests.plugins.test_hook_calls import _run


def test_a_result_hook_gets_a_read_only_copy_of_the_row(tmp_path: Path) -> None:
    refused: list[str] = []

    class Rewriter:
        @hookimpl
        def memarena_run_result(self, run: Any, row: Any) -> None:
            try:
                row["value"] = -1.0
            except TypeError as exc:
                refused.append(str(exc))

    record = _run(tmp_path, Rewriter())
    assert record.status == "complete"
    assert len(refused) == 2  # one refused assignment per row
    assert [r["value"] for r in record.rows] == [1.0, 2.0]
    on_disk = RunRecord.from_json((tmp_path / "memarena-record.json").read_text())
    assert [r["value"] for r in on_disk.rows] == [1.0, 2.0]
    assert on_disk.hook_errors == []


def test_a_result_hook_cannot_reach_the_record_through_nested_values(tmp_path: Path) -> None:
    class NestedRewriter:
        @hookimpl
        def memarena_run_result(self, run: Any, row: Any) -> None:
            # A mutable value inside the row is the hook's own copy.
            if isinstance(row.get("extra"), dict):
                row["extra"]["value"] = -1

    class ExtraMetric(Metric):
        name: ClassVar[str] = "extra_test"
        families: ClassVar[tuple[str, ...]] = ("order_test",)

        @dataclass
        class Config:
            _target_: str = "tests.plugins.test_observer_copies.ExtraMetric"

        def compute(self, run: Any, row: Any) -> dict[str, Any]:
            return {"extra": {"value": row["step"]}}

    class Registers:
        @hookimpl
        def memarena_register_metrics(self) -> list[type[Any]]:
            return [ExtraMetric]

    record = _run(tmp_path, Registers(), NestedRewriter())
    assert [r["extra"] for r in record.rows] == [{"value": 0}, {"value": 1}]


def test_a_finish_hook_cannot_change_the_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Rewriter:
        @hookimpl
        def memarena_run_finish(self, run: Any, record: Any) -> None:
            record.rows[0]["value"] = -1.0
            record.status = "failed"

    class Raiser:  # a hook error makes memarena write the record again, after the hooks ran
        @hookimpl
        def memarena_run_finish(self, run: Any, record: Any) -> None:
            raise RuntimeError("finish bug")

    record = _run(tmp_path, Rewriter(), Raiser())
    assert record.status == "complete" and record.rows[0]["value"] == 1.0
    on_disk = RunRecord.from_json((tmp_path / "memarena-record.json").read_text())
    assert on_disk.status == "complete" and on_disk.rows[0]["value"] == 1.0
    assert len(on_disk.hook_errors) == 1
    assert "a memarena_run_finish hook changed the run record; the change was undone" in caplog.text


class BrokenMetric(Metric):
    name: ClassVar[str] = "broken_metric_test"
    families: ClassVar[tuple[str, ...]] = ("order_test",)

    @dataclass
    class Config:
        _target_: str = "tests.plugins.test_observer_copies.BrokenMetric"

    def compute(self, run: Any, row: Any) -> dict[str, float]:
        raise ZeroDivisionError("division by zero")


class BrokenMetrics:
    @hookimpl
    def memarena_register_metrics(self) -> list[type[Any]]:
        return [BrokenMetric]


def test_a_raising_metric_names_its_plugin(tmp_path: Path) -> None:
    with pytest.raises(
        PluginError,
        match=r"plugin 'BrokenMetrics' \(module tests\.plugins\.test_observer_copies\): metric "
        r"'broken_metric_test' raised ZeroDivisionError: division by zero",
    ):
        _run(tmp_path, BrokenMetrics())
    on_disk = RunRecord.from_json((tmp_path / "memarena-record.json").read_text())
    assert on_disk.status == "failed" and "BrokenMetrics" in (on_disk.error or "")


def test_a_record_that_cannot_be_written_is_one_error_naming_the_directory(tmp_path: Path) -> None:
    from memarena.config import compose
    from memarena.errors import MemarenaError
    from memarena.plugins import get_plugin_manager
    from memarena.registry import Registry
    from memarena.run import execute
    from tests.plugins.test_hook_calls import OrderPlugin

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    pm = get_plugin_manager(autoload=False, plugins=[OrderPlugin()])
    cfg = compose(["~experiment", "family=order_test"], pm=pm)
    with pytest.raises(MemarenaError, match=rf"cannot write the run record to {blocker / 'run'}: "):
        execute(cfg, blocker / "run", pm=pm, registry=Registry.from_plugin_manager(pm), overrides=[])


def test_a_finish_hook_that_only_reads_raises_no_alarm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    class Reader:
        @hookimpl
        def memarena_run_finish(self, run: Any, record: Any) -> None:
            assert record.rows[0]["value"] == 1.0

    record = _run(tmp_path, Reader())
    assert record.status == "complete"
    assert "changed the run record" not in caplog.text
