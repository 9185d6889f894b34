"""``memarena -m experiment=agent`` end to end (debug=tiny), then ``memarena report``."""

from __future__ import annotations

from pathlib import Path

from memarena.families.agent.generate import generate
from memarena.families.agent.longmemeval import save
from tests.integration.test_cli import memarena, records


def test_agent_sweep_over_granularities_then_the_recall_and_bytes_plots(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        "experiment=agent",
        "debug=tiny",
        "agent_memory=flat_rag",
        "agent_memory.granularity=session,turn",
        "workload.size=12",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "session_recall_any_at_5" in res.stdout and "memory_bytes" in res.stdout
    recs = records(tmp_path / "m")
    assert len(recs) == 2
    for rec in recs:
        types = [row["question_type"] for row in rec.rows]
        assert types[-1] == "all" and "knowledge-update" in types and "multi-session" in types
        everything = rec.rows[-1]
        assert everything["questions"] == 6  # 8 questions, one abstention, one assistant-evidence question unscored
        assert everything["items_stored"] > 0 and everything["memory_bytes"] > 0 and everything["user_violations"] == 0
    turn = next(r for r in recs if "turn_recall_any_at_10" in r.rows[-1])
    assert turn.rows[-1]["items_stored"] > 12  # one value per user turn
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    for png in ("session_recall_any_at_k.png", "turn_recall_any_at_k.png", "memory_bytes.png"):
        assert (tmp_path / "m" / png).stat().st_size > 5000, png


def test_a_longmemeval_file_runs_and_a_missing_one_is_named(tmp_path: Path) -> None:
    path = save(generate(size=6, questions=3, seed=1), tmp_path / "lme.json")
    res = memarena(
        "experiment=agent",
        "workload=longmemeval_file",
        f"workload.path={path}",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    assert rec.rows[-1]["workload"] == "lme"
    missing = tmp_path / "nope.json"
    res = memarena("experiment=agent", "workload=longmemeval_file", f"workload.path={missing}", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    (line,) = [x for x in res.stderr.splitlines() if x.startswith("memarena: error:")]
    assert "'workload.path'" in line and str(missing) in line
