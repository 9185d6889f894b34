"""The plugin manager: built-in plugins, entry points and environment switches.

Built-in components are plugins too: the modules in :data:`DEFAULT_PLUGINS`
register through the same hooks a third-party distribution implements.

Environment switches:

``MEMARENA_DISABLE_PLUGIN_AUTOLOAD``
    When set (non-empty), entry points of the ``memarena`` group are not loaded.
``MEMARENA_BLOCK_PLUGINS``
    Comma-separated plugin names (entry-point names or built-in module names)
    that are never registered.
``MEMARENA_PLUGINS``
    Comma-separated importable module names registered as plugins, for plugins
    that are not installed as distributions (like ``PYTEST_PLUGINS``).
``MEMARENA_TRACE_PLUGINS``
    When set, every hook call is traced to stderr.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

import pluggy

from memarena import hookspecs
from memarena.errors import PluginError

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "HookError",
    "PluginInfo",
    "PluginManager",
    "get_plugin_manager",
]

ENTRY_POINT_GROUP = "memarena"

#: Modules holding memarena's built-in hook implementations: the shared hardware
#: backends, then one ``plugin`` module per family (:mod:`memarena.families`).
DEFAULT_PLUGINS: tuple[str, ...] = (
    "memarena.backends.plugin",
    "memarena.families.paging.plugin",
    "memarena.families.serving.plugin",
    "memarena.families.retrieval.plugin",
    "memarena.families.kvcache.plugin",
    "memarena.families.agent.plugin",
    "memarena.families.training.plugin",
)


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    builtin: bool

    def describe(self) -> str:
        """``name (distribution version)`` for messages."""
        if self.distribution:
            return f"plugin {self.name!r} (distribution {self.distribution} {self.version})"
        return f"plugin {self.name!r} (module {self.module})"

    def as_dict(self) -> dict[str, Any]:
        """``name``, ``distribution``, ``version``, ``module`` and ``builtin``, for records and ``--version``."""
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "module": self.module,
            "builtin": self.builtin,
        }


@dataclass(frozen=True)
class HookError:
    """An exception one plugin's hook implementation raised."""

    plugin: PluginInfo
    hook: str
    error: BaseException

    def __str__(self) -> str:
        return f"{self.plugin.describe()}: {self.hook}() raised {type(self.error).__name__}: {self.error}"


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(ENTRY_POINT_GROUP)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}

    def register_plugin(self, plugin: object, info: PluginInfo) -> None:
        """Register ``plugin`` unless blocked, remembering ``info``."""
        if self.is_blocked(info.name):
            return
        try:
            hash(plugin)  # hooks are called per plugin (pm.subset_hook_caller keeps plugins in a set)
        except TypeError:
            raise PluginError(
                f"{info.describe()} could not be registered: the plugin object must be hashable "
                f"({type(plugin).__name__} is not; a dataclass plugin needs eq=False or frozen=True)"
            ) from None
        try:
            self.register(plugin, name=info.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"{info.describe()} could not be registered: {exc}") from exc
        self.infos[info.name] = info

    def info(self, name: str) -> PluginInfo:
        """Origin of plugin ``name`` (built-in, entry point or module)."""
        return self.infos.get(name) or PluginInfo(name, name, None, None, False)

    def plugin_versions(self) -> list[dict[str, Any]]:
        """Every registered plugin's name, distribution and version, in registration order."""
        return [self.info(name).as_dict() for name, _ in self.list_name_plugin() if name is not None]

    def per_plugin(self, hook_name: str, *, call_order: bool = False) -> list[tuple[PluginInfo, pluggy.HookCaller]]:
        """One hook caller per plugin that implements ``hook_name``.

        Each caller goes through pluggy with every other plugin's plain
        implementation left out (hook wrappers stay), so tracing
        (``MEMARENA_TRACE_PLUGINS``) and wrappers see every call, while an
        exception or a bad return value belongs to exactly one plugin.

        :param hook_name: A ``memarena_*`` hook.
        :param call_order: Order the callers as pluggy calls implementations
            (last registered first, ``tryfirst``/``trylast`` honoured) instead
            of in registration order.
        :returns: ``(plugin, caller)`` pairs; calling a caller returns a list
            of at most one result.
        """
        hook = getattr(self.hook, hook_name)
        plain = [i for i in hook.get_hookimpls() if not (i.hookwrapper or i.wrapper)]
        callers = [
            (
                self.info(impl.plugin_name),
                self.subset_hook_caller(hook_name, [o.plugin for o in plain if o is not impl]),
            )
            for impl in plain
        ]
        return callers[::-1] if call_order else callers

    def notify(self, hook_name: str, **kwargs: Any) -> list[HookError]:
        """Call an observer hook on every plugin; one plugin's exception does not stop the others.

        :returns: The exceptions raised (``KeyboardInterrupt`` and other
            non-``Exception`` errors propagate), each with its plugin.
        """
        errors: list[HookError] = []
        for info, caller in self.per_plugin(hook_name, call_order=True):
            try:
                caller(**kwargs)
            except Exception as exc:
                errors.append(HookError(info, hook_name, exc))
        return errors

    def plugin_of(self, exc: BaseException, hook_name: str) -> PluginInfo | None:
        """The plugin whose ``hook_name`` implementation raised ``exc`` (from its traceback), if any."""
        codes = {}
        for impl in getattr(self.hook, hook_name).get_hookimpls():
            code = getattr(impl.function, "__code__", None)
            if code is not None:
                codes[code] = impl.plugin_name
        found = None
        tb: TracebackType | None = exc.__traceback__
        while tb is not None:
            found = codes.get(tb.tb_frame.f_code, found)
            tb = tb.tb_next
        return self.info(found) if found is not None else None

    def culprit(self, exc: BaseException, registry: Iterable[Any] = ()) -> tuple[PluginInfo, str] | None:
        """The third-party plugin whose code raised ``exc``, and where (``at FILE:LINE in QUALNAME``).

        The deepest frame of the traceback in a plugin's package (the
        top-level package of its module: ``pkg`` for ``pkg.plugin`` or
        ``pkg.plugin:obj``) or in the package of a component it registered
        (``registry``'s entries). None when no frame is a plugin's: the error
        is memarena's own, a built-in plugin's or a dependency's.
        """

        def top(module: str) -> str:
            return module.split(":", 1)[0].split(".", 1)[0]

        packages = {top(info.module): info for info in self.infos.values() if not info.builtin}
        for entry in registry:
            if not entry.plugin.builtin:
                packages.setdefault(top(entry.cls.__module__), entry.plugin)
        found = None
        tb: TracebackType | None = exc.__traceback__
        while tb is not None:
            owner = packages.get(top(str(tb.tb_frame.f_globals.get("__name__", ""))))
            if owner is not None:
                code = tb.tb_frame.f_code
                found = (owner, f"at {code.co_filename}:{tb.tb_lineno} in {code.co_qualname}")
            tb = tb.tb_next
        return found


