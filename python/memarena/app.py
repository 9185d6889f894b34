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
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from memarena.errors import MemarenaError

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
"""


# ---------------------------------------------------------------------------
# Shared start-up: plugins -> registry -> config store.
# ---------------------------------------------------------------------------


class _State:
    pm: Any = None
    registry: Any = None


def _startup() -> tuple[Any, Any]:
    """Load plugins and build the registry once per process (joblib workers too)."""
    if _State.pm is None:
        from memarena.config import register_configs
        from memarena.plugins import get_plugin_manager
        from memarena.registry import Registry

        pm = get_plugin_manager()
        registry = Registry.from_plugin_manager(pm)
        register_configs(registry)
        _State.pm, _State.registry = pm, registry
    return _State.pm, _State.registry


# ---------------------------------------------------------------------------
# The Hydra task.
# ---------------------------------------------------------------------------


def _task(cfg: Any) -> None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from memarena.run import execute

    pm, registry = _startup()
    hc = HydraConfig.get()
    try:
        record = execute(
            cfg,
            Path(hc.runtime.output_dir),
            pm=pm,
            registry=registry,
            overrides=list(hc.overrides.task),
            choices=dict(hc.runtime.choices),
        )
    except MemarenaError as exc:
        # A user error: the message names what is wrong; a traceback would bury it.
        print(f"memarena: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if hc.mode == RunMode.MULTIRUN:
        log.info("job %s: %d row(s) -> %s", hc.job.num, len(record.rows), hc.runtime.output_dir)
        return
    _print_summary(record.rows, record.label_columns, record.family)
    print(f"\nrecord: {Path(hc.runtime.output_dir) / 'memarena-record.json'}  ({record.wall_s:.2f} s)")


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
    """Prints one summary table over all jobs when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from memarena.errors import NoRecordsError
        from memarena.report import load_report, sorted_rows

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            rep = load_report(sweep_dir)
        except NoRecordsError as exc:
            print(f"memarena: no complete runs to summarise ({exc})", file=sys.stderr)
            return
        _print_summary(sorted_rows(rep), rep.label_columns, rep.families[0])
        n_skipped = f", {len(rep.skipped)} incomplete" if rep.skipped else ""
        print(f"\n{len(rep.records)} run(s){n_skipped} in {sweep_dir}")
        print(f"tables and plots: memarena report {sweep_dir}")


def _run_hydra(argv: list[str]) -> int:
    import hydra

    from memarena.config import search_path_override

    pm, _ = _startup()
    if not argv:
        # The bare command runs the default experiment's comparison sweep.
        argv = ["-m"]
    argv = search_path_override(pm, argv)
    app = hydra.main(config_path="conf", config_name="config", version_base="1.3")(_task)
    saved = sys.argv
    sys.argv = [saved[0] if saved else "memarena", *argv]
    try:
        app()
    finally:
        sys.argv = saved
    return 0


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
    from memarena.report import format_table, load_report, sorted_rows, write_report

    parser = argparse.ArgumentParser(prog="memarena report", description="Aggregate memarena run records.")
    parser.add_argument("dir", help="a run or multirun directory (searched recursively for records)")
    parser.add_argument("--out", help="output directory (default: DIR)")
    args = parser.parse_args(argv)
    _, registry = _startup()
    written = write_report(args.dir, args.out, registry)
    rep = load_report(args.dir)
    print(format_table(sorted_rows(rep), rep.scalar_columns()))
    print()
    for kind, path in written.items():
        print(f"wrote {kind}: {path}")
    return 0


def _cmd_version() -> int:
    from memarena.results import versions

    for k, v in versions().items():
        print(f"{k} {v}")
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
    except KeyboardInterrupt:
        print("memarena: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
