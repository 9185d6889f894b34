"""Compose memarena configs outside the command line (tests, notebooks).

The packaged config tree is ``memarena/conf`` (in a checkout, the top-level
``conf`` is a link to it); plugins add their own trees through
``memarena_config_search_path``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from memarena.plugins import PluginManager

__all__ = ["compose", "conf_dir", "plugin_search_path", "search_path_dirs", "search_path_override"]


def conf_dir() -> Path:
    """The packaged config directory."""
    return Path(__file__).resolve().parent.parent / "conf"


def plugin_search_path(pm: PluginManager) -> list[str]:
    """Search-path entries from every plugin, in registration order, deduplicated."""
    out: list[str] = []
    for entries in reversed(pm.hook.memarena_config_search_path()):
        for entry in entries or ():
            if not isinstance(entry, str):
                raise TypeError(f"memarena_config_search_path must return strings, got {entry!r}")
            if entry not in out:
                out.append(entry)
    return out


def search_path_dirs(pm: PluginManager) -> list[Path]:
    """The plugins' ``pkg://`` and ``file://`` search-path entries as directories (for listings)."""
    import importlib.resources

    out: list[Path] = []
    for entry in plugin_search_path(pm):
        scheme, _, rest = entry.partition("://")
        if scheme == "file":
            path = Path(rest)
        elif scheme == "pkg":
            try:
                path = Path(str(importlib.resources.files(rest)))
            except (ModuleNotFoundError, TypeError):
                continue
        else:
            continue
        if path.is_dir():
            out.append(path)
    return out


def search_path_override(pm: PluginManager, overrides: Sequence[str] = ()) -> list[str]:
    """Return ``overrides`` with the plugins' search paths added to ``hydra.searchpath``.

    A user's own ``hydra.searchpath=[...]`` override is kept and extended.
    """
    paths = plugin_search_path(pm)
    if not paths:
        return list(overrides)
    out, user = [], []
    for o in overrides:
        key = o.split("=", 1)[0].lstrip("+~")
        if key == "hydra.searchpath":
            value = o.split("=", 1)[1].strip()
            user = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        else:
            out.append(o)
    merged = user + [p for p in paths if p not in user]
    out.append("hydra.searchpath=[" + ",".join(merged) + "]")
    return out


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
    register_configs(Registry.from_plugin_manager(pm))
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=search_path_override(pm, overrides))
