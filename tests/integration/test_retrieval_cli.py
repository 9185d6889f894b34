"""``memarena experiment=retrieval`` and ``retrieval_tenants`` end to end (debug=tiny)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.test_cli import memarena, records


def test_retrieval_sweep_rows_and_the_recall_vs_qps_plot(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        "experiment=retrieval",
        "debug=tiny",
        "index=ivf,hnsw_m32,flat",
        "family.repeats=1",
        "family.single_queries=50",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "recall_at_10" in res.stdout and "qps_batch" in res.stdout
    recs = records(tmp_path / "m")
    assert sorted(r.rows[0]["index"] for r in recs) == ["flat", "hnsw_m32", "ivf"]
    rows = [row for r in recs for row in r.rows]
    ivf = [row for row in rows if row["index"] == "ivf"]
    assert [row["search"] for row in ivf] == [f"nprobe={p}" for p in (1, 2, 4, 8, 16, 32)]
    for row in rows:
        assert row["qps_batch"] > 0 and row["qps_single"] > 0 and row["build_s"] >= 0 and row["index_bytes"] > 0
        assert row["single_mismatches"] == 0 and row["tenant_violations"] == 0
        assert row["n_vectors"] == 1000 and row["dim"] == 128
    assert next(row for row in rows if row["index"] == "flat")["recall_at_10"] == 1.0
    assert max(row["recall_at_10"] for row in ivf) >= 0.99
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "m" / "recall_vs_qps.png").stat().st_size > 5000


def test_tenant_experiment_reports_isolation_and_per_tenant_bytes(tmp_path: Path) -> None:
    res = memarena(
        "experiment=retrieval_tenants",
        "debug=tiny",
        "index=curator",
        "index.ef_search=[100,400]",
        "family.repeats=1",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    assert [row["search"] for row in rec.rows] == ["ef_search=100", "ef_search=400"]
    for row in rec.rows:
        assert row["n_tenants"] == 100 and row["tenant_violations"] == 0 and row["single_mismatches"] == 0
        assert row["tenant_bytes_total"] > 0 and row["tenant_bytes_max"] >= row["tenant_bytes_mean"] > 0
        assert row["recall_at_10"] >= 0.95


def test_unknown_index_lists_the_available(tmp_path: Path) -> None:
    res = memarena("experiment=retrieval", "index=annoy", cwd=tmp_path)
    assert res.returncode != 0
    assert "index/annoy" in res.stderr and "hnsw" in res.stderr
