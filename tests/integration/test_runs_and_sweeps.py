"""Runs and sweeps as Hydra users expect: failed jobs, resume, flags, labels, plugin errors (subprocesses)."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

from memarena.results import RECORD_FILE
from tests.integration.test_cli import ROOT, memarena, records

FAILING = {"MEMARENA_PLUGINS": "tests.integration.failing_plugin"}
SEARCHPATH = {"MEMARENA_PLUGINS": "tests.integration.searchpath_plugin"}
TINY_PAGING = ("experiment=paging", "debug=tiny", "cache_size=[0.05]")


def env(**extra: str) -> dict[str, str]:
    """The test plugins import from the checkout's ``tests`` package."""
    return {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def test_failed_jobs_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        *TINY_PAGING,
        "policy=lru,evict_raises_test,evict_bad_test,fifo",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
        env=env(**FAILING),
    )
    assert res.returncode == 1, res.stderr  # some jobs failed
    by_policy = {r.config["policy"]["_target_"].rsplit(".", 1)[-1]: r for r in records(tmp_path / "m")}
    assert len(by_policy) == 4  # every job ran: the failures did not stop the sweep
    assert by_policy["EvictRaises"].status == "failed"
    assert "evict bug" in (by_policy["EvictRaises"].error or "")
    assert by_policy["EvictBad"].status == "failed"
    assert "InvariantError" in (by_policy["EvictBad"].error or "")
    assert [r.status for k, r in sorted(by_policy.items()) if k not in ("EvictRaises", "EvictBad")] == [
        "complete",
        "complete",
    ]
    assert "2 job(s) did not complete" in res.stderr
    assert "evict bug" in res.stderr and "InvariantError" in res.stderr
    assert "| lru" in res.stdout or "lru " in res.stdout  # the summary of the complete jobs
    assert "2 complete run(s)" in res.stdout


def test_raising_finish_observer_keeps_the_run_complete_and_exit_zero(tmp_path: Path) -> None:
    res = memarena(
        *TINY_PAGING,
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
        env=env(**FAILING, FAILING_FINISH="1"),
    )
    assert res.returncode == 0, res.stderr
    (rec,) = records(tmp_path / "r")
    assert rec.status == "complete" and rec.rows
    assert len(rec.hook_errors) == 1
    assert "plugin 'tests.integration.failing_plugin'" in rec.hook_errors[0]
    assert "memarena_run_finish() raised RuntimeError: finish observer bug" in rec.hook_errors[0]
    assert "plugin 'tests.integration.failing_plugin'" in res.stdout + res.stderr  # logged (Hydra: to stdout)


def test_hydra_flags_after_overrides_with_a_plugin_search_path(tmp_path: Path) -> None:
    cfg = memarena("experiment=paging", "+plugin_demo=on", "--cfg", "job", cwd=tmp_path, env=env(**SEARCHPATH))
    assert cfg.returncode == 0, cfg.stderr
    assert "from_plugin" in cfg.stdout
    info = memarena("experiment=paging", "--info", "searchpath", cwd=tmp_path, env=env(**SEARCHPATH))
    assert info.returncode == 0, info.stderr
    assert "plugin_conf" in info.stdout
    sweep = memarena(
        *TINY_PAGING,
        "policy=lru,fifo",
        "+plugin_demo=on",
        f"hydra.sweep.dir={tmp_path}/m",
        "-m",
        cwd=tmp_path,
        env=env(**SEARCHPATH),
    )
    assert sweep.returncode == 0, sweep.stderr
    recs = records(tmp_path / "m")
    assert len(recs) == 2 and all(r.config["tags"] == ["from_plugin"] for r in recs)


