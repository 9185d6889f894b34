"""``memarena -m experiment=training`` over the four optimizers (debug=tiny), then ``memarena report``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_cli import memarena, records

ROOT = Path(__file__).resolve().parents[2]
ENV = {"PYTHONPATH": os.pathsep.join([str(ROOT / "python"), str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.mark.slow
def test_training_sweep_over_optimizers_then_the_loss_and_memory_plots(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        "experiment=training",
        "debug=tiny",
        "optimizer=adamw,galore,adam8bit,galore8bit",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
        env=ENV,
    )
    assert res.returncode == 0, res.stderr
    assert "bits_per_byte" in res.stdout and "peak_bytes" in res.stdout
    rows = {row["optimizer"]: row for r in records(tmp_path / "m") for row in r.rows}
    assert sorted(rows) == ["adam8bit", "adamw", "galore", "galore8bit"]
    state = {k: r["optimizer_state_bytes"] for k, r in rows.items()}
    # galore's default rank (128) is the fixture's width: it projects nothing away, and adds its projectors
    assert state["galore8bit"] < state["galore"] and state["adam8bit"] < state["adamw"] < state["galore"]
    assert rows["adam8bit"]["absmax_bytes"] > 0 and rows["galore"]["projectors_bytes"] > 0
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path, env=ENV)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "m" / "loss_curves.png").stat().st_size > 5000
    assert (tmp_path / "m" / "memory_by_category.png").stat().st_size > 5000


def test_an_unknown_activation_names_the_key(tmp_path: Path) -> None:
    res = memarena("experiment=training", "activation=nope", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path, env=ENV)
    assert res.returncode == 2, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("memarena: error:")]
    assert "'activation'" in line and "'nope'" in line and "checkpoint" in line and "memo" in line
