"""One run: the context a family works in, and how a run is executed.

:func:`execute` is what ``memarena``'s Hydra task calls for every job: it
builds the :class:`Run`, calls the family, applies derived metrics to each
row, and writes the run record — ``complete``, or ``interrupted`` on Ctrl-C
or SIGTERM, or ``failed`` — atomically, so no half record is ever left.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from memarena.api import Family, Metric
from memarena.errors import CallbackError, InvalidConfigError, MemarenaError, PluginError
from memarena.resources import check_memory
from memarena.results import RunRecord, host_info, now_iso, versions, write_record

if TYPE_CHECKING:
    from tqdm import tqdm

    from memarena.plugins import HookError, PluginManager
    from memarena.registry import Registry

__all__ = ["Interrupted", "Run", "execute"]

log = logging.getLogger("memarena")


class Interrupted(KeyboardInterrupt):
    """The run received SIGTERM (Ctrl-C raises KeyboardInterrupt itself).

    :param signum: The signal received; ``memarena`` exits with 128 + it.
    """

    def __init__(self, *args: object, signum: int = signal.SIGTERM) -> None:
        super().__init__(*args)
        self.signum = int(signum)


class Run:
    """What a family sees: the config, components, output directory and hooks.

    :param config: The composed config (read-only for families).
    :param registry: Every registered component.
    :param pm: The plugin manager (lifecycle hooks go through it).
    :param output_dir: The run directory; the record is written there.
    :param choices: The option chosen in each config group (Hydra's
        ``runtime.choices``), so rows can name presets such as ``s3fifo_small``.
    """

    def __init__(
        self,
        config: DictConfig,
        registry: Registry,
        pm: PluginManager,
        output_dir: Path,
        choices: Mapping[str, str | None] | None = None,
    ) -> None:
        self.config = config
        self.choices = {k: v for k, v in (choices or {}).items() if v is not None}
        self.registry = registry
        self.pm = pm
        self.output_dir = Path(output_dir)
        self.rows: list[dict[str, Any]] = []
        self.family_name = ""
        self.hook_errors: dict[tuple[str, str], tuple[str, int]] = {}
        #: The metrics of the run's family, each with the plugin that registered it.
        self._metrics: list[tuple[Metric, str]] = []
        self.seed = _int_key(config, "seed", 0, 0, 2**64 - 1)
        progress = config.get("progress")
        if progress is not None and not isinstance(progress, bool):
            raise InvalidConfigError(f"config key 'progress' must be true, false or null, got {progress!r}")
        self.threads = _int_key(config, "threads", 0, 0, 1 << 16) or os.cpu_count() or 1

    # -- components --------------------------------------------------------

    def component(self, group: str, **kwargs: Any) -> Any:
        """Instantiate the component configured under ``group``.

        :param group: Config group (``policy``, ``workload``, ``backend``...).
        :param kwargs: Extra constructor arguments (e.g. ``capacity``).
        :raises InvalidConfigError: the group is not set, or a value is
            rejected; the message names the config key.
        """
        return self.factory(group)(**kwargs)

    def factory(self, group: str) -> functools.partial[Any]:
        """A partial of the component under ``group``, for repeated construction."""
        from hydra.errors import InstantiationException
        from hydra.utils import instantiate

        node = self.config.get(group)
        if node is None:
            raise InvalidConfigError(f"config key {group!r} is not set; choose one with {group}=<name>")
        try:
            factory = instantiate(node, _partial_=True)
        except InstantiationException as exc:
            raise InvalidConfigError(f"config key {group!r}: {exc}") from exc
        if not isinstance(factory, functools.partial):
            raise InvalidConfigError(f"config key {group!r} did not describe a component (no _target_)")
        return _ConfigKeyErrors(group, factory)

    def label(self, group: str, default: str) -> str:
        """The option chosen for ``group`` (a preset name where one was used), else ``default``."""
        return self.choices.get(group, default)

    def has(self, group: str) -> bool:
        """Whether ``group`` is set in the config."""
        return self.config.get(group) is not None

    # -- people --------------------------------------------------------------

    def progress(self, total: int | None, desc: str, unit: str = "it") -> tqdm[Any]:
        """A progress bar on stderr; off when stderr is not a TTY or ``progress=false``."""
        from tqdm import tqdm

        setting = self.config.get("progress")
        disable = (not sys.stderr.isatty()) if setting is None else not bool(setting)
        return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=disable, leave=False, file=sys.stderr)

    # -- results -------------------------------------------------------------

    def emit(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """Record one result row: add derived metrics, tell the plugins, keep it."""
        full = dict(row)
        for metric, plugin in self._metrics:
            try:
                extra = metric.compute(self, full)
            except MemarenaError:
                raise
            except Exception as exc:  # a plugin's bug: name the plugin, not only a traceback
                raise PluginError(f"{plugin}: metric {metric.name!r} raised {type(exc).__name__}: {exc}") from exc
            clash = sorted(set(extra) & set(full))
            if clash:
                raise MemarenaError(f"metric {metric.name!r} computed columns that already exist: {', '.join(clash)}")
            full.update(extra)
        self.rows.append(full)
        # Observers get a read-only copy: a hook cannot rewrite what is recorded.
        self._notify("memarena_run_result", row=MappingProxyType(copy.deepcopy(full)))
        return full

    def _notify(self, hook_name: str, **kwargs: Any) -> None:
        """Call an observer hook on every plugin; log and keep what raised."""
        for err in self.pm.notify(hook_name, run=self, **kwargs):
            self._hook_error(err)

    def _hook_error(self, err: HookError) -> None:
        key = (err.plugin.name, err.hook)
        first, count = self.hook_errors.get(key, (str(err), 0))
        self.hook_errors[key] = (first, count + 1)
        if count == 0:  # once per plugin and hook: an observer may fail on every row
            # One line naming the plugin; its traceback for the plugin's author with hydra.verbose=memarena.
            log.error("%s (ignored: observers do not change a run's outcome)", err)
            log.debug("traceback of %s", err, exc_info=err.error)

    def hook_error_lines(self) -> list[str]:
        """One line per plugin hook that raised: its first error, and how often it raised."""
        return [msg + (f" ({n} times)" if n > 1 else "") for msg, n in self.hook_errors.values()]

    def _select_metrics(self) -> None:
        for entry in self.registry:
            cls = entry.cls
            if entry.kind == "metric" and issubclass(cls, Metric) and self.family_name in cls.families:
                self._metrics.append((cls(), entry.plugin.describe()))


class _ConfigKeyErrors(functools.partial[Any]):
    """A partial whose construction errors name the config group."""

    def __new__(cls, group: str, inner: functools.partial[Any]) -> _ConfigKeyErrors:
        self = super().__new__(cls, inner.func, *inner.args, **inner.keywords)
        self.group = group  # type: ignore[attr-defined]
        return self

    def __call__(self, /, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except (ValueError, TypeError, OverflowError, InvalidConfigError) as exc:
            name = getattr(self.func, "name", getattr(self.func, "__name__", "?"))
            raise InvalidConfigError(f"config key {self.group!r} ({self.group}={name}): {exc}") from exc  # type: ignore[attr-defined]


def _container(config: DictConfig) -> dict[str, Any]:
    try:
        return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
    except Exception:  # an unresolvable interpolation must not hide the run's own error
        return OmegaConf.to_container(config, resolve=False)  # type: ignore[return-value]


def _int_key(config: DictConfig, key: str, default: int, lo: int, hi: int) -> int:
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise InvalidConfigError(f"config key {key!r} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


def _numbers(node: Any, path: str = "") -> Iterator[tuple[str, int | float]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _numbers(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield path, node


def out_of_range_error(config: DictConfig, choices: Mapping[str, str], exc: OverflowError) -> InvalidConfigError:
    """An :class:`InvalidConfigError` naming the config keys whose numbers ``exc`` could be about.

    The core takes 64-bit integers: a negative value where it wants an
    unsigned one, or one of magnitude 2**63 or more, cannot cross. The keys
    holding such a number are named, with the component chosen for their group.
    """
    import re

    text = " ".join([str(exc), *getattr(exc, "__notes__", ())])
    negative = "negative" in text
    # numpy names the narrower type it could not hold ("out of bounds for uint32").
    narrow = re.search(r"out of bounds for (u?)int(8|16|32|64)\b", text)
    bits = 63 if narrow is None else int(narrow.group(2)) - (0 if narrow.group(1) else 1)
    numbers = _numbers(_container(config))
    suspects = [(key, value) for key, value in numbers if (value < 0 if negative else abs(value) >= 2**bits)]
    if not suspects:
        return InvalidConfigError(f"a config value is out of range for memarena's core ({text})")

    def name(key: str) -> str:
        group = key.split(".", 1)[0].split("[", 1)[0]
        return f"{key!r} ({group}={choices[group]})" if group in choices and "." in key else repr(key)

    keys = ", ".join(f"{name(k)} = {v:g}" if isinstance(v, float) else f"{name(k)} = {v}" for k, v in suspects)
    bound = "must not be negative" if negative else f"must be below 2**{bits}"
    return InvalidConfigError(f"config key {keys}: out of range, {bound} ({text})")


def _changed(record: RunRecord, written: RunRecord) -> bool:
    """Whether ``record`` differs from ``written`` (as JSON: NaN equals NaN there)."""
    try:
        return record.to_json() != written.to_json()
    except Exception:  # a hook put something unserialisable in it
        return True


def _configure(pm: PluginManager, config: DictConfig) -> None:
    """Fire ``memarena_configure`` (historic); an exception names the plugin that raised it."""
    try:
        pm.hook.memarena_configure.call_historic(kwargs={"config": config})
    except Exception as exc:
        info = pm.plugin_of(exc, "memarena_configure")
        who = info.describe() if info else "a plugin"
        raise PluginError(f"{who}: memarena_configure() raised {type(exc).__name__}: {exc}") from exc


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into :class:`Interrupted` while the block runs (main thread only)."""
    import threading

    if threading.current_thread() is not threading.main_thread() or callable(signal.getsignal(signal.SIGTERM)):
        # (A Python handler is there already: the memarena command's, which
        # also ends its workers, or a worker's, which interrupts a job once.)
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Interrupted(f"received signal {signum}", signum=signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _check_backend(run: Run, family: Family) -> None:
    """The selected backend has what the family declares it needs (:meth:`Family.backend_requirements`)."""
    from memarena.api import HardwareBackend

    backend = run.component("backend")
    if not isinstance(backend, HardwareBackend):
        raise InvalidConfigError(f"config key 'backend' built {type(backend).__name__}, not a memarena HardwareBackend")
    needs = family.backend_requirements()
    try:
        backend.check(needs, f"family {family.name!r}")
    except InvalidConfigError as exc:
        # A requirement the family took from one of its own keys (a tier name, a dtype):
        # that key may be what is wrong, not the backend.
        names = {t for t in needs.tiers if t not in {x.name for x in backend.tiers}}
        names |= {d for d in needs.peak_flops if d not in backend.peak_flops}
        config = getattr(family, "config", None)
        fields = dataclasses.fields(config) if dataclasses.is_dataclass(config) else ()
        values = {f.name: getattr(config, f.name) for f in fields}
        keys = [f"'family.{k}' = {v!r}" for k, v in values.items() if isinstance(v, str) and v in names]
        if not keys:
            raise
        raise InvalidConfigError(f"{exc}; set by config key {', '.join(keys)}") from exc


def execute(
    config: DictConfig,
    output_dir: Path,
    *,
    pm: PluginManager,
    registry: Registry,
    overrides: list[str],
    choices: Mapping[str, str | None] | None = None,
) -> RunRecord:
    """Run the family ``config.family`` selects and write the run record.

    :returns: The complete record.
    :raises KeyboardInterrupt: after writing an ``interrupted`` record.
    :raises Exception: whatever the family raised, after writing a ``failed`` record.
    """
    started, t0 = now_iso(), time.perf_counter()
    status, error = "failed", None
    run: Run | None = None
    family: Family | None = None
    try:
        with sigterm_as_interrupt():
            run = Run(config, registry, pm, output_dir, choices)
            _configure(pm, config)  # before any component is built, as the hook's doc says
            family = run.component("family")
            if not isinstance(family, Family):
                raise InvalidConfigError(f"config key 'family' built {type(family).__name__}, not a memarena Family")
            run.family_name = family.name
            if run.has("backend"):
                _check_backend(run, family)
            run._select_metrics()
            check_memory(run, family)  # before anything big is built: Family.estimate_memory
            run._notify("memarena_run_start")
            try:
                family.run(run)
            except OverflowError as exc:  # a number the core cannot hold: name the config key
                raise out_of_range_error(config, run.choices, exc) from exc
            except CallbackError as exc:  # names the component and the call; add the plugin it came from
                culprit = pm.culprit(exc.__cause__, registry) if exc.__cause__ else None
                if culprit is None:
                    raise
                info, where = culprit
                # Still a CallbackError whose __cause__ is what the callback raised.
                raise CallbackError(f"{exc} ({info.describe()}, {where})") from exc.__cause__
            status = "complete"
    except KeyboardInterrupt as exc:
        status, error = "interrupted", f"{type(exc).__name__}: {exc}"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        culprit = None if isinstance(exc, MemarenaError) else pm.culprit(exc, registry)
        if culprit is not None:  # a plugin's code raised: the record names it (app.py prints the same)
            error += f" ({culprit[0].describe()}, {culprit[1]})"
        raise
    finally:
        rows = run.rows if run is not None else []
        record = RunRecord(
            status=status,
            family=run.family_name if run is not None else "",
            rows=rows,
            config=_container(config),
            overrides=list(overrides),
            seed=run.seed if run is not None else 0,
            versions=versions(),
            host=host_info(),
            started_at=started,
            finished_at=now_iso(),
            wall_s=time.perf_counter() - t0,
            error=error,
            label_columns=list(family.label_columns) if family else [],
            plugins=pm.plugin_versions(),
            hook_errors=run.hook_error_lines() if run is not None else [],
        )
        try:
            path = write_record(output_dir, record)
        except OSError as exc:  # the run directory went away, or is full or read-only
            raise MemarenaError(f"cannot write the run record to {output_dir}: {exc}") from exc
        if status != "complete":
            log.warning("run %s; partial record (%d rows) written to %s", status, len(rows), path)
        if run is not None:
            n_before = len(run.hook_errors)
            # The hooks get the record itself (the object execute returns), but it is final:
            # whatever a hook changes in it is undone, so what is returned and any rewrite
            # below hold the values written.
            written = copy.deepcopy(record)
            run._notify("memarena_run_finish", record=record)
            if _changed(record, written):
                log.error("a memarena_run_finish hook changed the run record; the change was undone")
                record.__dict__.update(copy.deepcopy(written).__dict__)
            if len(run.hook_errors) != n_before:  # the record on disk names every hook error
                record.hook_errors = run.hook_error_lines()
                write_record(output_dir, record)
    return record
