"""Plugin faults: a plugin that raises at any lifecycle point is named in one line; exit and record agree.

``tests.reliability.faulty_plugin`` raises where ``FAULT`` says: at import
(also ``SystemExit``), in a registration hook, in the search-path,
configure, run-start, run-result and run-finish hooks, in its paging
policy's constructor or eviction callback, in its metric. Each runs as a
fresh ``memarena`` process (plugins load once per process). Property: the
plugin's name is on one ``memarena: ...`` line; no traceback; the exit
status agrees with the record (0 when it says ``complete``, non-zero when
``failed`` or when no record was written); a fault before the run starts is
exit 2 with no record.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memarena.results import RECORD_FILE, RunRecord

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "tests.reliability.faulty_plugin"
RUN = ("experiment=paging", "debug=tiny", "cache_size=[0.05]", "threads=1", "policy=faulty_test")

#: Faults that stop memarena before any run starts: exit 2, no record.
AT_START = ["import", "import_exit", "register", "search_path"]
#: Observer hooks: logged with the plugin's name and kept in the record; the run completes, exit 0.
OBSERVERS = ["run_start", "run_result", "run_finish"]
#: Faults that fail the run: a `failed` record, a non-zero exit.
FAILING = ["configure", "init", "evict", "metric"]


def _memarena(tmp_path: Path, fault: str) -> tuple[subprocess.CompletedProcess[str], RunRecord | None]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "MEMARENA_DISABLE_PLUGIN_AUTOLOAD": "1",
        "MEMARENA_PLUGINS": PLUGIN,
        "FAULT": fault,
    }
    cmd = [sys.executable, "-m", "memarena.app", *RUN, f"hydra.run.dir={tmp_path / 'r'}"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    path = tmp_path / "r" / RECORD_FILE
    return res, RunRecord.from_json(path.read_text()) if path.exists() else None


def _check(fault: str, res: subprocess.CompletedProcess[str], rec: RunRecord | None) -> None:
    text = res.stdout + res.stderr
    assert "Traceback" not in text, text
    named = [
        line for line in text.splitlines() if PLUGIN in line and (f"{fault} bug" in line or "exit at import" in line)
    ]
    assert named, f"no line names the plugin and its error:\n{text}"
    if rec is None or rec.status != "complete":
        assert res.returncode != 0, text
    else:
        assert res.returncode == 0, text
    if fault in AT_START:
        assert res.returncode == 2 and rec is None, text
        errors = [line for line in res.stderr.splitlines() if line.startswith("memarena: error:")]
        assert len(errors) == 1 and PLUGIN in errors[0], res.stderr
    elif fault in OBSERVERS:
        assert rec is not None and rec.status == "complete" and rec.rows, text
        assert any(PLUGIN in e and f"memarena_{fault}()" in e for e in rec.hook_errors), rec.hook_errors
    elif fault in FAILING:
        assert rec is not None and rec.status == "failed" and f"{fault} bug" in (rec.error or ""), text
        assert res.returncode == 1, text  # a plugin's code raised during the run: a bug, not bad input
        errors = [line for line in res.stderr.splitlines() if line.startswith("memarena: error:")]
        assert len(errors) == 1 and PLUGIN in errors[0], res.stderr


def test_the_plugin_works_without_a_fault(tmp_path: Path) -> None:
    res, rec = _memarena(tmp_path, "")
    assert res.returncode == 0, res.stderr
    assert rec is not None and rec.status == "complete"
    assert all("double_miss_ratio" in row for row in rec.rows)  # its metric ran


@pytest.mark.parametrize("fault", AT_START + OBSERVERS + FAILING)
def test_a_raising_plugin_is_named_and_exit_agrees_with_the_record(fault: str, tmp_path: Path) -> None:
    _check(fault, *_memarena(tmp_path, fault))
