"""The ``memarena`` console script.

``memarena [OVERRIDES...]`` runs the Hydra app (the default experiment with
no arguments); ``memarena plugins`` lists plugins and their components;
``memarena report DIR`` aggregates run records; ``memarena --help`` shows
all of this plus the config groups and their options.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from memarena.errors import CallbackError, MemarenaError, PluginError

if TYPE_CHECKING:
    from memarena.results import RunRecord

__all__ = ["main"]

log = logging.getLogger("memarena")

USAGE = """\
usage: memarena [OVERRIDE ...]        one run (Hydra overrides), in outputs/<date>/<time>
       memarena -m [OVERRIDE ...]     a sweep (comma lists, the experiment's sweeper params, sweep=<preset>)
       memarena                       = memarena -m: the default experiment's comparison
       memarena plugins [--json]      list plugins, versions and the components each provides
       memarena report DIR [--out D]  aggregate run records under DIR into tables and plots
       memarena --version             versions of memarena, its core and dependencies
       memarena --hydra-help          Hydra's own options (--cfg job, --multirun, ...)

examples:
  memarena                                        every KV manager on the Azure trace, offline
  memarena experiment=paging policy=arc cache_size=100       one run
  memarena -m experiment=paging policy=lru,arc,s3fifo,belady  a sweep
  memarena sweep=paging_mrc                       a miss-ratio-curve sweep, then:
  memarena report multirun/<date>/<time>
  memarena -m ... hydra.sweep.dir=D resume=true   resume a sweep: skip the jobs already complete
"""


# ---------------------------------------------------------------------------
# Shared start-up: plugins -> registry -> config store.
# ---------------------------------------------------------------------------


class _State:
    pm: Any = None
    registry: Any = None
    #: Jobs of the last multirun that did not complete (set by SummaryCallback).
    failed_jobs: int = 0
    #: Whether a job's task started (Hydra made its output directory by then).
    task_started: bool = False
    #: The config of the multirun in progress (set by SummaryCallback), for the summary after an interrupt.
    sweep_config: Any = None
    #: The claim on the current run's or sweep's output directory (memarena.outdir).
    lock: Any = None


class _Refused(BaseException):
    """A run or sweep refused at start; Hydra turns a callback's ``Exception`` into a mere warning."""

    def __init__(self, error: MemarenaError) -> None:
        super().__init__(str(error))
        self.error = error


def _claim(directory: Path, *, sweep: bool) -> None:
    from memarena.outdir import claim

    _release_lock()
    try:
        _State.lock = claim(directory, sweep=sweep)
    except MemarenaError as exc:
        raise _Refused(exc) from None


def _release_lock() -> None:
    from memarena.outdir import reset_jobs

    if _State.lock is not None:
        reset_jobs(_State.lock.directory)  # a sweep's job list (a run's directory has none)
        _State.lock.release()
        _State.lock = None


def _startup() -> tuple[Any, Any]:
    """Load plugins and build the registry once per process (joblib workers too)."""
    if _State.pm is None:
        from memarena.config import check_preset_names, register_configs
        from memarena.plugins import get_plugin_manager
        from memarena.registry import Registry

        pm = get_plugin_manager()
        registry = Registry.from_plugin_manager(pm)
        check_preset_names(pm, registry)
        register_configs(registry)
        _State.pm, _State.registry = pm, registry
    return _State.pm, _State.registry


# ---------------------------------------------------------------------------
# The Hydra task.
# ---------------------------------------------------------------------------


def _prior_record(output_dir: Path) -> RunRecord | None:
    """The record already in ``output_dir`` (None if there is none or it is unreadable)."""
    from memarena.results import RECORD_FILE

    try:
        return _read_prior(output_dir / RECORD_FILE)
    except MemarenaError:
        return None


def _read_prior(path: Path) -> RunRecord | None:
    """The record at ``path``, None if there is none.

    :raises MemarenaError: naming the file, when it is not a record memarena
        can read (truncated, not JSON, wrong types, another schema version):
        such a file is never overwritten, nor taken as a complete run.
    """
    from memarena.results import RunRecord

    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise MemarenaError(f"cannot read the run record {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise MemarenaError(f"{path}: not a valid memarena run record: not UTF-8 at byte {exc.start}") from exc
    try:
        rec = RunRecord.from_json(text, source=str(path))
    except ValueError as exc:
        raise MemarenaError(str(exc)) from exc
    shapes = {
        "rows": isinstance(rec.rows, list) and all(isinstance(r, dict) for r in rec.rows),
        "config": isinstance(rec.config, dict),
        "overrides": isinstance(rec.overrides, list) and all(isinstance(o, str) for o in rec.overrides),
        "label_columns": isinstance(rec.label_columns, list) and all(isinstance(c, str) for c in rec.label_columns),
        "family": isinstance(rec.family, str),
    }
    wrong = [k for k, ok in shapes.items() if not ok]
    if wrong:
        raise MemarenaError(f"{path}: not a valid memarena run record: {', '.join(wrong)} of the wrong type")
    return rec


def _unreadable(exc: MemarenaError) -> MemarenaError:
    return MemarenaError(
        f"{exc}; memarena neither overwrites nor resumes it: move it away, or choose another output directory"
    )


def _refusal(output_dir: Path) -> str:
    return (
        f"{output_dir} already holds a complete run record; pass resume=true to skip complete runs "
        "(for a sweep: the same overrides and hydra.sweep.dir), or choose another output directory "
        "(hydra.run.dir=... or hydra.sweep.dir=...)"
    )


def _task(cfg: Any) -> dict[str, Any]:
    """One Hydra job: run it and write its record.

    In a launcher's worker process, an interrupt (SIGTERM from the main
    process) writes the job's record as ``interrupted`` and ends the worker
    (:mod:`memarena.interrupts`).
    """
    from memarena.interrupts import exit_worker, in_worker, worker_job_signals

    if not in_worker():
        return _run_task(cfg)
    try:
        with worker_job_signals():
            return _run_task(cfg)
    except KeyboardInterrupt as exc:
        exit_worker(exc)
        raise  # not reached: exit_worker ends the process


def _print_interrupted(out: Path) -> None:
    """After an interrupted single run: the summary of the rows it finished, and its record."""
    record = _prior_record(out)
    if record is None:
        return
    if record.rows:
        from memarena.report import report_of

        rep = report_of([(out, record)])
        _print_summary(rep.rows, rep.label_columns, record.family)
    print(f"\nrecord ({record.status}, {len(record.rows)} row(s)): {out / 'memarena-record.json'}")


def _run_task(cfg: Any) -> dict[str, Any]:
    """:func:`_task`'s work.

    In a multirun, a job that fails is recorded as ``failed`` and the sweep
    goes on (the summary lists it, and ``memarena`` exits 1); a single run
    that fails with a memarena error prints one ``memarena: error:`` line and
    exits 2. With ``resume=true`` a job whose output directory holds a
    complete record is skipped; without it, that record is never overwritten.

    :returns: A small picklable summary (launchers such as Ray send it back to
        the driver): ``status``, ``dir``, ``rows`` and ``error``.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        return _job(cfg)
    from memarena.outdir import note_job

    try:
        return _job(cfg)
    finally:  # the sweep's summary lists this job, and only the jobs it lists
        note_job(hc.sweep.dir, hc.runtime.output_dir)


def _job(cfg: Any) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from memarena.run import execute

    _State.task_started = True
    pm, registry = _startup()
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    prior = _prior_record(out)
    if prior is not None and prior.status == "complete":
        if not cfg.get("resume", False):
            print(f"memarena: error: {_refusal(out)}", file=sys.stderr)
            if not multirun:
                raise SystemExit(2)
            return {"status": "refused", "dir": str(out), "rows": 0, "error": _refusal(out)}
        log.info("job %s: complete record in %s; skipped (resume=true)", hc.job.num if multirun else "", out)
        if not multirun:
            print(f"memarena: {out} is complete; skipped (resume=true)")
        return {"status": "skipped", "dir": str(out), "rows": len(prior.rows), "error": None}
    try:
        record = execute(
            cfg,
            out,
            pm=pm,
            registry=registry,
            overrides=list(hc.overrides.task),
            choices=dict(hc.runtime.choices),
        )
    except KeyboardInterrupt:
        if multirun:
            print(f"memarena: job {hc.job.num} interrupted; record in {out}", file=sys.stderr)
        else:
            _print_interrupted(out)
        raise
    except MemarenaError as exc:
        # A user error (exit 2), or a plugin's code that raised during the run (a bug: exit 1, as
        # below); the message names what is wrong, or the plugin; a traceback would bury it.
        if not multirun:
            print(f"memarena: error: {exc}", file=sys.stderr)
            raise SystemExit(1 if _plugin_bug(exc) else 2) from exc
        print(f"memarena: job {hc.job.num} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {"status": "failed", "dir": str(out), "rows": 0, "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:
        # A bug in a plugin (named: the innermost frame of its code) or in memarena: one line, exit 1;
        # the traceback is logged at debug level (hydra.verbose=memarena).
        culprit = pm.culprit(exc, registry)
        what = f"internal error: {type(exc).__name__}: {exc}"
        if culprit is not None:
            what = f"{culprit[0].describe()}: {type(exc).__name__}: {exc} ({culprit[1]})"
        log.debug("traceback of %s", what, exc_info=exc)
        if not multirun:
            print(f"memarena: error: {what}", file=sys.stderr)
            raise SystemExit(1) from exc
        # The record says `failed`; the other jobs of the sweep still run.
        log.error("job %s failed; the sweep goes on", hc.job.num)
        print(f"memarena: job {hc.job.num} failed: {what}", file=sys.stderr)
        return {"status": "failed", "dir": str(out), "rows": 0, "error": f"{type(exc).__name__}: {exc}"}
    if multirun:
        log.info("job %s: %d row(s) -> %s", hc.job.num, len(record.rows), out)
    else:
        from memarena.report import report_of

        rep = report_of([(out, record)])
        _print_summary(rep.rows, rep.label_columns, record.family)
        print(f"\nrecord: {out / 'memarena-record.json'}  ({record.wall_s:.2f} s)")
    return {"status": record.status, "dir": str(out), "rows": len(record.rows), "error": record.error}


def _plugin_bug(exc: MemarenaError) -> bool:
    """Whether a plugin's code raised during the run (exit 1), rather than a bad value being refused (exit 2)."""
    from memarena.errors import InvalidConfigError

    return isinstance(exc, PluginError | CallbackError) and not isinstance(exc.__cause__, InvalidConfigError)


def _summary_columns(rows: Sequence[dict[str, Any]], labels: Sequence[str], family: str) -> list[str]:
    """Label columns, then the family's summary metrics (or every scalar column)."""
    _, registry = _startup()
    try:
        wanted = list(registry.get("family", family).summary_columns)
    except KeyError:
        wanted = []
    cols = [c for c in labels if any(c in r for r in rows)]
    for r in rows:
        cols.extend(
            k
            for k, v in r.items()
            if k not in cols and (v is None or isinstance(v, str | int | float)) and (not wanted or k in wanted)
        )
    if wanted:
        cols = [c for c in cols if c in labels] + [c for c in wanted if c in cols]
    return cols


def _print_summary(rows: Sequence[dict[str, Any]], labels: Sequence[str], family: str) -> None:
    """The summary table; label columns with one value in every row go above it."""
    from memarena.report import format_table

    columns = _summary_columns(rows, labels, family)
    constant = [c for c in columns if c in labels and len(rows) > 1 and len({str(r.get(c)) for r in rows}) == 1]
    if constant:
        print("  ".join(f"{c}: {rows[0].get(c)}" for c in constant))
    print(format_table(rows, [c for c in columns if c not in constant]))


class SummaryCallback(Callback):
    """Claims the output directory when a run or sweep starts; prints a sweep's summary when it ends.

    At the start, the run or sweep directory is claimed (:mod:`memarena.outdir`):
    one in use by another run or sweep is refused, and so is a sweep directory
    that already holds complete records, unless ``resume=true``. At a sweep's
    end: one table per family over its complete jobs, then every job that did
    not complete, with its error; only the jobs this sweep ran (or skipped
    with ``resume=true``) are listed.
    """

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from memarena.results import RECORD_FILE

        run_dir = Path(config.hydra.run.dir)
        _claim(run_dir, sweep=False)
        try:
            _read_prior(run_dir / RECORD_FILE)
        except MemarenaError as exc:
            _release_lock()
            raise _Refused(_unreadable(exc)) from None

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        _release_lock()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from memarena.outdir import reset_jobs
        from memarena.results import find_records

        _State.failed_jobs = 0
        _State.sweep_config = config
        sweep_dir = Path(config.hydra.sweep.dir)
        _claim(sweep_dir, sweep=True)
        reset_jobs(sweep_dir)
        done = []
        for path in find_records(sweep_dir):
            try:
                rec = _read_prior(path)
            except MemarenaError as exc:
                _release_lock()
                raise _Refused(_unreadable(exc)) from None
            if rec is not None and rec.status == "complete":
                done.append(path.parent)
        if config.get("resume", False):
            return
        if done:
            _release_lock()
            raise _Refused(MemarenaError(f"{_refusal(sweep_dir)} ({len(done)} complete job(s))"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from memarena.outdir import jobs_of, reset_jobs
        from memarena.report import family_tables, format_family_tables, report_of, sorted_rows

        sweep_dir = Path(config.hydra.sweep.dir)
        failed = []
        by_family: dict[str, list[tuple[Path, RunRecord]]] = {}
        for job_dir in sorted(jobs_of(sweep_dir)):
            rec = _prior_record(job_dir)
            if rec is None or rec.status != "complete":
                why = "no readable record" if rec is None else f"{rec.status}: {rec.error}"
                failed.append(f"{job_dir}: {why}")
            else:
                by_family.setdefault(rec.family, []).append((job_dir, rec))
        reset_jobs(sweep_dir)
        _release_lock()
        _State.failed_jobs = len(failed)
        reports = [report_of(entries) for entries in by_family.values()]
        if not reports:
            print(f"memarena: no complete runs to summarise in {sweep_dir}", file=sys.stderr)
        for i, rep in enumerate(reports):
            if len(reports) > 1:
                print(f"{'' if i == 0 else chr(10)}family {rep.families[0]}:")
            _print_summary(sorted_rows(rep), rep.label_columns, rep.families[0])
            for line in format_family_tables(family_tables(rep, _startup()[1])):
                print(line)
        n_complete = sum(len(rep.records) for rep in reports)
        print(f"\n{n_complete} complete run(s) in {sweep_dir}")
        if failed:
            print(f"memarena: {len(failed)} job(s) did not complete:", file=sys.stderr)
            for line in failed:
                print(f"  {line}", file=sys.stderr)
        if reports:
            print(f"tables and plots: memarena report {sweep_dir}")


def _one_line(text: str) -> str:
    """Hydra's multi-line messages on one line; an indented list after ``...:`` becomes ``a, b, c``."""
    parts: list[str] = []
    listing = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("Config search path"):
            break  # Hydra's list of search-path entries: noise in a one-line error
        if not line:
            continue
        if parts and (listing or parts[-1].endswith(":")):
            parts[-1] += (", " if listing else " ") + line
            listing = raw.startswith(("\t", "  ")) or listing
        else:
            parts.append(line)
            listing = False
    return "; ".join(parts)


def _config_error(exc: Exception) -> str:
    """One line for a config that does not compose: what, the key, and the component it belongs to."""
    from omegaconf.errors import OmegaConfBaseException

    cause: BaseException | None = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    head = _one_line(str(exc)) if cause is not exc else ""
    if not isinstance(cause, OmegaConfBaseException):
        return head
    msg = str(cause).strip().split("\n", 1)[0]  # the rest repeats full_key and object_type
    where = []
    full_key = getattr(cause, "full_key", None)
    if full_key:
        where.append(f"config key {full_key!r}")
    object_type = getattr(cause, "object_type", None)
    _, registry = _startup()
    owner = next((e for e in registry if object_type is not None and e.cls.Config is object_type), None)
    if owner is not None:
        where.append(f"{owner.group}={owner.name}")
        if full_key and head.startswith("Could not override") and full_key.startswith(f"{owner.group}."):
            return _not_a_parameter(full_key, owner, registry)
    text = f"{head}: {msg}" if head else msg
    text = f"{text} ({', '.join(where)})" if where else text
    key = getattr(cause, "key", None)
    if owner is not None and isinstance(key, str) and "not in" in msg:
        text += _missing_key_hint(registry, owner, key)
    return text


def _config_fields(cls: Any) -> list[str]:
    """A component's config keys (its structured Config's fields, ``_target_`` aside)."""
    import dataclasses

    config = getattr(cls, "Config", None)
    if config is None or not dataclasses.is_dataclass(config):
        return []
    return [f.name for f in dataclasses.fields(config) if not f.name.startswith("_")]


def _missing_key_hint(registry: Any, owner: Any, key: str) -> str:
    """What the selected component takes, and which components of its group (and family) take ``key``."""
    keys = _config_fields(owner.cls)
    hint = f"; {owner.group}={owner.name} takes: {', '.join(keys) or 'no keys'}"
    others = [e for e in registry if e.group == owner.group and e is not owner and key in _config_fields(e.cls)]
    if others:
        families = sorted({str(getattr(e.cls, "family", "")) for e in others} - {""})
        owner_family = getattr(owner.cls, "family", None)
        names = ", ".join(sorted(e.name for e in others))
        if families and owner_family not in families:
            hint += f"; {key!r} is a key of {'/'.join(families)} {owner.group}s ({names})"
        else:
            hint += f"; {owner.group}={names} {'has' if len(others) == 1 else 'have'} it"
    return hint


def _debug_preset_hint(exc: Exception, argv: Sequence[str]) -> str:
    """A debug preset that sets a key the chosen component lacks (a file trace under debug=tiny)."""
    import re

    text = str(exc)
    found = re.search(r"In 'family_debug/(\w+)'.*?full_key: (\w+)\.(\w+)", text, re.DOTALL)
    if found is None or "not in" not in text:
        return ""
    preset, group, key = found.groups()
    chosen = next((a.split("=", 1)[1] for a in argv if a.startswith(f"{group}=")), None)
    what = f"{group}={chosen}" if chosen else f"the chosen {group}"
    return (
        f"; the debug preset family_debug/{preset} sets {group}.{key}, which {what} does not take: "
        f"debug presets shrink the synthetic {group}s only; leave debug=... out with this {group}"
    )


def _not_a_parameter(full_key: str, owner: Any, registry: Any) -> str:
    """An override of a key the selected component lacks: what it takes, which components have the key,
    and, where those are of its own family (a sweep over components whose parameters differ), how to set
    it for those alone.
    """
    group, name = owner.group, owner.name
    leaf = full_key.split(".", 1)[1]
    text = f"could not override {full_key!r}: {group}={name} has no parameter {leaf!r}"
    text += _missing_key_hint(registry, owner, leaf.split(".")[0])
    owner_family = getattr(owner.cls, "family", None)
    same = sorted(
        e.name
        for e in registry
        if e.group == group
        and e is not owner
        and leaf.split(".")[0] in _config_fields(e.cls)
        and getattr(e.cls, "family", None) in (owner_family, None)
    )
    if not same:
        return text
    return (
        f"{text}. '+' or '++' would not add it. To set it while sweeping {group}, sweep the {group} values "
        f"that have it in their own command (memarena -m ... {group}=<those> {full_key}=...), or give the "
        f"setting a {group} preset of its own (DIR/{group}/<name>.yaml holding 'defaults: [{same[0]}]' and "
        f"'{leaf}: <value>') and sweep it with the others: memarena -m --config-dir DIR ... {group}=<name>,{name}"
    )


def _run_hydra(argv: list[str]) -> int:
    import os

    import hydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from memarena.config import search_path_override
    from memarena.interrupts import main_signal_handlers

    pm, _ = _startup()
    if not argv:
        # The bare command runs the default experiment's comparison sweep.
        argv = ["-m"]
    argv = search_path_override(pm, argv)
    app = hydra.main(config_path="conf", config_name="config", version_base="1.3")(_task)
    saved = sys.argv
    sys.argv = [saved[0] if saved else "memarena", *argv]
    _State.failed_jobs = 0
    _State.task_started = False
    _State.sweep_config = None
    # Hydra's errors reach us whole (it would print a trimmed traceback and
    # exit 1): a config that does not compose becomes one `memarena: error:` line.
    user_full_error = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        with main_signal_handlers():
            app()
    except _Refused as refused:
        raise refused.error from None
    except KeyboardInterrupt:
        if _State.sweep_config is not None:  # a sweep: the summary of what finished
            SummaryCallback().on_multirun_end(_State.sweep_config)
        raise
    except (HydraException, OmegaConfBaseException) as exc:
        if user_full_error:
            raise
        raise MemarenaError(_config_error(exc) + _debug_preset_hint(exc, argv)) from exc
    except OSError as exc:
        if user_full_error or _State.task_started:
            raise
        # Hydra could not make (or write into) the run or sweep directory.
        where = exc.filename or "the output directory"
        raise MemarenaError(
            f"cannot create or write the output directory {where}: {exc.strerror or exc} "
            "(choose another with hydra.run.dir=... or, for a sweep, hydra.sweep.dir=...)"
        ) from exc
    finally:
        _release_lock()  # a run or sweep that raised: its directory is free again
        sys.argv = saved
        if user_full_error is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
    return 1 if _State.failed_jobs else 0


# ---------------------------------------------------------------------------
# Subcommands.
# ---------------------------------------------------------------------------


def _cmd_plugins(argv: list[str]) -> int:
    import json

    parser = argparse.ArgumentParser(prog="memarena plugins", description="List plugins and their components.")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    pm, registry = _startup()
    plugins: dict[str, dict[str, Any]] = {}
    for name, info in pm.infos.items():
        plugins[name] = {
            "name": name,
            "module": info.module,
            "distribution": info.distribution,
            "version": info.version,
            "builtin": info.builtin,
            "components": {},
        }
    for entry in registry:
        kind = entry.kind if entry.kind != "method" else f"method/{entry.sub_kind}"
        plugins[entry.plugin.name]["components"].setdefault(kind, []).append(
            {"name": entry.name, "group": entry.group, "summary": entry.cls.summary()}
        )
    if args.json:
        print(json.dumps(list(plugins.values()), indent=2))
        return 0
    for p in plugins.values():
        origin = f"{p['distribution']} {p['version']}" if p["distribution"] else f"module {p['module']}"
        print(f"{p['name']}  ({origin}{', built-in' if p['builtin'] else ''})")
        if not p["components"]:
            print("    (no components)")
        for kind, comps in sorted(p["components"].items()):
            print(f"  {kind}:")
            for c in comps:
                print(f"    {c['group']}={c['name']:<20} {c['summary']}")
    return 0


def _cmd_report(argv: list[str]) -> int:
    from memarena.report import (
        family_tables,
        format_family_tables,
        format_table,
        load_reports,
        sorted_rows,
        write_report,
    )

    parser = argparse.ArgumentParser(prog="memarena report", description="Aggregate memarena run records.")
    parser.add_argument("dir", help="a run or multirun directory (searched recursively for records)")
    parser.add_argument("--out", help="output directory (default: DIR)")
    args = parser.parse_args(argv)
    _, registry = _startup()
    try:
        written = write_report(args.dir, args.out, registry)
    except OSError as exc:  # an unwritable --out (or DIR): one line naming it, not a traceback
        where = args.out if args.out else args.dir
        raise MemarenaError(f"report: cannot write to {where} (choose another with --out): {exc}") from exc
    reports = load_reports(args.dir)
    skipped = [s for rep in reports for s in rep.skipped]
    if skipped:  # on stderr too, not only inside report.md
        print(f"memarena: skipped {len(skipped)} record(s) that are not complete:", file=sys.stderr)
        for path, why in skipped:
            print(f"  {path}: {why}", file=sys.stderr)
    for rep in reports:
        if len(reports) > 1:
            print(f"family {rep.families[0]} ({len(rep.records)} record(s)):")
        print(format_table(sorted_rows(rep), rep.scalar_columns()))
        for line in format_family_tables(family_tables(rep, registry)):
            print(line)
        print()
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    return 0


def _cmd_version() -> int:
    from memarena.results import versions

    for k, v in versions().items():
        print(f"{k} {v}")
    pm, _ = _startup()
    print("plugins:")
    for p in pm.plugin_versions():
        dist = p["distribution"]
        origin = f"{dist} {p['version']}" if dist else f"module {p['module']}, no distribution"
        print(f"  {p['name']} ({origin}{', built-in' if p['builtin'] else ''})")
    return 0


def _print_help() -> int:
    print(USAGE)
    pm, registry = _startup()
    from memarena.config import conf_dir, search_path_dirs

    print("config groups (<group>=<option>):")
    groups: dict[str, set[str]] = {g: set(registry.names(g)) for g in registry.groups()}
    for root in [conf_dir(), *search_path_dirs(pm)]:
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            opts = {f.stem for f in sub.glob("*.yaml")}
            if opts:
                groups.setdefault(sub.name, set()).update(opts)
    for g in sorted(groups):
        if g in ("hydra", "local", "family_debug"):
            continue
        print(f"  {g}: {', '.join(sorted(groups[g]))}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memarena`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args and args[0] == "plugins":
            return _cmd_plugins(args[1:])
        if args and args[0] == "report":
            return _cmd_report(args[1:])
        if args and args[0] in ("-h", "--help", "help"):
            return _print_help()
        if args and args[0] == "--version":
            return _cmd_version()
        return _run_hydra(args)
    except MemarenaError as exc:
        print(f"memarena: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        from memarena.interrupts import exit_code

        print("memarena: interrupted", file=sys.stderr)
        return exit_code(exc)


if __name__ == "__main__":
    # `python -m memarena.app`: run the importable module's main, so that the
    # Hydra callback (memarena.app.SummaryCallback) shares its state.
    from memarena.app import main as _main

    sys.exit(_main())
