"""The component registry, built from the plugins' registration hooks.

Core code asks the :class:`Registry` for components; it never calls
``pm.hook.<name>`` directly. The registry validates what each plugin
returns and refuses duplicates, naming both providers, so a broken plugin
stops start-up with a message that names it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from memarena.api import KINDS, Component
from memarena.errors import PluginError, UnknownComponentError

if TYPE_CHECKING:
    from memarena.plugins import PluginInfo, PluginManager

__all__ = ["REGISTRATION_HOOKS", "Entry", "Registry"]

#: Registration hook name -> component kind it returns.
REGISTRATION_HOOKS: dict[str, str] = {
    "memarena_register_methods": "method",
    "memarena_register_backends": "backend",
    "memarena_register_agent_memories": "agent_memory",
    "memarena_register_indexes": "index",
    "memarena_register_embedders": "embedder",
    "memarena_register_workloads": "workload",
    "memarena_register_metrics": "metric",
    "memarena_register_families": "family",
}

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class Entry:
    """One registered component and the plugin that provided it."""

    cls: type[Component]
    plugin: PluginInfo

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def group(self) -> str:
        return self.cls.config_group

    @property
    def sub_kind(self) -> str | None:
        return getattr(self.cls, "sub_kind", None)


class Registry:
    """Every component, by config group and name.

    Invariant: ``(config_group, name)`` is unique across all plugins.
    """

    def __init__(self) -> None:
        self._by_group: dict[str, dict[str, Entry]] = {}

    @classmethod
    def from_plugin_manager(cls, pm: PluginManager) -> Registry:
        """Call every registration hook implementation and validate its result.

        :raises PluginError: a hook returned something that is not a list of
            valid component classes of its kind, or a name is registered twice.
        """
        reg = cls()
        for hook_name, kind in REGISTRATION_HOOKS.items():
            # Registration order: built-ins, then entry points, then extras. Each
            # plugin's implementation is called through pluggy on its own, so
            # tracing and hook wrappers see the call and a bad result names one plugin.
            for info, caller in pm.per_plugin(hook_name):
                try:
                    results = caller()
                except Exception as exc:
                    raise PluginError(f"{info.describe()}: {hook_name}() raised {type(exc).__name__}: {exc}") from exc
                for result in results:  # one, or none where the implementation returned None
                    if not isinstance(result, list | tuple):
                        raise PluginError(
                            f"{info.describe()}: {hook_name}() must return a list of classes, "
                            f"got {type(result).__name__}"
                        )
                    for item in result:
                        reg.add(item, kind, info, hook_name)
        return reg

    def add(self, item: object, kind: str, info: PluginInfo, hook_name: str = "") -> None:
        """Validate and add one component class provided by ``info``."""
        where = f"{info.describe()}: {hook_name}()" if hook_name else info.describe()
        base = KINDS[kind]
        if not (isinstance(item, type) and issubclass(item, base)):
            raise PluginError(f"{where} returned {item!r}, which is not a subclass of memarena.api.{base.__name__}")
        name = getattr(item, "name", None)
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise PluginError(f"{where}: {item.__qualname__}.name must be a snake_case string, got {name!r}")
        group = getattr(item, "config_group", None)
        if not isinstance(group, str) or not _NAME_RE.match(group):
            raise PluginError(f"{where}: {item.__qualname__}.config_group must be a snake_case string, got {group!r}")
        config = getattr(item, "Config", None)
        if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
            raise PluginError(f"{where}: {item.__qualname__}.Config must be a dataclass")
        target = {f.name: f.default for f in dataclasses.fields(config)}.get("_target_")
        if not isinstance(target, str) or not target:
            raise PluginError(f"{where}: {item.__qualname__}.Config needs a `_target_: str` field naming the class")
        existing = self._by_group.setdefault(group, {}).get(name)
        if existing is not None:
            raise PluginError(
                f"duplicate component {group}={name!r}: provided by {existing.plugin.describe()} "
                f"({existing.cls.__module__}.{existing.cls.__qualname__}) and by {info.describe()} "
                f"({item.__module__}.{item.__qualname__})"
            )
        self._by_group[group][name] = Entry(item, info)

    def groups(self) -> list[str]:
        """Config groups that have at least one component."""
        return sorted(self._by_group)

    def names(self, group: str) -> list[str]:
        """Registered names in ``group``, sorted."""
        return sorted(self._by_group.get(group, {}))

    def entry(self, group: str, name: str) -> Entry:
        """The entry for ``group=name``.

        :raises UnknownComponentError: listing the available names.
        """
        try:
            return self._by_group[group][name]
        except KeyError:
            available = ", ".join(self.names(group)) or "(none registered)"
            raise UnknownComponentError(f"unknown {group} {name!r}; available: {available}") from None

    def get(self, group: str, name: str) -> type[Component]:
        """The class registered as ``group=name``."""
        return self.entry(group, name).cls

    def __iter__(self) -> Iterator[Entry]:
        for group in self.groups():
            yield from (self._by_group[group][n] for n in self.names(group))

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_group.values())
