"""A plugin's failure names the plugin in one ``memarena: error:`` line (issue 14, items 6 and 8).

A plugin that cannot load stops memarena before any run (exit 2, as a bad config does); a plugin's code
that raises during a run is a bug (exit 1, as memarena's own would be), and its record says ``failed``.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import memarena
from tests.integration.test_runs_and_sweeps import FAILING, env


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("memarena: error:")]


def test_a_python_policy_callback_that_raises_names_its_plugin(tmp_path: Path) -> None:
    res = memarena(
        "experiment=paging",
        "debug=tiny",
        "policy=evict_raises_test",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
        env=env(**FAILING),
    )
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    [line] = _error_lines(res.stderr)
    assert "plugin 'tests.integration.failing_plugin'" in line and "RuntimeError: evict bug" in line
    assert "failing_plugin.py:" in line and "EvictRaises.evict" in line


def test_a_plugin_that_exits_at_import_is_named(tmp_path: Path) -> None:
    res = memarena(
        "experiment=paging",
        "debug=tiny",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
        env=env(MEMARENA_PLUGINS="tests.integration.exiting_plugin"),
    )
    assert res.returncode == 2, (res.stdout, res.stderr)
    [line] = _error_lines(res.stderr)
    assert "'tests.integration.exiting_plugin' failed to import" in line
    assert "SystemExit: exiting_plugin: no accelerator here" in line


def test_a_python_kv_manager_callback_that_raises_names_its_plugin(tmp_path: Path) -> None:
    res = memarena(
        "experiment=serving",
        "debug=tiny",
        "kv_manager=admit_raises_test",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
        env=env(MEMARENA_PLUGINS="tests.integration.kv_fault_plugin"),
    )
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    [line] = _error_lines(res.stderr)
    assert line.startswith('memarena: error: KV manager "admit_raises_test": admit('), line
    assert "KeyError: 'admit bug' (plugin 'tests.integration.kv_fault_plugin' (module" in line
    assert "kv_fault_plugin.py:" in line and "AdmitRaisesKV.admit" in line