def test_swept_parameters_are_label_columns_of_the_table_and_csv(tmp_path: Path) -> None:
    res = memarena(
        "-m",
        *TINY_PAGING,
        "policy=s3fifo",
        "policy.small_size_ratio=0.05,0.2",
        f"hydra.sweep.dir={tmp_path}/m",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert "policy.small_size_ratio" in res.stdout
    rep = memarena("report", str(tmp_path / "m"), cwd=tmp_path)
    assert rep.returncode == 0, rep.stderr
    with (tmp_path / "m" / "report.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(float(r["policy.small_size_ratio"]) for r in rows) == [0.05, 0.2]
    assert {r["policy"] for r in rows} == {"s3fifo"}  # only the new column tells the rows apart
    one = memarena(
        *TINY_PAGING,
        "policy=s3fifo",
        "policy.small_size_ratio=0.2",
        f"hydra.run.dir={tmp_path}/r",
        cwd=tmp_path,
    )
    assert one.returncode == 0, one.stderr
    assert "policy.small_size_ratio" in one.stdout and "0.2" in one.stdout


def test_version_lists_every_plugin(tmp_path: Path) -> None:
    res = memarena("--version", cwd=tmp_path, env=env(**SEARCHPATH))
    assert res.returncode == 0, res.stderr
    assert "memarena.families.paging.plugin (memarena " in res.stdout and "built-in" in res.stdout
    assert "tests.integration.searchpath_plugin (module tests.integration.searchpath_plugin" in res.stdout


def test_records_follow_the_umask(tmp_path: Path) -> None:
    res = memarena(*TINY_PAGING, f"hydra.run.dir={tmp_path}/r", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    mode = stat.S_IMODE((tmp_path / "r" / RECORD_FILE).stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask


def test_resume_skips_complete_jobs_and_a_rerun_is_refused(tmp_path: Path) -> None:
    sweep = ("-m", *TINY_PAGING, "policy=lru,fifo", f"hydra.sweep.dir={tmp_path}/m")
    first = memarena(*sweep, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    # An interrupted sweep: job 1 never finished.
    (job1,) = [p.parent for p in (tmp_path / "m").rglob(RECORD_FILE) if p.parent.name == "1"]
    (job1 / RECORD_FILE).unlink()
    job0 = (tmp_path / "m" / "0" / RECORD_FILE).read_text()
    again = memarena(*sweep, cwd=tmp_path)
    assert again.returncode == 2
    assert f"{tmp_path}/m already holds a complete run record" in again.stderr and "resume=true" in again.stderr
    assert not (job1 / RECORD_FILE).exists()  # nothing ran
    resumed = memarena(*sweep, "resume=true", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "m" / "0" / RECORD_FILE).read_text() == job0  # skipped, not rerun
    recs = records(tmp_path / "m")
    assert [r.status for r in recs] == ["complete", "complete"]
    assert "resume=True" in recs[1].overrides and not any("resume" in o for o in recs[0].overrides)
    assert "2 complete run(s)" in resumed.stdout
    assert memarena("report", str(tmp_path / "m"), cwd=tmp_path).returncode == 0
    assert "resume" not in (tmp_path / "m" / "report.csv").read_text()  # not a label: it changes no result
    # A single run into a directory with a complete record: refused, then skipped with resume=true.
    run = (*TINY_PAGING, f"hydra.run.dir={tmp_path}/r")
    assert memarena(*run, cwd=tmp_path).returncode == 0
    before = (tmp_path / "r" / RECORD_FILE).read_text()
    refused = memarena(*run, cwd=tmp_path)
    assert refused.returncode == 2 and "already holds a complete run record" in refused.stderr
    assert memarena(*run, "resume=true", cwd=tmp_path).returncode == 0
    assert (tmp_path / "r" / RECORD_FILE).read_text() == before


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.strip()]


def test_bad_config_values_give_one_error_line_naming_the_key(tmp_path: Path) -> None:
    run = (*TINY_PAGING, "policy=lru")
    # (override, what the one line must name: the key, and the component where there is one)
    cases = [
        ("workload.n_requests=abc", ["workload.n_requests", "workload=zipf"]),
        ("workload.n_requests=99999999999999999999", ["workload.n_requests", "workload=zipf"]),
        ("cache_size=2e19", ["cache_size"]),
        ("seed=-1", ["config key 'seed' must be an integer in [0, 18446744073709551615], got -1"]),
        ("progress=maybe", ["config key 'progress' must be true, false or null, got 'maybe'"]),
        ("policy=nope", ["Could not find 'policy/nope'; Available options in 'policy': arc, belady"]),
    ]
    for i, (override, expected) in enumerate(cases):
        res = memarena(*run, override, f"hydra.run.dir={tmp_path}/{i}", cwd=tmp_path)
        assert res.returncode == 2, (override, res.stderr)
        assert _error_lines(res.stderr) == [res.stderr.strip()], (override, res.stderr)  # one line
        assert res.stderr.startswith("memarena: error: "), (override, res.stderr)
        assert all(e in res.stderr for e in expected), (override, res.stderr)
        assert "Traceback" not in res.stdout + res.stderr and "HYDRA_FULL_ERROR" not in res.stderr


def test_a_plugin_preset_named_like_a_component_is_refused(tmp_path: Path) -> None:
    res = memarena(
        *TINY_PAGING,
        "policy=lru",
        cwd=tmp_path,
        env=env(**SEARCHPATH, SEARCHPATH_PLUGIN_CLASH="1"),
    )
    assert res.returncode == 2
    assert _error_lines(res.stderr) == [
        "memarena: error: plugin 'tests.integration.searchpath_plugin' (module tests.integration.searchpath_plugin): "
        f"its config preset policy/lru.yaml (search path file://{ROOT}/tests/integration/clash_conf) has the name "
        "of the registered component policy=lru from plugin 'memarena.families.paging.plugin' (distribution memarena "
        f"{__import__('memarena').__version__}); give the preset a name of its own"
    ]


def test_report_over_two_families_prints_a_table_each(tmp_path: Path) -> None:
    from memarena.results import RunRecord, write_record

    def rec(family: str, row: dict[str, object], labels: list[str]) -> RunRecord:
        return RunRecord(
            status="complete",
            family=family,
            rows=[row],
            config={},
            overrides=[],
            seed=0,
            versions={},
            host={},
            started_at="t0",
            finished_at="t1",
            wall_s=0.1,
            label_columns=labels,
        )

    write_record(tmp_path / "a", rec("paging", {"policy": "lru", "miss_ratio": 0.5}, ["policy"]))
    write_record(tmp_path / "b", rec("retrieval", {"index": "flat", "recall_at_10": 1.0}, ["index"]))
    res = memarena("report", str(tmp_path), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    paging, retrieval = res.stdout.split("family retrieval")
    assert "family paging" in paging and "| policy" in paging and "recall_at_10" not in paging
    assert "| index" in retrieval and "miss_ratio" not in retrieval.split("wrote")[0]
    assert (tmp_path / "report-paging.csv").exists() and (tmp_path / "report-retrieval.csv").exists()