def _dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    return dist.metadata["Name"], dist.version


def _load_entry_points(pm: PluginManager) -> None:
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist, version = _dist_of(ep)
        info = PluginInfo(ep.name, ep.value, dist, version, builtin=False)
        if pm.is_blocked(ep.name):
            continue
        if ep.name in pm.infos:
            other = pm.infos[ep.name]
            raise PluginError(f"{info.describe()} uses the same plugin name as {other.describe()}")
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # SystemExit: a plugin calling sys.exit() at import
            raise PluginError(f"{info.describe()} failed to import {ep.value!r}: {type(exc).__name__}: {exc}") from exc
        pm.register_plugin(plugin, info)


def _import_module(name: str, what: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except (Exception, SystemExit) as exc:  # SystemExit: a plugin calling sys.exit() at import
        raise PluginError(f"{what} {name!r} failed to import: {type(exc).__name__}: {exc}") from exc


def _split_env(var: str) -> list[str]:
    return [s.strip() for s in os.environ.get(var, "").split(",") if s.strip()]


def get_plugin_manager(*, autoload: bool | None = None, plugins: Iterable[object] = ()) -> PluginManager:
    """Create a fresh plugin manager (a factory, not a module global).

    :param autoload: Load ``memarena`` entry points. ``None`` means: unless
        ``MEMARENA_DISABLE_PLUGIN_AUTOLOAD`` is set.
    :param plugins: Extra plugin objects (modules or instances) to register,
        as tests do with in-test plugin classes.
    :returns: A manager with built-ins, entry points and extra plugins
        registered, and every ``memarena_*`` implementation validated.
    :raises PluginError: A plugin failed to import, or implements a hook
        that does not exist (a typo would otherwise be ignored silently).
    """
    pm = PluginManager()
    for name in _split_env("MEMARENA_BLOCK_PLUGINS"):
        pm.set_blocked(name)
    for modname in DEFAULT_PLUGINS:
        module = _import_module(modname, "built-in plugin")
        pm.register_plugin(module, PluginInfo(modname, modname, "memarena", _memarena_version(), builtin=True))
    if autoload is None:
        autoload = not os.environ.get("MEMARENA_DISABLE_PLUGIN_AUTOLOAD")
    if autoload:
        _load_entry_points(pm)
    for modname in _split_env("MEMARENA_PLUGINS"):
        module = _import_module(modname, "plugin module from MEMARENA_PLUGINS")
        pm.register_plugin(module, PluginInfo(modname, modname, *_dist_of_module(modname), builtin=False))
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        modname = plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__module__
        pm.register_plugin(plugin, PluginInfo(name, modname, *_dist_of_module(modname), builtin=False))
    if os.environ.get("MEMARENA_TRACE_PLUGINS"):
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) or type(exc.plugin).__name__
        raise PluginError(f"{pm.info(name).describe()}: {exc}") from exc
    return pm


def _dist_of_module(modname: str) -> tuple[str | None, str | None]:
    """The installed distribution (name, version) whose files include module ``modname``, if one does."""
    module = sys.modules.get(modname)
    path = getattr(module, "__file__", None)
    if not path:
        return None, None
    target = os.path.realpath(path)
    for dist_name in importlib.metadata.packages_distributions().get(modname.split(".", 1)[0], []):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            dist = importlib.metadata.distribution(dist_name)
            if any(os.path.realpath(str(dist.locate_file(f))) == target for f in dist.files or ()):
                return dist.metadata["Name"], dist.version
    return None, None


def _memarena_version() -> str:
    from memarena import __version__

    return __version__
