"""Compose memarena configs outside the command line (tests, notebooks).

The packaged config tree is ``memarena/conf`` (in a checkout, the top-level
``conf`` is a link to it); plugins add their own trees through
``memarena_config_search_path``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

    from omegaconf import DictConfig

    from memarena.plugins import PluginManager
    from memarena.registry import Registry

__all__ = [
    "check_preset_names",
    "compose",
    "conf_dir",
    "plugin_search_path",
    "search_path_dirs",
    "search_path_override",
]


def conf_dir() -> Path:
    """The packaged config directory."""
    return Path(__file__).resolve().parent.parent / "conf"


def plugin_search_path(pm: PluginManager) -> list[str]:
    """Search-path entries from every plugin, in registration order, deduplicated.

    :raises PluginError: a plugin's hook raised or returned something that
        is not a list of strings (the message names the plugin).
    """
    out: list[str] = []
    for info, caller in pm.per_plugin("memarena_config_search_path"):
        out.extend(e for e in _entries(info, caller) if e not in out)
    return out


def _entries(info: Any, caller: Any) -> list[str]:
    """One plugin's search-path entries; a hook that raises or returns a non-list is a PluginError naming it."""
    from memarena.errors import PluginError

    try:
        results = caller()
    except Exception as exc:
        raise PluginError(
            f"{info.describe()}: memarena_config_search_path() raised {type(exc).__name__}: {exc}"
        ) from exc
    out: list[str] = []
    for entries in results:
        if not isinstance(entries, list | tuple) or not all(isinstance(e, str) for e in entries):
            raise PluginError(
                f"{info.describe()}: memarena_config_search_path() must return a list of strings, got {entries!r}"
            )
        out.extend(entries)
    return out


def _search_dir(entry: str) -> Traversable | None:
    """The directory a ``pkg://`` or ``file://`` search-path entry names (None if it cannot be read)."""
    import importlib.resources

    try:
        if entry.startswith("pkg://"):
            root = importlib.resources.files(entry[len("pkg://") :].replace("/", "."))
        elif entry.startswith("file://"):
            root = Path(entry[len("file://") :])
        else:
            return None
        return root if root.is_dir() else None
    except (ImportError, TypeError, ValueError, OSError):
        return None  # Hydra reports a search path it cannot read


def search_path_dirs(pm: PluginManager) -> list[Path]:
    """The plugins' readable ``pkg://`` and ``file://`` search-path entries, as directories (for listings)."""
    return [Path(str(d)) for d in map(_search_dir, plugin_search_path(pm)) if d is not None]


def check_preset_names(pm: PluginManager, registry: Registry) -> None:
    """Refuse a plugin YAML preset named like a registered component of its group.

    Hydra would see two configs ``<group>/<name>`` (the component's structured
    config and the YAML) and silently use one, or fail with an unrelated
    message; a preset must have a name of its own.

    :raises PluginError: naming the plugin, the preset and the component's provider.
    """
    from memarena.errors import PluginError

    for info, caller in pm.per_plugin("memarena_config_search_path"):
        for entry in _entries(info, caller):
            root = _search_dir(entry)
            if root is None:
                continue
            for group in registry.groups():
                sub = root / group
                if not sub.is_dir():
                    continue
                for f in sorted(sub.iterdir(), key=lambda t: t.name):
                    name = f.name.removesuffix(".yaml")
                    if f.name.endswith(".yaml") and name in registry.names(group):
                        owner = registry.entry(group, name).plugin
                        raise PluginError(
                            f"{info.describe()}: its config preset {group}/{f.name} (search path {entry}) "
                            f"has the name of the registered component {group}={name} from "
                            f"{owner.describe()}; give the preset a name of its own"
                        )


def _override_span(argv: Sequence[str]) -> tuple[int, int]:
    """Where the overrides sit in a Hydra command line: ``argv[start:stop]``.

    Hydra's parser takes the overrides as one run of positional arguments
    among its flags (``--cfg job``, ``-m``, ``--info``...); the run is found by
    parsing ``argv`` with that parser. Without overrides the span is empty at
    the front (before any flag, so a flag with an optional value such as
    ``--info`` cannot take what is inserted there).
    """
    import contextlib
    import io

    try:
        from hydra._internal.utils import get_args_parser  # the parser hydra.main uses
    except ImportError:  # a Hydra without it: plain overrides still work
        return len(argv), len(argv)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            parsed, _ = get_args_parser().parse_known_args(list(argv))
    except SystemExit:  # Hydra will report the same error itself
        return len(argv), len(argv)
    overrides = list(parsed.overrides or [])
    n = len(overrides)
    if n == 0:
        return 0, 0
    for start in range(len(argv) - n + 1):
        if list(argv[start : start + n]) == overrides:
            return start, start + n
    return len(argv), len(argv)


def search_path_override(pm: PluginManager, argv: Sequence[str] = ()) -> list[str]:
    """Return ``argv`` with the plugins' search paths added to ``hydra.searchpath``.

    ``argv`` is a Hydra command line: overrides, possibly among Hydra's flags.
    The ``hydra.searchpath=[...]`` override joins the other overrides (after
    them), so a flag after the overrides (``--cfg job``, ``-m``, ``--info``)
    still parses. A user's own ``hydra.searchpath=[...]`` override is kept
    and extended.
    """
    paths = plugin_search_path(pm)
    if not paths:
        return list(argv)
    start, stop = _override_span(argv)
    out, user = [], []
    for o in argv[start:stop]:
        key = o.split("=", 1)[0].lstrip("+~")
        if key == "hydra.searchpath":
            value = o.split("=", 1)[1].strip()
            user = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        else:
            out.append(o)
    merged = user + [p for p in paths if p not in user]
    return [*argv[:start], *out, "hydra.searchpath=[" + ",".join(merged) + "]", *argv[stop:]]


def compose(
    overrides: Sequence[str] = (), *, pm: PluginManager | None = None, config_name: str = "config"
) -> DictConfig:
    """Compose the memarena config with ``overrides``, as the CLI would.

    :param overrides: Hydra overrides, e.g. ``["experiment=paging", "policy=arc"]``.
    :param pm: Plugin manager (default: a fresh one with autoload).
    :param config_name: Primary config name.
    :returns: The composed config (hydra node removed).
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from memarena.plugins import get_plugin_manager
    from memarena.registry import Registry

    from .store import register_configs

    pm = pm or get_plugin_manager()
    registry = Registry.from_plugin_manager(pm)
    check_preset_names(pm, registry)
    register_configs(registry)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=search_path_override(pm, overrides))
