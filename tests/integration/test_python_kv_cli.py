"""A KV manager written in Python, selected on the command line like a built-in one."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import memarena, records


def test_the_python_paged_reference_runs_from_the_cli_and_matches_paged(tmp_path: Path) -> None:
    rows = {}
    for kv in ("paged_python", "paged"):
        res = memarena(
            "experiment=serving",
            f"kv_manager={kv}",
            "debug=tiny",
            "backend=l4",  # a 24 GB device: memory runs out and requests are preempted
            f"hydra.run.dir={tmp_path}/{kv}",
            cwd=tmp_path,
        )
        assert res.returncode == 0, res.stderr
        (rec,) = records(tmp_path / kv)
        assert rec.status == "complete" and rec.family == "serving"
        (rows[kv],) = rec.rows
    py, native = rows["paged_python"], rows["paged"]
    assert py["kv_manager"] == "paged_python" and py["num_requests"] == 5000
    assert native["preemptions"] > 0
    for k, v in native.items():
        if k not in ("kv_manager", "wall_s"):
            assert py[k] == v, k
