"""``memarena -m experiment=kvcache`` end to end (debug=tiny), then ``memarena report``.

The fixture's weights may not be trained yet: ``tests.kvcache.random_model_plugin``
runs the family on a seeded random model of its shape, and
``tests.kvcache.recent_plugin`` adds a method that drops tokens.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_cli import memarena, records

ROOT = Path(__file__).resolve().parents[2]
ENV = {
    "MEMARENA_PLUGINS": "tests.kvcache.recent_plugin,tests.kvcache.random_model_plugin",
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
}


@pytest.mark.slow
def test_kvcache_sweep_over_methods_and_budgets_then_the_pareto_plot(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        "experiment=kvcache",
        "debug=tiny",
        "kv_compression=full,keep_recent",
        "family.budget=0.5,0.25",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
        env=ENV,
    )
    assert res.returncode == 0, res.stderr
    assert "kv_bytes" in res.stdout and "bits_per_byte" in res.stdout and "needle_accuracy" in res.stdout
    rows = [row for r in records(tmp_path / "m") for row in r.rows]
    got = sorted((row["kv_compression"], row["budget"], row["kv_bytes"]) for row in rows)
    assert got == [
        ("full", 0.25, 96 * 1024),
        ("full", 0.5, 96 * 1024),
        ("keep_recent", 0.25, 24 * 1024),
        ("keep_recent", 0.5, 48 * 1024),
    ]
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path, env=ENV)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "m" / "bits_per_byte_vs_kv_bytes.png").stat().st_size > 5000


def test_an_unknown_method_names_the_key(tmp_path: Path) -> None:
    res = memarena("experiment=kvcache", "kv_compression=nope", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path, env=ENV)
    assert res.returncode == 2, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("memarena: error:")]
    assert "'kv_compression'" in line and "'nope'" in line and "full" in line and "keep_recent" in line
