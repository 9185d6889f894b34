"""The default ``memarena`` run (the serving family) end to end, as a user runs it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.test_cli import memarena, records

MANAGERS = {
    "static_max",
    "static_pow2",
    "static_oracle",
    "paged",
    "paged_prefix_v1",
    "vattention_2mb",
    "vattention_64kb",
}


def test_default_run_compares_the_kv_managers_on_the_azure_trace(tmp_path: Path) -> None:
    t0 = time.perf_counter()
    res = memarena(cwd=tmp_path)  # the bare command: memarena -m, the default experiment's comparison
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    assert wall < 30, f"the default run took {wall:.1f} s"
    assert "workload: azure_llm_2023_conv" in res.stdout  # one value in every row: printed above
    assert "| kv_manager" in res.stdout and "token_states_share" in res.stdout
    assert "idle_mapped_share" in res.stdout  # the breakdown columns of the default table
    (sweep_dir,) = (p.parent for p in (tmp_path / "multirun").glob("*/*/multirun.yaml"))
    recs = records(sweep_dir)
    assert all(r.status == "complete" and r.family == "serving" for r in recs)
    rows = {r.rows[0]["kv_manager"]: r.rows[0] for r in recs}
    assert set(rows) == MANAGERS
    for name, row in rows.items():
        assert row["workload"] == "azure_llm_2023_conv(x8)" and row["num_requests"] == 19_366, name
        assert row["completed"] + row["rejected"] == 19_366
        assert row["rejected_too_long"] == 1  # one conversation exceeds Llama-3-8B's 8192 tokens
        shares = ("token_states", "reserved", "internal_frag", "external_frag", "idle_mapped", "free")
        assert sum(row[f"{k}_share"] for k in shares) == pytest.approx(1.0, abs=1e-6)
        if not name.startswith("vattention"):
            assert row["idle_mapped_share"] == 0, name  # only vAttention keeps pages mapped on idle slots
    # Fig. 2's ordering: paged keeps almost all used KV memory for token states, static reservation far less.
    assert rows["paged"]["token_states_share_of_used"] > 0.95
    assert rows["static_max"]["token_states_share_of_used"] < rows["static_pow2"]["token_states_share_of_used"]
    assert rows["static_pow2"]["token_states_share_of_used"] < rows["static_oracle"]["token_states_share_of_used"]
    assert rows["static_oracle"]["token_states_share_of_used"] < rows["paged"]["token_states_share_of_used"]
    assert rows["paged"]["throughput_requests_per_s"] > rows["static_max"]["throughput_requests_per_s"]

    rep = memarena("report", str(sweep_dir), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    for png in ("kv_breakdown.png", "token_states_share_over_time.png", "batch_size_over_time.png"):
        assert (sweep_dir / png).stat().st_size > 5000, png


def test_load_sweep_and_latency_vs_load_plot(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        "experiment=serving",
        "kv_manager=paged,static_max",
        "workload.time_scale=1,4",
        "workload.n_requests=3000",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    recs = records(tmp_path / "m")
    assert len(recs) == 4
    loads = sorted({r.rows[0]["offered_load_requests_per_s"] for r in recs})
    assert len(loads) == 2 and loads[1] == pytest.approx(4 * loads[0], rel=1e-6)
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert (tmp_path / "m" / "e2e_p99_vs_load.png").stat().st_size > 5000


def test_debug_tiny_single_runs_and_errors(tmp_path: Path) -> None:
    res = memarena(
        "experiment=serving", "debug=tiny", "workload=shared_prefix", f"hydra.run.dir={tmp_path}/r", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    assert rec.rows[0]["workload"].startswith("shared_prefix")
    bad = memarena("experiment=serving", "model=llama3_70b", "backend=l4", f"hydra.run.dir={tmp_path}/b", cwd=tmp_path)
    assert bad.returncode == 2
    assert "llama3_70b needs" in bad.stderr and "l4 offers" in bad.stderr and "Traceback" not in bad.stderr
    trace = tmp_path / "neg.csv"
    trace.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6,374,44\n2023-11-16 18:15:47,-3,4\n"
    )
    bad = memarena("experiment=serving", f"workload.path={trace}", f"hydra.run.dir={tmp_path}/n", cwd=tmp_path)
    assert bad.returncode == 2, bad.stderr
    assert "neg.csv: line 3" in bad.stderr and "Traceback" not in bad.stderr


def test_serving_load_sweep_reports_the_rate_under_the_latency_bound(tmp_path: Path) -> None:
    res = memarena(
        "sweep=serving_load",
        "kv_manager=paged,static_max",
        "workload.rate=0.5,8",
        "workload.n_requests=300",
        "hydra.launcher.n_jobs=1",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "Highest request rate under the normalized-latency bound" in res.stdout
    table = res.stdout.split("Highest request rate under the normalized-latency bound")[1]
    head, _, *lines = [ln for ln in table.splitlines() if ln.startswith("|")]
    cols = [c.strip() for c in head.strip("|").split("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    rows = {r["kv_manager"]: r for r in (dict(zip(cols, c, strict=True)) for c in cells)}
    assert set(rows) == {"paged", "static_max"} and "x_static_max" in cols
    assert float(rows["paged"]["max_rate_requests_per_s"]) >= float(rows["static_max"]["max_rate_requests_per_s"]) > 0
    recs = records(tmp_path / "m")
    assert len(recs) == 4 and all(r.rows[0]["normalized_latency_s_per_token"] > 0 for r in recs)
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    assert "### Highest request rate" in (tmp_path / "m" / "report.md").read_text()


def test_a_manager_specific_key_in_a_manager_sweep_says_how(tmp_path: Path) -> None:
    args = ("-m", "experiment=serving", "debug=tiny", "kv_manager=paged,static_max")
    res = memarena(*args, "kv_manager.block_size=32", f"hydra.sweep.dir={tmp_path}/m", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    (line,) = [ln for ln in res.stderr.splitlines() if ln.startswith("memarena: error:")]
    assert "kv_manager=static has no parameter 'block_size'" in line and "kv_manager=paged" in line
    assert "Traceback" not in res.stderr
    # What it says to do works: a preset of its own, swept with the others.
    conf = tmp_path / "conf" / "kv_manager"
    conf.mkdir(parents=True)
    (conf / "paged_b32.yaml").write_text("defaults:\n  - paged\n\nblock_size: 32\n")
    assert "--config-dir DIR" in line and "kv_manager=<name>,static" in line
    ok = memarena(
        "-m",
        "--config-dir",
        str(tmp_path / "conf"),
        *args[1:3],
        "kv_manager=paged_b32,static_max",
        f"hydra.sweep.dir={tmp_path}/ok",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    kinds = {r.rows[0]["kv_manager"]: r.config["kv_manager"] for r in records(tmp_path / "ok")}
    assert kinds["paged_b32"]["block_size"] == 32 and set(kinds) == {"paged_b32", "static_max"}
